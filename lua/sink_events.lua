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
  if n then return setmetatable({ fd = tonumber(n), owned = false, target = target, held = {} }, Events) end
  local fd, err = sys.open(target, "w")
  if not fd then return nil, "--events: cannot open " .. err end
  return setmetatable({ fd = fd, owned = true, target = target, held = {} }, Events)
end

-- test_started and test_finished are held back while the runner itself works
-- between two tests: at most until it next calls test code, a hook or a fixture,
-- waits for children, or ends (Bus:flush), and never longer than HOLD seconds or
-- HOLD_LINES events (a burst of skipped tests). The events between two tests then
-- go out in one write. Every other event (those test code causes, errors, the
-- run's end) is written at once, with what was held back.
local HELD = { test_started = true, test_finished = true }
local HOLD, HOLD_LINES = 0.005, 256

function Events:write(ev, run)
  if not self.fd then return end
  local line, err = json.encode(ev)
  if not line then line = json.encode({ v = 1, seq = ev.seq, run_id = ev.run_id, type = ev.type, time = ev.time,
    error = "event not encodable: " .. tostring(err) }) end
  local held = self.held
  local n = #held + 1
  held[n] = line
  if n == 1 then self.held_since = sys.clock() end
  if not HELD[ev.type] or n >= HOLD_LINES or sys.clock() - self.held_since >= HOLD then self:flush(run) end
end

function Events:flush(run)
  local held = self.held
  local n = #held
  if n == 0 or not self.fd then return end
  held[n + 1] = ""
  local ok, werr = sys.write(self.fd, table.concat(held, "\n"))
  for i = n + 1, 1, -1 do held[i] = nil end
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
