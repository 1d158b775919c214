-- hplua.runner: collection (load every file, check every declaration), then the
-- ordered run with dependencies, critical stops, attempts, timeouts, fixtures and
-- hooks. The run owns its state and publishes what happens as events (API 6) on
-- its bus; every output is a subscriber (lua/sink_*.lua).
-- test code may replace globals (package = nil): keep what the runner uses
local package, require, string, table = package, require, string, table
local sys = require "hplua.sys"
local ctx = require "hplua.context"
local discover = require "hplua.discover"
local hp = require "hplua"
local internal = require "hplua.process.internal"

local M = {}


local HOOK_KINDS = { "before_all", "after_all", "before_each", "after_each" }

local function new_hooks()
  local h = {}
  for _, k in ipairs(HOOK_KINDS) do h[k] = {} end
  return h
end

local function dirname(path)
  return path:match("^(.*)/[^/]*$") or "."
end

-- Loads one file as a collection step; errors become collection errors.
-- Returns false when the run was interrupted.
local function load_file(path)
  local chunk, err = loadfile(path, "t")
  if not chunk then
    local msg = tostring(err)
    local file, line, text = msg:match("^(.-):(%d+): (.*)$")
    if file == path then
      ctx.collection_error(text, path, tonumber(line))
    else
      ctx.collection_error((msg:gsub("^cannot open " .. path:gsub("%p", "%%%0"), "cannot open file")), path, 0)
    end
    return true
  end
  local ok, info = sys.run_guarded(chunk, nil, 0)
  if not ok then
    if info.kind == "interrupt" then return false end
    ctx.collection_error("error while loading: " .. info.message, info.file or path, info.line or 0)
  end
  return true
end

local function set_search_path(base, dir)
  package.path = dir .. "/?.lua;" .. base.path
  package.cpath = dir .. "/?.so;" .. base.cpath
end

local NO_DEPS = setmetatable({}, { __newindex = function() error("NO_DEPS is shared", 2) end })

-- Resolves and checks every `depends` entry; records collection errors.
local function resolve_dependencies(tests, modules_by_id)
  local by_id, all_ids -- built when a dependency names a test by its id
  local function index()
    if by_id then return end
    by_id, all_ids = {}, {}
    for _, t in ipairs(tests) do by_id[t.id] = t; all_ids[#all_ids + 1] = t.id end
  end
  local suggest = require "hplua.suggest"
  local function names_of(mod)
    local out = {}
    for _, x in ipairs(mod.tests) do out[#out + 1] = x.name end
    return out
  end
  local function resolve(t, spec, line)
    local out = {}
    local mid, name = spec:match("^(.-)::(.*)$")
    if not mid then
      local target = t.module.by_name[spec]
      if not target then
        ctx.collection_error(string.format("%s depends on unknown test %q%s", t.id, spec,
          suggest.hint(spec, names_of(t.module))), t.file, line)
      else
        out[1] = target
      end
    elseif name == "*" then
      local mod = modules_by_id[mid]
      if not mod then
        local mods = {}
        for id in pairs(modules_by_id) do mods[#mods + 1] = id end
        table.sort(mods)
        ctx.collection_error(string.format("%s depends on unknown module %q%s", t.id, mid, suggest.hint(mid, mods)),
          t.file, line)
      else
        for _, x in ipairs(mod.tests) do out[#out + 1] = x end
      end
    else
      index()
      local target = by_id[spec]
      if not target then
        ctx.collection_error(string.format("%s depends on unknown test %q%s", t.id, spec, suggest.hint(spec, all_ids)),
          t.file, line)
      else
        out[1] = target
      end
    end
    return out
  end
  local mdeps = {} -- modules that depend on something
  for _, t in ipairs(tests) do
    if t.module.depends and #t.module.depends > 0 then mdeps[t.module] = true end
  end
  for _, t in ipairs(tests) do
    if #t.depends == 0 and not mdeps[t.module] then -- nothing to resolve (most tests)
      t.deps = NO_DEPS
      goto next_test
    end
    t.deps = {}
    local specs = {}
    for _, d in ipairs(t.module.depends or {}) do specs[#specs + 1] = { d, t.module.depends_line or t.line } end
    for _, d in ipairs(t.depends) do specs[#specs + 1] = { d, t.line } end
    local seen = {}
    for _, s in ipairs(specs) do
      for _, target in ipairs(resolve(t, s[1], s[2])) do
        if not seen[target] then
          seen[target] = true
          t.deps[#t.deps + 1] = { test = target, line = s[2], spec = s[1] }
        end
      end
    end
    ::next_test::
  end
  -- A dependency must run before its dependent; a cycle is named as such.
  local function path_to(from, goal, visited)
    if from == goal then return { goal.id } end
    if visited[from] then return nil end
    visited[from] = true
    for _, d in ipairs(from.deps) do
      local p = path_to(d.test, goal, visited)
      if p then table.insert(p, 1, from.id) return p end
    end
  end
  for _, t in ipairs(tests) do
    for _, d in ipairs(t.deps) do
      local target = d.test
      if target == t then
        ctx.collection_error(string.format("%s depends on itself (via %q)", t.id, d.spec), t.file, d.line)
      elseif target.index > t.index then
        local cycle = path_to(target, t, {})
        if cycle then
          table.insert(cycle, 1, t.id)
          ctx.collection_error("dependency cycle: " .. table.concat(cycle, " -> "), t.file, d.line)
        else
          ctx.collection_error(string.format("%s depends on %s, which runs later (%s:%d); dependencies must run first",
            t.id, target.id, target.file, target.line), t.file, d.line)
        end
      end
    end
  end
end

-- Phase 1: collection. Returns the plan, or nil when interrupted.
function M.collect(paths)
  local base = { path = package.path, cpath = package.cpath }
  local plan = { modules = {}, tests = {}, scopes = {} }
  local modules_by_id, file_order = {}, {}
  for root_index, root in ipairs(paths) do
    local root_dir = sys.kind(root) == "dir" and root or dirname(root)
    hp.suite_dir = sys.realpath(root_dir) or root_dir
    local items, err = discover.discover(root)
    if not items then
      ctx.collection_error(err, root, 0)
      items = {}
    end
    for _, item in ipairs(items) do
      file_order[#file_order + 1] = item.path
      if item.kind == "error" then
        ctx.collection_error(item.message, item.path, 0)
      elseif item.kind == "suite" then
        local scope = { kind = "suite", dir = item.dir, file = item.path, hooks = new_hooks() }
        plan.scopes[root_index .. ":" .. item.dir] = scope
        ctx.collecting = { suite = scope }
        set_search_path(base, dirname(item.path))
        local ok = load_file(item.path)
        ctx.collecting = nil
        if not ok then return nil end
      else
        local id = discover.module_id(item.rel)
        local mod = { id = id, name = id, file = item.path, dir = item.dir, search_dir = dirname(item.path),
          root = root_index, suite_dir = hp.suite_dir, tests = {}, by_name = {}, hooks = new_hooks(), kind = "module" }
        ctx.collecting = { module = mod }
        set_search_path(base, mod.search_dir)
        local ok = load_file(item.path)
        ctx.collecting = nil
        if not ok then return nil end
        if modules_by_id[id] then
          ctx.collection_error(string.format("module id %q is used twice (also %s)", id, modules_by_id[id].file), item.path, 0)
        else
          modules_by_id[id] = mod
          plan.modules[#plan.modules + 1] = mod
        end
      end
    end
  end
  package.path, package.cpath = base.path, base.cpath
  for _, mod in ipairs(plan.modules) do
    -- the scopes of a module: suite.lua of each enclosing folder, then the module itself
    local chain, dir = {}, ""
    local function add(d)
      local s = plan.scopes[mod.root .. ":" .. d]
      if s then chain[#chain + 1] = s end
    end
    add("")
    for part in mod.dir:gmatch("[^/]+") do
      dir = dir == "" and part or (dir .. "/" .. part)
      add(dir)
    end
    chain[#chain + 1] = mod
    mod.chain = chain
    for _, t in ipairs(mod.tests) do
      plan.tests[#plan.tests + 1] = t
      t.index = #plan.tests
    end
  end
  resolve_dependencies(plan.tests, modules_by_id)
  -- collection errors in the order of the files and lines they name
  local order = {}
  for i, path in ipairs(file_order) do order[path] = order[path] or i end
  for i, e in ipairs(ctx.errors) do e.seq = i end
  table.sort(ctx.errors, function(a, b)
    local oa, ob = order[a.file] or math.huge, order[b.file] or math.huge
    if oa ~= ob then return oa < ob end
    if a.file ~= b.file then return tostring(a.file) < tostring(b.file) end
    if (a.line or 0) ~= (b.line or 0) then return (a.line or 0) < (b.line or 0) end
    return a.seq < b.seq
  end)
  plan.errors = ctx.errors
  return plan
end

-- Tests whose id contains any keyword (all without keywords), in run order. Unless
-- no_deps, the tests they depend on (transitively) are selected too, marked
-- t.as_dependency, so that running one test by its id runs what it needs. only: a set
-- of exact ids (--last-failed) that a test must also be in.
function M.select(plan, keywords, no_deps, only)
  for _, t in ipairs(plan.tests) do
    local ok = #keywords == 0
    for _, k in ipairs(keywords) do
      if t.id:find(k, 1, true) then ok = true break end
    end
    if only and not only[t.id] then ok = false end
    t.selected = ok or nil
  end
  if not no_deps and (#keywords > 0 or only) then
    for i = #plan.tests, 1, -1 do -- dependencies run earlier: one backward pass reaches them all
      local t = plan.tests[i]
      if t.selected then
        for _, d in ipairs(t.deps or {}) do
          if not d.test.selected then d.test.selected, d.test.as_dependency = true, true end
        end
      end
    end
  end
  local selected = {}
  for _, t in ipairs(plan.tests) do
    if t.selected then selected[#selected + 1] = t end
  end
  return selected
end

local json = require "hplua.json"
local null = json.null

-- A guarded call's failure -> status, error record { message, file, line, traceback,
-- kind }, skip reason. Kinds: timeout, interrupt, error, assertion, memory
-- (measurement is added by the runner).
local function outcome(info, prefix)
  local e = { message = (prefix or "") .. info.message, file = info.file, line = info.line,
    traceback = info.traceback, kind = info.kind }
  if info.kind == "interrupt" then
    e.message = info.message
    return "stopped", e
  end
  if type(info.object) == "table" and getmetatable(info.object) == ctx.skip_mt then
    return "skipped", nil, tostring(info.object.reason)
  end
  if e.kind == "error" then
    local m = info.message
    if m:find("^out of memory") or m:find("^not enough memory") then
      e.kind = "memory"
    elseif m == "assertion failed!" or (ctx.assertion and m:sub(-#ctx.assertion) == ctx.assertion) then
      e.kind = "assertion"
      local d = ctx.assertion_detail
      if d then e.expected, e.actual = d.expected, d.actual end -- full values of a compacted diff
    end
  end
  ctx.assertion, ctx.assertion_detail = nil, nil
  return "failed", e
end

-- The failure a test's out-of-limit measurements add up to, located at the first.
local function measurement_failure(list)
  local format = require "hplua.format"
  local bad, first = {}, nil
  for _, m in ipairs(list) do
    if not m.passed then
      first = first or m
      local limits = format.limits(m)
      bad[#bad + 1] = string.format("%s = %s%s %s", m.name, format.value(m.value), m.unit and (" " .. m.unit) or "",
        limits ~= "" and ("out of limits " .. limits) or "failed")
    end
  end
  if #bad > 0 then return "measurement failed: " .. table.concat(bad, "; "), first end
end

-- An error record as events and reports carry it (null when there is none).
local function error_record(e)
  if not e then return null end
  return { message = e.message, file = e.file, line = e.line, traceback = e.traceback, kind = e.kind or "error",
    expected = e.expected, actual = e.actual }
end

local EXIT = { ok = 0, failed = 1, interrupted = 2, internal = 3, usage = 4, none = 5 }
M.EXIT = EXIT

-- Durations are kept to the microsecond (they print short and read back exactly).
local function seconds(d)
  return math.floor(d * 1e6 + 0.5) / 1e6
end

local Run = {}
Run.__index = Run

-- opts: the parsed command line; bus: the event bus (hplua.events) with its sinks.
function M.new_run(opts, bus)
  local run = setmetatable({ opts = opts, bus = bus, open = {}, errors = {},
    summary = { total = 0, passed = 0, failed = 0, skipped = 0, stopped = 0 },
    messages = { messages = {}, keyed = {} }, dut = {}, stand = {}, instruments = {},
    started = sys.clock(), wall_start = sys.wall() }, Run)
  return run
end

function Run:emit(kind, ev) return self.bus:emit(kind, ev) end

-- An output that failed (the --events stream on a full disk, say). Said on stderr at
-- once; before the run's final event it becomes a run error (kind "report") so that
-- the verdict and every other output say so (prepare_outputs); after it, the exit
-- status alone can still change.
function Run:output_error(message)
  io.stderr:write("hplua: error: " .. tostring(message) .. "\n")
  local q = self.output_failures or {}
  self.output_failures = q
  q[#q + 1] = tostring(message)
  if self.exit_code == EXIT.ok then self.exit_code = EXIT.failed end
  if self.verdict_out then sys.watch_exit(self.exit_code) end
end

-- The JSON report's text, once the run has finished (needs the report builder).
function Run:report_text()
  return self.report and self.report:report_text()
end

function Run:run_error(message, file, line, kind)
  local e = { message = message, file = file, line = line, kind = kind or "error" }
  self.errors[#self.errors + 1] = e
  self:emit("run_error", { message = message, file = file or null, line = line or null, kind = e.kind })
end

function Run:guarded(fn, arg, timeout)
  self.bus:flush() -- what happened so far is out before code that may take long runs
  return sys.run_guarded(fn, arg, timeout or 0)
end

-- Hooks and teardowns that run outside any test get a deadline too, so a hung
-- teardown cannot hang the run: their own timeout, else --timeout, else this.
local HOOK_TIMEOUT = 60

function Run:hook_timeout(h)
  return h.timeout or self.opts.timeout or HOOK_TIMEOUT
end

function Run:open_scope(scope)
  scope.opened = true
  -- before_all hooks require from their own folder; the test's search path comes back after
  local path, cpath = package.path, package.cpath
  set_search_path(self.base, scope.search_dir or dirname(scope.file))
  for _, h in ipairs(scope.hooks.before_all) do
    local ok, info = self:guarded(h.fn, nil, self:hook_timeout(h))
    if not ok then
      local status, err = outcome(info, "before_all failed: ")
      scope.error = err or { message = "before_all skipped" }
      scope.error_status = status
      break
    end
  end
  package.path, package.cpath = path, cpath
end

function Run:close_scope(scope)
  for i = #scope.hooks.after_all, 1, -1 do
    local h = scope.hooks.after_all[i]
    local ok, info = self:guarded(h.fn, nil, self:hook_timeout(h))
    if not ok then self:run_error("after_all failed: " .. info.message, info.file or h.file, info.line or h.line, info.kind) end
  end
  scope.closed = true
end

-- Closes the open scopes the next test is not in, opens the ones it needs.
function Run:enter(chain)
  local keep = 0
  while keep < #self.open and keep < #chain and self.open[keep + 1] == chain[keep + 1] do keep = keep + 1 end
  for i = #self.open, keep + 1, -1 do
    self:close_scope(self.open[i])
    self.open[i] = nil
  end
  for i = keep + 1, #chain do
    self.open[i] = chain[i]
    self:open_scope(chain[i])
  end
end

-- Events are read-only for their subscribers, so empty lists can share one array.
local NO_ITEMS = json.array()
local function array(t)
  if #t == 0 then return NO_ITEMS end
  return json.array(t)
end

local function attempt_summary(rec)
  return { attempt = rec.attempt, status = rec.status, duration = rec.duration, error = error_record(rec.error),
    messages = array(rec.messages), measurements = array(rec.measurements) }
end

function Run:attempt(t, n, timeout, previous)
  local started = sys.clock()
  local rec = { test = t, attempt = n, messages = {}, keyed = {}, measurements = {}, artifacts = {}, attachments = {},
    started = started }
  ctx.current = rec
  internal.begin_attempt()
  self:emit("test_started", { test = t.id, name = t.name, module = t.module.id, attempt = n,
    max_attempts = t.attempts > 1 and t.attempts or nil,
    dependency = t.as_dependency,
    previous = previous and { status = previous.status, error = error_record(previous.error) } or nil })
  local arg = { id = t.id, name = t.name, attempt = n, module = t.module.id }
  local chain = t.module.chain
  local status, err, skip_reason = "passed", nil, nil
  for _, scope in ipairs(chain) do
    if scope.error then status, err = scope.error_status or "failed", scope.error break end
  end
  if status == "passed" then
    local entered = 0 -- scopes whose before_each hooks ran (their after_each will run)
    for i, scope in ipairs(chain) do
      for _, h in ipairs(scope.hooks.before_each) do
        local ok, info = self:guarded(h.fn, arg, h.timeout or timeout)
        if not ok then
          status, err, skip_reason = outcome(info, "before_each failed: ")
          break
        end
      end
      entered = i
      if status ~= "passed" then break end
    end
    if status == "passed" then
      local ok, info = self:guarded(t.fn, arg, timeout)
      if not ok then status, err, skip_reason = outcome(info) end
    end
    for i = entered, 1, -1 do
      local hooks = chain[i].hooks.after_each
      for j = #hooks, 1, -1 do
        local ok, info = self:guarded(hooks[j].fn, arg, hooks[j].timeout or timeout or HOOK_TIMEOUT)
        if not ok and status == "passed" then status, err, skip_reason = outcome(info, "after_each failed: ") end
      end
    end
  end
  if rec.exit_called and status ~= "failed" and status ~= "stopped" then
    -- os.exit was called and its error caught by the test itself: still a failure
    status, err = "failed", rec.exit_called
  end
  if status == "passed" and #rec.measurements > 0 then
    local why, m = measurement_failure(rec.measurements)
    if why then status, err = "failed", { message = why, file = m.file, line = m.line, kind = "measurement" } end
  end
  internal.end_attempt(3) -- its scope = "test" children end with it
  if ctx.slotlink then ctx.slotlink:release_all() end -- what a cut-off test held (hp.lock)
  ctx.current = nil
  rec.status, rec.error, rec.skip_reason, rec.duration = status, err, skip_reason, seconds(sys.clock() - started)
  return rec
end

function Run:execute(t, result)
  local timeout = t.timeout or self.opts.timeout
  local previous
  for n = 1, t.attempts do
    local rec = self:attempt(t, n, timeout, previous)
    result.attempt_results[n] = rec
    result.attempts = n
    result.status, result.error, result.skip_reason = rec.status, rec.error, rec.skip_reason
    result.messages, result.measurements, result.artifacts = rec.messages, rec.measurements, rec.artifacts
    result.attachments = rec.attachments
    if rec.status ~= "failed" or sys.interrupted() then break end
    previous = rec
  end
end

function Run:skip_reason(t)
  if self.stop_reason then return self.stop_reason end
  if t.skip then return type(t.skip) == "string" and t.skip or "skipped", "explicit" end
  for _, d in ipairs(t.deps) do
    local dep = d.test
    if not dep.selected then return string.format("dependency %s not selected", dep.id) end
    local st = dep.result and dep.result.status or "not run"
    if st ~= "passed" then return string.format("dependency %s %s", dep.id, st) end
  end
end

-- What a finished test keeps for its dependents: its verdict, in one table a status
-- (shared, never changed).
local VERDICT = {}
for _, st in ipairs { "passed", "failed", "skipped", "stopped" } do
  VERDICT[st] = setmetatable({ status = st }, { __newindex = function() error("a verdict is shared", 2) end })
end

-- The lists of a test that did not run (skipped): empty, shared, never changed (an
-- attempt's own lists replace them when it runs).
local NONE = setmetatable({}, { __newindex = function() error("shared empty list", 2) end })

function Run:finish_test(t, result)
  local s = self.summary
  s.total = s.total + 1
  s[result.status] = s[result.status] + 1
  if result.status == "failed" and not self.caused_failure then self.caused_failure = t.id end
  if result.status == "skipped" and (result.skip_reason or ""):find("^dependency .* not selected$") then
    self.missing_deps = (self.missing_deps or 0) + 1
  end
  -- Lists that are empty, and fields that say nothing new, are left out: the stream
  -- stays small (docs/events.md says which fields may be absent).
  local attempts
  if #result.attempt_results > 1 then
    attempts = json.array()
    for i, rec in ipairs(result.attempt_results) do attempts[i] = attempt_summary(rec) end
  end
  local mod = t.module
  self:emit("test_finished", { test = t.id, name = t.name, module = mod.id,
    module_name = mod.name ~= mod.id and mod.name or nil, file = mod.file, status = result.status,
    attempt = result.attempts, attempts = result.attempts, duration = result.duration,
    error = error_record(result.error), skip_reason = result.skip_reason or null,
    started_at = sys.now(result.wall_start), ended_at = sys.now(result.wall_end),
    messages = #result.messages > 0 and json.array(result.messages) or nil,
    measurements = #result.measurements > 0 and json.array(result.measurements) or nil,
    artifacts = next(result.artifacts) and result.artifacts or nil,
    attachments = #result.attachments > 0 and json.array(result.attachments) or nil,
    attempt_results = attempts, max_attempts = t.attempts > 1 and t.attempts or nil, dependency = t.as_dependency })
  -- the outputs have it all now: a finished test keeps only its verdict (for its dependents)
  t.result = VERDICT[result.status] or { status = result.status }
end

function Run:run_test(t)
  local result = { test = t, id = t.id, name = t.name, status = "skipped", attempts = 0, attempt_results = {},
    messages = NONE, measurements = NONE, artifacts = NONE, attachments = NONE }
  t.result = result
  if sys.interrupted() and not self.stop_reason then
    self.interrupted = true
    self.stop_reason = "run interrupted"
  end
  result.wall_start = sys.wall()
  local started = sys.clock()
  local reason, explicit = self:skip_reason(t)
  if reason then
    result.skip_reason = reason
  else
    self:enter(t.module.chain)
    self:execute(t, result)
  end
  result.duration = seconds(sys.clock() - started)
  result.wall_end = result.wall_start + result.duration
  if result.status == "stopped" then
    self.interrupted = true
    self.stop_reason = self.stop_reason or "run interrupted"
  end
  if (t.critical or t.module.critical) and result.status ~= "passed" and not explicit and not self.stop_reason then
    self.stop_reason = string.format("critical test %s failed", t.id)
  end
  if self.opts.exitfirst and result.status == "failed" and not self.stop_reason then
    self.stop_reason = string.format("stopped after the first failure (-x): %s", t.id)
  end
  self:finish_test(t, result)
end

function Run:teardown()
  for i = #self.open, 1, -1 do
    self:close_scope(self.open[i])
    self.open[i] = nil
  end
  for i = #ctx.fixture_order, 1, -1 do
    local f = ctx.fixture_order[i]
    if f.teardown then
      local ok, info = self:guarded(f.teardown, f.value, self:hook_timeout(f))
      if not ok then
        self:run_error(string.format("teardown of fixture %q failed: %s", f.name, info.message),
          info.file or f.file, info.line or f.line, info.kind)
      end
    end
  end
  self.bus:flush()
  local ok, err = pcall(internal.cleanup, 3)
  if not ok then self:run_error("process clean-up failed: " .. tostring(err)) end
end

-- os.exit in test code fails the test (or the collection) instead of ending the run;
-- the attempt remembers it even when the test catches the error. It stays so to the
-- process's end: test code's finalizers run at any collection, the run's outputs
-- being written among them, and then in lua_close (host/main.c).
local function install_exit_guard()
  sys.watch_exit(true) -- and exit() from native code is the host's to catch (host/main.c)
  os.exit = function(code)
    local msg = string.format("os.exit(%s) called from test code: a test cannot end the run; use hp.fail or error",
      tostring(code))
    local cur = ctx.current
    if cur and not cur.exit_called then
      local file, line = ctx.caller()
      cur.exit_called = { message = msg, file = file, line = line, kind = "error" }
    end
    error(msg, 2)
  end
end

-- The run's verdict: exit status and report status (API 1 and 4).
function Run:verdict(phase)
  local code
  if phase == "collection_error" or phase == "interrupted_collection" or self.interrupted then
    code = EXIT.interrupted
  elseif phase == "none" or self.all_deps_missing then
    code = #self.errors > 0 and EXIT.failed or EXIT.none -- a report that failed to be written
  elseif self.summary.failed > 0 or self.summary.stopped > 0 or #self.errors > 0 then
    code = EXIT.failed
  else
    code = EXIT.ok
  end
  local status = "passed"
  if code == EXIT.interrupted and phase ~= "collection_error" then
    status = "stopped"
  elseif code ~= EXIT.ok and code ~= EXIT.none then
    status = "failed"
  end
  return code, status
end

-- Collection, then the run; everything is published on the bus. Returns the exit status.
-- phase (in run_finished): "collection_error", "interrupted_collection", "none" (no test
-- selected), "list" (--list) or "run".
function Run:main(paths, keywords)
  local opts = self.opts
  install_exit_guard()
  ctx.run_messages = self.messages
  ctx.run_info = { dut = self.dut, stand = self.stand, instruments = self.instruments }
  -- what suite.lua and test files record while they load follows run_started
  local queued = {}
  ctx.bus = { emit = function(_, kind, ev)
    ev.time = sys.now()
    queued[#queued + 1] = { kind, ev }
    return ev
  end }
  local plan = M.collect(paths)
  self.plan = plan
  local selected = plan and M.select(plan, keywords, opts.no_deps, opts.only) or {}
  self.selected = selected
  local ids, files, nfiles = json.array(), {}, 0
  for i, t in ipairs(selected) do
    ids[i] = t.id
    if not files[t.module] then files[t.module] = true; nfiles = nfiles + 1 end
  end
  if opts.list and plan and #plan.errors == 0 then
    sys.watch_exit(EXIT.ok) -- an exit() from now on: the listing's status
    ctx.bus = nil
    return nil, selected
  end
  self:emit("run_started", { hplua = sys.version, paths = json.array(paths), args = json.array(opts.argv or {}),
    serial = opts.serial or null, stand = self.stand, selected = ids, started_at = sys.now(self.wall_start),
    collected = plan and #plan.tests or 0, files = nfiles, run_args = opts.args or {},
    collection_errors = plan and #plan.errors or 0 })
  ctx.bus = self.bus
  self.started_run = true
  for _, q in ipairs(queued) do self:emit(q[1], q[2]) end
  local phase = "run"
  if not plan then
    phase = "interrupted_collection"
  elseif #plan.errors > 0 then
    phase = "collection_error"
    for _, e in ipairs(plan.errors) do
      self:emit("collection_error", { message = e.message, file = e.file, line = e.line or 0 })
    end
  elseif #selected == 0 then
    phase = "none"
  else
    self.base = { path = package.path, cpath = package.cpath }
    local dir
    for _, t in ipairs(selected) do
      if t.module.search_dir ~= dir then
        dir = t.module.search_dir
        set_search_path(self.base, dir)
        hp.suite_dir = t.module.suite_dir
      end
      self:run_test(t)
    end
    self:teardown()
    package.path, package.cpath = self.base.path, self.base.cpath
    -- every selected test skipped because what it needs was not selected (--no-deps)
    local missing = self.missing_deps or 0
    if missing > 0 and missing == self.summary.total then
      self.all_deps_missing = true
      phase = "deps_not_selected"
    end
    if sys.interrupted() then self.interrupted = true end
  end
  self.duration = seconds(sys.clock() - self.started)
  local final = { summary = self.summary, caused_failure = self.caused_failure or null, duration = self.duration,
    phase = phase, warnings = phase == "run" and json.array(require("hplua.measure").unused_warnings()) or nil,
    ended_at = sys.now(self.wall_start + self.duration) }
  final.exit_code, final.status = self:verdict(phase)
  self:prepare_outputs(final, phase)
  self.exit_code, self.status = final.exit_code, final.status
  self:emit("run_finished", final)
  self.verdict_out = true
  sys.watch_exit(self.exit_code) -- an exit() from now on (a finalizer): the run's status
  return self.exit_code
end

-- The last resort (host/lguard.c, host/monitor.c): test code is stuck where no hook
-- reaches (a C call, a finalizer). In a forked copy of the state, the stuck test is
-- recorded (failed; stopped for a signal) with where it was, the rest as not run,
-- and the run's outputs are finished as for any run (exit 2).
-- info: { reason = "timeout"|"interrupt", message, file, line }.
function Run:rescue(info)
  local status = info.reason == "interrupt" and "stopped" or "failed"
  local err = { message = info.message, file = info.file, line = info.line, kind = info.reason }
  local rec = ctx.current
  ctx.current = nil
  self.interrupted = true
  if not self.started_run then
    self:emit("run_started", { hplua = sys.version, paths = json.array(self.opts.paths), args = json.array({}),
      serial = self.opts.serial or null, stand = self.stand, selected = json.array(), collected = 0, files = 0,
      collection_errors = 0 })
    self.started_run = true
  end
  local t = rec and rec.test
  if t and t.result and t.result.attempt_results then -- the test that was running
    local result = t.result
    rec.status, rec.error, rec.skip_reason = status, err, nil
    rec.duration = seconds(sys.clock() - (rec.started or sys.clock()))
    result.attempt_results[rec.attempt] = rec
    result.attempts = rec.attempt
    result.status, result.error, result.skip_reason = status, err, nil
    result.messages, result.measurements, result.artifacts = rec.messages, rec.measurements, rec.artifacts
    result.attachments = rec.attachments
    result.wall_end = sys.wall()
    result.duration = seconds(result.wall_end - result.wall_start)
    self:finish_test(t, result)
  else
    self:run_error(info.message, info.file, info.line, info.reason)
  end
  local reason = "not run: the run was ended (" .. tostring(info.reason) .. ")"
  for _, x in ipairs(self.selected or {}) do
    if not x.result then
      local now = sys.wall()
      self:finish_test(x, { test = x, status = "skipped", attempts = 0, attempt_results = {}, messages = {},
        measurements = {}, artifacts = {}, attachments = {}, skip_reason = reason, wall_start = now, wall_end = now,
        duration = 0 })
    end
  end
  self.duration = seconds(sys.clock() - self.started)
  local final = { summary = self.summary, caused_failure = self.caused_failure or null, duration = self.duration,
    phase = "run", ended_at = sys.now(self.wall_start + self.duration) }
  final.exit_code, final.status = self:verdict("run")
  self:prepare_outputs(final, "run")
  self.exit_code, self.status = final.exit_code, final.status
  self:emit("run_finished", final)
  self.bus:close()
end

-- Report files are written before the run's final event and renamed into place at it:
-- every output that has a prepare step writes and syncs a temporary for the final
-- record. One that fails is a run error (kind "report"): a passing run fails, and
-- the others are written again with that verdict — so all outputs agree.
function Run:prepare_outputs(final, phase)
  -- output failures said so far become run errors; sending those (or a report's own
  -- failure, below) may make another output fail (the --events stream): again until
  -- none is left, so every failure is in the verdict and the reports
  local function drain()
    local failures = self.output_failures
    while failures and #failures > 0 do
      self.output_failures = {}
      for _, message in ipairs(failures) do self:run_error(message, nil, nil, "report") end
      failures = self.output_failures
    end
    final.exit_code, final.status = self:verdict(phase)
  end
  drain()
  local pending = {}
  for _, s in ipairs(self.bus.sinks) do
    if s.prepare then pending[#pending + 1] = s end
  end
  while true do
    local failed, message
    for i, s in ipairs(pending) do
      local ok, err = s:prepare(final, self)
      if ok == nil and err then failed, message = i, err break end
    end
    if not failed then return end
    for _, s in ipairs(pending) do
      if s.abort then s:abort() end
    end
    local sink = table.remove(pending, failed)
    local what = (sink.option or "report") .. ": " .. message
    io.stderr:write("hplua: error: " .. what .. "\n")
    self:run_error(what, nil, nil, "report")
    drain()
  end
end

return M
