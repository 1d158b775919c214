-- Hang scenarios of the guard (test code stuck in every way we know), each run as
-- a real hplua on tests/fixtures/guard/stuck; prints the time from the timeout's
-- start or the signal to the end of the run, the exit status, the stuck test's
-- status and the children left behind. Anyone can run it:
--   hplua --exec tests/tools/guard_hangs.lua [PATH-TO-HPLUA]
-- (the engine's orphan scenarios are in a script of their own).
local hp = require "hplua"
local sys = require "hplua.sys"
local json = require "hplua.json"

local exe = arg[1] or sys.exepath()
local here = arg[0]:match("^(.*)/[^/]*$") or "."
local fixtures = here .. "/../fixtures"

local scenarios = {
  { "busy", { timeout = 1 } }, { "tostring", { timeout = 1 } }, { "close", { timeout = 1 } },
  { "coroutine", { timeout = 1 } }, { "sethook", { timeout = 1 } }, { "gc", { timeout = 1 } },
  { "xpcall", { timeout = 1 } }, { "find", { timeout = 1 } }, { "execute", { timeout = 1 } },
  { "popen", { timeout = 1 } }, { "busy", { signal = "INT" } }, { "coroutine", { signal = "INT" } }, { "find", { signal = "INT" } },
  { "gc", { signal = "INT" } }, { "xpcall", { signal = "TERM" } }, { "execute", { signal = "TERM" } },
  { "popen", { signal = "INT" } }, { "teardown", { signal = "INT" } },
}

local function survivors(marker)
  local found = 0
  for _, pid in ipairs(sys.listdir("/proc") or {}) do
    local f = pid:match("^%d+$") and io.open("/proc/" .. pid .. "/cmdline")
    if f then
      if (f:read("a") or ""):find(marker, 1, true) then found = found + 1 end
      f:close()
    end
  end
  return found
end

local seq = 0
local function scenario(mode, o)
  seq = seq + 1
  local marker = string.format("4999.%d%04d", seq, sys.getpid() % 10000)
  local report = os.tmpname()
  local ready = false
  local p = hp.process.start("hang-" .. seq, { exe, "-q", "--json", report, "guard/stuck" }, {
    cwd = fixtures, timeout = 60,
    env = { GUARD_HANG = mode, GUARD_MARKER = marker, GUARD_TIMEOUT = o.timeout and tostring(o.timeout) or false },
    on_line = function(l) if l == "READY" then ready = true end end,
  })
  local t0 = hp.clock()
  while not ready and p:alive() and hp.clock() - t0 < 30 do hp.sleep(0.01) end
  if o.signal then
    hp.sleep(0.2)
    t0 = hp.clock()
    hp.process.start("kill-" .. seq, { "kill", "-" .. o.signal, tostring(p.pid) }):wait()
  end
  local r = p:wait()
  local took = hp.clock() - t0
  hp.sleep(0.5) -- whatever was going to end has ended
  local f = io.open(report)
  local rep = f and json.decode(f:read("a") or "")
  if f then f:close() end
  os.remove(report)
  local status = "-"
  for _, m in ipairs(rep and rep.modules or {}) do
    for _, t in ipairs(m.tests) do if t.name == "stuck" then status = t.status end end
  end
  local bound = (o.timeout or 0) + 5
  return string.format("%-10s %-12s %7.2f s  (bound %g s)  exit %-3s stuck test %-8s survivors %d  %s", mode,
    o.timeout and ("timeout " .. o.timeout) or ("SIG" .. o.signal), took, bound, tostring(r.exit_code or ("sig" .. r.signal)),
    status, survivors(marker), took < bound and "ok" or "LATE")
end

print(string.format("guard hang scenarios with %s", exe))
for _, s in ipairs(scenarios) do
  print(scenario(s[1], s[2]))
  io.stdout:flush()
end
