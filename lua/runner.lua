-- hplua.runner: collection (load every file, check every declaration), then the
-- ordered run with dependencies, critical stops, attempts, timeouts, fixtures and
-- hooks. Reporters get events; the run's record is returned for the report writers.
local sys = require "hplua.sys"
local ctx = require "hplua.context"
local discover = require "hplua.discover"
local hp = require "hplua"
local process = hp.process

local M = {}

local NONE = setmetatable({}, { __newindex = function() error("internal: NONE is read-only") end })

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

-- Resolves and checks every `depends` entry; records collection errors.
local function resolve_dependencies(tests, modules_by_id)
  local by_id = {}
  for _, t in ipairs(tests) do by_id[t.id] = t end
  local function resolve(t, spec, line)
    local out = {}
    local mid, name = spec:match("^(.-)::(.*)$")
    if not mid then
      local target = t.module.by_name[spec]
      if not target then
        ctx.collection_error(string.format("%s depends on unknown test %q", t.id, spec), t.file, line)
      else
        out[1] = target
      end
    elseif name == "*" then
      local mod = modules_by_id[mid]
      if not mod then
        ctx.collection_error(string.format("%s depends on unknown module %q", t.id, mid), t.file, line)
      else
        for _, x in ipairs(mod.tests) do out[#out + 1] = x end
      end
    else
      local target = by_id[spec]
      if not target then
        ctx.collection_error(string.format("%s depends on unknown test %q", t.id, spec), t.file, line)
      else
        out[1] = target
      end
    end
    return out
  end
  for _, t in ipairs(tests) do
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
  local modules_by_id = {}
  for root_index, root in ipairs(paths) do
    local items, err = discover.discover(root)
    if not items then
      ctx.collection_error(err, root, 0)
      items = {}
    end
    for _, item in ipairs(items) do
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
          root = root_index, tests = {}, by_name = {}, hooks = new_hooks(), kind = "module" }
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
  plan.errors = ctx.errors
  return plan
end

function M.select(plan, keywords)
  local selected = {}
  for _, t in ipairs(plan.tests) do
    local ok = #keywords == 0
    for _, k in ipairs(keywords) do
      if t.id:find(k, 1, true) then ok = true break end
    end
    if ok then selected[#selected + 1] = t; t.selected = true end
  end
  return selected
end

-- Turns a guarded call's failure into a status and an error record.
local function outcome(info, prefix)
  if info.kind == "interrupt" then
    return "stopped", { message = info.message, file = info.file, line = info.line, traceback = info.traceback }
  end
  if type(info.object) == "table" and getmetatable(info.object) == ctx.skip_mt then
    return "skipped", nil, tostring(info.object.reason)
  end
  return "failed", { message = (prefix or "") .. info.message, file = info.file, line = info.line,
    traceback = info.traceback, kind = info.kind }
end

-- The failure a test's out-of-limit measurements add up to, located at the first.
local function measurement_failure(list)
  local bad, first = {}, nil
  for _, m in ipairs(list) do
    if not m.passed then
      first = first or m
      local limits = {}
      if m.min ~= nil or m.max ~= nil then
        limits[#limits + 1] = string.format("[%s, %s]", m.min ~= nil and tostring(m.min) or "-inf", m.max ~= nil and tostring(m.max) or "inf")
      end
      if m.expect ~= nil then limits[#limits + 1] = "expected " .. tostring(m.expect) end
      bad[#bad + 1] = string.format("%s = %s%s out of limits %s", m.name, tostring(m.value), m.unit and (" " .. m.unit) or "",
        table.concat(limits, ", "))
    end
  end
  if #bad > 0 then return "measurement failed: " .. table.concat(bad, "; "), first end
end

local Run = {}
Run.__index = Run

function M.new_run(plan, opts, reporter)
  return setmetatable({ plan = plan, opts = opts, reporter = reporter, open = {}, results = {} }, Run)
end

function Run:run_error(message, file, line)
  local e = { message = message, file = file, line = line }
  table.insert(ctx.run.errors, e)
  if self.reporter.run_error then self.reporter:run_error(e) end
end

function Run:guarded(fn, arg, timeout)
  return sys.run_guarded(fn, arg, timeout or 0)
end

function Run:open_scope(scope)
  scope.opened = true
  -- before_all hooks require from their own folder; the test's search path comes back after
  local path, cpath = package.path, package.cpath
  set_search_path(self.base, scope.search_dir or dirname(scope.file))
  for _, h in ipairs(scope.hooks.before_all) do
    local ok, info = self:guarded(h.fn, nil, self.opts.timeout)
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
    local ok, info = self:guarded(h.fn, nil, self.opts.timeout)
    if not ok then self:run_error("after_all failed: " .. info.message, info.file or h.file, info.line or h.line) end
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

function Run:attempt(t, n, timeout)
  local started = sys.clock()
  local rec = { test = t, attempt = n, messages = {}, measurements = {}, artifacts = {}, started = started }
  ctx.current = rec
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
        local ok, info = self:guarded(h.fn, arg, timeout)
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
        local ok, info = self:guarded(hooks[j].fn, arg, timeout)
        if not ok and status == "passed" then status, err, skip_reason = outcome(info, "after_each failed: ") end
      end
    end
  end
  if status == "passed" and #rec.measurements > 0 then
    local why, m = measurement_failure(rec.measurements)
    if why then status, err = "failed", { message = why, file = m.file, line = m.line } end
  end
  ctx.current = nil
  rec.status, rec.error, rec.skip_reason, rec.duration = status, err, skip_reason, sys.clock() - started
  return rec
end

function Run:execute(t, result)
  local timeout = t.timeout or self.opts.timeout
  for n = 1, t.attempts do
    local rec = self:attempt(t, n, timeout)
    result.attempt_results[n] = rec
    result.attempts = n
    result.status, result.error, result.skip_reason = rec.status, rec.error, rec.skip_reason
    result.messages, result.measurements, result.artifacts = rec.messages, rec.measurements, rec.artifacts
    if rec.status ~= "failed" or sys.interrupted() then break end
    if n < t.attempts and self.reporter.retry then self.reporter:retry(t, rec) end
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

function Run:run_test(t)
  local result = { test = t, id = t.id, name = t.name, status = "skipped", attempts = 0, attempt_results = {},
    messages = NONE, measurements = NONE, artifacts = NONE }
  t.result = result
  local n = sys.interrupted()
  if n and not self.stop_reason then
    self.interrupted = true
    self.stop_reason = "run interrupted"
  end
  result.wall_start = sys.wall() -- ISO times are formatted when a report is written
  local started = sys.clock()
  local reason, explicit = self:skip_reason(t)
  if reason then
    result.skip_reason = reason
  else
    self:enter(t.module.chain)
    if self.reporter.test_start then self.reporter:test_start(t) end
    self:execute(t, result)
  end
  result.duration = sys.clock() - started
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
  self.results[#self.results + 1] = result
  self.reporter:test_done(t, result)
end

function Run:finish()
  for i = #self.open, 1, -1 do
    self:close_scope(self.open[i])
    self.open[i] = nil
  end
  for i = #ctx.fixture_order, 1, -1 do
    local f = ctx.fixture_order[i]
    if f.teardown then
      local ok, info = self:guarded(f.teardown, f.value, 0)
      if not ok then
        self:run_error(string.format("teardown of fixture %q failed: %s", f.name, info.message), info.file or f.file, info.line or f.line)
      end
    end
  end
  local ok, err = pcall(process._cleanup, 3)
  if not ok then self:run_error("process clean-up failed: " .. tostring(err)) end
end

-- Runs the selected tests; returns the run record.
function M.execute(plan, selected, opts, reporter)
  local run = M.new_run(plan, opts, reporter)
  run.base = { path = package.path, cpath = package.cpath }
  run.selected = selected
  M.current_run = run -- for M.rescue
  local real_exit = os.exit
  os.exit = function(code)
    error(string.format("os.exit(%s) called from test code: a test cannot end the run; use hp.fail or error", tostring(code)), 2)
  end
  local started = sys.clock()
  run.started = started
  local dir
  for _, t in ipairs(selected) do
    if t.module.search_dir ~= dir then
      dir = t.module.search_dir
      set_search_path(run.base, dir)
    end
    run:run_test(t)
  end
  run:finish()
  os.exit = real_exit
  package.path, package.cpath = run.base.path, run.base.cpath
  if sys.interrupted() then run.interrupted = true end
  run.duration = sys.clock() - started
  return run
end

-- LAST RESORT (self-contained, to be ported as is). The host calls this through
-- sys.set_rescue (see cli.lua) in a forked copy of the process when test code is
-- stuck where no hook reaches (a C call, a finalizer) or the run did not end
-- within 4 s of SIGINT/SIGTERM; the host then ends every child and exits 2.
-- info = { reason = "timeout"|"interrupt", message, file, line, in_test_code }.
-- Records the stuck attempt (failed for a timeout, stopped for an interrupt), marks
-- every test not yet run as skipped, and returns the run for the report writers
-- (nil when stuck during collection, after recording a collection error).
function M.rescue(info)
  local run = M.current_run
  if not run then
    ctx.collection_error(info.message, info.file, info.line)
    return nil
  end
  local status = info.reason == "interrupt" and "stopped" or "failed"
  local err = { message = info.message, file = info.file, line = info.line, kind = info.reason }
  local rec = ctx.current
  if rec and rec.test.result then
    local result = rec.test.result
    rec.status, rec.error, rec.duration = status, err, sys.clock() - (rec.started or sys.clock())
    result.attempt_results[rec.attempt] = rec
    result.attempts = rec.attempt
    result.status, result.error, result.skip_reason = status, err, nil
    result.messages, result.measurements, result.artifacts = rec.messages, rec.measurements, rec.artifacts
    result.duration = sys.wall() - result.wall_start
    result.wall_end = sys.wall()
    run.results[#run.results + 1] = result
    pcall(run.reporter.test_done, run.reporter, rec.test, result)
  else
    table.insert(ctx.run.errors, err)
  end
  for _, t in ipairs(run.selected or {}) do
    if not t.result then
      run.results[#run.results + 1] = { test = t, id = t.id, name = t.name, status = "skipped", attempts = 0,
        attempt_results = {}, messages = NONE, measurements = NONE, artifacts = NONE,
        skip_reason = "not run: the run was ended (" .. info.reason .. ")", wall_start = sys.wall(), wall_end = sys.wall(),
        duration = 0 }
    end
  end
  run.interrupted = true
  run.duration = sys.clock() - (run.started or sys.clock())
  pcall(run.reporter.finish, run.reporter, run, M.summary(run.results))
  return run
end

function M.summary(results)
  local s = { total = #results, passed = 0, failed = 0, skipped = 0, stopped = 0 }
  for _, r in ipairs(results) do s[r.status] = s[r.status] + 1 end
  return s
end

return M
