-- Helpers for behaviour suites: run hplua on a fixture suite as a real child.
local hp = require "hplua"
local sys = require "hplua.sys"
local json = require "hplua.json"

local M = { fixtures = assert(os.getenv("HPLUA_FIXTURES"), "HPLUA_FIXTURES not set"), exe = sys.exepath() }
local counter = 0

-- Starts hplua ARGS in the fixtures folder with a JSON report; returns the handle
-- and the report's path.
function M.start(args, opts)
  opts = opts or {}
  counter = counter + 1
  local report = os.tmpname()
  local argv = {}
  for _, a in ipairs(opts.prefix or {}) do argv[#argv + 1] = a end -- a wrapper command
  for _, a in ipairs { M.exe, "--json", report } do argv[#argv + 1] = a end
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  local p = hp.process.start(string.format("hplua-%d", counter), argv,
    { cwd = M.fixtures, env = opts.env, timeout = opts.timeout or 120, on_line = opts.on_line })
  return p, report
end

-- Is this (the suite's own hplua, the same build as the one it runs) the ASan build?
function M.under_asan()
  for l in io.lines("/proc/self/maps") do
    if l:find("libasan", 1, true) then return true end
  end
  return false
end

-- A new empty folder under the temporary directory.
function M.tmpdir()
  local d = os.tmpname()
  os.remove(d)
  assert(os.execute("mkdir -p '" .. d .. "'"))
  return d
end

-- Writes text to path (a suite a test makes for itself).
function M.write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

-- A file's whole contents, or nil when it cannot be opened.
function M.read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

function M.read_report(path)
  local f = io.open(path)
  if not f then return nil end
  local text = f:read("a")
  f:close()
  os.remove(path)
  if text == "" then return nil end
  return assert(json.decode(text))
end

-- Runs hplua to the end; returns the result and the decoded report.
function M.run(args, opts)
  local p, report = M.start(args, opts)
  local res = p:wait()
  return res, M.read_report(report)
end

-- Waits until cond() is true (loosely bounded).
function M.wait_for(cond, limit, what)
  local deadline = hp.clock() + (limit or 10)
  while not cond() do
    if hp.clock() > deadline then error("gave up waiting for " .. (what or "a condition"), 2) end
    hp.sleep(0.01)
  end
end

-- Processes whose command line contains text (by /proc), excluding ourselves.
function M.find_processes(text)
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

-- Processes still carrying marker after a grace period (an empty list is good).
function M.survivors(marker, grace)
  local found
  local deadline = hp.clock() + grace
  repeat
    found = M.find_processes(marker)
    if #found == 0 then break end
    hp.sleep(0.05)
  until hp.clock() > deadline
  return found
end

function M.unique_marker()
  -- a sleep duration nobody else uses: 4000 s plus a fraction from our pid and a counter
  counter = counter + 1
  return string.format("4%03d.%d%04d", counter % 1000, math.floor(hp.clock() * 1000) % 100000, (sys.getpid and sys.getpid() or 0) % 10000)
end

-- Sends SIG to pid, or to the process group pid leads when group is true.
-- gone_ok: the process may end (and be reaped) just before the signal: not an error
function M.kill(pid, sig, group, gone_ok)
  local r = hp.process.start("kill-" .. pid .. "-" .. sig .. "-" .. counter,
    { "kill", "-" .. sig, "--", (group and "-" or "") .. tostring(pid) }):wait()
  counter = counter + 1
  if gone_ok and r.exit_code ~= 0 and r.stderr:find("No such process", 1, true) then return false end
  assert(r.exit_code == 0, "kill failed: " .. r.stderr)
  return true
end

function M.test_by_id(report, id)
  for _, m in ipairs(report.modules) do
    for _, t in ipairs(m.tests) do
      if t.id == id then return t end
    end
  end
end

return M
