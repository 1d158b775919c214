-- hplua.events: the run's event bus. Every output (console, TAP, reports, events
-- file, history, panel) is a subscriber: a table with a method per event type it
-- wants, called as sink:<type>(event, run) in subscription order (the mediator of
-- busted's core, without priorities). Events are the records of API section 6;
-- the bus numbers and stamps them. Sinks must treat events as read-only.
local sys = require "hplua.sys"

local M = {}

local Bus = {}
Bus.__index = Bus

-- run_id: the run's UUID; slot: the slot number or nil; run: passed to every sink.
function M.new(run_id, slot, run)
  return setmetatable({ run_id = run_id, slot = slot, run = run, seq = 0, sinks = {} }, Bus)
end

function Bus:subscribe(sink)
  self.sinks[#self.sinks + 1] = sink
  if sink.flush then
    self.flushers = self.flushers or {}
    self.flushers[#self.flushers + 1] = sink
  end
end

-- Tells the sinks that hold output back (the events file) to write it now: the run
-- calls this before test code, a hook or a wait can take time.
function Bus:flush()
  local f = self.flushers
  if f then
    for i = 1, #f do f[i]:flush(self.run) end
  end
end

-- Stamps ev (a fresh table owned by the bus from now on) and hands it to every sink.
function Bus:emit(kind, ev)
  local seq = self.seq + 1
  self.seq = seq
  ev.v, ev.seq, ev.time, ev.run_id, ev.type, ev.slot = 1, seq, sys.now(), self.run_id, kind, self.slot
  local sinks, run = self.sinks, self.run
  for i = 1, #sinks do
    local s = sinks[i]
    local f = s[kind]
    if f then f(s, ev, run) end
  end
  return ev
end

-- Lets every sink finish (close files, commit); the first error is returned, all run.
function Bus:close()
  local first
  for _, s in ipairs(self.sinks) do
    if s.close then
      local ok, err = pcall(s.close, s, self.run)
      if not ok and not first then first = tostring(err) end
    end
  end
  return first == nil, first
end

-- A random (version 4) UUID.
function M.uuid()
  local f = io.open("/dev/urandom", "rb")
  local b = f and f:read(16)
  if f then f:close() end
  if not b or #b < 16 then
    math.randomseed(sys.wall() * 1e6, sys.getpid())
    local t = {}
    for i = 1, 16 do t[i] = string.char(math.random(0, 255)) end
    b = table.concat(t)
  end
  local bytes = { b:byte(1, 16) }
  bytes[7] = (bytes[7] & 0x0f) | 0x40
  bytes[9] = (bytes[9] & 0x3f) | 0x80
  local hex = string.format(string.rep("%02x", 16), table.unpack(bytes))
  return string.format("%s-%s-%s-%s-%s", hex:sub(1, 8), hex:sub(9, 12), hex:sub(13, 16), hex:sub(17, 20), hex:sub(21, 32))
end

return M
