-- hplua.control: the station's control channel (--control FIFO). The station (hplua
-- serve) writes JSON lines; a run reads them while it waits for an operator:
--   {"type": "dialog_answer", "id": ID, "value": V}
-- A slot's coordination channel (lua/slotlink.lua) is read the same way: replies
-- to its lock and barrier requests, {"type": "granted"|"refused"|"passed", "id": N}.
-- The station keeps the FIFO open for writing for the whole run; end of file means
-- the panel is gone and the next answer provider is asked.
local sys = require "hplua.sys"
local json = require "hplua.json"

local M = {}

local Control = {}
Control.__index = Control

function M.open(path)
  local fd, err = sys.open(path, "r")
  if not fd then return nil, "--control: cannot open " .. err end
  return setmetatable({ fd = fd, buf = "", answers = {}, replies = {} }, Control)
end

-- Reads what is there; false at end of file.
function Control:pump()
  while true do
    local data, _, code = sys.read(self.fd)
    if not data then return code == "EAGAIN" end
    if data == "" then return false end
    self.buf = self.buf .. data
    while true do
      local line, rest = self.buf:match("^([^\n]*)\n(.*)$")
      if not line then break end
      self.buf = rest
      local msg = json.decode(line)
      if type(msg) == "table" and msg.type == "dialog_answer" and type(msg.id) == "string" then
        self.answers[msg.id] = { value = msg.value }
      elseif type(msg) == "table" and math.type(msg.id) == "integer" then
        self.replies[msg.id] = msg
      end
    end
  end
end

-- Waits for the answer to dialog id that check(raw) accepts (answers that do not
-- fit are dropped: the station validates them first). nil when the panel is gone.
function Control:answer(id, check)
  while self.fd do
    local a = self.answers[id]
    if a then
      self.answers[id] = nil
      local v = check(a.value)
      if v ~= nil then return v end
    elseif not self:pump() then
      self:close()
    elseif not self.answers[id] then -- the pump may just have read it
      sys.wait_readable(self.fd)
    end
  end
  return nil
end

-- Waits for the reply to request id (a table); nil when the other side is gone.
-- The wait is in the event loop: a test's timeout or Ctrl-C cuts it (it raises).
function Control:reply(id)
  while self.fd do
    local r = self.replies[id]
    if r then
      self.replies[id] = nil
      return r
    end
    if not self:pump() then
      self:close()
    elseif not self.replies[id] then
      sys.wait_readable(self.fd)
    end
  end
  return nil
end

-- Drops replies nobody waits for any more (requests given up by a timeout).
function Control:forget_replies()
  self.replies = {}
end

function Control:close()
  if self.fd then sys.close(self.fd) end
  self.fd = nil
end

return M
