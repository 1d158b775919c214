-- hplua: the module test authors require (`local hp = require "hplua"`).
local ctx = require "hplua.context"
local sys = require "hplua.sys"
local process = require "hplua.process"
local json = require "hplua.json"

local hp = {
  version = sys.version,
  process = process,
  expect = require "hplua.expect",
  dialog = require "hplua.dialog",
  clock = sys.clock,
  now = function() return sys.now() end,
}
hp.serial, hp.tcp = require("hplua.stream").serial, require("hplua.stream").tcp

local internal = require "hplua.process.internal"
internal.set_message_handler(function(text, key) ctx.message(text, key) end)
-- os.execute and io.popen run through the process engine (timeouts, Ctrl-C, no orphans).
internal.install_standard_library()
-- Process events go on the run's bus and become the running test's messages.
internal.set_event_handler(function(kind, e)
  local cur = ctx.current
  e.test = cur and cur.test.id or require("hplua.json").null
  if kind == "process_started" then
    ctx.emit("process_started", e)
    ctx.message(string.format("Process %s started (pid %d): %s", e.name, e.pid, e.command:sub(1, 400)))
  elseif kind == "process_ended" then
    local lines = e.stdout_lines
    e.stdout_lines, e.stderr_lines = nil, nil
    ctx.emit("process_ended", e)
    local status = e.signal and ("signal " .. e.signal) or ("exit code " .. e.exit_code)
    ctx.message(string.format("Process %s finished at %s (duration: %.2fs, %s%s%s; stdout: %d line%s, %d bytes)",
      e.name, e.ended_at, e.duration, status, e.timed_out and ", timed out" or "", e.terminated and ", terminated" or "",
      lines, lines == 1 and "" or "s", e.stdout_bytes))
  end
end)

-- hp.run: { id, slot, serial, args } of the running run (API 11); hp.suite_dir is set
-- by the runner to the absolute folder of the PATH the running test came from.
hp.run = ctx.run

local function type_error(what, expected, value)
  return string.format("%s must be %s, got %s", what, expected, type(value))
end

-- Checks a declaration's options; returns nil or the first problem found.
local test_options = {
  depends = function(v)
    if type(v) == "string" then return nil end
    if type(v) ~= "table" then return type_error("depends", "a string or a table of test ids", v) end
    for i, d in ipairs(v) do
      if type(d) ~= "string" then return type_error("depends[" .. i .. "]", "a string", d) end
    end
  end,
  critical = function(v)
    if type(v) ~= "boolean" then return type_error("critical", "a boolean", v) end
  end,
  attempts = function(v)
    if math.type(v) ~= "integer" or v < 1 then
      return type(v) == "number" and "attempts must be a whole number of at least 1, got " .. tostring(v)
        or type_error("attempts", "a whole number", v)
    end
  end,
  timeout = function(v)
    if type(v) ~= "number" or not (v > 0) then
      return type(v) == "number" and "timeout must be a positive number of seconds, got " .. tostring(v)
        or type_error("timeout", "a number of seconds", v)
    end
  end,
  skip = function(v)
    if type(v) ~= "boolean" and type(v) ~= "string" then return type_error("skip", "a boolean or a reason string", v) end
  end,
}

local function check_options(opts, allowed, what)
  for k, v in pairs(opts) do
    local check = allowed[k]
    if not check then
      return string.format("%s: unknown option '%s'", what, tostring(k))
    end
    local problem = check(v)
    if problem then return what .. ": " .. problem end
  end
end

local NO_DEPENDS = {}
local NO_OPTIONS = {}
local function normalize_depends(v)
  if v == nil then return NO_DEPENDS end
  if type(v) == "string" then return { v } end
  return { table.unpack(v) }
end

local function collecting(fname)
  local c = ctx.collecting
  if not c then
    error(fname .. " can only be called while a test file or suite.lua is loaded", 3)
  end
  return c
end

function hp.test(name, opts, fn)
  local c = collecting("hp.test")
  local file, line = ctx.caller()
  if fn == nil and type(opts) == "function" then opts, fn = nil, opts end
  if type(name) ~= "string" or name == "" then
    return ctx.collection_error("hp.test: " .. type_error("the name", "a non-empty string", name), file, line)
  end
  if type(fn) ~= "function" then
    return ctx.collection_error(string.format("hp.test %q: ", name) .. type_error("the test body", "a function", fn), file, line)
  end
  if opts == nil then
    opts = NO_OPTIONS
  elseif type(opts) ~= "table" then
    return ctx.collection_error(string.format("hp.test %q: ", name) .. type_error("options", "a table", opts), file, line)
  else
    local problem = check_options(opts, test_options, string.format("hp.test %q", name))
    if problem then return ctx.collection_error(problem, file, line) end
  end
  local mod = c.module
  if not mod then
    return ctx.collection_error(string.format("hp.test %q: tests cannot be declared in suite.lua", name), file, line)
  end
  local first = mod.by_name[name]
  if first then
    return ctx.collection_error(string.format("duplicate test name %q (first declared at %s:%d)", name, first.file, first.line), file, line)
  end
  local t = {
    name = name, id = mod.id .. "::" .. name, module = mod, fn = fn, file = file, line = line,
    depends = normalize_depends(opts.depends), critical = opts.critical, attempts = opts.attempts or 1,
    timeout = opts.timeout, skip = opts.skip,
  }
  mod.tests[#mod.tests + 1] = t
  mod.by_name[name] = t
end

local module_options = {
  name = function(v) if type(v) ~= "string" then return type_error("name", "a string", v) end end,
  depends = test_options.depends,
  critical = test_options.critical,
}

function hp.module(opts)
  local c = collecting("hp.module")
  local file, line = ctx.caller()
  if type(opts) ~= "table" then
    return ctx.collection_error("hp.module: " .. type_error("the argument", "a table", opts), file, line)
  end
  local problem = check_options(opts, module_options, "hp.module")
  if problem then return ctx.collection_error(problem, file, line) end
  if not c.module then return ctx.collection_error("hp.module cannot be used in suite.lua", file, line) end
  local mod = c.module
  if mod.declared_at then
    return ctx.collection_error("hp.module called twice (first at line " .. mod.declared_at .. ")", file, line)
  end
  mod.declared_at = line
  mod.name = opts.name or mod.name
  mod.depends = normalize_depends(opts.depends)
  mod.depends_line = line
  mod.critical = opts.critical
end

-- A hook's or fixture's own options: { timeout = seconds }.
local function hook_options(what, opts)
  if opts == nil then return nil end
  if type(opts) ~= "table" then return nil, what .. ": " .. type_error("options", "a table", opts) end
  return nil, check_options(opts, { timeout = test_options.timeout }, what)
end

local function add_hook(kind)
  return function(fn, opts)
    local c = collecting("hp." .. kind)
    local file, line = ctx.caller()
    if type(fn) ~= "function" then
      return ctx.collection_error("hp." .. kind .. ": " .. type_error("the argument", "a function", fn), file, line)
    end
    local _, problem = hook_options("hp." .. kind, opts)
    if problem then return ctx.collection_error(problem, file, line) end
    local scope = c.module or c.suite
    table.insert(scope.hooks[kind], { fn = fn, file = file, line = line, timeout = opts and opts.timeout })
  end
end
hp.before_all = add_hook("before_all")
hp.after_all = add_hook("after_all")
hp.before_each = add_hook("before_each")
hp.after_each = add_hook("after_each")

function hp.fixture(name, fn, opts)
  collecting("hp.fixture")
  local file, line = ctx.caller()
  local _, problem = hook_options(string.format("hp.fixture %q", tostring(name)), opts)
  if problem then return ctx.collection_error(problem, file, line) end
  if type(name) ~= "string" or name == "" then
    return ctx.collection_error("hp.fixture: " .. type_error("the name", "a non-empty string", name), file, line)
  end
  if type(fn) ~= "function" then
    return ctx.collection_error(string.format("hp.fixture %q: %s", name, type_error("the setup", "a function", fn)), file, line)
  end
  local first = ctx.fixtures[name]
  if first then
    return ctx.collection_error(string.format("duplicate fixture %q (first declared at %s:%d)", name, first.file, first.line), file, line)
  end
  ctx.fixtures[name] = { name = name, fn = fn, file = file, line = line, timeout = opts and opts.timeout }
end

function hp.use(name)
  if type(name) ~= "string" then error("hp.use: the fixture name must be a string, got " .. type(name), 2) end
  local f = ctx.fixtures[name]
  if not f then
    local names = {}
    for n in pairs(ctx.fixtures) do names[#names + 1] = n end
    table.sort(names)
    error(string.format("hp.use: no fixture named %q%s", name, require("hplua.suggest").hint(name, names)), 2)
  end
  if not ctx.current then error("hp.use must be called while a test runs", 2) end
  if f.error then error(string.format("fixture %q failed earlier: %s", name, f.error), 2) end
  if not f.created then
    local ok, value, teardown = pcall(f.fn)
    if not ok then
      f.error = type(value) == "string" and value or tostring(value)
      error(value, 0)
    end
    if teardown ~= nil and type(teardown) ~= "function" then
      f.error = "its teardown must be a function, got " .. type(teardown)
      error(string.format("fixture %q: %s", name, f.error), 2)
    end
    f.created, f.value, f.teardown = true, value, teardown
    ctx.fixture_order[#ctx.fixture_order + 1] = f
  end
  return f.value
end

function hp.fail(msg)
  error(msg == nil and "failed" or msg, 0)
end

function hp.skip(reason)
  error(setmetatable({ reason = reason or "skipped" }, ctx.skip_mt), 0)
end

function hp.set_message(text, key)
  if text == nil then error("hp.set_message: text expected", 2) end
  if key ~= nil and type(key) ~= "string" then error("hp.set_message: key must be a string", 2) end
  ctx.message(text, key)
end

function hp.sleep(seconds)
  if type(seconds) ~= "number" then error("hp.sleep: seconds must be a number, got " .. type(seconds), 2) end
  if seconds < 0 then error("hp.sleep: seconds must not be negative", 2) end
  sys.sleep(seconds)
end

-- Measurements: recorded on the running test, checked against limits (hplua.measure).
local measure = require "hplua.measure"

local atomic = require("hplua.sys").atomic
local function record(list, rec, ev)
  list[#list + 1] = rec
  ctx.emit("measurement", ev)
end

function hp.measure(m)
  if type(m) ~= "table" then error("hp.measure: a table expected, got " .. type(m), 2) end
  local name, unit, v = m.name, m.unit, m.value
  if type(name) ~= "string" or name == "" then error("hp.measure: name must be a non-empty string", 2) end
  if unit ~= nil and type(unit) ~= "string" then error("hp.measure: unit must be a string", 2) end
  local tv = type(v)
  if tv ~= "number" and tv ~= "string" and tv ~= "boolean" then
    error("hp.measure: value must be a number, string or boolean, got " .. tv, 2)
  end
  local status = measure.quick(m, v) -- min/max/marginal only: already checked and evaluated
  local stated = status ~= nil
  if not status then
    local problem
    problem, stated = measure.check(m)
    if problem then error(string.format("hp.measure %q: %s", name, problem), 2) end
  end
  local cur = ctx.current
  if not cur then error("hp.measure must be called while a test runs", 2) end
  local list = cur.measurements
  -- a measurement that states no limits of its own takes them from --limits
  local limits = m
  local entry = measure.entry(name)
  if entry then
    if not stated then limits, stated = entry, true end
    unit = unit or entry.unit
  end
  local rec, ev
  if status then
    -- tables built whole, the event with room for what the bus adds: no rehash
    local min, max, mlo, mhi = m.min, m.max, m.marginal_min, m.marginal_max
    local test, attempt = cur.test.id, cur.attempt
    if mlo == nil and mhi == nil then
      rec = { name = name, value = v, unit = unit, passed = status ~= "failed", status = status, min = min, max = max }
      ev = { test = test, attempt = attempt, name = name, value = v, unit = unit, status = status, min = min,
        max = max, v = 1, seq = 0, time = 0, run_id = 0, type = 0, slot = 0 }
    else
      rec = { name = name, value = v, unit = unit, passed = status ~= "failed", status = status, min = min, max = max,
        marginal_min = mlo, marginal_max = mhi }
      ev = { test = test, attempt = attempt, name = name, value = v, unit = unit, status = status, min = min,
        max = max, marginal_min = mlo, marginal_max = mhi, v = 1, seq = 0, time = 0, run_id = 0, type = 0, slot = 0 }
    end
  else
    local why
    status, why = measure.evaluate(limits, v)
    if not status then error(string.format("hp.measure %q: %s", name, why), 2) end
    rec = { name = name, value = v, unit = unit, passed = status ~= "failed", status = status }
    ev = { test = cur.test.id, attempt = cur.attempt, name = name, value = v, unit = unit, status = status }
    if stated then
      measure.record_limits(limits, rec)
      measure.record_limits(limits, ev)
    end
  end
  if status == "failed" then rec.file, rec.line = ctx.caller() end
  atomic(record, list, rec, ev) -- the record and its event, or neither (lua/context.lua)
  return status ~= "failed"
end

-- Run information and artifacts are recorded as they are at the call, as JSON
-- data: a value that cannot go into the report is refused here, not at the end.
local function snapshot(value, fname)
  local text, err = json.encode(value)
  if not text then error(fname .. ": not JSON-able: " .. err, 3) end
  return json.decode(text)
end

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

local function info_setter(field, fname)
  return function(t)
    if type(t) ~= "table" then error(fname .. ": a table expected, got " .. type(t), 2) end
    local info = ctx.run_info[field]
    for k, v in pairs(snapshot(t, fname)) do info[k] = v end
    ctx.emit("info", { [field] = copy(info) })
  end
end
hp.set_dut = info_setter("dut", "hp.set_dut")
hp.set_stand = info_setter("stand", "hp.set_stand")

function hp.set_instrument(t)
  if type(t) ~= "table" then error("hp.set_instrument: a table expected, got " .. type(t), 2) end
  if type(t.name) ~= "string" then error("hp.set_instrument: name must be a string", 2) end
  t = snapshot(t, "hp.set_instrument")
  local list = ctx.run_info.instruments
  local found = false
  for i, old in ipairs(list) do
    if old.name == t.name then list[i] = t; found = true; break end
  end
  if not found then list[#list + 1] = t end
  ctx.emit("info", { instrument = t })
end

function hp.artifact(name, value)
  if type(name) ~= "string" then error("hp.artifact: name must be a string", 2) end
  if not ctx.current then error("hp.artifact must be called while a test runs", 2) end
  ctx.current.artifacts[name] = snapshot(value, "hp.artifact")
end

-- hp.attach(name, path): copies a file (a log, a scope capture, a photo) into the run's
-- artifact folder and records it on the test with its size and SHA-256. Returns the
-- copy's path, or nil, message, code when the file cannot be read or copied.
local fs = require "hplua.fs"

function hp.attach(name, path)
  if type(name) ~= "string" or name == "" then error("hp.attach: name must be a non-empty string", 2) end
  if type(path) ~= "string" or path == "" then error("hp.attach: path must be a non-empty string", 2) end
  local cur = ctx.current
  if not cur then error("hp.attach must be called while a test runs", 2) end
  local root = ctx.artifacts
  if not root then error("hp.attach: no artifact folder: give --artifacts DIR (or --json FILE, or keep the history on)", 2) end
  local dir = root .. "/" .. (ctx.run.id or "run")
  local ok, err, code = fs.mkdir(root)
  if ok then ok, err, code = fs.mkdir(dir) end
  if not ok then return nil, "hp.attach: " .. err, code end
  local base = name:gsub("[^%w%._-]", "_"):gsub("^%.", "_")
  local dst, n = dir .. "/" .. base, 1
  local size, sha
  repeat
    size, sha, code = fs.copy(path, dst)
    if not size and code == "EEXIST" then
      n = n + 1
      dst = string.format("%s/%d-%s", dir, n, base)
    end
  until size or code ~= "EEXIST"
  if not size then return nil, "hp.attach: " .. sha, code end
  local list = cur.attachments
  dst = require("hplua.sys").realpath(dst) or dst
  list[#list + 1] = { name = name, path = dst, size = size, sha256 = sha }
  ctx.message(string.format("Attached %s: %s (%d bytes)", name, dst, size))
  return dst
end

-- Station-wide locks and barriers shared by the slots of `--slots N` (API 10; the
-- supervisor's side is lua/coord.lua). In a plain run there is one DUT: hp.lock just
-- runs fn and hp.barrier returns at once.
local function check_name(fname, name)
  if type(name) ~= "string" or name == "" then
    error(string.format("hp.%s: name must be a non-empty string, got %s", fname, type(name)), 3)
  end
end

local function current_test()
  local cur = ctx.current
  return cur and cur.test.id or nil
end

function hp.lock(name, fn, ...)
  check_name("lock", name)
  if type(fn) ~= "function" then error("hp.lock: fn must be a function, got " .. type(fn), 2) end
  local link = ctx.slotlink
  if not link then return fn(...) end
  local res = table.pack(link:with_lock(name, current_test(), fn, ...))
  if not res[1] then error("hp.lock: " .. tostring(res[2]), 2) end
  return table.unpack(res, 2, res.n)
end

function hp.barrier(name)
  check_name("barrier", name)
  local link = ctx.slotlink
  if not link then return 1 end
  local n, err = link:barrier(name, current_test())
  if not n then error("hp.barrier: " .. err, 2) end
  return n
end

return hp
