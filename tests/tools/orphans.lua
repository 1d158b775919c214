-- Runs every orphan scenario against an hplua and prints, for each, the
-- survivors (must be 0) and the time from the end of the run (or the kill) until
-- no descendant was left.
--   build/hplua --exec tests/tools/orphans.lua [--hplua PATH] [--forker PATH] [NAME...]
-- PATH defaults: the hplua running this script, build/tests/forker. Exit status 1
-- when any scenario leaves a survivor.
local hp = require "hplua"
local sys = require "hplua.sys"

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
if here:sub(1, 1) ~= "/" then here = os.getenv("PWD") .. "/" .. here end
local opts = { hplua = sys.exepath(), forker = here .. "/../../build/tests/forker", only = {} }
do
  local i = 1
  while arg[i] do
    if arg[i] == "--hplua" or arg[i] == "--forker" then
      local v = assert(arg[i + 1], arg[i] .. " needs a value")
      opts[arg[i]:sub(3)] = v:sub(1, 1) == "/" and v or os.getenv("PWD") .. "/" .. v
      i = i + 1
    else
      opts.only[arg[i]] = true
    end
    i = i + 1
  end
end
local fixtures = here .. "/../fixtures"

local seq = 0
local function marker()
  seq = seq + 1
  return string.format("4%03d.%d%04d", seq, math.floor(hp.clock() * 1000) % 100000, sys.getpid() % 10000)
end

local function survivors(text)
  local found = {}
  for _, pid in ipairs(sys.listdir("/proc") or {}) do
    if pid:match("^%d+$") then
      local f = io.open("/proc/" .. pid .. "/cmdline")
      if f then
        local cmd = (f:read("a") or ""):gsub("%z", " ")
        f:close()
        if cmd:find(text, 1, true) then found[#found + 1] = pid .. ": " .. cmd end
      end
    end
  end
  return found
end

-- kill: nil (the run ends by itself), "INT", "TERM", "KILL"; group: to hplua's
-- whole process group; wrap: a command put before hplua.
local scenarios = {
  { name = "normal end", kinds = "standard", mode = "pass" },
  { name = "failed test", kinds = "standard", mode = "error" },
  { name = "failed critical test", kinds = "standard", mode = "critical" },
  { name = "SIGINT", kinds = "standard", mode = "hang", kill = "INT" },
  { name = "SIGTERM", kinds = "standard", mode = "hang", kill = "TERM" },
  { name = "SIGKILL", kinds = "standard", mode = "hang", kill = "KILL" },
  { name = "SIGKILL of the process group", kinds = "standard", mode = "hang", kill = "KILL", group = true },
  { name = "timeout -s KILL", kinds = "standard", mode = "hang", wrap = { "timeout", "-s", "KILL", "3" } },
  { name = "env option daemon, SIGKILL", kinds = "env_daemon", mode = "hang", kill = "KILL" },
  { name = "large environment, SIGKILL", kinds = "standard,daemon_argv", mode = "hang", kill = "KILL",
    wrap = { opts.forker, "bigenv", "300000" } },
  { name = "os.execute/io.popen daemons, SIGKILL", kinds = "execute,popen", mode = "hang", kill = "KILL" },
  { name = "forker beside 3,000 others", kinds = "many,forker", mode = "pass", many = "3000" },
  { name = "4,300 descendants", kinds = "many", mode = "pass" },
  { name = "4,300 descendants, SIGKILL", kinds = "many", mode = "hang", kill = "KILL" },
}

local bad = 0
io.write(string.format("%-40s %9s %9s  %s\n", "scenario", "survivors", "time (s)", "hplua ended by"))
for _, s in ipairs(scenarios) do
  if next(opts.only) == nil or opts.only[s.name] then
    local m = marker()
    local argv = {}
    for _, a in ipairs(s.wrap or {}) do argv[#argv + 1] = a end
    for _, a in ipairs { opts.hplua, "-q", "orphans" } do argv[#argv + 1] = a end
    local started = false
    local p = hp.process.start("hplua-" .. seq, argv, {
      cwd = fixtures, timeout = 120,
      env = { HPLUA_MARKER = m, HPLUA_MODE = s.mode, HPLUA_KINDS = s.kinds, HPLUA_FORKER = opts.forker,
        HPLUA_MANY = s.many or false },
      on_line = function(l) started = started or l == "STARTED" end,
    })
    local deadline = hp.clock() + 60
    while not started and p:alive() and hp.clock() < deadline do hp.sleep(0.01) end
    if s.kill then
      hp.process.start("kill-" .. seq, { "kill", "-" .. s.kill, "--", (s.group and "-" or "") .. p.pid }):wait()
    end
    local res = p:wait()
    local t0 = hp.clock()
    local left
    repeat
      left = survivors(m)
      if #left == 0 then break end
      hp.sleep(0.02)
    until hp.clock() - t0 > 15
    local took = hp.clock() - t0
    bad = bad + (#left > 0 and 1 or 0)
    io.write(string.format("%-40s %9d %9.2f  %s\n", s.name, #left, took,
      res.signal and ("signal " .. res.signal) or ("exit " .. res.exit_code)))
    for i = 1, math.min(#left, 3) do io.write("    survivor ", left[i], "\n") end
    for _, l in ipairs(left) do os.execute("kill -9 " .. l:match("^%d+") .. " 2>/dev/null") end
    io.stdout:flush()
  end
end
if bad > 0 then
  io.write(bad, " scenario(s) left survivors\n")
  os.exit(1)
end
