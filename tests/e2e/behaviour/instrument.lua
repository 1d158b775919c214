-- Instrument modules: a driver blocked in hplua_wait_fd is cut by the test's
-- timeout and by SIGINT while a child's output keeps being read; a module built
-- for another ABI is refused.
local hp = require "hplua"
local run = require "_run"

hp.test("the test's timeout cuts a blocked driver; on_line kept firing", function()
  local res, rep = run.run({ "-q", "instrument" }, { env = { BLOCK_TIMEOUT = "0.7" } })
  hp.expect(res.exit_code).to_equal(1)
  local t = run.test_by_id(rep, "1_blocked::driver blocked on a silent instrument")
  hp.expect(t.error.message).to_equal("timeout after 0.7 s")
  hp.expect(t.duration).to_be_less_than(0.7 + 0.5 + 0.5) -- fixtures start inside the test too
  local lines = tonumber(res.stdout:match("LINES (%d+)"))
  hp.expect(lines).to_be_greater_than(5) -- ticks every 20 ms, read while the driver waited
end)

hp.test("SIGINT cuts a blocked driver", function()
  local blocked = false
  local p, report = run.start({ "instrument" }, { on_line = function(l) if l == "BLOCKED" then blocked = true end end })
  run.wait_for(function() return blocked end, 20, "the driver to block")
  hp.sleep(0.2)
  run.kill(p.pid, "INT")
  local res = p:wait(10)
  hp.expect(res.exit_code).to_equal(2)
  local rep = run.read_report(report)
  hp.expect(run.test_by_id(rep, "1_blocked::driver blocked on a silent instrument").status).to_equal("stopped")
end)

hp.test("a module built for another ABI is refused with a clear error naming it", function()
  local r = hp.process.start("badabi", { run.exe, "-e", "require 'badabi'" }):wait(10)
  hp.expect(r.exit_code).to_equal(1)
  hp.expect(r.stderr).to_contain("(command line):1: C module 'badabi' (")
  hp.expect(r.stderr).to_contain("badabi.so) failed to load: this module was built for hplua ABI 42, but this hplua")
  hp.expect(r.stderr).to_contain("rebuild it against this hplua's hplua.h")
end)

hp.test("the C API records messages and measurements on the running test", function()
  local res, rep = run.run({ "../../examples/instrument" }, { env = {} })
  hp.expect(res.exit_code).to_equal(1)
  local t = run.test_by_id(rep, "01_rails::5V rail through the driver's measure")
  hp.expect(t.status).to_equal("passed")
  hp.expect(t.measurements[1]).to_equal { name = "5v (driver)", value = 5.01, unit = "V", min = 4.9, max = 5.1, passed = true, status = "passed" }
  hp.expect(t.messages[1].text).to_equal("dmm: 5v (driver) = 5.01 V (01_rails::5V rail through the driver's measure)")
  hp.expect(rep.instruments[1].model).to_equal("SIM-DMM")
  local failed = run.test_by_id(rep, "01_rails::12V rail (out of limits on purpose)")
  hp.expect(failed.error.message).to_equal("measurement failed: 12v = 12.61 V out of limits 11.4 … 12.6 V")
end)
