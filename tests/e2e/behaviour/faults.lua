-- Fault injection: hplua killed at random points of a run with live children,
-- too few file descriptors, children that misbehave.
local hp = require "hplua"
local run = require "_run"

-- Has pid installed its SIGTERM handler (SigCgt in /proc/PID/status)? Before
-- that, hplua has not reached main (the ASan runtime alone takes a while to
-- start), and no program can handle a signal then.
local function catches_term(pid)
  local f = io.open("/proc/" .. pid .. "/status")
  if not f then return false end
  local text = f:read("a")
  f:close()
  local mask = text:match("SigCgt:%s*(%x+)")
  return mask ~= nil and (tonumber(mask:sub(-4), 16) & 0x4000) ~= 0
end

hp.test("SIGINT/SIGTERM/SIGKILL at random points: no survivor, report complete or absent", function()
  math.randomseed(tonumber(os.getenv("HPLUA_FAULT_SEED") or "7"))
  local signals = { "INT", "TERM", "KILL" }
  for round = 1, 12 do
    local marker = run.unique_marker()
    local sig = signals[(round - 1) % 3 + 1]
    local p, report = run.start({ "-q", "faults" }, { env = { HPLUA_MARKER = marker } })
    run.wait_for(function() return catches_term(p.pid) or not p:alive() end, 20, "hplua's signal handlers")
    hp.sleep(math.random() * 0.8)
    if p:alive() then run.kill(p.pid, sig, false, true) end -- it may end meanwhile
    local res = p:wait(20)
    hp.expect(res).never.to_be_nil()
    hp.expect(run.survivors(marker, sig == "KILL" and 5 or 1)).to_equal({})
    local f = io.open(report)
    local text = f and f:read("a") or ""
    if f then f:close() end
    os.remove(report)
    if text ~= "" then
      -- a report that exists is whole: it parses and accounts for every test
      local rep = assert(require("hplua.json").decode(text), "half-written report")
      hp.expect(rep.summary.total).to_equal(6)
      hp.expect(rep.exit_code == 0 or rep.exit_code == 2).to_be(true)
      if rep.exit_code == 2 then hp.expect(rep.status).to_equal("stopped") end
    else
      hp.expect(sig).to_equal("KILL") -- only SIGKILL may leave no report
    end
    hp.set_message(string.format("round %d: SIG%s -> %s, report %s", round, sig,
      res.signal and ("signal " .. res.signal) or ("exit " .. res.exit_code), text ~= "" and "complete" or "absent"))
  end
end)

hp.test("ulimit -n too small: a clear error, no crash, the run goes on", function()
  local r = hp.process.start("fdlimit", string.format("ulimit -n 24; exec %s -q fdlimit", run.exe), { cwd = run.fixtures }):wait(30)
  hp.expect(r.signal).to_be_nil()
  hp.expect(r.exit_code).to_equal(1)
  hp.expect(r.stdout).to_match("fdlimit/1_many.lua:4: cannot start process 'c%d+' %(sleep%): [%w ]*: ?Too many open files")
  hp.expect(r.stdout).to_contain("1 passed, 1 failed")
end)

hp.test("a child that closes its output early but keeps running", function()
  local t0 = hp.clock()
  local r = hp.process.start("closer", "exec >&- 2>&-; sleep 0.3; exit 4"):wait(5)
  hp.expect(r.exit_code).to_equal(4)
  hp.expect(hp.clock() - t0).to_be_greater_than(0.29)
end)

hp.test("a child that ignores SIGTERM is killed after the grace", function()
  local ready = false
  local p = hp.process.start("stubborn", "trap '' TERM; echo ready; while :; do sleep 0.05; done",
    { on_line = function(l) ready = ready or l == "ready" end })
  run.wait_for(function() return ready end, 10, "the trap to be set")
  local t0 = hp.clock()
  local r = p:terminate(0.3)
  hp.expect(r.signal).to_equal(9)
  hp.expect(r.terminated).to_be(true)
  hp.expect(hp.clock() - t0).to_be_less_than(2)
end)

hp.test("a daemon grandchild that left the group is cleaned up at the end", function()
  local marker = run.unique_marker()
  local res = hp.process.start("daemonizer", { run.exe, "-e", string.format(
    "local hp = require 'hplua'; hp.process.start('d', 'setsid sleep %s > /dev/null 2>&1 &'):wait(); hp.sleep(0.2)", marker) }):wait(20)
  hp.expect(res.exit_code).to_equal(0)
  -- the daemon (sleep MARKER, 4000+ s) must be gone; the daemonizer's watchdog (a fork that
  -- carries its command line, and so the marker) may take a moment to finish its sweep
  hp.expect(run.survivors(marker, 2)).to_equal({})
end)

hp.test("SIGTERM as soon as hplua can catch it: the run still ends with a whole report", function()
  for round = 1, 3 do
    local marker = run.unique_marker()
    local p, report = run.start({ "-q", "faults" }, { env = { HPLUA_MARKER = marker } })
    run.wait_for(function() return catches_term(p.pid) or not p:alive() end, 20, "hplua's signal handlers")
    run.kill(p.pid, "TERM")
    local res = p:wait(20)
    hp.expect(res.exit_code).to_equal(2)
    local rep = run.read_report(report)
    hp.expect(rep).never.to_be_nil()
    hp.expect(rep.status).to_equal("stopped")
    hp.expect(run.survivors(marker, 1)).to_equal({})
    hp.set_message(string.format("round %d: exit %d, report %s", round, res.exit_code, rep.status))
  end
end)
