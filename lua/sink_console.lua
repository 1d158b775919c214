-- hplua.sink_console: the live console report (pytest-like), a subscriber of the
-- run's events.
local sys = require "hplua.sys"
local format = require "hplua.format"
-- test-supplied text never reaches the terminal raw (no escape-sequence injection)
local esc = require("hplua.text").escape_control

local M = {}

local COLORS = { passed = "32", failed = "31", skipped = "33", stopped = "35", bold = "1", dim = "2" }
local LABEL = { passed = "PASSED ", failed = "FAILED ", skipped = "SKIPPED", stopped = "STOPPED" }

local function out(s)
  io.stdout:write(s)
  io.stdout:flush()
end

local Console = {}
Console.__index = Console

-- --color WHEN: "always", "never", or "auto" (a terminal, and NO_COLOR unset or empty).
function M.use_color(when)
  when = when or "auto"
  if when ~= "auto" then return when == "always" end
  local nc = os.getenv("NO_COLOR")
  return sys.isatty(1) and (nc == nil or nc == "")
end

-- opts: color ("auto"|"always"|"never"), verbose, quiet.
function M.new(opts)
  local color = M.use_color(opts.color)
  -- On a terminal the running test and its latest message share one line, redrawn in
  -- place (pytest's progress); elsewhere messages are log lines (-v).
  local live = not opts.quiet and sys.isatty(1)
  return setmetatable({ verbose = opts.verbose, quiet = opts.quiet, color = color, failures = {}, errors = {},
    collection_errors = {}, live = live, width = math.max(20, (tonumber(os.getenv("COLUMNS")) or 80) - 1) },
    Console)
end

-- The in-place status line (terminals only).
function Console:draw(text)
  local line = text:gsub("[%c]", " ")
  if utf8.len(line) and utf8.len(line) > self.width then
    line = line:sub(1, utf8.offset(line, self.width) - 1)
  end
  io.stdout:write("\r\27[K", line)
  io.stdout:flush()
  self.drawn = true
end

function Console:clear()
  if self.drawn then
    io.stdout:write("\r\27[K")
    self.drawn = false
  end
end

function Console:paint(what, s)
  if not self.color then return s end
  return "\27[" .. COLORS[what] .. "m" .. s .. "\27[0m"
end

function Console:run_started(ev)
  self.started = ev
  if self.quiet or ev.collection_errors > 0 or #ev.selected == 0 then return end
  local n, files, deselected = #ev.selected, ev.files, ev.collected - #ev.selected
  out(self:paint("bold", string.format("hplua %s: %d test%s in %d file%s", ev.hplua, n, n == 1 and "" or "s",
    files, files == 1 and "" or "s")) .. (deselected > 0 and string.format(" (%d deselected)", deselected) or "") .. "\n")
end

function Console:collection_error(ev)
  self.collection_errors[#self.collection_errors + 1] = ev
end

-- -v: messages are printed as they are recorded, under a line naming their test
-- (as pytest's live log does); the test's result line follows when it ends.
function Console:message(ev)
  if self.live and type(ev.test) == "string" and (not self.verbose or ev.key ~= nil) then
    self:draw(self:paint("dim", esc(ev.test) .. ": ") .. esc(ev.text))
    return
  end
  if not self.verbose then return end
  self:clear()
  if type(ev.test) == "string" then
    local head = esc(ev.test) .. (ev.attempt and ev.attempt > 1 and string.format(" (attempt %d)", ev.attempt) or "")
    if self.header_for ~= head then
      self.header_for = head
      out(self:paint("dim", head) .. "\n")
    end
  end
  out("    " .. esc(ev.text) .. "\n")
end

function Console:test_started(ev)
  local prev = ev.previous
  if prev and not self.quiet then
    self:clear()
    local e = prev.error
    out(self:paint("dim", string.format("  attempt %d of %d failed: %s", ev.attempt - 1, ev.max_attempts,
      esc(type(e) == "table" and e.message or prev.status))) .. "\n")
  end
end

-- Skip reasons that stop the rest of a run: the tests they skip are counted on one line
-- (with -v, each is listed).
local function stops_run(reason)
  return type(reason) == "string" and (reason:find("^critical test .* failed$") or reason == "run interrupted"
    or reason:find("^stopped after the first failure %(%-x%)"))
end

function Console:flush_stopped()
  local st = self.stopped_skips
  if not st then return end
  self.stopped_skips = nil
  out(self:paint("skipped", string.format("SKIPPED %d test%s: %s", st.n, st.n == 1 and "" or "s", esc(st.reason))) .. "\n")
end

function Console:test_finished(ev)
  self:clear()
  self.done = (self.done or 0) + 1
  local last = self.started and self.done == #self.started.selected
  if ev.status == "failed" or ev.status == "stopped" then self.failures[#self.failures + 1] = ev end
  if self.quiet and (ev.status == "passed" or ev.status == "skipped") then return end
  if ev.status == "skipped" and not self.verbose and stops_run(ev.skip_reason) then
    local st = self.stopped_skips
    if st and st.reason ~= ev.skip_reason then self:flush_stopped() end
    st = self.stopped_skips or { n = 0, reason = ev.skip_reason }
    st.n = st.n + 1
    self.stopped_skips = st
    if last then self:flush_stopped() end
    return
  end
  self:flush_stopped()
  local detail
  if ev.status == "skipped" then
    detail = ": " .. esc(tostring(ev.skip_reason))
  elseif ev.attempts > 1 then
    detail = string.format(" (%.2fs, attempt %d of %d)", ev.duration, ev.attempts, ev.max_attempts or ev.attempts)
  else
    detail = string.format(" (%.2fs)", ev.duration)
  end
  out(self:paint(ev.status, LABEL[ev.status]) .. " " .. esc(ev.test) .. detail ..
    (ev.dependency and self:paint("dim", " (dependency)") or "") .. "\n")
  for _, m in ipairs(ev.measurements or {}) do
    if m.status == "marginal" then
      self.marginal = (self.marginal or 0) + 1
      out("    " .. self:paint("skipped", esc(format.measurement(m))) .. "\n")
    elseif not m.passed then
      out("    " .. self:paint("failed", esc(format.measurement(m))) .. "\n")
    elseif self.verbose then
      out("    " .. esc(format.measurement(m)) .. "\n")
    end
  end
end

function Console:run_error(ev)
  self.errors[#self.errors + 1] = ev
end

local function located(e)
  if type(e.file) == "string" then return string.format("%s:%d: %s\n", esc(e.file), tonumber(e.line) or 0, esc(e.message)) end
  return esc(e.message) .. "\n"
end

function Console:print_failures()
  out("\n" .. self:paint("bold", "FAILURES") .. "\n")
  for _, r in ipairs(self.failures) do
    out(self:paint(r.status, "--- " .. esc(r.test) .. " ---") .. "\n")
    local e = type(r.error) == "table" and r.error or { message = r.status }
    out(located(e))
    if e.traceback and e.traceback ~= "" then
      out("traceback:\n")
      for line in e.traceback:gmatch("[^\n]+") do out("    " .. esc(line) .. "\n") end
    end
    if not self.verbose then
      for _, m in ipairs(r.messages or {}) do out("    " .. esc(m.text) .. "\n") end
    end
  end
end

function Console:run_finished(ev)
  self:clear()
  local phase = ev.phase
  if phase == "interrupted_collection" then
    out("interrupted during collection\n")
    return
  elseif phase == "collection_error" then
    local errs = self.collection_errors
    out(self:paint("failed", string.format("ERROR: %d collection error%s", #errs, #errs == 1 and "" or "s")) .. "\n")
    for _, e in ipairs(errs) do out(located(e)) end
    out(self:paint("failed", "collection failed: no test was run") .. "\n")
    return
  elseif phase == "deps_not_selected" then
    out(self:paint("skipped", "every selected test was skipped: the tests they depend on were not selected " ..
      "(--no-deps); run without --no-deps to add them") .. "\n")
  elseif phase == "none" then
    local st = self.started
    out(st.collected == 0 and "no tests collected\n" or
      string.format("no tests selected (%d deselected by -k)\n", st.collected))
    return
  end
  self:flush_stopped()
  if #self.failures > 0 then self:print_failures() end
  if #self.errors > 0 then
    out("\n" .. self:paint("bold", "ERRORS") .. "\n")
    for _, e in ipairs(self.errors) do out(located(e)) end
  end
  for _, w in ipairs(ev.warnings or {}) do out(self:paint("skipped", "warning: " .. esc(w)) .. "\n") end
  if ev.status == "stopped" then out(self:paint("stopped", "run interrupted") .. "\n") end
  local s = ev.summary
  local parts = {
    self:paint(s.passed > 0 and "passed" or "bold", s.passed .. " passed"),
    self:paint(s.failed > 0 and "failed" or "bold", s.failed .. " failed"),
    self:paint(s.skipped > 0 and "skipped" or "bold", s.skipped .. " skipped"),
  }
  if s.stopped > 0 then parts[#parts + 1] = self:paint("stopped", s.stopped .. " stopped") end
  if self.marginal then parts[#parts + 1] = self:paint("skipped", self.marginal .. " marginal") end
  if #self.errors > 0 then parts[#parts + 1] = self:paint("failed", #self.errors .. (#self.errors == 1 and " error" or " errors")) end
  out(table.concat(parts, ", ") .. string.format(" in %.2fs", ev.duration) .. "\n")
end

return M
