-- hplua.console: the live console report (pytest-like) and the TAP writer.
local sys = require "hplua.sys"

local M = {}

local COLORS = { passed = "32", failed = "31", skipped = "33", stopped = "35", bold = "1", dim = "2" }

local function out(s)
  io.stdout:write(s)
  io.stdout:flush()
end

local function fmt_value(v)
  if type(v) == "number" then
    if math.type(v) == "integer" then return tostring(v) end
    return string.format("%.6g", v)
  end
  return tostring(v)
end

function M.format_measurement(m)
  local limits = {}
  if m.min ~= nil or m.max ~= nil then
    limits[#limits + 1] = string.format("[%s, %s]", m.min ~= nil and fmt_value(m.min) or "-inf", m.max ~= nil and fmt_value(m.max) or "inf")
  end
  if m.expect ~= nil then limits[#limits + 1] = "expect " .. fmt_value(m.expect) end
  return string.format("%s = %s%s%s %s", m.name, fmt_value(m.value), m.unit and (" " .. m.unit) or "",
    #limits > 0 and (" " .. table.concat(limits, " ")) or "", m.passed and "ok" or "OUT OF LIMITS")
end

local Console = {}
Console.__index = Console

function M.console(opts)
  local color = opts.color
  if color == "auto" then
    local nc = os.getenv("NO_COLOR")
    color = sys.isatty(1) and (nc == nil or nc == "")
  else
    color = color == "always"
  end
  return setmetatable({ verbose = opts.verbose, quiet = opts.quiet, color = color, failures = {}, errors = {} }, Console)
end

function Console:paint(what, s)
  if not self.color then return s end
  return "\27[" .. COLORS[what] .. "m" .. s .. "\27[0m"
end

function Console:collection_errors(errors)
  out(self:paint("failed", string.format("ERROR: %d collection error%s", #errors, #errors == 1 and "" or "s")) .. "\n")
  for _, e in ipairs(errors) do
    out(string.format("%s:%d: %s\n", e.file, e.line or 0, e.message))
  end
  out(self:paint("failed", "collection failed: no test was run") .. "\n")
end

function Console:start(info)
  if self.quiet then return end
  out(self:paint("bold", string.format("hplua %s: %d test%s in %d file%s", sys.version, info.selected,
    info.selected == 1 and "" or "s", info.files, info.files == 1 and "" or "s")) ..
    (info.deselected > 0 and string.format(" (%d deselected)", info.deselected) or "") .. "\n")
end

local LABEL = { passed = "PASSED ", failed = "FAILED ", skipped = "SKIPPED", stopped = "STOPPED" }

function Console:test_done(t, r)
  if r.status == "failed" or r.status == "stopped" then self.failures[#self.failures + 1] = r end
  if self.quiet and (r.status == "passed" or r.status == "skipped") then return end
  local detail
  if r.status == "skipped" then
    detail = ": " .. tostring(r.skip_reason)
  elseif r.attempts > 1 then
    detail = string.format(" (%.2fs, attempt %d of %d)", r.duration, r.attempts, t.attempts)
  else
    detail = string.format(" (%.2fs)", r.duration)
  end
  out(self:paint(r.status, LABEL[r.status]) .. " " .. t.id .. detail .. "\n")
  if self.verbose then
    -- messages were printed live, under the test's id (Console:message)
    for _, m in ipairs(r.measurements) do
      out("    " .. (m.passed and "" or self:paint("failed", "")) .. M.format_measurement(m) .. "\n")
    end
  else
    for _, m in ipairs(r.measurements) do
      if not m.passed then out("    " .. self:paint("failed", M.format_measurement(m)) .. "\n") end
    end
  end
end

-- -v: messages are printed as they are recorded, under a line naming their test
-- (as pytest's live log does); the test's result line follows when it ends.
function Console:message(rec, msg)
  if not self.verbose then return end
  if rec and self.header_for ~= rec then
    self.header_for = rec
    out(self:paint("dim", rec.test.id .. (rec.attempt > 1 and string.format(" (attempt %d)", rec.attempt) or "")) .. "\n")
  end
  out("    " .. msg.text .. "\n")
end

function Console:retry(t, rec)
  if self.quiet then return end
  local e = rec.error
  out(self:paint("dim", string.format("  attempt %d of %d failed: %s", rec.attempt, t.attempts, e and e.message or rec.status)) .. "\n")
end

function Console:run_error(e)
  self.errors[#self.errors + 1] = e
end

function Console:finish(run, summary)
  if #self.failures > 0 then
    out("\n" .. self:paint("bold", "FAILURES") .. "\n")
    for _, r in ipairs(self.failures) do
      out(self:paint(r.status, "--- " .. r.id .. " ---") .. "\n")
      local e = r.error or { message = r.status }
      if e.file then
        out(string.format("%s:%d: %s\n", e.file, e.line or 0, e.message))
      else
        out(e.message .. "\n")
      end
      if e.traceback and e.traceback ~= "" then
        out("traceback:\n")
        for line in e.traceback:gmatch("[^\n]+") do out("    " .. line .. "\n") end
      end
      if not self.verbose then
        for _, m in ipairs(r.messages) do out("    " .. m.text .. "\n") end
      end
    end
  end
  if #self.errors > 0 then
    out("\n" .. self:paint("bold", "ERRORS") .. "\n")
    for _, e in ipairs(self.errors) do
      out(e.file and string.format("%s:%d: %s\n", e.file, e.line or 0, e.message) or (e.message .. "\n"))
    end
  end
  if run.interrupted then out(self:paint("stopped", "run interrupted") .. "\n") end
  local parts = {
    self:paint(summary.passed > 0 and "passed" or "bold", summary.passed .. " passed"),
    self:paint(summary.failed > 0 and "failed" or "bold", summary.failed .. " failed"),
    self:paint(summary.skipped > 0 and "skipped" or "bold", summary.skipped .. " skipped"),
  }
  if summary.stopped > 0 then parts[#parts + 1] = self:paint("stopped", summary.stopped .. " stopped") end
  if #self.errors > 0 then parts[#parts + 1] = self:paint("failed", #self.errors .. (#self.errors == 1 and " error" or " errors")) end
  out(table.concat(parts, ", ") .. string.format(" in %.2fs", run.duration) .. "\n")
end

-- TAP version 13 on stdout, for prove and other TAP consumers.
local Tap = {}
Tap.__index = Tap

function M.tap()
  return setmetatable({ n = 0 }, Tap)
end

local function yaml_string(s)
  s = tostring(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    if c == "\n" then return "\\n" elseif c == '"' then return '\\"' elseif c == "\\" then return "\\\\" end
    return string.format("\\x%02x", c:byte())
  end) .. '"'
end

local function tap_desc(s)
  return (tostring(s):gsub("[\r\n]", " "):gsub("#", "\\#"))
end

function Tap:collection_errors(errors)
  out("TAP version 13\n")
  for _, e in ipairs(errors) do out(string.format("# %s:%d: %s\n", e.file, e.line or 0, tap_desc(e.message))) end
  out("Bail out! collection failed\n")
end

function Tap:start() out("TAP version 13\n") end

function Tap:test_done(t, r)
  self.n = self.n + 1
  if r.status == "passed" then
    out(string.format("ok %d - %s\n", self.n, tap_desc(t.id)))
  elseif r.status == "skipped" then
    out(string.format("ok %d - %s # SKIP %s\n", self.n, tap_desc(t.id), tap_desc(r.skip_reason)))
  else
    out(string.format("not ok %d - %s\n", self.n, tap_desc(t.id)))
    local e = r.error or {}
    out("  ---\n")
    out("  status: " .. r.status .. "\n")
    out("  message: " .. yaml_string(e.message or r.status) .. "\n")
    if e.file then out("  file: " .. yaml_string(e.file) .. "\n  line: " .. (e.line or 0) .. "\n") end
    local bad = {}
    for _, m in ipairs(r.measurements) do
      if not m.passed then bad[#bad + 1] = m end
    end
    if #bad > 0 then
      out("  measurements:\n")
      for _, m in ipairs(bad) do out("    - " .. yaml_string(M.format_measurement(m)) .. "\n") end
    end
    out("  ...\n")
  end
end

function Tap:run_error(e)
  out("# ERROR " .. (e.file and (e.file .. ":" .. (e.line or 0) .. ": ") or "") .. tap_desc(e.message) .. "\n")
end

function Tap:finish(run)
  out(string.format("1..%d\n", self.n))
  if run.interrupted then out("# run interrupted\n") end
end

return M
