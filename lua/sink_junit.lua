-- hplua.sink_junit: JUnit XML (valid against Jenkins' junit-10.xsd), a subscriber of
-- the run's events. Each testcase is rendered when its test finishes and each
-- testsuite when the next module begins; the file is written atomically at the end.
local json = require "hplua.json"
local format = require "hplua.format"

local M = {}
local null = json.null

-- XML 1.0 text: specials escaped; characters XML forbids (C0 controls but tab, LF
-- and CR; U+FFFE, U+FFFF) dropped; invalid UTF-8 repaired.
local function xml(s)
  s = json.utf8_repair(tostring(s))
  s = s:gsub("[%z\1-\8\11\12\14-\31]", ""):gsub("\239\191[\190\191]", "")
  return (s:gsub('[<>&"\']', { ["<"] = "&lt;", [">"] = "&gt;", ["&"] = "&amp;", ['"'] = "&quot;", ["'"] = "&apos;" }))
end
M.xml = xml

local Junit = {}
Junit.__index = Junit

function M.new(path)
  return setmetatable({ path = path, suites = {}, dut = {}, stand = {} }, Junit)
end

function Junit:info(ev)
  if ev.dut then self.dut = ev.dut elseif ev.stand then self.stand = ev.stand end
end

function Junit:properties()
  local p = {}
  for _, group in ipairs { "dut", "stand" } do
    local keys = {}
    for k in pairs(self[group]) do keys[#keys + 1] = tostring(k) end
    table.sort(keys)
    for _, k in ipairs(keys) do
      p[#p + 1] = string.format('      <property name="%s.%s" value="%s"/>', group, xml(k), xml(self[group][k]))
    end
  end
  if #p == 0 then return nil end
  return "    <properties>\n" .. table.concat(p, "\n") .. "\n    </properties>"
end

function Junit:close_suite()
  local s = self.suite
  if not s then return end
  self.suite = nil
  local head = string.format('  <testsuite name="%s" tests="%d" failures="%d" errors="0" skipped="%d" time="%.3f" timestamp="%s">',
    xml(s.id), s.tests, s.failures, s.skipped, s.time, xml(s.timestamp))
  local props = self:properties()
  self.suites[#self.suites + 1] = head .. "\n" .. (props and (props .. "\n") or "") .. table.concat(s.cases, "\n") ..
    "\n  </testsuite>"
end

function Junit:test_finished(ev)
  local s = self.suite
  if not s or s.id ~= ev.module then
    self:close_suite()
    s = { id = ev.module, tests = 0, failures = 0, skipped = 0, time = 0, timestamp = ev.started_at, cases = {} }
    self.suite = s
  end
  s.tests = s.tests + 1
  s.time = s.time + (ev.duration or 0)
  local lines = { string.format('    <testcase classname="%s" name="%s" time="%.3f">', xml(ev.module), xml(ev.name),
    ev.duration or 0) }
  if ev.status == "failed" or ev.status == "stopped" then
    s.failures = s.failures + 1
    local e = ev.error ~= null and ev.error or { message = ev.status }
    local loc = type(e.file) == "string" and string.format("%s:%d: ", e.file, tonumber(e.line) or 0) or ""
    lines[#lines + 1] = string.format('      <failure message="%s" type="%s">%s%s</failure>', xml(loc .. e.message),
      ev.status, xml(loc .. e.message), e.traceback and ("\n" .. xml(e.traceback)) or "")
  elseif ev.status == "skipped" then
    s.skipped = s.skipped + 1
    lines[#lines + 1] = string.format('      <skipped message="%s"/>', xml(ev.skip_reason ~= null and ev.skip_reason or "skipped"))
  end
  local out = {}
  for _, msg in ipairs(ev.messages or {}) do out[#out + 1] = msg.time .. " " .. msg.text end
  for _, m in ipairs(ev.measurements or {}) do out[#out + 1] = format.measurement(m) end
  if #out > 0 then lines[#lines + 1] = "      <system-out>" .. xml(table.concat(out, "\n")) .. "</system-out>" end
  lines[#lines + 1] = "    </testcase>"
  s.cases[#s.cases + 1] = table.concat(lines, "\n")
end

function Junit:run_finished(ev, run)
  self:close_suite()
  local sm = ev.summary
  local text = '<?xml version="1.0" encoding="UTF-8"?>\n' ..
    string.format('<testsuites name="hplua" tests="%d" failures="%d" errors="0" time="%.3f">\n', sm.total,
      sm.failed + sm.stopped, ev.duration) ..
    table.concat(self.suites, "\n") .. (#self.suites > 0 and "\n" or "") .. "</testsuites>\n"
  self.suites = nil
  local ok, err = json.write_atomic(self.path, text)
  if not ok then run:output_error(err) end
end

return M
