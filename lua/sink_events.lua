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
  if n then return setmetatable({ fd = tonumber(n), owned = false, target = target, lines = json.lines() }, Events) end
  local fd, err = sys.open(target, "w")
  if not fd then return nil, "--events: cannot open " .. err end
  return setmetatable({ fd = fd, owned = true, target = target, lines = json.lines() }, Events)
end

-- test_started and test_finished are held back: the monitor (host/monitor.h) writes
-- them within HOLD seconds, whatever the run is doing then (test code computing, or
-- blocked in a system call), unless something is written first; a run of short tests
-- then costs a write per HOLD, not one per test. Every other event (those test code
-- causes, errors, the run's end) is written at once, with what was held back. Before
-- the monitor runs (the first test), and past HOLD_BYTES held, they are written at once.
local HELD = { test_started = true, test_finished = true }
local HOLD, HOLD_BYTES = 0.005, 1 << 16

function Events:write(ev, run)
  if not self.fd then return end
  local lines = self.lines
  local ok, err = lines:add(ev)
  if not ok then
    lines:add({ v = 1, seq = ev.seq, run_id = ev.run_id, type = ev.type, time = ev.time,
      error = "event not encodable: " .. tostring(err) })
  end
  if HELD[ev.type] and lines:size() < HOLD_BYTES then
    local deferred, derr = lines:defer(self.fd, HOLD)
    if deferred then return end
    if deferred == nil then return self:failed(run, derr) end
  end
  self:drain(run)
end

-- Writes what is held, now.
function Events:drain(run)
  if not self.fd then return end
  local ok, err = self.lines:drain(self.fd)
  if not ok then self:failed(run, err) end
end

function Events:failed(run, err)
  self:close()
  if run then run:output_error("--events " .. self.target .. ": " .. err) end
end

-- Every event type goes through the one handler.
for _, kind in ipairs { "run_started", "collection_error", "test_started", "message", "measurement", "process_started",
  "process_ended", "dialog_requested", "dialog_answered", "info", "test_finished", "run_error", "run_finished" } do
  Events[kind] = Events.write
end

function Events:close(run)
  if not self.fd then return end
  local ok, err = self.lines:drain(self.fd)
  self.lines:undefer()
  if self.owned then sys.close(self.fd) end
  self.fd = nil
  if not ok and run then run:output_error("--events " .. self.target .. ": " .. err) end
end

return M
