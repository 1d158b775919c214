-- The JSON report, JUnit XML and TAP read by real consumers: a strict JSON Schema
-- validator, xmllint (well-formed, and valid against Jenkins' junit-10.xsd rules),
-- junitparser and Perl's prove; nasty strings and numbers included. Also where
-- reports go: FIFOs, links, folders that do not exist, writes that fail.
local hp = require "hplua"
local sys = require "hplua.sys"
local json = require "hplua.json"
local run = require "_run"

local tests_dir = run.fixtures .. "/.."
local schema = tests_dir .. "/report.schema.json"
local checker = tests_dir .. "/tools/check_report.py"
local xsd = tests_dir .. "/tools/junit-10.xsd"
local n = 0

-- xmllint: well-formed, then valid against the JUnit schema
local function xmllint(path)
  n = n + 1
  local r = hp.process.start("xmllint-" .. n, { "xmllint", "--noout", path }, { stderr = "stdout" }):wait(60)
  if r.exit_code ~= 0 then error("not well-formed XML: " .. r.stdout, 2) end
  r = hp.process.start("xmllint-xsd-" .. n, { "xmllint", "--noout", "--schema", xsd, path }, { stderr = "stdout" }):wait(60)
  if r.exit_code ~= 0 then error("not valid against junit-10.xsd: " .. r.stdout, 2) end
end

local tmpdir = run.tmpdir
local function listing(dir)
  local names = sys.listdir(dir)
  table.sort(names)
  return table.concat(names, " ")
end

local read = run.read
local function python(args)
  n = n + 1
  local argv = { "/usr/bin/python3", checker }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  local r = hp.process.start("python-" .. n, argv):wait(60)
  if r.exit_code ~= 0 then error("checker failed: " .. r.stdout .. r.stderr, 2) end
  return r
end

-- Runs hplua with --json and --junit; validates both; returns result and report.
local function run_checked(args, junit_counts, env)
  local junit = os.tmpname()
  local full = { "--junit", junit }
  for _, a in ipairs(args) do full[#full + 1] = a end
  local p, json_path = run.start(full, { env = env })
  local res = p:wait(60)
  python { "json", json_path, schema }
  if junit_counts then
    xmllint(junit)
    python { "junit", junit, table.unpack(junit_counts) }
  end
  os.remove(junit)
  return res, run.read_report(json_path)
end

hp.test("a passing run", function()
  local res, rep = run_checked({ "pass" }, { 3, 0, 1 })
  hp.expect(res.exit_code).to_equal(0)
  hp.expect(rep.status).to_equal("passed")
  hp.expect(rep.caused_failure).to_be_nil()
  hp.expect(rep.summary).to_equal { total = 3, passed = 2, failed = 0, skipped = 1, stopped = 0 }
end)

hp.test("a failing run names the first failure", function()
  local res, rep = run_checked({ "fail" }, { 4, 3, 0 })
  hp.expect(res.exit_code).to_equal(1)
  hp.expect(rep.status).to_equal("failed")
  hp.expect(rep.caused_failure).to_equal("1_fail::fails with error")
  local t = run.test_by_id(rep, "1_fail::fails with error")
  hp.expect(t.error.message).to_equal("the supply is off")
  hp.expect(t.error.file).to_equal("fail/1_fail.lua")
  hp.expect(t.error.line).to_equal(4)
end)

hp.test("a collection-error run: errors listed, nothing run", function()
  local res, rep = run_checked({ "collect_errors" }, { 7, 0, 0, 7 }) -- JUnit: an <error> each
  hp.expect(res.exit_code).to_equal(2)
  hp.expect(rep.status).to_equal("failed")
  hp.expect(#rep.collection_errors).to_equal(7)
  hp.expect(rep.collection_errors[1]).to_equal { file = "collect_errors/1_syntax.lua", line = 4,
    message = "unexpected symbol near '='" }
  hp.expect(#rep.modules).to_equal(0)
end)

hp.test("an error outside any test fails the run in JUnit too", function()
  -- the test passed; its module's after_all failed: the run failed (exit 1), and a JUnit
  -- reader that counts failures and errors must not see it green
  local d = run.tmpdir()
  run.write(d .. "/1_after.lua", 'local hp = require "hplua"\n' ..
    'hp.after_all(function() error("the fixture could not be put away") end)\n' ..
    'hp.test("passes", function() end)\n')
  local res, rep = run_checked({ d }, { 2, 0, 0, 1 })
  hp.expect(res.exit_code).to_equal(1)
  hp.expect(rep.status).to_equal("failed")
  os.execute("rm -rf '" .. d .. "'")
end)

hp.test("TAP and JUnit of a run that failed or stopped outside any test do not read as a pass", function()
  -- every test passed; then the module's after_all failed (one run) or was stopped by
  -- SIGTERM (the other): a TAP file read on its own, as a CI plugin reads it, counts a
  -- "not ok", and JUnit an <error>, for each
  local d = run.tmpdir()
  local function tap_run(body, stop)
    run.write(d .. "/1_after.lua", 'local hp = require "hplua"\nhp.after_all(function() ' .. body .. ' end)\n' ..
      'hp.test("passes", function() end)\n')
    local waiting = false
    local p = hp.process.start("tap-" .. (stop and "stop" or "fail"),
      { run.exe, "--no-history", "--tap", "--junit", d .. "/out.xml", d },
      { timeout = 60, on_line = function(l) if l == "WAITING" then waiting = true end end })
    if stop then
      run.wait_for(function() return waiting end, 20, "the after_all")
      run.kill(p.pid, "TERM")
    end
    local res = p:wait(30)
    xmllint(d .. "/out.xml")
    return res, res.stdout
  end
  local res, text = tap_run('error("the fixture could not be put away")')
  hp.expect(res.exit_code).to_equal(1)
  hp.expect(text).to_contain('ok 1 - 1_after::passes\nnot ok 2 - hplua: run error\n  ---\n  status: error\n' ..
    '  message: "after_all failed: the fixture could not be put away"\n')
  hp.expect(text).to_match("\n1%.%.2\n$")
  python { "junit", d .. "/out.xml", 2, 0, 0, 1 }

  res, text = tap_run('print("WAITING") io.stdout:flush() hp.sleep(30)', true)
  hp.expect(res.exit_code).to_equal(2)
  hp.expect(text).to_contain("not ok 2 - hplua: run error\n")
  hp.expect(text).to_contain("not ok 3 - hplua: run stopped\n  ---\n  status: stopped\n")
  hp.expect(text).to_match("\n1%.%.3\n# run interrupted\n$")
  python { "junit", d .. "/out.xml", 3, 0, 0, 2 }
  os.execute("rm -rf '" .. d .. "'")
end)

hp.test("an interrupted run is complete and stopped", function()
  local junit = os.tmpname()
  local waiting = false
  local p, json_path = run.start({ "--junit", junit, "interrupt" },
    { on_line = function(l) if l == "WAITING" then waiting = true end end })
  run.wait_for(function() return waiting end, 20, "the fixture")
  run.kill(p.pid, "TERM")
  hp.expect(p:wait(10).exit_code).to_equal(2)
  python { "json", json_path, schema }
  xmllint(junit)
  python { "junit", junit, 3, 1, 1 }
  local rep = run.read_report(json_path)
  hp.expect(rep.status).to_equal("stopped")
  hp.expect(rep.summary.stopped).to_equal(1)
  os.remove(junit)
end)

hp.test("specials and invalid UTF-8 survive every format", function()
  local res, rep = run_checked({ "specials" }, { 3, 1, 1 })
  hp.expect(res.exit_code).to_equal(1)
  local t = rep.modules[1].tests[1]
  -- NUL cannot travel through cJSON (C strings): it becomes U+FFFD too
  local repaired = "<tag attr=\"v\" other='w'> & ]]> \u{FFFD}\1\2\27[31m \u{FFFD}\u{FFFD} \u{FFFD}\u{FFFD} caf\u{E9} # not a TAP directive\nsecond line"
  hp.expect(t.messages[1].text).to_equal(repaired)
  hp.expect(t.messages[1].key).to_equal("k")
  hp.expect(rep.dut.serial).to_equal(repaired)
  hp.expect(t.artifacts.blob.list).to_equal { 1, 2, 3 }
  local failed = rep.modules[1].tests[2]
  hp.expect(failed.measurements[1].passed).to_be(false) -- NaN is never within limits
  hp.expect(failed.error.message).to_equal(repaired)
  -- TAP of the same run goes through prove
  local r = hp.process.start("prove-specials", { "prove", "--exec", run.exe .. " --tap", "specials/1_specials.lua" },
    { cwd = run.fixtures }):wait(60)
  hp.expect(r.stdout).to_match("Failed 1/3 subtests")
end)

hp.test("prove reads hplua's TAP with matching counts", function()
  local r = hp.process.start("prove-pass", { "prove", "-v", "--exec", run.exe .. " --tap", "pass/1_ok.lua" },
    { cwd = run.fixtures }):wait(60)
  hp.expect(r.exit_code).to_equal(0)
  hp.expect(r.stdout).to_match("ok 3 %- 1_ok::three # SKIP skipped")
  hp.expect(r.stdout).to_match("Files=1, Tests=3")
  hp.expect(r.stdout).to_match("Result: PASS")
  r = hp.process.start("prove-fail", { "prove", "--exec", run.exe .. " --tap", "fail/1_fail.lua", "pass/1_ok.lua" },
    { cwd = run.fixtures }):wait(60)
  hp.expect(r.exit_code).never.to_equal(0)
  hp.expect(r.stdout).to_match("Failed 3/4 subtests")
  hp.expect(r.stdout).to_match("Files=2, Tests=7")
  hp.expect(r.stdout).to_match("Result: FAIL")
end)

hp.test("dialogs: --answers, a real terminal, and neither", function()
  local res, rep = run_checked({ "--answers", "dialog/answers.json", "dialog/1_ask.lua" }, { 1, 0, 0 })
  hp.expect(res.exit_code).to_equal(0)
  hp.expect(res.stdout).to_contain("ANSWERS serial=SN-7 volts=12.5 led=true fw=debug")
  hp.expect(rep.modules[1].tests[1].messages[1].text).to_equal("Dialog serial: SN-7")
  -- a pseudo-terminal through script(1): a bad number and a bad yes/no are asked again
  local r = hp.process.start("pty", { "script", "-qec", run.exe .. " --color never -q dialog/1_ask.lua", "/dev/null" },
    { cwd = run.fixtures, stdin = "SN-9\nabc\n99\n3.3\nmaybe\ny\n2\n" }):wait(30)
  hp.expect(r.exit_code).to_equal(0)
  hp.expect(r.stdout).to_contain("a number is needed")
  hp.expect(r.stdout).to_contain("at most 50 is allowed")
  hp.expect(r.stdout).to_contain("answer yes or no")
  hp.expect(r.stdout).to_contain("ANSWERS serial=SN-9 volts=3.3 led=true fw=debug")
  -- no terminal and no answers: the test fails saying how to answer
  local res2 = run.run({ "dialog/1_ask.lua" })
  hp.expect(res2.exit_code).to_equal(1)
  hp.expect(res2.stdout).to_contain('dialog "serial" needs an operator: run on a terminal, or give --answers FILE')
  -- an answer of the wrong type fails the test; a broken file is a usage error
  hp.expect(run.run({ "--answers", "dialog/bad_answers.json", "dialog/1_ask.lua" }).exit_code).to_equal(1)
  local bad = run.run({ "--answers", "dialog/broken.json", "dialog/1_ask.lua" })
  hp.expect(bad.exit_code).to_equal(4)
  hp.expect(bad.stderr).to_contain("--answers dialog/broken.json: invalid JSON at line 2")
end)

hp.test("nasty strings and numbers: strict JSON, valid JUnit, readable TAP", function()
  local res, rep = run_checked({ "nasty" }, { 7, 5, 1 })
  hp.expect(res.exit_code).to_equal(1)
  local tests = rep.modules[1].tests
  -- numbers JSON cannot hold are text; open limits are left out; integers are exact
  local m = {}
  for _, t in ipairs(tests) do
    for _, x in ipairs(t.measurements) do m[x.name:match("^[^\1]*"):gsub(" c0 $", "")] = x end
  end
  hp.expect(m["number 6"].value).to_equal("inf")
  hp.expect(m["number 7"].value).to_equal("-inf")
  hp.expect(m["number 8"].value).to_equal("nan")
  hp.expect(m["number 10"].value).to_equal(math.mininteger)
  hp.expect(m["open below"].min).to_be_nil()
  hp.expect(m["open above"].max).to_be_nil()
  hp.expect(m["empty range"].min).to_be_nil() -- infinite limits are no limit (API 11)
  hp.expect(m["empty range"].passed).to_be(true)
  hp.expect(m["nan value"].value).to_equal("nan")
  hp.expect(m["minint"].min).to_equal(math.mininteger)
  -- nulls keep their place in arrays of run information
  hp.expect(#rep.dut.numbers).to_equal(12)
  hp.expect(rep.dut.numbers[6]).to_be(json.null)
  hp.expect(rep.dut.numbers[9]).to_be_near(2 ^ 63, 2 ^ 11) -- through a double: cJSON
  -- TAP of the same run goes through prove without a parse error
  local r = hp.process.start("prove-nasty", { "prove", "--exec", run.exe .. " --tap", "nasty/1_nasty.lua" },
    { cwd = run.fixtures, stderr = "stdout" }):wait(60)
  hp.expect(r.stdout).to_match("Failed 5/7 subtests")
  hp.expect(r.stdout).never.to_contain("Parse errors")
end)

hp.test("a 100 KB error message stays readable TAP", function()
  local r = hp.process.start("prove-long", { "prove", "--exec", run.exe .. " --tap", "nasty_long/1_long.lua" },
    { cwd = run.fixtures, stderr = "stdout" }):wait(60)
  hp.expect(r.stdout).to_match("Failed 1/1 subtests")
  hp.expect(r.stdout).never.to_contain("Parse errors")
  hp.expect(r.stdout).never.to_contain("recursion limit")
end)

hp.test("a report that cannot be written is a usage error before anything runs", function()
  local d = tmpdir()
  local res = run.run({ "--junit", d .. "/no/such/x.xml", "pass" })
  hp.expect(res.exit_code).to_equal(4)
  hp.expect(res.stderr).to_contain("hplua: error: --junit " .. d .. "/no/such/x.xml: its folder does not exist")
  hp.expect(res.stdout).never.to_contain("PASSED")
  os.execute("rm -rf '" .. d .. "'")
end)

hp.test("a report that fails at the end fails the run, and the other report says so", function()
  local d = tmpdir()
  assert(os.execute("mkfifo " .. d .. "/fifo")) -- nobody reads it: writing fails at the end
  local json_path = d .. "/r.json"
  local r = hp.process.start("unwritable", { run.exe, "--json", json_path, "--junit", d .. "/fifo", "pass" },
    { cwd = run.fixtures }):wait(60)
  hp.expect(r.exit_code).to_equal(1)
  hp.expect(r.stderr).to_contain("hplua: error: --junit: cannot write " .. d .. "/fifo: no process reads the FIFO")
  python { "json", json_path, schema }
  local rep = json.decode(read(json_path))
  hp.expect(rep.exit_code).to_equal(1)
  hp.expect(rep.status).to_equal("failed")
  hp.expect(rep.summary.passed).to_equal(2)
  hp.expect(rep.errors[1].kind).to_equal("report")
  hp.expect(rep.errors[1].message).to_contain("--junit: cannot write")
  hp.expect(os.execute("test -p " .. d .. "/fifo")).to_be(true) -- never replaced
  hp.expect(listing(d)).to_equal("fifo r.json")
  os.execute("rm -rf '" .. d .. "'")
end)

hp.test("a temporary file that stops growing mid-run loses nothing from the reports", function()
  -- the reports' spools live in temporary files; a file size limit (as a full disk)
  -- stops their writes mid-run: what they hold moves to memory, and every record
  -- reaches the reports (written to pipes here, which the limit does not reach)
  local d = tmpdir()
  local lines = { 'local hp = require "hplua"' }
  for i = 1, 400 do lines[#lines + 1] = string.format('hp.test("t%d", function() hp.set_message(string.rep("m", 1000)) end)', i) end
  run.write(d .. "/1_big.lua", table.concat(lines, "\n") .. "\n")
  -- SIGXFSZ at its default, as a shell with `ulimit -f` leaves it: hplua must not die of it
  local r = hp.process.start("fsize", { "sh", "-c", 'trap - XFSZ; ulimit -f 100; exec 3>&1; exec "$0" --no-history ' ..
    '-q --json /dev/fd/3 --junit /dev/stderr "$1" >/dev/null', run.exe, d }, { timeout = 60 }):wait(60)
  hp.expect(r.exit_code, r.stderr:sub(-2000)).to_equal(0)
  local rep = json.decode(r.stdout)
  hp.expect(rep.status).to_equal("passed")
  hp.expect(#rep.modules[1].tests).to_equal(400)
  hp.expect(rep.modules[1].tests[400].messages[1].text).to_equal(string.rep("m", 1000))
  run.write(d .. "/out.xml", r.stderr)
  xmllint(d .. "/out.xml")
  python { "junit", d .. "/out.xml", 400, 0, 0, 0 }
  os.execute("rm -rf '" .. d .. "'")
end)

hp.test("a file size limit fails a report's write (EFBIG), and the children still get SIGXFSZ", function()
  -- hplua ignores SIGXFSZ for its own writes; what it starts has the disposition hplua was given
  local d = tmpdir()
  run.write(d .. "/1_child.lua", table.concat({
    'local hp = require "hplua"',
    'hp.test("big", function()',
    '  local r = hp.process.start("dd", { "sh", "-c", "exec head -c 300000 /dev/zero > ' .. d .. '/big" }):wait(30)',
    '  hp.expect(r.signal).to_equal(25) -- SIGXFSZ',
    'end)' }, "\n") .. "\n")
  local r = hp.process.start("fsize-child", { "sh", "-c", 'trap - XFSZ; ulimit -f 100; exec "$0" --no-history ' ..
    '-q --json "$1/out.json" "$1"', run.exe, d }, { timeout = 60 }):wait(60)
  hp.expect(r.exit_code, r.stdout .. r.stderr).to_equal(0)
  local rep = json.decode(read(d .. "/out.json"))
  hp.expect(rep.status).to_equal("passed")
  -- a report bigger than the limit: the write fails, said, and the run fails (no signal)
  local lines = { 'local hp = require "hplua"' }
  for i = 1, 200 do lines[#lines + 1] = string.format('hp.test("t%d", function() hp.set_message(string.rep("m", 1000)) end)', i) end
  run.write(d .. "/2_big.lua", table.concat(lines, "\n") .. "\n")
  r = hp.process.start("fsize-report", { "sh", "-c", 'trap - XFSZ; ulimit -f 100; exec "$0" --no-history ' ..
    '-q --json "$1/big.json" "$1/2_big.lua"', run.exe, d }, { timeout = 60 }):wait(60)
  hp.expect(r.signal, r.stderr).to_equal(nil)
  hp.expect(r.exit_code, r.stderr).to_equal(1)
  hp.expect(r.stderr).to_contain("--json: cannot write " .. d .. "/big.json: File too large")
  os.execute("rm -rf '" .. d .. "'")
end)

hp.test("reports go into a FIFO and through links; temporaries never stay", function()
  local d = tmpdir()
  assert(os.execute("mkfifo " .. d .. "/fifo"))
  local reader = hp.process.start("fifo-cat", { "cat", d .. "/fifo" })
  assert(os.execute(string.format("echo old > %s/real.xml && ln -s real.xml %s/link.xml", d, d)))
  local r = hp.process.start("to-fifo", { run.exe, "-q", "--json", d .. "/fifo", "--junit", d .. "/link.xml", "pass" },
    { cwd = run.fixtures }):wait(60)
  hp.expect(r.exit_code).to_equal(0)
  local rep = json.decode(reader:wait(30).stdout)
  hp.expect(rep.summary.passed).to_equal(2)
  hp.expect(os.execute("test -p " .. d .. "/fifo")).to_be(true)
  hp.expect(os.execute("test -L " .. d .. "/link.xml")).to_be(true)
  xmllint(d .. "/real.xml")
  hp.expect(listing(d)).to_equal("fifo link.xml real.xml")
  os.execute("rm -rf '" .. d .. "'")
end)

hp.test("SIGTERM while a report is being streamed leaves no temporary", function()
  local d = tmpdir()
  local ready = false
  local code = string.format([[
    local json = require "hplua.json"
    local h = assert(json.open_atomic(%q))
    h:write(string.rep("x", 1 << 20))
    print("READY")
    io.stdout:flush()
    require("hplua").sleep(60)
  ]], d .. "/r.json")
  local p = hp.process.start("streamer", { run.exe, "-e", code },
    { on_line = function(l) if l == "READY" then ready = true end end })
  run.wait_for(function() return ready end, 20, "the writer")
  hp.expect(#sys.listdir(d)).to_equal(1) -- its temporary
  run.kill(p.pid, "TERM")
  hp.expect(p:wait(10).signal).to_equal(15) -- -e ends by the signal it got, as lua would
  hp.expect(listing(d)).to_equal("")
  os.execute("rm -rf '" .. d .. "'")
end)
