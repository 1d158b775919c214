-- hplua.sink_events: the run's events as NDJSON (--events FILE or --events fd:N),
-- one JSON object per line, written as each event happens (API 6).
local sys = require "hplua.sys"
local json = require "hplua.json"

local M = {}

local Events = {}
Events.__index = Events

-- target: a path, or "fd:N" for an inherited descriptor. Returns the sink or nil, message.
function M.open(target)
  local n = target:match("^fd:(%d+)$")
  if n then
    -- a descriptor hplua was not given (one of its own, or none), or was given for
    -- reading only, is found now (a usage error), not at the first event
    if not sys.inherited(tonumber(n)) then
      return nil, "--events " .. target .. ": descriptor " .. n .. " was not given to hplua (not open when it started)"
    end
    if not sys.inherited(tonumber(n), true) then
      return nil, "--events " .. target .. ": descriptor " .. n .. " is open for reading only"
    end
    return setmetatable({ fd = tonumber(n), owned = false, target = target, lines = json.lines(), held = 0 }, Events)
  end
  local fd, err = sys.open(target, "w")
  if not fd then return nil, "--events: cannot open " .. err end
  return setmetatable({ fd = fd, owned = true, target = target, lines = json.lines(), held = 0 }, Events)
end

-- test_started and test_finished are held back while the runner itself works
-- between two tests: at most until it next calls test code, a hook or a fixture,
-- waits for children, or ends (Bus:flush), and never longer than HOLD seconds or
-- HOLD_LINES events (a burst of skipped tests). The events between two tests then
-- go out in one write. Every other event (those test code causes, errors, the
-- run's end) is written at once, with what was held back.
local HELD = { test_started = true, test_finished = true }
local HOLD, HOLD_LINES = 0.005, 256

-- The event with each member JSON cannot hold (a function or a coroutine that test
-- code put among a test's artifacts, say) replaced by what says so, of the same JSON
-- type where it was a table (an object, as the JSON report does for artifacts; an
-- empty array for a list): the rest (a test's id, its status, its error) still
-- reaches every reader.
local function encodable(ev)
  local copy = {}
  for k, v in pairs(ev) do
    if type(k) == "string" then
      local kind = type(v)
      if kind == "table" and not json.encode(v, false, math.huge) then
        v = rawequal(next(v), 1) and json.array() or { error = "not encodable: a table holding what JSON cannot" }
      elseif kind == "function" or kind == "thread" or (kind == "userdata" and v ~= json.null) then
        v = "not encodable: a " .. kind
      end
      copy[k] = v
    end
  end
  return copy
end

function Events:write(ev, run)
  if not self.fd then return end
  local lines = self.lines
  local ok, err = lines:add(ev)
  if not ok then ok = lines:add(encodable(ev)) end
  if not ok then
    lines:add({ v = 1, seq = ev.seq, run_id = ev.run_id, type = ev.type, time = ev.time,
      error = "event not encodable: " .. tostring(err) })
  end
  local n = self.held + 1
  self.held = n
  if n == 1 then self.held_since = sys.clock() end
  if not HELD[ev.type] or n >= HOLD_LINES or sys.clock() - self.held_since >= HOLD then self:flush(run) end
end

function Events:flush(run)
  if self.held == 0 or not self.fd then return end
  self.held = 0
  local ok, werr = self.lines:drain(self.fd)
  if not ok then
    self:close()
    if run then run:output_error("--events " .. self.target .. ": " .. werr) end
  end
end

-- Every event type goes through the one handler.
for _, kind in ipairs { "run_started", "collection_error", "test_started", "message", "measurement", "process_started",
  "process_ended", "dialog_requested", "dialog_answered", "info", "test_finished", "run_error", "run_finished" } do
  Events[kind] = Events.write
end

function Events:close(run)
  self:flush(run)
  if self.fd and self.owned then sys.close(self.fd) end
  self.fd = nil
end

return M
