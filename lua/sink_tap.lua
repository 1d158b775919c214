-- hplua.sink_tap: TAP version 13 on stdout (for prove and other TAP consumers), a
-- subscriber of the run's events.
local format = require "hplua.format"

local M = {}

local function out(s)
  io.stdout:write(s)
  io.stdout:flush()
end

local function yaml_string(s)
  s = tostring(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    if c == "\n" then return "\\n" elseif c == '"' then return '\\"' elseif c == "\\" then return "\\\\" end
    return string.format("\\x%02x", c:byte())
  end) .. '"'
end

local function desc(s)
  return (tostring(s):gsub("[%c]", " "):gsub("#", "\\#"))
end

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

function Tap:run_error(ev)
  out("# ERROR " .. (type(ev.file) == "string" and (ev.file .. ":" .. (tonumber(ev.line) or 0) .. ": ") or "") ..
    desc(ev.message) .. "\n")
end

function Tap:run_finished(ev)
  if ev.phase == "collection_error" then
    out("Bail out! collection failed\n")
    return
  end
  out(string.format("1..%d\n", self.n))
  if ev.status == "stopped" then out("# run interrupted\n") end
end

return M
