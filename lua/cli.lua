-- hplua.cli: the command line (README.md, "Command line"). Returns exit statuses; never exits.
-- Globals a script or a test may replace (`require = nil`) are kept here first.
local require, tostring, tonumber, ipairs, type, pairs = require, tostring, tonumber, ipairs, type, pairs
local load, loadfile, unpack, io, string = load, loadfile, table.unpack, io, string
local sys = require "hplua.sys"
local json = require "hplua.json"

local M = {}

local EXIT = { ok = 0, failed = 1, interrupted = 2, internal = 3, usage = 4, none = 5 }
M.EXIT = EXIT

local USAGE = [[
usage: hplua [OPTIONS] [PATH ...]     run the test suite(s); PATH defaults to ./tests
       hplua -e CODE [ARG ...]        run a Lua chunk with the stdlib loaded
       hplua --exec FILE [ARG ...]    run a Lua script with the stdlib loaded
       hplua init [DIR]               write a starter suite into DIR (default: tests)
       hplua history [list|show|stats|upload] ...  the recorded runs (hplua history --help)
       hplua hub --upload URL         a read-only page over the factory database

options:
  -k TEXT               run only tests whose id contains TEXT (repeatable: any match),
                        and the tests they depend on
  --no-deps             with -k, do not add the tests the selected ones depend on
  --lf, --last-failed   run only the tests that failed in the previous run of the same
                        PATHs (from the history, else from the --json report), and the
                        tests they depend on; every test when none failed
  --list                print the selected test ids in run order and exit
  -x, --exitfirst       stop after the first failed test (the rest are skipped)
  --timeout SECONDS     default per-test timeout (a test's own timeout wins)
  --json FILE           write the JSON run report to FILE
  --junit FILE          write a JUnit XML report to FILE
                        (report paths take {run_id} {serial} {slot} {date} {time})
  --tap                 write TAP version 13 to stdout instead of the console report
  -q, -v                quieter / more detailed console output
  --color WHEN          auto (default), always or never; NO_COLOR=1 turns auto off
  --answers FILE        JSON object answering operator dialogs by id
  --max-memory MB       cap the Lua heap of the run
  --events FILE         write the run's events as NDJSON to FILE (or fd:N)
  --limits FILE         limits (JSON or Lua) for measurements that state none of their own
  --artifacts DIR       where hp.attach copies files (default: beside the --json report)
  --serial S            the DUT's serial number (hp.run.serial); with --slots, one per slot
  --slots N             test N DUTs at once: each slot runs the suite in its own process
                        (hp.run.slot; hp.lock and hp.barrier coordinate them)
  --arg KEY=VALUE       a run argument for the tests (hp.run.args.KEY; repeatable)
  --history FILE        record the run in this SQLite history (default: $HPLUA_HISTORY,
                        else ~/.local/share/hplua/history.db); see hplua history --help
  --no-history          record nothing
  --upload URL          send finished runs to a central PostgreSQL database
                        (postgresql://USER@HOST[:PORT]/DB; also HPLUA_UPLOAD), beside
                        the run: never delays it nor changes its exit status
  --version, --help     print and exit

exit status: 0 passed, 1 a test failed, 2 interrupted or collection error,
             3 internal error, 4 usage error, 5 no test selected
]]

local function usage_error(msg)
  io.stderr:write("hplua: error: " .. msg .. " (see hplua --help)\n")
  return EXIT.usage
end

-- A positive, finite number, at most max (1e308, inf and values that overflow a
-- size in bytes are refused, naming the option).
local function positive(name, value, unit, max)
  local n = tonumber(value)
  if not n or not (n > 0) or n == math.huge then
    return nil, string.format("%s needs a positive number of %s, got '%s'", name, unit, value)
  end
  if max and n > max then
    return nil, string.format("%s: %s %s is more than the %s %s allowed", name, value, unit, string.format("%.0f", max), unit)
  end
  return n
end

-- --max-memory in megabytes must fit a size in bytes with room to spare: 2^40 MB.
local MAX_MEMORY_MB = 2 ^ 40

local TAKES_VALUE = {
  ["-k"] = true, ["--timeout"] = true, ["--json"] = true, ["--junit"] = true, ["--color"] = true,
  ["--answers"] = true, ["--max-memory"] = true, ["-e"] = true, ["--exec"] = true, ["--events"] = true,
  ["--control"] = true, ["--run-id"] = true, ["--serial"] = true, ["--arg"] = true, ["--slot"] = true,
  ["--slots"] = true, ["--coord"] = true,
  ["--limits"] = true, ["--artifacts"] = true, ["--history"] = true, ["--upload"] = true,
}
M.TAKES_VALUE = TAKES_VALUE

-- Parses argv; returns opts or nil, message.
function M.parse(args)
  local opts = { paths = {}, keywords = {}, color = "auto", verbose = false, quiet = false, args = {}, argv = args }
  local takes_value = TAKES_VALUE
  local i = 1
  while i <= #args do
    local a = args[i]
    local name, value = a:match("^(%-%-[%w-]+)=(.*)$")
    name = name or a
    if a == "--" then
      for j = i + 1, #args do opts.paths[#opts.paths + 1] = args[j] end
      break
    elseif name:sub(1, 1) == "-" and #name > 1 then
      if takes_value[name] and value == nil then
        i = i + 1
        value = args[i]
        if value == nil then return nil, "option " .. name .. " needs a value" end
      elseif not takes_value[name] and value ~= nil then
        return nil, "option " .. name .. " takes no value"
      end
      if name == "-e" or name == "--exec" then
        opts.script = { kind = name, value = value, args = { table.unpack(args, i + 1) } }
        return opts
      elseif name == "-k" then
        opts.keywords[#opts.keywords + 1] = value
      elseif name == "--no-deps" then
        opts.no_deps = true
      elseif name == "--lf" or name == "--last-failed" then
        opts.last_failed = true
      elseif name == "--list" then
        opts.list = true
      elseif name == "-x" or name == "--exitfirst" then
        opts.exitfirst = true
      elseif name == "--timeout" then
        local n, err = positive(name, value, "seconds")
        if not n then return nil, err end
        opts.timeout = n
      elseif name == "--json" then
        opts.json = value
      elseif name == "--junit" then
        opts.junit = value
      elseif name == "--tap" then
        opts.tap = true
      elseif name == "-q" or name == "--quiet" then
        opts.quiet, opts.verbose = true, false
      elseif name == "-v" or name == "--verbose" then
        opts.verbose, opts.quiet = true, false
      elseif name == "--color" then
        if value ~= "auto" and value ~= "always" and value ~= "never" then
          return nil, "--color must be auto, always or never, got '" .. value .. "'"
        end
        opts.color = value
      elseif name == "--answers" then
        opts.answers = value
      elseif name == "--max-memory" then
        local n, err = positive(name, value, "megabytes", MAX_MEMORY_MB)
        if not n then return nil, err end
        opts.max_memory = n
      elseif name == "--artifacts" then
        opts.artifacts = value
      elseif name == "--limits" then
        opts.limits = value
      elseif name == "--events" then
        opts.events = value
      elseif name == "--control" then
        opts.control = value
      elseif name == "--run-id" then
        if not value:match("^[%w-]+$") or #value > 64 then return nil, "--run-id must be letters, digits and dashes" end
        opts.run_id = value
      elseif name == "--serial" then
        opts.serials = opts.serials or {}
        opts.serials[#opts.serials + 1] = value
        opts.serial = opts.serial or value
      elseif name == "--slots" then
        local n = math.tointeger(tonumber(value))
        if not n or n < 1 or n > 64 then return nil, "--slots needs a whole number from 1 to 64, got '" .. value .. "'" end
        opts.slots = n
      elseif name == "--coord" then
        opts.coord = value
      elseif name == "--slot" then
        local n = math.tointeger(tonumber(value))
        if not n or n < 1 then return nil, "--slot needs a whole number of at least 1, got '" .. value .. "'" end
        opts.slot = n
      elseif name == "--arg" then
        local k, v = value:match("^([%w_.-]+)=(.*)$")
        if not k then return nil, "--arg needs KEY=VALUE, got '" .. value .. "'" end
        opts.args[k] = v
      elseif name == "--history" then
        if value == "" then return nil, "--history needs a file name" end
        opts.history = value
      elseif name == "--no-history" then
        opts.no_history = true
      elseif name == "--upload" then
        opts.upload = value
      elseif name == "--version" then
        opts.version = true
      elseif name == "-h" or name == "--help" then
        opts.help = true
      else
        local known = { "--list", "--no-deps", "--last-failed", "--lf", "--no-history", "--exitfirst", "--tap", "--quiet", "--verbose", "--version", "--help" }
        for k in pairs(takes_value) do known[#known + 1] = k end
        table.sort(known)
        return nil, "unknown option '" .. a .. "'" .. require("hplua.suggest").hint(name, known)
      end
    else
      opts.paths[#opts.paths + 1] = a
    end
    i = i + 1
  end
  if #opts.paths == 0 then opts.paths[1], opts.default_path = "tests", true end
  local nserials = opts.serials and #opts.serials or 0
  if nserials > 1 and not opts.slots then
    return nil, "--serial given " .. nserials .. " times (several serials need --slots N, one serial per slot)"
  elseif opts.slots and nserials > opts.slots then
    return nil, string.format("--serial given %d times for %d slot%s (one serial per slot)", nserials, opts.slots,
      opts.slots == 1 and "" or "s")
  end
  if not opts.upload and not opts.no_history then -- --no-history: the environment's target is not for this run
    local env = os.getenv("HPLUA_UPLOAD")
    if env and env ~= "" then opts.upload, opts.upload_from_env = env, true end
  end
  if opts.upload then
    local from = opts.upload_from_env and "HPLUA_UPLOAD" or "--upload"
    if not require("hplua.upload").valid_url(opts.upload) then
      return nil, from .. " needs a postgresql://USER@HOST[:PORT]/DB URL, got '" .. opts.upload .. "'"
    end
    if opts.no_history then return nil, "--upload needs the history (its outbox): drop --no-history" end
  end
  return opts
end

-- --last-failed: opts.only = the set of test ids that failed in the newest recorded run
-- of the same PATHs (the history when it is on, else the --json report about to be
-- replaced). No failures known: every test runs, as pytest does. Returns true or nil, why.
local function last_failed(opts)
  local found, source
  if opts.history_store then
    found = opts.history_store:last_failed(opts.paths)
    source = found and string.format("run %s (%s)", found.run_id:sub(1, 8), (found.started_at or "?"):sub(1, 19):gsub("T", " "))
  elseif opts.json then
    local f = io.open(opts.json, "rb")
    local text = f and f:read("a")
    if f then f:close() end
    if text then
      local ok, rep = pcall(json.decode, text)
      if not ok or type(rep) ~= "table" or type(rep.modules) ~= "table" then
        return nil, "--last-failed: " .. opts.json .. " is not a hplua JSON report"
      end
      found = { ids = {} }
      for _, m in ipairs(rep.modules) do
        for _, t in ipairs(type(m) == "table" and type(m.tests) == "table" and m.tests or {}) do
          if t.status == "failed" and type(t.id) == "string" then found.ids[#found.ids + 1] = t.id end
        end
      end
      source = opts.json
    end
  else
    return nil, "--last-failed needs the history (it is off: --no-history) or a --json report to read"
  end
  local say = opts.quiet and function() end or function(s) io.stdout:write(s, "\n") end
  if not found or #found.ids == 0 then
    say(found and ("last failed: no test failed in " .. source .. "; running every test")
      or "last failed: no previous run of " .. table.concat(opts.paths, " ") .. " recorded; running every test")
    return true
  end
  opts.only = {}
  for _, id in ipairs(found.ids) do opts.only[id] = true end
  say(string.format("last failed: re-running %d test(s) that failed in %s", #found.ids, source))
  return true
end

-- -e CODE / --exec FILE: run a chunk with the stdlib loaded, args in `arg` and `...`.
local function run_script(script)
  local chunk, err
  -- as lua.c: the interpreter at arg[-1], the script (or -e) at arg[0], then its arguments
  local argt = { [-1] = sys.exepath(), [0] = script.kind == "-e" and "-e" or script.value }
  for i, v in ipairs(script.args) do argt[i] = v end
  _G.arg = argt
  if script.kind == "-e" then
    chunk, err = load(script.value, "=(command line)", "t")
  else
    chunk, err = loadfile(script.value, "t")
  end
  if not chunk then
    io.stderr:write("hplua: " .. tostring(err) .. "\n")
    return EXIT.failed
  end
  require "hplua" -- children started with hp.process.lua get the same stdlib
  local ok, info = sys.run_guarded(function() return chunk(unpack(script.args)) end, nil, 0)
  require("hplua.process.internal").cleanup(1)
  if ok then return EXIT.ok end
  if info.kind == "interrupt" then
    local _, _, signo = sys.interrupted()
    return EXIT.interrupted, signo
  end
  local where = info.file and string.format("%s:%d: ", info.file, info.line or 0) or ""
  io.stderr:write("hplua: " .. where .. info.message .. "\n")
  if info.traceback and info.traceback ~= "" then io.stderr:write("traceback:\n" .. info.traceback) end
  return EXIT.failed
end

local function load_answers(path)
  local f, err = io.open(path)
  if not f then return nil, "--answers: " .. err end
  local text = f:read("a")
  f:close()
  local answers, jerr = json.decode(text)
  if answers == nil then return nil, "--answers " .. path .. ": " .. jerr end
  if type(answers) ~= "table" or getmetatable(answers) then
    return nil, "--answers " .. path .. ": a JSON object (dialog id -> answer) is needed"
  end
  return answers
end

-- The outputs of a run, as subscribers of its event bus, in the order they hear
-- each event: the report builder first (the JSON writer and the history read it).
local function subscribe_outputs(run, bus, opts)
  -- the history is recorded by a process of its own (hplua.recorder); when it cannot
  -- start, by a sink in this one
  local recorder, history_sink
  if opts.history_store then
    local sink_opts = { on_error = function(msg) io.stderr:write("hplua: " .. msg .. "\n") end, upload = opts.upload ~= nil }
    recorder = opts.recorder
    if recorder then recorder:attach(opts.history_store, sink_opts) else history_sink = opts.history_store:sink(sink_opts) end
  end
  if opts.json or history_sink then
    local report = require("hplua.sink_report").new()
    run.report = report
    bus:subscribe(report)
  end
  -- the history before the events file: a test the stream calls finished is on its way to the history
  if recorder or history_sink then bus:subscribe(recorder or history_sink) end
  bus:subscribe(opts.tap and require("hplua.sink_tap").new() or require("hplua.sink_console").new(opts))
  if opts.events then
    local sink, err = require("hplua.sink_events").open(opts.events)
    if not sink then return nil, err end
    bus:subscribe(sink)
  end
  if opts.json then bus:subscribe(require("hplua.sink_json").new(opts.json)) end
  if opts.junit then bus:subscribe(require("hplua.sink_junit").new(opts.junit)) end
  return true
end

-- collectgarbage as test code knows it from lua5.4, whose collector is incremental:
-- there, collectgarbage("step") returns true when it ends a cycle. In the generational
-- mode it never does (it collects, young or whole, and returns false), and the loop
-- `repeat until collectgarbage("step")` would never end: here, in that mode, each
-- step is one whole collection (a minor or a major one) and returns true. What test
-- code switches to, it gets.
local function gc_for_tests(raw)
  local generational = true
  return function(opt, ...)
    if opt == "step" and generational then
      raw("step", ...)
      return true
    end
    local r = raw(opt, ...)
    if opt == "incremental" then
      generational = false
    elseif opt == "generational" then
      generational = true
    end
    return r
  end
end

local function run_tests(opts)
  -- a run's heap is mostly what it keeps (the plan, every test's result), its
  -- garbage each test's short-lived tables and strings: a generational collector
  -- frees those young and leaves the kept ones alone, where an incremental one
  -- goes over all of them again and again (100,000 trivial tests: 1.7 s -> 1.2 s)
  collectgarbage("generational")
  collectgarbage = gc_for_tests(collectgarbage)
  local ctx = require "hplua.context"
  if opts.answers then
    local answers, err = load_answers(opts.answers)
    if not answers then return usage_error(err) end
    ctx.answers = answers
  end
  for _, p in ipairs(opts.paths) do
    local kind, err = sys.kind(p)
    if not kind then
      local msg = err:find("No such file", 1, true) and ("path not found: " .. p) or err
      if opts.default_path then
        -- `hplua --json suite`: the folder was taken as the option's value
        for _, o in ipairs { { "--json", opts.json }, { "--junit", opts.junit }, { "--events", opts.events },
          { "--answers", opts.answers }, { "--limits", opts.limits }, { "--artifacts", opts.artifacts } } do
          if o[2] and sys.kind(o[2]) == "dir" then
            msg = string.format("'%s' was taken as the value of %s, and the default PATH %s does not exist " ..
              "(hplua %s FILE %s)", o[2], o[1], p, o[1], o[2])
            break
          end
        end
      end
      return usage_error(msg)
    end
  end
  -- report paths may carry {run_id} {serial} {slot} {date} {time} (API 10)
  opts.run_id = opts.run_id or require("hplua.events").uuid()
  for _, key in ipairs { "json", "junit" } do
    if opts[key] and opts[key]:find("{", 1, true) then
      local path, perr = require("hplua.history").expand_placeholders(opts[key],
        { run_id = opts.run_id, serial = opts.serial, slot = opts.slot })
      if not path then return usage_error("--" .. key .. ": " .. perr) end
      opts[key] = path
    end
  end
  -- a report that cannot be written is a usage error before anything runs
  for _, o in ipairs { { "--json", opts.json }, { "--junit", opts.junit } } do
    if o[2] then
      local ok, cerr = json.check_target(o[2])
      if not ok then return usage_error(o[1] .. " " .. cerr:gsub("^cannot write ", "", 1)) end
    end
  end
  if opts.control then
    local control, err = require("hplua.control").open(opts.control)
    if not control then return usage_error(err) end
    ctx.control = control
  end
  if opts.coord then
    local link, err = require("hplua.slotlink").open(opts.coord)
    if not link then return usage_error(err) end
    ctx.slotlink = link
  end
  local history_path
  if not opts.list then
    -- the run's record is checked before collection: never a run without it
    local history = require "hplua.history"
    local path, default = history.location(opts)
    if path == nil then return usage_error(default) end
    if path then
      -- the recorder (lua/recorder.lua) starts now, beside this process's own start-up
      opts.recorder = require("hplua.recorder").spawn(path, { upload = opts.upload ~= nil })
      local store, err = history.open_for_run(path, { create_folders = default })
      if not store then
        if opts.recorder then opts.recorder:abandon() end
        return usage_error(err .. "; or run with --no-history")
      end
      opts.history_store = store
      history_path = path
      -- the upload's backoff, asked now on the open history rather than after the run
      if opts.upload then opts.upload_due = require("hplua.upload").due(store) end
    end
  end
  if opts.last_failed then
    local ok, err = last_failed(opts)
    if not ok then return usage_error(err) end
  end
  if opts.limits then
    local ok, err = require("hplua.measure").load(opts.limits)
    if not ok then return usage_error(err) end
  end
  -- hp.attach copies files here: --artifacts, else beside the JSON report, else beside the history
  local function folder(p) return (p:match("^(.*)/[^/]*$") or ".") .. "/artifacts" end
  ctx.artifacts = opts.artifacts or (opts.json and folder(opts.json)) or (history_path and folder(history_path))
  if opts.max_memory then sys.set_memory_limit(opts.max_memory) end
  local runner = require "hplua.runner"
  -- test code runs text chunks only (API 12); -e and --exec never get here
  require("hplua.sandbox").install()
  local events = require "hplua.events"
  local run = runner.new_run(opts)
  local bus = events.new(opts.run_id or events.uuid(), opts.slot, run)
  run.bus = bus
  ctx.run.id, ctx.run.slot, ctx.run.serial, ctx.run.args = bus.run_id, opts.slot, opts.serial, opts.args
  local ok, err = subscribe_outputs(run, bus, opts)
  if not ok then return usage_error(err) end
  -- the last resort (host/lguard.c): test code stuck where no hook reaches
  sys.set_rescue(function(info) run:rescue(info) end)
  local code, selected = run:main(opts.paths, opts.keywords)
  if code == nil then -- --list
    for _, t in ipairs(selected) do io.stdout:write(t.id, t.as_dependency and "  (dependency)" or "", "\n") end
    return EXIT.ok
  end
  local closed, cerr = bus:close()
  if not closed then run:output_error(cerr) end
  if ctx.control then ctx.control:close() end
  if ctx.slotlink then ctx.slotlink:close() end
  -- the exit status is fixed: the upload goes beside the run, in a detached process
  if opts.upload_due then pcall(require("hplua.upload").start_background, history_path, opts.upload, true) end
  return run.exit_code
end

-- A C module whose luaopen_ raises (a missing device, a wrong ABI, an unresolved
-- symbol at first call) names itself: Lua's require passes the error on bare.
local function name_c_module_errors()
  for i = 3, 4 do -- the C searchers
    local search = package.searchers[i]
    package.searchers[i] = function(name)
      local loader, where = search(name)
      if type(loader) ~= "function" then return loader, where end
      return function(...)
        local ok, res = pcall(loader, ...)
        if ok then return res end
        if type(res) ~= "string" then error(res, 0) end
        error(string.format("C module '%s' (%s) failed to load: %s", name, tostring(where), res), 3)
      end, where
    end
  end
end

function M.main(args)
  name_c_module_errors()
  if args[1] == "init" then return require("hplua.init").main({ table.unpack(args, 2) }) end
  if args[1] == "history" then return require("hplua.history_cli").main({ table.unpack(args, 2) }) end
  if args[1] == "serve" then return require("hplua.serve").main({ table.unpack(args, 2) }) end
  if args[1] == "hub" then return require("hplua.hub").main({ table.unpack(args, 2) }) end
  local opts, err = M.parse(args)
  if not opts then return usage_error(err) end
  if opts.help then
    io.stdout:write(USAGE)
    return EXIT.ok
  end
  if opts.version then
    io.stdout:write("hplua ", sys.version, " (", _VERSION, ")\n")
    return EXIT.ok
  end
  if opts.script then return run_script(opts.script) end
  if opts.slots and not opts.slot and not opts.list then return require("hplua.slots").main(opts) end
  return run_tests(opts)
end

return M
