-- hplua.sink_tap: TAP version 13 on stdout (for prove and other TAP consumers), a
-- subscriber of the run's events.
local format = require "hplua.format"

local M = {}

local function out(s)
  io.stdout:write(s)
  io.stdout:flush()
end

local text = require "hplua.text"
local yaml_string, desc = text.yaml_string, text.tap_description

local Tap = {}
Tap.__index = Tap

function M.new()
  return setmetatable({ n = 0, collection_errors = {} }, Tap)
end

function Tap:run_started() out("TAP version 13\n") end

function Tap:collection_error(ev)
  out(string.format("# %s:%d: %s\n", ev.file, ev.line or 0, desc(ev.message)))
end

function Tap:test_finished(ev)
  self.n = self.n + 1
  if ev.status == "passed" then
    out(string.format("ok %d - %s\n", self.n, desc(ev.test)))
  elseif ev.status == "skipped" then
    out(string.format("ok %d - %s # SKIP %s\n", self.n, desc(ev.test), desc(ev.skip_reason)))
  else
    out(string.format("not ok %d - %s\n", self.n, desc(ev.test)))
    local e = type(ev.error) == "table" and ev.error or {}
    out("  ---\n")
    out("  status: " .. ev.status .. "\n")
    out("  message: " .. yaml_string(e.message or ev.status) .. "\n")
    if e.file then out("  file: " .. yaml_string(e.file) .. "\n  line: " .. (e.line or 0) .. "\n") end
    local bad = {}
    for _, m in ipairs(ev.measurements or {}) do
      if not m.passed then bad[#bad + 1] = m end
    end
    if #bad > 0 then
      out("  measurements:\n")
      for _, m in ipairs(bad) do out("    - " .. yaml_string(format.measurement(m)) .. "\n") end
    end
    out("  ...\n")
  end
end

-- What went wrong outside any test (a hook or a fixture's teardown that failed, an
-- output that could not be written) is a "not ok" line of the run's own, and so is
-- a run stopped before any test was marked, as in JUnit: a TAP file read on its own
-- (a CI plugin, not prove, which also sees the exit status) must not read as a pass.
local function not_ok(self, what, status, e)
  self.n = self.n + 1
  out(string.format("not ok %d - hplua: %s\n  ---\n  status: %s\n  message: %s\n", self.n, what, status,
    yaml_string(e.message)))
  if type(e.file) == "string" then out("  file: " .. yaml_string(e.file) .. "\n  line: " .. (tonumber(e.line) or 0) .. "\n") end
  out("  ...\n")
end

function Tap:run_error(ev) not_ok(self, "run error", "error", ev) end

function Tap:run_finished(ev)
  if ev.phase == "collection_error" then
    out("Bail out! collection failed\n")
    return
  end
  if format.stopped_unmarked(ev) then
    not_ok(self, "run stopped", "stopped", { message = "the run was stopped before its end" })
  end
  out(string.format("1..%d\n", self.n))
  if ev.status == "stopped" then out("# run interrupted\n") end
end

return M
