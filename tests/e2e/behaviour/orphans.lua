-- No child survives any way a run can end: normal end, a failed test, a failed
-- critical test, SIGINT, SIGTERM, SIGKILL of hplua or of its whole process group,
-- with daemons, forkers, thousands of descendants, a large environment, and
-- children of os.execute and io.popen. Survivors are found by a marker in their
-- command line.
local hp = require "hplua"
local run = require "_run"

-- o: kinds (what the fixture starts), mode (how its test ends), signal (sent to
-- hplua once the children run), group (to hplua's whole process group), prefix
-- (a wrapper command), env (more environment).
local function scenario(o)
  local marker = run.unique_marker()
  local started = false
  local env = { HPLUA_MARKER = marker, HPLUA_MODE = o.mode or (o.signal and "hang" or "pass"),
    HPLUA_KINDS = o.kinds or "standard", HPLUA_FORKER = os.getenv("HPLUA_FORKER"),
    HPLUA_MANY = o.many }
  local p, report = run.start({ "orphans" }, {
    env = env, prefix = o.prefix,
    on_line = function(line) if line == "STARTED" then started = true end end,
  })
  run.wait_for(function() return started or not p:alive() end, 60, "the fixture's children")
  hp.expect(started).to_be_truthy()
  if o.signal then
    -- daemons started in the background may take a moment to show in /proc
    local seen = false
    local deadline = hp.clock() + 10
    repeat
      seen = #run.find_processes(marker) >= (o.min or 1)
      if not seen then hp.sleep(0.02) end
    until seen or hp.clock() > deadline
    hp.expect(seen).to_be_truthy()
    run.kill(p.pid, o.signal, o.group)
  end
  local res = p:wait(60)
  hp.expect(res).never.to_be_nil()
  -- After SIGKILL the watchdog needs a moment; the others cleaned up before exiting.
  hp.expect(run.survivors(marker, o.signal == "KILL" and 10 or 0.5)).to_equal({})
  return res, run.read_report(report)
end

hp.test("normal end", function()
  local res, rep = scenario {}
  hp.expect(res.exit_code).to_equal(0)
  -- every child is in the report, the live ones marked terminated
  local names = {}
  for _, pr in ipairs(rep.processes) do names[pr.name] = pr end
  hp.expect(names.direct.terminated).to_be(true)
  hp.expect(names.ignores_term.signal).to_equal(9)
end)

hp.test("failed test", function()
  local res = scenario { mode = "error" }
  hp.expect(res.exit_code).to_equal(1)
end)

hp.test("failed critical test", function()
  local res, rep = scenario { mode = "critical" }
  hp.expect(res.exit_code).to_equal(1)
  hp.expect(run.test_by_id(rep, "1_spawn::later test").skip_reason).to_equal("critical test 1_spawn::start children failed")
end)

hp.test("SIGINT", function()
  local res, rep = scenario { signal = "INT", min = 6 }
  hp.expect(res.exit_code).to_equal(2)
  hp.expect(rep.status).to_equal("stopped")
  hp.expect(run.test_by_id(rep, "1_spawn::start children").status).to_equal("stopped")
  hp.expect(run.test_by_id(rep, "1_spawn::later test").status).to_equal("skipped")
end)

hp.test("SIGTERM", function()
  local res, rep = scenario { signal = "TERM", min = 6 }
  hp.expect(res.exit_code).to_equal(2)
  hp.expect(run.test_by_id(rep, "1_spawn::start children").error.message).to_equal("interrupted by SIGTERM")
end)

hp.test("SIGKILL", function()
  local res, rep = scenario { signal = "KILL", min = 6 }
  hp.expect(res.signal).to_equal(9)
  hp.expect(rep).to_be_nil() -- no report, and never a half-written one
end)

hp.test("SIGINT while the test waits in os.execute", function()
  local res, rep = scenario { signal = "INT", mode = "hang_execute", min = 6 }
  hp.expect(res.exit_code).to_equal(2)
  hp.expect(run.test_by_id(rep, "1_spawn::start children").status).to_equal("stopped")
end)

hp.test("SIGTERM while the test reads from io.popen", function()
  local res, rep = scenario { signal = "TERM", mode = "hang_popen", min = 6 }
  hp.expect(res.exit_code).to_equal(2)
  hp.expect(run.test_by_id(rep, "1_spawn::start children").error.message).to_equal("interrupted by SIGTERM")
end)

-- What `timeout -s KILL`, `kill -9 -PGID` and CI runners do: the watchdog must not
-- be in that group.
hp.test("SIGKILL of hplua's whole process group", function()
  local res = scenario { signal = "KILL", group = true, min = 6 }
  hp.expect(res.signal).to_equal(9)
end)

hp.test("SIGKILL: daemons of the first child, started with the env option", function()
  local res = scenario { kinds = "env_daemon", signal = "KILL" }
  hp.expect(res.signal).to_equal(9)
end)

hp.test("SIGKILL with an environment larger than 64 KiB before the run token", function()
  local res = scenario { kinds = "standard,daemon_argv", signal = "KILL", min = 6, prefix = { os.getenv("HPLUA_FORKER"), "bigenv", "300000" } }
  hp.expect(res.signal).to_equal(9)
end)

hp.test("SIGKILL: daemons of os.execute and io.popen before any hp.process call", function()
  local res = scenario { kinds = "execute,popen", signal = "KILL", min = 2 }
  hp.expect(res.signal).to_equal(9)
end)

-- With thousands of other descendants, one scan of /proc takes long enough for
-- the forker to start many more behind it.
hp.test("a daemon that keeps starting daemons", function()
  local res = scenario { kinds = "many,forker", many = "3000" }
  hp.expect(res.exit_code).to_equal(0)
end)

hp.test("4,300 descendants", function()
  local res = scenario { kinds = "many" }
  hp.expect(res.exit_code).to_equal(0)
end)

-- A run that starts no process ends without looking through /proc; one that loads
-- native code may have descendants the engine never saw, and is swept.
hp.test("a daemon started by a native module, behind the engine's back", function()
  local marker = run.unique_marker()
  local dir = run.tmpdir()
  run.write(dir .. "/native.lua", string.format([[
local hp = require "hplua"
hp.test("a driver starts a daemon", function()
  local forkmod = require "forkmod"
  hp.expect(forkmod.daemon({ "sleep", %q })).to_be(true)
end)
]], marker))
  local r = run.run({ "-q", "--no-history", dir .. "/native.lua" })
  hp.expect(r.exit_code, r.stdout .. r.stderr).to_equal(0)
  hp.expect(run.survivors(marker, 0.5)).to_equal({})
  os.execute("rm -rf '" .. dir .. "'")
end)
