-- hplua.cli: the command line (docs/cli.md). Returns exit statuses; never exits.
local sys = require "hplua.sys"

local M = {}

local EXIT = { ok = 0, failed = 1, interrupted = 2, internal = 3, usage = 4, none = 5 }
M.EXIT = EXIT

local USAGE = [[
usage: hplua [OPTIONS] [PATH ...]     run the test suite(s); PATH defaults to ./tests
       hplua -e CODE [ARG ...]        run a Lua chunk with the stdlib loaded
       hplua --exec FILE [ARG ...]    run a Lua script with the stdlib loaded

options:
  -k TEXT               run only tests whose id contains TEXT (repeatable: any match)
  --list                print the selected test ids in run order and exit
  -x, --exitfirst       stop after the first failed test (the rest are skipped)
  --timeout SECONDS     default per-test timeout (a test's own timeout wins)
  --json FILE           write the JSON run report to FILE
  --junit FILE          write a JUnit XML report to FILE
  --tap                 write TAP version 13 to stdout instead of the console report
  -q, -v                quieter / more detailed console output
  --color WHEN          auto (default), always or never; NO_COLOR=1 turns auto off
  --answers FILE        JSON object answering operator dialogs by id
  --max-memory MB       cap the Lua heap of the run
  --version, --help     print and exit

exit status: 0 passed, 1 a test failed, 2 interrupted or collection error,
             3 internal error, 4 usage error, 5 no test selected
]]

local function usage_error(msg)
  io.stderr:write("hplua: error: " .. msg .. " (see hplua --help)\n")
  return EXIT.usage
end

local function positive(name, value, unit)
  local n = tonumber(value)
  if not n or n <= 0 then return nil, string.format("%s needs a positive number of %s, got '%s'", name, unit, value) end
  return n
end

-- Parses argv; returns opts or nil, message.
function M.parse(args)
  local opts = { paths = {}, keywords = {}, color = "auto", verbose = false, quiet = false }
  local takes_value = {
    ["-k"] = true, ["--timeout"] = true, ["--json"] = true, ["--junit"] = true, ["--color"] = true,
    ["--answers"] = true, ["--max-memory"] = true, ["-e"] = true, ["--exec"] = true,
  }
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
        local n, err = positive(name, value, "megabytes")
        if not n then return nil, err end
        opts.max_memory = n
      elseif name == "--version" then
        opts.version = true
      elseif name == "-h" or name == "--help" then
        opts.help = true
      else
        return nil, "unknown option '" .. a .. "'"
      end
    else
      opts.paths[#opts.paths + 1] = a
    end
    i = i + 1
  end
  if #opts.paths == 0 then opts.paths[1] = "tests" end
  return opts
end

-- -e CODE / --exec FILE: run a chunk with the stdlib loaded, args in `arg` and `...`.
local function run_script(script)
  local chunk, err
  local argt = { [0] = script.kind == "-e" and "-e" or script.value }
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
  local ok, info = sys.run_guarded(function() return chunk(table.unpack(script.args)) end, nil, 0)
  local process = require "hplua.process"
  process._cleanup(1)
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
  local json = require "hplua.json"
  local answers, jerr = json.decode(text)
  if answers == nil then return nil, "--answers " .. path .. ": " .. jerr end
  if type(answers) ~= "table" or getmetatable(answers) then
    return nil, "--answers " .. path .. ": a JSON object (dialog id -> answer) is needed"
  end
  return answers
end

local function run_tests(opts)
  local answers
  if opts.answers then
    local err
    answers, err = load_answers(opts.answers)
    if not answers then return usage_error(err) end
  end
  for _, p in ipairs(opts.paths) do
    local kind, err = sys.kind(p)
    if not kind then
      return usage_error(err:find("No such file", 1, true) and ("path not found: " .. p) or err)
    end
  end
  if opts.max_memory then sys.set_memory_limit(opts.max_memory) end
  local runner = require "hplua.runner"
  local report = require "hplua.report"
  local ctx = require "hplua.context"
  local console = require "hplua.console"
  local reporter = opts.tap and console.tap() or console.console(opts)
  ctx.answers = answers
  local run_info = { started_at = sys.now(), wall_start = sys.wall() }
  local plan = runner.collect(opts.paths)
  if not plan then
    io.stdout:write("interrupted during collection\n")
    report.write_all(opts, run_info, nil, nil, EXIT.interrupted)
    return EXIT.interrupted
  end
  if #plan.errors > 0 then
    reporter:collection_errors(plan.errors)
    report.write_all(opts, run_info, plan, nil, EXIT.interrupted)
    return EXIT.interrupted
  end
  local selected = runner.select(plan, opts.keywords)
  if opts.list then
    for _, t in ipairs(selected) do io.stdout:write(t.id, "\n") end
    return EXIT.ok
  end
  if #selected == 0 then
    io.stdout:write(#plan.tests == 0 and "no tests collected\n" or
      string.format("no tests selected (%d deselected by -k)\n", #plan.tests))
    report.write_all(opts, run_info, plan, nil, EXIT.none)
    return EXIT.none
  end
  local files = {}
  for _, t in ipairs(selected) do files[t.module] = true end
  local nfiles = 0
  for _ in pairs(files) do nfiles = nfiles + 1 end
  reporter:start({ selected = #selected, deselected = #plan.tests - #selected, files = nfiles })
  ctx.on_message = reporter.message and function(rec, msg) reporter:message(rec, msg) end
  local run = runner.execute(plan, selected, opts, reporter)
  local summary = runner.summary(run.results)
  local code = EXIT.ok
  if run.interrupted then
    code = EXIT.interrupted
  elseif summary.failed > 0 or summary.stopped > 0 or #ctx.run.errors > 0 then
    code = EXIT.failed
  end
  reporter:finish(run, summary)
  local ok, werr = report.write_all(opts, run_info, plan, run, code)
  if not ok then
    io.stderr:write("hplua: error: " .. werr .. "\n")
    if code == EXIT.ok then code = EXIT.failed end
  end
  return code
end

function M.main(args)
  if args[1] == "serve" then return require("hplua.serve").main({ table.unpack(args, 2) }) end
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
  return run_tests(opts)
end

return M
