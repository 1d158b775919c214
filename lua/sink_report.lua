-- hplua.sink_report: builds the JSON run report (API 4) from the run's events. Each
-- test's record is encoded when the test finishes and appended to a spool (a
-- temporary file, hplua.spool; in memory in the history's recorder), each module's
-- head when the next module begins; so the report is held as text (outside the Lua
-- heap in the run), not as a tree of tables.
-- The JSON writer streams it into its file (Report:stream); the whole text is
-- assembled only when asked for (run:report_text(), the history).
local json = require "hplua.json"
local spool = require "hplua.spool"

local M = {}
local arr, null = json.array, json.null
local NONE = arr() -- shared and never changed
local NO_ARTIFACTS = {} -- the same, as an object

local Report = {}
Report.__index = Report

-- opts.memory: the spool in memory (hplua.spool)
function M.new(opts)
  return setmetatable({ parts = {}, spool = spool.new(opts), module = nil, processes = {}, messages = arr(), keyed = {}, errors = arr(),
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
  if #list == 0 then return NONE end
  local out = arr()
  for i, m in ipairs(list) do out[i] = measurement_record(m) end
  return out
end

local RANK = { passed = 1, skipped = 0, failed = 2, stopped = 3 }

-- A test's record: its keys, sorted once (json.fields); and its only attempt, filled
-- for each test in turn (Report:test_finished)
local RECORD = json.fields { "artifacts", "attachments", "attempt_results", "attempts", "duration", "ended_at", "error",
  "id", "measurements", "messages", "name", "skip_reason", "started_at", "status" }
local ONE_ATTEMPT = arr({ { attempt = 1 } })

function Report:close_module()
  local m = self.module
  if not m then return end
  self.module = nil
  local from, to = m.from, self.spool:mark()
  m.tests, m.from, m.count = nil, nil, nil
  local head = assert(json.encode(m, false, math.huge))
  -- the module's head; its tests' records are in the spool between from and to
  self.parts[#self.parts + 1] = { head:sub(1, -2) .. ',"tests":[', from, to }
end

function Report:test_finished(ev)
  local m = self.module
  if not m or m.id ~= ev.module then
    self:close_module()
    m = { id = ev.module, name = ev.module_name or ev.module, file = ev.file, status = "skipped",
      started_at = ev.started_at, duration = 0, from = self.spool:mark(), count = 0 }
    self.module = m
  end
  local msgs, meas = ev.messages or NONE, ev.measurements
  meas = meas and measurements(meas) or NONE
  local attempts
  if ev.attempt_results then
    attempts = arr()
    for i, a in ipairs(ev.attempt_results) do
      attempts[i] = { attempt = a.attempt, status = a.status, duration = a.duration, error = a.error,
        messages = a.messages, measurements = measurements(a.measurements) }
    end
  elseif ev.attempts == 1 then -- the test's own fields are its only attempt
    attempts = ONE_ATTEMPT
    local a = attempts[1]
    a.status, a.duration, a.error, a.messages, a.measurements = ev.status, ev.duration, ev.error, msgs, meas
  else
    attempts = NONE
  end
  -- the record is encoded at once and not kept
  local attachments = ev.attachments or NONE
  local text, err = RECORD:encode(ev.artifacts or NO_ARTIFACTS, attachments, attempts, ev.attempts, ev.duration,
    ev.ended_at, ev.error, ev.test, meas, msgs, ev.name, ev.skip_reason, ev.started_at, ev.status)
  if not text then
    text = assert(RECORD:encode({ error = "not encodable: " .. tostring(err) }, attachments, attempts, ev.attempts,
      ev.duration, ev.ended_at, ev.error, ev.test, meas, msgs, ev.name, ev.skip_reason, ev.started_at, ev.status))
  end
  -- what the attempt holds belongs to the event: let it go with the event
  if attempts == ONE_ATTEMPT then
    local a = attempts[1]
    a.error, a.messages, a.measurements = nil
  end
  m.count = m.count + 1
  self.spool:append(text, m.count > 1)
  m.ended_at = ev.ended_at
  m.duration = m.duration + (ev.duration or 0)
  local st = ev.status
  if st == "passed" and m.status == "skipped" then m.status = "passed" end
  if RANK[st] > RANK[m.status] and st ~= "skipped" then m.status = st end
end

-- The report for the run's final record (the fields of run_finished), handed to
-- write(piece) in order; stops at the first write that does not return true and
-- returns what it returned (true when all went out).
function Report:stream(ev, write, handle)
  self:close_module()
  self.final = ev
  local top = {
    hplua = self.hplua, run_id = self.run_id, status = ev.status, started_at = self.started_at, ended_at = ev.ended_at,
    duration = ev.duration, exit_code = ev.exit_code, caused_failure = ev.caused_failure,
    stand = self.stand, dut = self.dut, instruments = self.instruments, messages = self.messages,
    errors = self.errors, collection_errors = self.collection_errors, summary = ev.summary, paths = self.paths,
  }
  if type(self.serial) == "string" then top.serial = self.serial end
  if self.slot then top.slot = self.slot end
  local head = assert(json.encode(top, false, math.huge))
  local ok, err, code = write(head:sub(1, -2) .. ',"modules":[')
  for i, part in ipairs(self.parts) do
    if not ok then break end
    ok, err, code = write(i > 1 and "," .. part[1] or part[1])
    if ok then ok, err, code = self.spool:copy(part[2], part[3], write, handle) end
    if ok then ok, err, code = write("]}") end
  end
  if not ok then return ok, err, code end
  local procs = {}
  for i, p in ipairs(self.processes) do procs[i] = assert(json.encode(p, false, math.huge)) end
  return write('],"processes":[' .. table.concat(procs, ",") .. "]}\n")
end

-- The whole report's text for the final record ev, as one string (cached: built
-- again only when that record changed, as when a report that could not be written
-- turns a passing run into a failed one, with a run error).
function Report:render(ev)
  local key = tostring(ev.exit_code) .. ":" .. #self.errors
  if self.text and self.key == key then return self.text end
  local parts = {}
  self:stream(ev, function(piece)
    parts[#parts + 1] = piece
    return true
  end)
  self.text, self.key = table.concat(parts), key
  return self.text
end

function Report:prepare(ev) self.final = ev end
function Report:run_finished(ev) self.final = ev end

-- The report's text once the run has finished (built on first use).
function Report:report_text()
  return self.final and self:render(self.final)
end

function Report:close()
  self.spool:close()
end

return M
