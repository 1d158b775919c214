-- hplua.slotrun: one slot's run in a child hplua, as both supervisors start it
-- (`hplua --slots N`, lua/slots.lua; `hplua serve`, lua/serve.lua): the FIFOs in
-- the supervisor's private folder, the child process, and its lines read back.
--
-- Channels of a run with tag T (a path prefix in a 0700 folder):
--   T.events   the child's event stream (--events T.events), NDJSON
--   T.control  dialog answers from the station (--control), serve only
--   T.req      lock and barrier requests (--coord T), read by lua/coord.lua
--   T.rel      unlocks, when the supervisor reads them apart (lua/slots.lua: only
--              when another slot waits for the lock, or a request needs the truth)
--   T.rep      their replies, written by the supervisor
-- Every read end is non-blocking; every write end is opened read-write so that
-- neither side blocks on open and a gone reader never raises SIGPIPE.
local http = require "hplua.http"
local process = require "hplua.process"
local sys = require "hplua.sys"

local M = {}

-- open_channels(tag, { control = bool, releases = bool }) -> channels | nil, message.
-- channels: { events, req, rel (read ends), rep, control (write ends), paths = {...} }
function M.open_channels(tag, opts)
  local ch = { paths = { events = tag .. ".events", req = tag .. ".req", rep = tag .. ".rep" } }
  if opts and opts.control then ch.paths.control = tag .. ".control" end
  if opts and opts.releases then ch.paths.rel = tag .. ".rel" end
  for _, p in pairs(ch.paths) do
    os.remove(p)
    local ok, err = http.mkfifo(p)
    if not ok then return nil, err end
  end
  local err
  for _, k in ipairs { "events", "req", "rel", "rep", "control" } do
    local p = ch.paths[k]
    if p then
      ch[k], err = http.open_fifo(p, (k == "events" or k == "req" or k == "rel") and "r" or "w")
      if not ch[k] then
        M.close_channels(ch)
        return nil, err
      end
    end
  end
  return ch
end

function M.close_channels(ch)
  for _, k in ipairs { "events", "req", "rel", "rep", "control" } do
    if ch[k] then ch[k]:close() end
    ch[k] = nil
  end
  for _, p in pairs(ch.paths) do os.remove(p) end
end

-- Starts argv as a child whose console (stdout and stderr) goes to log_path, its
-- stdin empty; -> handle | nil, message.
function M.spawn(name, argv, log_path, env)
  local ok, handle = pcall(process.start, name, argv, { env = env, output = log_path })
  if not ok then return nil, tostring(handle) end
  return handle
end

local READ_SIZE = 16384

-- A reader of complete lines from a non-blocking FIFO end.
local Lines = {}
Lines.__index = Lines

function M.lines(fd) return setmetatable({ fd = fd, buf = "", got_data = false, eof = false }, Lines) end

-- Calls on_line(line) for every complete line there is now. ended: the writer is
-- known to be gone (its process ended), so an empty read is the end. Returns true
-- at end of file; self.got is the number of bytes this call read.
function Lines:pump(on_line, ended)
  self.got = 0
  while not self.eof do
    -- small reads: lines are short, and a 64 KiB buffer per wake is garbage to collect
    local data, _, code = sys.read(self.fd:fileno(), READ_SIZE)
    if not data then
      if code ~= "EAGAIN" then self.eof = true end
      break
    end
    if data == "" then
      -- no writer: the child closed its end (or has not opened it yet)
      if self.got_data or ended then self.eof = true end
      break
    end
    self.got_data = true
    self.got = self.got + #data
    local buf = self.buf == "" and data or self.buf .. data
    local pos = 1
    while true do
      local nl = buf:find("\n", pos, true)
      if not nl then break end
      on_line(buf:sub(pos, nl - 1))
      pos = nl + 1
    end
    self.buf = buf:sub(pos)
    if #data < READ_SIZE then break end
  end
  return self.eof
end

-- The last non-blank line of a file (a dead child's last words), or nil.
function M.tail_line(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local size = f:seek("end")
  f:seek("set", math.max(0, size - 4096))
  local data = f:read("a") or ""
  f:close()
  local last
  for line in data:gmatch("[^\n]+") do
    if line:find("%S") then last = line end
  end
  return last
end

return M
