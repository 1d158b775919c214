-- hplua.sink_report: builds the JSON run report (API 4) from the run's events. Each
-- test's record is encoded when the test finishes and each module's when the next
-- module begins, so the report is held as text, not as a tree of tables; the
-- whole text is assembled once, at run_finished (run:report_text()).
local json = require "hplua.json"

local M = {}
local arr, null = json.array, json.null
local NONE = arr() -- shared and never changed

local Report = {}
Report.__index = Report

function M.new()
  return setmetatable({ parts = {}, module = nil, processes = {}, messages = arr(), keyed = {}, errors = arr(),
    collection_errors = arr(), dut = {}, stand = {}, instruments = arr() }, Report)
end

function Report:run_started(ev)
  self.run_id, self.hplua, self.started_at, self.paths = ev.run_id, ev.hplua, ev.started_at, ev.paths
  self.serial, self.slot = ev.serial, ev.slot
end

function Report:info(ev)
  if ev.dut then
    self.dut = ev.dut
  elseif ev.stand then
    self.stand = ev.stand
  elseif ev.instrument then
    local list = self.instruments
    for i, old in ipairs(list) do
      if old.name == ev.instrument.name then list[i] = ev.instrument return end
    end
    list[#list + 1] = ev.instrument
  end
end

-- Messages on the run itself (a test's come with its test_finished).
function Report:message(ev)
  if ev.test ~= null then return end
  local msg = { time = ev.time, text = ev.text, key = ev.key }
  local list = self.messages
  if ev.key ~= nil then
    local i = self.keyed[ev.key]
    if i then list[i] = msg return end
    self.keyed[ev.key] = #list + 1
  end
  list[#list + 1] = msg
end

function Report:collection_error(ev)
  local l = self.collection_errors
  l[#l + 1] = { message = ev.message, file = ev.file, line = ev.line }
end

function Report:run_error(ev)
  local l = self.errors
  l[#l + 1] = { message = ev.message, file = ev.file ~= null and ev.file or nil,
    line = ev.line ~= null and ev.line or nil, kind = ev.kind }
end

local RESULT_FIELDS = { "name", "pid", "command", "exit_code", "signal", "stdout", "stderr", "started_at", "ended_at",
  "duration", "timed_out", "terminated", "max_rss_kb" }

function Report:process_ended(ev)
  local r = {}
  for _, k in ipairs(RESULT_FIELDS) do r[k] = ev[k] end
  self.processes[#self.processes + 1] = r
end

local LIMIT_KEYS = require("hplua.measure").LIMIT_KEYS

-- JSON has no infinities or NaN: a limit of -inf (a min) or inf (a max) is no limit
-- and is left out; any other non-finite number is written as "inf", "-inf" or "nan".
local function finite_or_text(x)
  if type(x) ~= "number" or (x == x and x ~= math.huge and x ~= -math.huge) then return x end
  return x ~= x and "nan" or x > 0 and "inf" or "-inf"
end

local function measurement_record(m)
  local r = { name = m.name, value = finite_or_text(m.value), unit = m.unit, passed = m.passed, status = m.status }
  for _, k in ipairs(LIMIT_KEYS) do r[k] = finite_or_text(m[k]) end
  if r.min == "-inf" then r.min = nil end
  if r.max == "inf" then r.max = nil end
  return r
end

local function measurements(list)
  local out = arr()
  for i, m in ipairs(list) do out[i] = measurement_record(m) end
  return out
end

local RANK = { passed = 1, skipped = 0, failed = 2, stopped = 3 }

function Report:close_module()
  local m = self.module
  if not m then return end
  self.module = nil
  local tests = m.tests
  m.tests = nil
  local head = assert(json.encode(m, false, math.huge))
  self.parts[#self.parts + 1] = head:sub(1, -2) .. ',"tests":[' .. table.concat(tests, ",") .. "]}"
end

function Report:test_finished(ev)
  local m = self.module
  if not m or m.id ~= ev.module then
    self:close_module()
    m = { id = ev.module, name = ev.module_name or ev.module, file = ev.file, status = "skipped",
      started_at = ev.started_at, duration = 0, tests = {} }
    self.module = m
  end
  local msgs, meas = ev.messages or NONE, measurements(ev.measurements or NONE)
  local attempts = arr()
  if ev.attempt_results then
    for i, a in ipairs(ev.attempt_results) do
      attempts[i] = { attempt = a.attempt, status = a.status, duration = a.duration, error = a.error,
        messages = a.messages, measurements = measurements(a.measurements) }
    end
  elseif ev.attempts == 1 then -- the test's own fields are its only attempt
    attempts[1] = { attempt = 1, status = ev.status, duration = ev.duration, error = ev.error, messages = msgs,
      measurements = meas }
  end
  local rec = { id = ev.test, name = ev.name, status = ev.status, started_at = ev.started_at, ended_at = ev.ended_at,
    duration = ev.duration, attempts = ev.attempts, error = ev.error, skip_reason = ev.skip_reason,
    messages = msgs, measurements = meas, artifacts = ev.artifacts or {}, attachments = ev.attachments or NONE,
    attempt_results = attempts }
  local text, err = json.encode(rec, false, math.huge)
  if not text then
    rec.artifacts = { error = "not encodable: " .. tostring(err) }
    text = assert(json.encode(rec, false, math.huge))
  end
  m.tests[#m.tests + 1] = text
  m.ended_at = ev.ended_at
  m.duration = m.duration + (ev.duration or 0)
  local st = ev.status
  if st == "passed" and m.status == "skipped" then m.status = "passed" end
  if RANK[st] > RANK[m.status] and st ~= "skipped" then m.status = st end
end

-- The report's text for the run's final record (the fields of run_finished); built
-- again only when that record changed (a report that could not be written turns a
-- passing run into a failed one, with a run error).
function Report:render(ev)
  self:close_module()
  local key = tostring(ev.exit_code) .. ":" .. #self.errors
  if self.text and self.key == key then return self.text end
  local top = {
    hplua = self.hplua, run_id = self.run_id, status = ev.status, started_at = self.started_at, ended_at = ev.ended_at,
    duration = ev.duration, exit_code = ev.exit_code, caused_failure = ev.caused_failure,
    stand = self.stand, dut = self.dut, instruments = self.instruments, messages = self.messages,
    errors = self.errors, collection_errors = self.collection_errors, summary = ev.summary, paths = self.paths,
  }
  if type(self.serial) == "string" then top.serial = self.serial end
  if self.slot then top.slot = self.slot end
  local head = assert(json.encode(top, false, math.huge))
  local procs = {}
  for i, p in ipairs(self.processes) do procs[i] = assert(json.encode(p, false, math.huge)) end
  self.text = head:sub(1, -2) .. ',"modules":[' .. table.concat(self.parts, ",") .. '],"processes":[' ..
    table.concat(procs, ",") .. "]}\n"
  self.key = key
  return self.text
end

function Report:prepare(ev) self:render(ev) end
function Report:run_finished(ev) self:render(ev) end

-- The report's text once the run has finished.
function Report:report_text()
  return self.text
end

return M
