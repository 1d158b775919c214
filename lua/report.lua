-- hplua.report: the JSON run report (docs/report.md) and JUnit XML, both written
-- atomically; also written for failed, interrupted and collection-error runs.
-- [files] test code may replace globals (require = nil): keep what is used late
local require, pcall = require, pcall
local sys = require "hplua.sys"
local json = require "hplua.json"
local ctx = require "hplua.context"
local text = require "hplua.text"

local M = {}
local arr = json.array

local function copy_list(list, f)
  local out = arr()
  for i, v in ipairs(list or {}) do out[i] = f and f(v) or v end
  return out
end

-- [files] Non-finite numbers in a measurement: JSON has none. A limit of -inf (min)
-- or inf (max) is no limit and is left out; any other non-finite number (a value, an
-- expect, a limit of nan or of the wrong infinity) is written as the string "inf",
-- "-inf" or "nan", so the report stays strict JSON and loses nothing.
local function finite_or_text(x)
  if type(x) ~= "number" or (x == x and x ~= math.huge and x ~= -math.huge) then return x end
  return x ~= x and "nan" or x > 0 and "inf" or "-inf"
end
M.finite_or_text = finite_or_text

local function measurement_record(m)
  return { name = m.name, value = finite_or_text(m.value), unit = m.unit,
    min = m.min ~= -math.huge and finite_or_text(m.min) or nil, max = m.max ~= math.huge and finite_or_text(m.max) or nil,
    expect = finite_or_text(m.expect), passed = m.passed }
end

local function error_record(e)
  if not e then return nil end
  return { message = e.message, file = e.file, line = e.line, traceback = e.traceback }
end

local function test_record(r)
  return {
    id = r.id, name = r.name, status = r.status, started_at = sys.now(r.wall_start), ended_at = sys.now(r.wall_end),
    duration = r.duration, attempts = r.attempts, error = error_record(r.error) or json.null,
    skip_reason = r.skip_reason or json.null,
    messages = copy_list(r.messages),
    measurements = copy_list(r.measurements, measurement_record),
    artifacts = next(r.artifacts) and r.artifacts or {},
    attempt_results = copy_list(r.attempt_results, function(a)
      return { attempt = a.attempt, status = a.status, duration = a.duration, error = error_record(a.error),
        messages = copy_list(a.messages), measurements = copy_list(a.measurements, measurement_record) }
    end),
  }
end

local RANK = { passed = 1, skipped = 0, failed = 2, stopped = 3 }

function M.build(opts, info, plan, run, exit_code)
  local results = run and run.results or {}
  local summary = { total = #results, passed = 0, failed = 0, skipped = 0, stopped = 0 }
  local modules, by_module, caused = arr(), {}, nil
  for _, r in ipairs(results) do
    summary[r.status] = summary[r.status] + 1
    if r.status == "failed" and not caused then caused = r.id end
    local mod = r.test.module
    local m = by_module[mod]
    if not m then
      m = { id = mod.id, name = mod.name, file = mod.file, status = "skipped", started_at = sys.now(r.wall_start),
        tests = arr(), wall_start = r.wall_start }
      by_module[mod] = m
      modules[#modules + 1] = m
    end
    m.tests[#m.tests + 1] = test_record(r)
    m.ended_at = sys.now(r.wall_end)
    m.duration = (r.wall_start + (r.duration or 0)) - m.wall_start
    if r.status == "passed" and m.status == "skipped" then m.status = "passed" end
    if RANK[r.status] > RANK[m.status] and r.status ~= "skipped" then m.status = r.status end
  end
  for _, m in ipairs(modules) do m.wall_start = nil end
  local status = "passed"
  if exit_code == 2 and (not plan or #plan.errors == 0) then
    status = "stopped"
  elseif exit_code ~= 0 and exit_code ~= 5 then
    status = "failed"
  end
  local processes = arr()
  local ok, proc = pcall(require, "hplua.process")
  if ok then
    local res = proc.results()
    for _, name in ipairs(proc.names()) do
      if res[name] then processes[#processes + 1] = res[name] end
    end
  end
  local ended = sys.wall()
  return {
    hplua = sys.version, status = status, started_at = info.started_at, ended_at = sys.now(ended),
    duration = ended - info.wall_start, exit_code = exit_code, caused_failure = caused or json.null,
    stand = ctx.run.stand, dut = ctx.run.dut, instruments = copy_list(ctx.run.instruments),
    messages = copy_list(ctx.run.messages), errors = copy_list(ctx.run.errors),
    collection_errors = copy_list(plan and plan.errors or ctx.errors),
    summary = summary, modules = modules, processes = processes,
    paths = copy_list(opts.paths),
  }
end

-- [files] XML 1.0 text and attribute values (hplua.text): specials escaped, the
-- characters XML forbids written as visible escapes, invalid UTF-8 repaired.
local xml, xml_text = text.xml_attr, text.xml_text

function M.junit(report)
  local out = { '<?xml version="1.0" encoding="UTF-8"?>' }
  local s = report.summary
  -- [files] junit-10.xsd has no "skipped" on <testsuites> (tests/tools/junit-10.xsd)
  out[#out + 1] = string.format('<testsuites name="hplua" tests="%d" failures="%d" errors="0" time="%.3f">',
    s.total, s.failed + s.stopped, report.duration)
  local function props()
    local p = {}
    for _, group in ipairs { "dut", "stand" } do
      local keys = {}
      for k in pairs(report[group]) do keys[#keys + 1] = tostring(k) end
      table.sort(keys)
      for _, k in ipairs(keys) do
        p[#p + 1] = string.format('      <property name="%s.%s" value="%s"/>', group, xml(k),
          xml(type(report[group][k]) == "table" and json.encode(report[group][k], false, math.huge) or report[group][k]))
      end
    end
    if #p == 0 then return nil end
    return "    <properties>\n" .. table.concat(p, "\n") .. "\n    </properties>"
  end
  for _, m in ipairs(report.modules) do
    local failed, skipped = 0, 0
    for _, t in ipairs(m.tests) do
      if t.status == "failed" or t.status == "stopped" then failed = failed + 1 end
      if t.status == "skipped" then skipped = skipped + 1 end
    end
    out[#out + 1] = string.format('  <testsuite name="%s" tests="%d" failures="%d" errors="0" skipped="%d" time="%.3f" timestamp="%s">',
      xml(m.id), #m.tests, failed, skipped, m.duration or 0, xml(m.started_at or ""))
    local p = props()
    if p then out[#out + 1] = p end
    for _, t in ipairs(m.tests) do
      out[#out + 1] = string.format('    <testcase classname="%s" name="%s" time="%.3f">', xml(m.id), xml(t.name), t.duration or 0)
      if t.status == "failed" or t.status == "stopped" then
        local e = t.error ~= json.null and t.error or { message = t.status }
        local loc = e.file and string.format("%s:%d: ", e.file, e.line or 0) or ""
        out[#out + 1] = string.format('      <failure message="%s" type="%s">%s%s</failure>', xml(loc .. e.message),
          t.status, xml_text(loc .. e.message), e.traceback and ("\n" .. xml_text(e.traceback)) or "")
      elseif t.status == "skipped" then
        out[#out + 1] = string.format('      <skipped message="%s"/>', xml(t.skip_reason or "skipped"))
      end
      local lines = {}
      for _, msg in ipairs(t.messages) do lines[#lines + 1] = msg.time .. " " .. msg.text end
      for _, ms in ipairs(t.measurements) do
        lines[#lines + 1] = require("hplua.console").format_measurement(ms)
      end
      if #lines > 0 then out[#out + 1] = "      <system-out>" .. xml_text(table.concat(lines, "\n")) .. "</system-out>" end
      out[#out + 1] = "    </testcase>"
    end
    out[#out + 1] = "  </testsuite>"
  end
  out[#out + 1] = "</testsuites>\n"
  return table.concat(out, "\n")
end

-- [files] Writes the reports so that they agree with each other and with the exit
-- status. Every target is opened (a temporary beside it), written and fsync'ed
-- before any is renamed into place; when one fails, the others are abandoned, the
-- failure becomes a run error ("errors", kind "report"), a passing status turns
-- into failed (exit 1), and the remaining reports are rendered again with that
-- status. targets: { { option, path, render = function(code) -> text | nil, err } }.
-- Returns the final exit status.
function M.write_agreeing(targets, code)
  local pending = { table.unpack(targets) }
  while #pending > 0 do
    local handles, failed, message = {}, nil, nil
    for i, t in ipairs(pending) do
      local body, err = t.render(code)
      local h
      if body then h, err = json.open_atomic(t.path) end
      local ok = h ~= nil
      if ok then ok, err = h:write(body) end
      if ok then ok, err = h:sync() end
      if not ok then
        if h then h:abort() end
        failed, message = i, err
        break
      end
      handles[i] = h
    end
    if not failed then
      for i, h in ipairs(handles) do
        local ok, err = h:commit() -- after every sync succeeded: a rename in the same folder
        if not ok then io.stderr:write("hplua: error: ", pending[i].option, ": ", err, "\n") end
      end
      return code
    end
    for _, h in pairs(handles) do h:abort() end
    local t = table.remove(pending, failed)
    io.stderr:write("hplua: error: ", t.option, ": ", message, "\n")
    table.insert(ctx.run.errors, { message = t.option .. ": " .. message, kind = "report" })
    if code == 0 or code == 5 then code = 1 end
  end
  return code
end

-- Writes every report asked for; returns the exit status, which a report that
-- cannot be written turns from passed (or none selected) into failed.
function M.write_all(opts, info, plan, run, exit_code)
  local built = {}
  local function build(code) -- once per status and list of run errors, for every format
    local key = code .. ":" .. #ctx.run.errors
    built[key] = built[key] or M.build(opts, info, plan, run, code)
    return built[key]
  end
  local targets = {}
  if opts.json then
    targets[#targets + 1] = { option = "--json", path = opts.json, render = function(code)
      local body, err = json.encode(build(code), true, math.huge)
      if not body then return nil, "cannot encode the JSON report: " .. err end
      return body .. "\n"
    end }
  end
  if opts.junit then
    targets[#targets + 1] = { option = "--junit", path = opts.junit, render = function(code)
      return M.junit(build(code))
    end }
  end
  return M.write_agreeing(targets, exit_code)
end

return M
