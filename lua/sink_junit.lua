-- hplua.sink_junit: JUnit XML (valid against Jenkins' junit-10.xsd), a subscriber of
-- the run's events. Each testcase is rendered when its test finishes (into a spool,
-- a temporary file: hplua.spool) and each testsuite's head when the next module
-- begins; the file is streamed from them and written atomically at the end.
local json = require "hplua.json"
local spool = require "hplua.spool"
local format = require "hplua.format"
local outfile = require "hplua.outfile"

local M = {}
local null = json.null

-- XML 1.0 text and attribute values (hplua.text): specials escaped, the characters
-- XML forbids written as visible escapes, invalid UTF-8 repaired.
local text = require "hplua.text"
local xml, xml_text = text.xml_attr, text.xml_text
M.xml = xml

local Junit = {}
Junit.__index = Junit

function M.new(path)
  return setmetatable({ path = path, option = "--junit", suites = {}, spool = spool.new(), dut = {}, stand = {}, errors = {} },
    Junit)
end

-- What went wrong outside any test (a file that did not load, a hook or a fixture's
-- teardown that failed) is an <error> of a testsuite of the run's own ("hplua"), and
-- so is a run stopped before any test was marked: a reader that counts failures and
-- errors then sees every run that did not pass.
-- "file:line: " of an error or event that has a place, else "".
local function place(e)
  return type(e.file) == "string" and string.format("%s:%d: ", e.file, tonumber(e.line) or 0) or ""
end

function Junit:run_error(ev) self.errors[#self.errors + 1] = ev end
Junit.collection_error = Junit.run_error

function Junit:run_suite(ev)
  local cases = {}
  for i, e in ipairs(self.errors) do
    local loc = place(e)
    local kind = e.type == "collection_error" and "collection" or (type(e.kind) == "string" and e.kind or "error")
    cases[#cases + 1] = string.format('    <testcase classname="hplua" name="%s %d" time="0.000">\n' ..
      '      <error message="%s" type="%s">%s</error>\n    </testcase>', e.type == "collection_error" and "collection error" or "run error",
      i, xml(loc .. tostring(e.message)), xml(kind), xml_text(loc .. tostring(e.message)))
  end
  if format.stopped_unmarked(ev) then
    cases[#cases + 1] = '    <testcase classname="hplua" name="run stopped" time="0.000">\n' ..
      '      <error message="the run was stopped before its end" type="interrupted"/>\n    </testcase>'
  end
  if #cases == 0 then return nil, 0 end
  return string.format('  <testsuite name="hplua" tests="%d" failures="0" errors="%d" skipped="0" time="0.000" timestamp="%s">\n',
    #cases, #cases, xml(ev.ended_at)) .. table.concat(cases, "\n") .. "\n  </testsuite>", #cases
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
      local v = self[group][k]
      p[#p + 1] = string.format('      <property name="%s.%s" value="%s"/>', group, xml(k),
        xml(type(v) == "table" and json.encode(v, false, math.huge) or v))
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
  -- the suite's head; its testcases are in the spool between s.from and here
  self.suites[#self.suites + 1] = { head .. "\n" .. (props and (props .. "\n") or ""), s.from, self.spool:mark() }
end

function Junit:test_finished(ev)
  local s = self.suite
  if not s or s.id ~= ev.module then
    self:close_suite()
    s = { id = ev.module, tests = 0, failures = 0, skipped = 0, time = 0, timestamp = ev.started_at, from = self.spool:mark(),
      classname = xml(ev.module) }
    self.suite = s
  end
  s.tests = s.tests + 1
  s.time = s.time + (ev.duration or 0)
  local head = string.format('%s    <testcase classname="%s" name="%s" time="%.3f">', s.tests > 1 and "\n" or "",
    s.classname, xml(ev.name), ev.duration or 0)
  local msgs, meas = ev.messages, ev.measurements
  if ev.status == "passed" and (not msgs or #msgs == 0) and (not meas or #meas == 0) then
    self.spool:append(head .. "\n    </testcase>") -- the common case, without a table of lines
    return
  end
  local lines = { head }
  if ev.status == "failed" or ev.status == "stopped" then
    s.failures = s.failures + 1
    local e = ev.error ~= null and ev.error or { message = ev.status }
    local loc = place(e)
    lines[#lines + 1] = string.format('      <failure message="%s" type="%s">%s%s</failure>', xml(loc .. e.message),
      ev.status, xml_text(loc .. e.message), e.traceback and ("\n" .. xml_text(e.traceback)) or "")
  elseif ev.status == "skipped" then
    s.skipped = s.skipped + 1
    lines[#lines + 1] = string.format('      <skipped message="%s"/>', xml(ev.skip_reason ~= null and ev.skip_reason or "skipped"))
  end
  local out = {}
  for _, msg in ipairs(msgs or {}) do out[#out + 1] = msg.time .. " " .. msg.text end
  for _, m in ipairs(meas or {}) do out[#out + 1] = format.measurement(m) end
  if #out > 0 then lines[#lines + 1] = "      <system-out>" .. xml_text(table.concat(out, "\n")) .. "</system-out>" end
  lines[#lines + 1] = "    </testcase>"
  self.spool:append(table.concat(lines, "\n"))
end

-- The document for the final record ev, handed to write(piece) in order; stops at
-- the first write that does not return true and returns what it returned.
function Junit:stream(ev, write, handle)
  self:close_suite()
  local sm = ev.summary
  local run_suite, nerr = self:run_suite(ev)
  local ok, err, code = write('<?xml version="1.0" encoding="UTF-8"?>\n' ..
    string.format('<testsuites name="hplua" tests="%d" failures="%d" errors="%d" time="%.3f">\n', sm.total + nerr,
      sm.failed + sm.stopped, nerr, ev.duration))
  for i, suite in ipairs(self.suites) do
    if not ok then break end
    ok, err, code = write(i > 1 and "\n" .. suite[1] or suite[1])
    if ok then ok, err, code = self.spool:copy(suite[2], suite[3], write, handle) end
    if ok then ok, err, code = write("\n  </testsuite>") end
  end
  if ok and run_suite then ok, err, code = write((#self.suites > 0 and "\n" or "") .. run_suite) end
  if not ok then return ok, err, code end
  return write((#self.suites > 0 or run_suite) and "\n</testsuites>\n" or "</testsuites>\n")
end

-- Written to a synced temporary before the run's final event, renamed at it
-- (hplua.outfile: every output agrees with the exit status).
function Junit:prepare(ev)
  return outfile.prepare_stream(self, function(write, handle) return self:stream(ev, write, handle) end)
end
function Junit:abort() outfile.abort(self) end
function Junit:run_finished(_, run) outfile.commit(self, run) end
function Junit:close() self.spool:close() end

return M
