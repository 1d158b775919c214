-- Authoring for real lines: run data (hp.run, hp.suite_dir, --arg, --serial) and
-- hp.attach (files copied into the artifact folder with their size and SHA-256).
local hp = require "hplua"
local run = require "_run"

hp.test("hp.run, hp.suite_dir, --arg and --serial reach the tests", function()
  local res, rep = run.run({ "--serial", "SN-77", "--arg", "rev=B", "-k", "run data", "authoring" })
  hp.expect(res.exit_code).to_equal(0)
  hp.expect(res.stdout).to_contain("RUN id=" .. rep.run_id .. " serial=SN-77 rev=B")
  hp.expect(res.stdout).to_contain("SUITE_DIR " .. run.fixtures .. "/authoring")
  hp.expect(rep.serial).to_equal("SN-77")
  local bad = run.run({ "--arg", "no-equals", "authoring" })
  hp.expect(bad.exit_code).to_equal(4)
  hp.expect(bad.stderr).to_contain("--arg needs KEY=VALUE, got 'no-equals'")
end)

hp.test("hp.attach copies the file and records its size and SHA-256", function()
  local dir = os.tmpname()
  os.remove(dir)
  local res, rep = run.run({ "--artifacts", dir, "-k", "attach", "authoring" })
  hp.expect(res.exit_code).to_equal(0)
  local t = run.test_by_id(rep, "1_run::attach")
  hp.expect(#t.attachments).to_equal(1)
  local a = t.attachments[1]
  hp.expect(a.name).to_equal("scope capture.csv")
  hp.expect(a.size).to_equal(14000)
  hp.expect(a.path).to_equal(dir .. "/" .. rep.run_id .. "/scope_capture.csv")
  local sum = hp.process.start("sha256sum", { "sha256sum", a.path }):wait(10)
  hp.expect(sum.stdout:match("^(%x+)")).to_equal(a.sha256)
  local src = res.stdout:match("SRC (%S+)")
  local orig = hp.process.start("sha256sum-src", { "sha256sum", src }):wait(10)
  hp.expect(orig.stdout:match("^(%x+)")).to_equal(a.sha256)
  os.remove(src)
  hp.process.start("rm", { "rm", "-rf", dir }):wait(10)
  -- without --artifacts, --json or a history there is no artifact folder: a clear error
  local none = hp.process.start("no-artifacts", { run.exe, "--no-history", "-k", "attach", "authoring" },
    { cwd = run.fixtures }):wait(60)
  hp.expect(none.exit_code).to_equal(1)
  hp.expect(none.stdout).to_contain("no artifact folder: give --artifacts DIR")
end)
