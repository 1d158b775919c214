-- hplua.slotlink: a slot's side of the station-wide locks and barriers (API 10).
-- A run started by a slot supervisor (`hplua --slots N`, `hplua serve --slots N`)
-- gets `--coord PREFIX`: it writes requests as JSON lines to the FIFO PREFIX.req
-- and reads the replies from PREFIX.rep (lua/control.lua reads them):
--   -> {"type": "lock", "id": N, "name": S, "test": ID}    <- granted | refused (message)
--   -> {"type": "barrier", "id": N, "name": S, "test": ID} <- passed (count) | refused
--   -> {"type": "unlock", "name": S}   to PREFIX.rel when the supervisor made one (it
--      reads unlocks only when they matter, and so is not woken by each), else PREFIX.req
--   -> {"type": "release_all"}  after a test attempt that a timeout cut off while it held
--      a lock or waited for a reply: what it left held or waiting is given back (a fired
--      timeout runs no Lua code in the test's unwinding)
-- The supervisor (lua/coord.lua) grants, queues, detects wait cycles, and releases
-- what a slot held when its process ends. Waits are in the event loop.
local sys = require "hplua.sys"
local json = require "hplua.json"

local M = {}

local Link = {}
Link.__index = Link

-- open(prefix) -> link | nil, message
function M.open(prefix)
  local control, err = require("hplua.control").open(prefix .. ".rep")
  if not control then return nil, "--coord: " .. err end
  local fd
  fd, err = sys.open(prefix .. ".req", "w")
  if not fd then
    control:close()
    return nil, "--coord: cannot open " .. err
  end
  -- unlocks go apart when the supervisor reads them apart (a FIFO it made)
  local rel_fd
  if sys.kind(prefix .. ".rel") == "other" then rel_fd = sys.open(prefix .. ".rel", "w") end
  -- pending: requests sent whose outcome is not recorded yet (a cut-off wait leaves it above 0)
  return setmetatable({ fd = fd, rel_fd = rel_fd, replies = control, next_id = 0, held = {}, pending = 0 }, Link)
end

function Link:send(msg, channel)
  channel = channel or "fd"
  if not self[channel] then return nil, "the slot supervisor is gone" end
  local ok, err = sys.write(self[channel], json.encode(msg), "\n")
  if not ok then
    sys.close(self[channel])
    self[channel] = nil
    return nil, "the slot supervisor is gone (" .. tostring(err) .. ")"
  end
  return true
end

-- Sends a request and waits for its reply -> reply | nil, message. The caller
-- records the outcome, then calls settled(): given up by a timeout before that,
-- the request stays pending and is cancelled with release_all.
function Link:request(msg)
  self.next_id = self.next_id + 1
  msg.id = self.next_id
  self.pending = self.pending + 1
  local ok, err = self:send(msg)
  if not ok then return nil, err end
  local r = self.replies:reply(msg.id)
  if not r then return nil, "the slot supervisor is gone" end
  return r
end

-- Runs fn holding the station-wide lock name (re-entrant within the slot).
-- Returns true, fn's results... | false, message (the lock was refused).
function Link:with_lock(name, test, fn, ...)
  if self.held[name] then
    self.held[name] = self.held[name] + 1
    local _ <close> = setmetatable({}, { __close = function() self.held[name] = self.held[name] - 1 end })
    return true, fn(...)
  end
  local r, err = self:request({ type = "lock", name = name, test = test })
  if not r then return false, err end
  if r.type ~= "granted" then
    self:settled()
    return false, r.message or ("lock " .. name .. " was refused")
  end
  self.held[name] = 1
  self:settled()
  -- released however fn ends; the error (and its traceback) propagates unchanged
  local _ <close> = setmetatable({}, { __close = function()
    self.held[name] = nil
    self:send({ type = "unlock", name = name }, self.rel_fd and "rel_fd")
  end })
  return true, fn(...)
end

-- Waits at barrier name -> number of slots that passed together | nil, message.
function Link:barrier(name, test)
  local r, err = self:request({ type = "barrier", name = name, test = test })
  if not r then return nil, err end
  self:settled()
  if r.type ~= "passed" then return nil, r.message or ("barrier " .. name .. " was refused") end
  return r.count
end

function Link:settled()
  self.pending = self.pending - 1
end

-- After a test attempt: gives back whatever a cut-off test left held or waiting
-- (nothing to send after an attempt whose locks and waits all ended normally).
function Link:release_all()
  if self.pending == 0 and not next(self.held) then return end
  self.held, self.pending = {}, 0
  self.replies:forget_replies()
  self:send({ type = "release_all" })
end

function Link:close()
  if self.fd then sys.close(self.fd) end
  if self.rel_fd then sys.close(self.rel_fd) end
  self.fd, self.rel_fd = nil, nil
  self.replies:close()
end

return M
