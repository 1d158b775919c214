-- The guard: verdicts that cannot be wrong, hangs that end, Lua's semantics kept.
-- Real runs of hplua on the guard fixtures; times are bounded loosely (the
-- contract: a timeout ends the test within timeout + 5 s, SIGINT/SIGTERM the run
-- within 5 s), survivors are found by a marker in their command line.
local hp = require "hplua"
local run = require "_run"

local STUCK = "guard/stuck/1_stuck.lua"

-- The line of the hang `mode` in the stuck fixture (where the report must point).
local function hang_line(mode)
  local n = 0
  for line in io.lines(run.fixtures .. "/" .. STUCK) do
    n = n + 1
    if line:find("^  " .. mode .. " = function") then return n end
  end
  error("no hang " .. mode)
end

hp.test("a test that overran its timeout fails, however it ended", function()
  local res, rep = run.run({ "guard/verdicts" })
  -- on a failure, the run's own words and what its report says of each test (a last
  -- resort's report names the test that did not answer)
  local seen = {}
  for _, m in ipairs(rep and rep.modules or {}) do
    for _, t in ipairs(m.tests) do
      seen[#seen + 1] = string.format("%s: %s %s", t.name, t.status, t.error and t.error.message or "")
    end
  end
  hp.expect(res.exit_code, res.stdout .. res.stderr .. table.concat(seen, "\n")).to_equal(1)
  hp.expect(rep.summary).to_equal({ total = 15, passed = 1, failed = 14, skipped = 0, stopped = 0 })
  for _, m in ipairs(rep.modules) do
    for _, t in ipairs(m.tests) do
      if t.name == "the run goes on" then
        hp.expect(t.status).to_equal("passed")
      else
        hp.set_message(t.name)
        hp.expect(t.status).to_equal("failed")
        local limit = t.name:find("long C call") and 0.001 or 0.3
        hp.expect(t.error.message).to_equal(string.format("timeout after %g s", limit))
        hp.expect(t.duration).to_be_less_than(limit + 5)
      end
    end
  end
end)

-- A driver's settling delay in C (usleep) while the test's children run, and one
-- of them ends, and its deadline is far: no signal of hplua's may cut it short (the
-- reading after it would be taken before the instrument settled), nor a deadline an
-- earlier test had. Fifteen naps of 0.1 s.
hp.test("a C call that sleeps is not cut short: children run and end, an earlier deadline passes", function()
  local dir = run.tmpdir()
  run.write(dir .. "/nap.lua", [[
local hp = require "hplua"
hp.test("settles while a child runs", { timeout = 60 }, function()
  hp.process.start("chatty", { "sh", "-c", "while :; do echo line; sleep 0.001; done" }, { scope = "test" })
  hp.process.start("quiet", { "sleep", "30" }, { scope = "test" })
  local forkmod = require "forkmod"
  for i = 1, 10 do
    hp.process.start("short" .. i, { "sleep", "0.05" }) -- ends during the nap
    local took, err = forkmod.nap(0.1)
    print(string.format("nap %.4f %d", took, err))
  end
end)
-- an earlier test's deadline (0.3 s) passes while this one, with none, naps
hp.test("a short deadline", { timeout = 0.3 }, function() end)
hp.test("no deadline of its own", function()
  local forkmod = require "forkmod"
  for _ = 1, 5 do
    local took, err = forkmod.nap(0.1)
    print(string.format("nap %.4f %d", took, err))
  end
end)
]])
  local r = run.run({ "--no-history", dir .. "/nap.lua" })
  hp.expect(r.exit_code, r.stdout .. r.stderr).to_equal(0)
  local naps = 0
  for took, err in r.stdout:gmatch("nap (%S+) (%d+)") do
    naps = naps + 1
    hp.expect(tonumber(err), "errno of usleep").to_equal(0)
    hp.expect(tonumber(took)).to_be_greater_than(0.099)
  end
  hp.expect(naps).to_equal(15)
  os.execute("rm -rf '" .. dir .. "'")
end)

hp.test("--max-memory holds after load errors, in __close and after caught errors", function()
  local res, rep = run.run({ "--max-memory", "8", "guard/memory" })
  hp.expect(res.exit_code).to_equal(1)
  for _, name in ipairs { "after load with a reader that errors", "in a __close run while unwinding an error",
    "after an error object with __tostring was caught" } do
    local t = run.test_by_id(rep, "1_memory::" .. name)
    hp.expect(t.status).to_equal("failed")
    hp.expect(t.error.message).to_equal("out of memory: the Lua heap would exceed --max-memory 8 MB")
  end
  hp.expect(run.test_by_id(rep, "1_memory::the run goes on").status).to_equal("passed")
end)

hp.test("debug hooks, coroutines, load and error values behave as in lua5.4", function()
  local script = run.fixtures .. "/guard/_semantics.lua"
  local plain = hp.process.start("semantics-lua", { "lua5.4", script }):wait()
  local ours = hp.process.start("semantics-hplua", { run.exe, "--exec", script }):wait()
  hp.expect(plain.exit_code).to_equal(0)
  hp.expect(ours.stdout).to_contain("initial nil\n")
  hp.expect(ours.stdout).to_equal(plain.stdout)
end)

-- The run's collector is generational; test code still sees collectgarbage as in
-- lua5.4 (incremental there): a step loop ends, a mode it sets is kept.
hp.test("collectgarbage in a test behaves as in lua5.4", function()
  local dir = run.tmpdir()
  run.write(dir .. "/gc.lua", [[
local hp = require "hplua"
hp.test("a step loop ends", { timeout = 10 }, function()
  local t = {}
  for i = 1, 10000 do t[i] = { i } end
  t = nil
  local n = 0
  repeat n = n + 1 until collectgarbage("step")
  hp.expect(n).to_be_less_than(1000)
  hp.expect(math.type(collectgarbage("count"))).to_equal("float")
  hp.expect(collectgarbage()).to_equal(0)
end)
hp.test("a mode test code sets holds", { timeout = 10 }, function()
  collectgarbage("incremental")
  local n = 0
  repeat n = n + 1 until collectgarbage("step")
  hp.expect(collectgarbage("generational")).to_equal("incremental")
  repeat until collectgarbage("step")
end)
]])
  local res, rep = run.run({ dir })
  hp.expect(res.exit_code, res.stdout .. res.stderr).to_equal(0)
  hp.expect(rep.summary.passed).to_equal(2)
end)

-- Runs the stuck fixture in `mode`; with a signal, sends it once the test is stuck.
-- Returns the result, the report, the seconds from the signal (or the start) to
-- the end, and the survivors.
local function stuck(mode, opts)
  local marker = run.unique_marker()
  local ready = false
  local env = { GUARD_HANG = mode, GUARD_MARKER = marker, GUARD_TIMEOUT = opts.timeout and tostring(opts.timeout) or false }
  local p, report = run.start({ STUCK }, { env = env, on_line = function(l) if l == "READY" then ready = true end end })
  local t0 = hp.clock()
  run.wait_for(function() return ready or not p:alive() end, 30, "the test to get stuck")
  if opts.signal then
    hp.sleep(0.2)
    t0 = hp.clock()
    run.kill(p.pid, opts.signal)
  end
  local res = p:wait(30)
  local took = hp.clock() - t0
  hp.expect(res).never.to_be_nil()
  local rep = run.read_report(report)
  hp.expect(rep).never.to_be_nil()
  hp.set_message(string.format("%s: exit %s after %.2f s", mode, tostring(res.exit_code), took))
  hp.expect(run.survivors(marker, 1)).to_equal({})
  hp.expect(run.test_by_id(rep, "1_stuck::finished first").status).to_equal("passed")
  hp.expect(res.stdout).to_contain("output of a finished test")
  return res, rep, took
end

-- Stuck where the hook reaches: the test fails with the timeout, the run goes on.
for _, mode in ipairs { "tostring", "close", "coroutine", "sethook" } do
  hp.test("timeout: " .. mode .. " fails the test, the run goes on", function()
    local res, rep, took = stuck(mode, { timeout = 1 })
    hp.expect(took).to_be_less_than(1 + 5)
    hp.expect(res.exit_code).to_equal(1)
    local t = run.test_by_id(rep, "1_stuck::stuck")
    hp.expect(t.status).to_equal("failed")
    hp.expect(t.error.message).to_equal("timeout after 1 s")
    hp.expect(run.test_by_id(rep, "1_stuck::after").status).to_equal("passed")
  end)
end

-- Stuck where no hook reaches: the last resort ends the run with exit 2, the
-- report names the stuck test and where it was stuck.
local function last_resort(mode, opts, status, head)
  return function()
    local res, rep, took = stuck(mode, opts)
    hp.expect(took).to_be_less_than((opts.timeout or 0) + 5)
    hp.expect(res.exit_code).to_equal(2)
    hp.expect(res.stderr).to_contain("test code is stuck where no hook reaches")
    hp.expect(rep.exit_code).to_equal(2)
    hp.expect(rep.status).to_equal("stopped")
    local t = run.test_by_id(rep, "1_stuck::stuck")
    hp.expect(t.status).to_equal(status)
    hp.expect(t.error.message).to_equal(head .. "; the test was stuck where no hook reaches (a C call or a finalizer), so the run was ended")
    hp.expect(t.error.file).to_equal(STUCK)
    hp.expect(t.error.line).to_equal(hang_line(mode))
    hp.expect(run.test_by_id(rep, "1_stuck::after").status).to_equal("skipped")
    hp.expect(res.stdout).to_contain("FAILURES") -- the console report was finished too
  end
end

hp.test("timeout: a finalizer that loops ends the run", last_resort("gc", { timeout = 1 }, "failed", "timeout after 1 s"))
hp.test("timeout: an xpcall handler that loops ends the run", last_resort("xpcall", { timeout = 1 }, "failed", "timeout after 1 s"))
hp.test("timeout: backtracking inside string.find ends the run", last_resort("find", { timeout = 1 }, "failed", "timeout after 1 s"))
hp.test("SIGINT: a busy loop is stopped at once", function()
  local res, rep, took = stuck("busy", { signal = "INT" })
  hp.expect(took).to_be_less_than(2)
  hp.expect(res.exit_code).to_equal(2)
  hp.expect(run.test_by_id(rep, "1_stuck::stuck").status).to_equal("stopped")
end)
hp.test("SIGINT: a loop in a coroutine under pcall is stopped at once", function()
  local res, rep, took = stuck("coroutine", { signal = "INT" })
  hp.expect(took).to_be_less_than(2)
  hp.expect(res.exit_code).to_equal(2)
  local t = run.test_by_id(rep, "1_stuck::stuck")
  hp.expect(t.status).to_equal("stopped")
  hp.expect(t.error.message).to_equal("interrupted by SIGINT")
end)
hp.test("SIGINT: backtracking inside string.find ends the run", last_resort("find", { signal = "INT" }, "stopped", "interrupted by SIGINT"))
hp.test("SIGINT: a finalizer that loops ends the run", last_resort("gc", { signal = "INT" }, "stopped", "interrupted by SIGINT"))
-- os.execute and io.popen wait in the event loop (the process engine): a signal stops
-- the test at once, and their children end with it.
local function stopped_at_once(mode, sig)
  return function()
    local res, rep, took = stuck(mode, { signal = sig })
    hp.expect(took).to_be_less_than(2)
    hp.expect(res.exit_code).to_equal(2)
    local t = run.test_by_id(rep, "1_stuck::stuck")
    hp.expect(t.status).to_equal("stopped")
    hp.expect(t.error.message).to_equal("interrupted by SIG" .. sig)
  end
end
hp.test("SIGTERM: os.execute blocked in a child is stopped at once", stopped_at_once("execute", "TERM"))
hp.test("SIGINT: os.execute blocked in a child is stopped at once", stopped_at_once("execute", "INT"))
hp.test("SIGTERM: io.popen blocked in a read is stopped at once", stopped_at_once("popen", "TERM"))

-- After the run, lua_close runs the finalizers left: os.exit there raises (the exit
-- status stays the run's), and one that loops ends with SIGTERM (exit 2) or after 5 s.
local ATCLOSE = "guard/atclose/1_atclose.lua"
hp.test("os.exit in a finalizer at the run's end does not change the exit status", function()
  local res, rep = run.run({ ATCLOSE }, { env = { GUARD_ATCLOSE = "exit0" } })
  hp.expect(rep.status).to_equal("failed")
  hp.expect(res.exit_code, res.stdout .. res.stderr).to_equal(1)
  res, rep = run.run({ ATCLOSE }, { env = { GUARD_ATCLOSE = "exit1" } })
  hp.expect(rep.status).to_equal("passed")
  hp.expect(res.exit_code, res.stdout .. res.stderr).to_equal(0)
end)
-- Native code can end the process where os.exit cannot: exit() from libc, or the main
-- thread's end. During the run that is no verdict (exit 3, never 0); in a finalizer at
-- the run's end, the run's own status stands.
-- (ASan's runtime fails in its own teardown of a main thread that pthread_exit ended:
-- those two cases are for the plain build.)
hp.test("exit or pthread_exit from native test code is never a pass", function()
  local asan = run.under_asan()
  for _, mode in ipairs(asan and { "native_exit" } or { "native_exit", "thread_exit" }) do
    local res, rep = run.run({ ATCLOSE }, { env = { GUARD_ATCLOSE = mode } })
    hp.expect(res.exit_code, mode .. ": " .. res.stdout .. res.stderr).to_equal(3)
    hp.expect(res.stderr).to_contain("hplua: error: test code ended the process (exit or pthread_exit from native " ..
      "code) before the run's end: no verdict")
    hp.expect(rep).to_be_nil() -- no report: nothing says it passed
  end
  if asan then return end
  local res, rep = run.run({ ATCLOSE }, { env = { GUARD_ATCLOSE = "thread_exit_at_close" } })
  hp.expect(rep.status).to_equal("failed")
  hp.expect(res.exit_code, res.stdout .. res.stderr).to_equal(1)
end)
hp.test("os.exit or exit() in a finalizer while the outputs are written does not change the verdict", function()
  -- the run's end, its reports, its history: a finalizer of test code can run at any
  -- collection there, before the state closes (it had exited 0, with no report)
  for _, mode in ipairs { "exit_at_end", "native_exit_at_end" } do
    local res, rep = run.run({ ATCLOSE }, { env = { GUARD_ATCLOSE = mode } })
    hp.expect(res.exit_code, mode .. ": " .. res.stdout .. res.stderr).to_equal(1)
    hp.expect(rep and rep.status, mode).to_equal("failed")
  end
end)
hp.test("a finalizer that loops at the run's end cannot hold the process", function()
  local looping = false
  local on_line = function(l) if l == "LOOPING" then looping = true end end
  local p, report = run.start({ ATCLOSE }, { env = { GUARD_ATCLOSE = "loop" }, on_line = on_line })
  run.wait_for(function() return looping or not p:alive() end, 30, "the finalizer to loop")
  hp.sleep(0.2)
  local t0 = hp.clock()
  run.kill(p.pid, "TERM")
  local res = p:wait(30)
  hp.expect(hp.clock() - t0).to_be_less_than(2)
  hp.expect(res.exit_code, res.stdout .. res.stderr).to_equal(2)
  hp.expect(run.read_report(report).status).to_equal("passed") -- written before the finalizer
  -- no signal: the deadline ends it, with the run's status
  looping = false
  p, report = run.start({ ATCLOSE }, { env = { GUARD_ATCLOSE = "loop" }, on_line = on_line })
  run.wait_for(function() return looping or not p:alive() end, 30, "the finalizer to loop")
  t0 = hp.clock()
  res = p:wait(30)
  hp.expect(hp.clock() - t0).to_be_less_than(8)
  hp.expect(res.exit_code, res.stdout .. res.stderr).to_equal(0)
  hp.expect(res.stderr).to_contain("a finalizer did not end within 5 s of the run's end")
  os.remove(report)
end)

hp.test("SIGINT: a fixture teardown that loops cannot hold the run", function()
  local res, rep, took = stuck("teardown", { signal = "INT" })
  hp.expect(took).to_be_less_than(5)
  hp.expect(res.exit_code).to_equal(2)
  hp.expect(run.test_by_id(rep, "1_stuck::stuck").status).to_equal("stopped")
  hp.expect(rep.errors[1].message).to_equal('teardown of fixture "slow teardown" failed: interrupted by SIGINT')
end)
