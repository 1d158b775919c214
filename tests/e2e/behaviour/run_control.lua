-- Timeouts and interrupts, measured on real runs of hplua (loose time bounds).
local hp = require "hplua"
local run = require "_run"

hp.test("timeouts cut busy loops, blocked waits and sleeps near their deadline", function()
  local res, rep = run.run({ "--timeout", "1", "timeouts" })
  hp.expect(res.exit_code).to_equal(1)
  local function check(name, limit)
    local t = run.test_by_id(rep, "1_cut::" .. name)
    hp.expect(t.status).to_equal("failed")
    hp.expect(t.error.message).to_equal(string.format("timeout after %g s", limit))
    hp.expect(t.duration).to_be_greater_than(limit - 0.01)
    hp.expect(t.duration).to_be_less_than(limit + 0.5)
    return t
  end
  local busy = check("busy loop", 0.5)
  hp.expect(busy.error.file).to_equal("timeouts/1_cut.lua")
  hp.expect(busy.error.line).to_equal(3)
  check("blocked wait", 0.5)
  check("pcall cannot swallow it", 0.5)
  check("sleep past the deadline", 0.5)
  check("default from --timeout", 1)
  hp.expect(run.test_by_id(rep, "1_cut::process keeps running after the timeout").status).to_equal("passed")
end)

local function interrupted(env)
  return function()
    local waiting, lines = false, {}
    local p, report = run.start({ "interrupt" }, {
      env = env,
      on_line = function(l)
        lines[#lines + 1] = l
        if l == "WAITING" then waiting = true end
      end,
    })
    run.wait_for(function() return waiting end, 20, "the test to start waiting")
    hp.sleep(0.1)
    local t0 = hp.clock()
    run.kill(p.pid, "INT")
    local res = p:wait(10)
    hp.expect(hp.clock() - t0).to_be_less_than(2)
    hp.expect(res.exit_code).to_equal(2)
    local rep = run.read_report(report)
    hp.expect(rep.status).to_equal("stopped")
    hp.expect(rep.exit_code).to_equal(2)
    hp.expect(run.test_by_id(rep, "1_wait::passes first").status).to_equal("passed")
    local t = run.test_by_id(rep, "1_wait::waits for the operator")
    hp.expect(t.status).to_equal("stopped")
    hp.expect(t.error.message).to_equal("interrupted by SIGINT")
    hp.expect(run.test_by_id(rep, "1_wait::never runs").skip_reason).to_equal("run interrupted")
    hp.expect(lines).to_contain("after_each waits for the operator")
    hp.expect(lines).to_contain("teardown ran")
    hp.expect(res.stdout).to_match("1 passed, 0 failed, 1 skipped, 1 stopped in")
  end
end

hp.test("SIGINT during a wait: stopped, rest skipped, teardown run, exit 2", interrupted())
hp.test("SIGINT during a busy loop too", interrupted({ HPLUA_BUSY = "1" }))

hp.test("SIGINT during collection: exit 2, a stopped report, nothing run", function()
  local loading = false
  local p, report = run.start({ "slow_collect" }, { on_line = function(l) if l == "LOADING" then loading = true end end })
  run.wait_for(function() return loading end, 20, "the file to start loading")
  run.kill(p.pid, "INT")
  local res = p:wait(10)
  hp.expect(res.exit_code).to_equal(2)
  hp.expect(res.stdout).to_contain("interrupted during collection")
  local rep = run.read_report(report)
  hp.expect(rep.status).to_equal("stopped")
  hp.expect(rep.summary.total).to_equal(0)
end)
