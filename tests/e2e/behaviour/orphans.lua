-- No child survives any way a run can end: normal end, a failed test, a failed
-- critical test, SIGINT, SIGTERM, SIGKILL of hplua. Survivors are found by a
-- marker in their command line.
local hp = require "hplua"
local run = require "_run"

local function scenario(mode, signal)
  return function()
    local marker = run.unique_marker()
    local started = false
    local p, report = run.start({ "orphans" }, {
      env = { HPLUA_MARKER = marker, HPLUA_MODE = mode },
      on_line = function(line) if line == "STARTED" then started = true end end,
    })
    run.wait_for(function() return started or not p:alive() end, 20, "the fixture's children")
    hp.expect(started).to_be_truthy()
    if signal then
      hp.expect(#run.find_processes(marker) >= 6).to_be_truthy()
      run.kill(p.pid, signal)
    end
    local res = p:wait(30)
    hp.expect(res).never.to_be_nil()
    -- After SIGKILL the watchdog needs a moment; the others cleaned up before exiting.
    hp.expect(run.survivors(marker, signal == "KILL" and 5 or 0.5)).to_equal({})
    return res, run.read_report(report)
  end
end

hp.test("normal end", function()
  local res, rep = scenario("pass")()
  hp.expect(res.exit_code).to_equal(0)
  -- every child is in the report, the live ones marked terminated
  local names = {}
  for _, pr in ipairs(rep.processes) do names[pr.name] = pr end
  hp.expect(names.direct.terminated).to_be(true)
  hp.expect(names.ignores_term.signal).to_equal(9)
end)

hp.test("failed test", function()
  local res = scenario("error")()
  hp.expect(res.exit_code).to_equal(1)
end)

hp.test("failed critical test", function()
  local res, rep = scenario("critical")()
  hp.expect(res.exit_code).to_equal(1)
  hp.expect(run.test_by_id(rep, "1_spawn::later test").skip_reason).to_equal("critical test 1_spawn::start children failed")
end)

hp.test("SIGINT", function()
  local res, rep = scenario("hang", "INT")()
  hp.expect(res.exit_code).to_equal(2)
  hp.expect(rep.status).to_equal("stopped")
  hp.expect(run.test_by_id(rep, "1_spawn::start children").status).to_equal("stopped")
  hp.expect(run.test_by_id(rep, "1_spawn::later test").status).to_equal("skipped")
end)

hp.test("SIGTERM", function()
  local res, rep = scenario("hang", "TERM")()
  hp.expect(res.exit_code).to_equal(2)
  hp.expect(run.test_by_id(rep, "1_spawn::start children").error.message).to_equal("interrupted by SIGTERM")
end)

hp.test("SIGKILL", function()
  local res, rep = scenario("hang", "KILL")()
  hp.expect(res.signal).to_equal(9)
  hp.expect(rep).to_be_nil() -- no report, and never a half-written one
end)
