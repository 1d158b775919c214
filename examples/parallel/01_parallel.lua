-- Two children run in parallel while the tests carry on; a third test collects
-- both. About 11 s in all, not the 17 s of running them one after another.
local hp = require "hplua"

hp.test("start process 1", function()
  hp.use("processes")
  hp.process.lua("process_1", "require('hplua').sleep(5) print('Result for process_1')")
  hp.sleep(1)
end)

hp.test("start process 2", function()
  hp.use("processes")
  hp.process.lua("process_2", "require('hplua').sleep(10) print('Result for process_2')")
  hp.sleep(1)
end)

hp.test("collect both", { depends = { "start process 1", "start process 2" } }, function()
  local results, err = hp.process.wait({ "process_1", "process_2" }, 20)
  assert(results, err)
  hp.expect(results.process_1.stdout).to_equal("Result for process_1\n")
  hp.expect(results.process_2.stdout).to_equal("Result for process_2\n")
  hp.expect(results.process_1.exit_code).to_equal(0)
  hp.expect(results.process_2.exit_code).to_equal(0)
end)
