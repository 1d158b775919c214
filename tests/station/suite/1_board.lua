local hp = require "hplua"
local serial = hp.run.serial or ""

hp.test("power", function()
  hp.set_dut { serial = serial }
  hp.set_message("measuring the 3.3 V rail <script>alert(1)</script>")
  hp.measure { name = "vcc", value = serial:match("^FAIL") and 2.9 or 3.31, unit = "V", min = 3.2, max = 3.4 }
  hp.measure { name = "icc", value = 0.118, unit = "A", max = 0.2, marginal_max = 0.1 }
end)

hp.test("firmware", function()
  local p = hp.process.lua("flasher", [[
    for i = 1, 3 do print("block " .. i .. " of 3 <b>written</b>"); io.stdout:flush() end
  ]])
  local r = p:wait(20)
  hp.expect(r.exit_code).to_equal(0)
end)

local kind = serial:match("^DIALOG%-(%a+)")
local kinds = serial:match("^ALL%-") and { "confirm", "text", "number", "choice", "multi", "image" } or { kind }
for i, k in ipairs(kinds) do
  hp.test("operator " .. k, function()
    local answer = hp.dialog { id = "ask_" .. k, kind = k, title = "Operator check " .. i,
      text = "Answer the " .. k .. " question <i>please</i>", choices = (k == "choice" or k == "multi") and { "red", "green", "blue" } or nil,
      min = k == "number" and 1 or nil, max = k == "number" and 5 or nil, image = k == "image" and "board.svg" or nil }
    hp.set_message("answer: " .. (type(answer) == "table" and table.concat(answer, ",") or tostring(answer)))
  end)
end

if serial:match("^SLOW") then
  hp.test("soak", function() hp.sleep(30) end)
end

-- Writes one line into the run's own event stream, as test code can (its --events
-- FIFO and --run-id are on its command line); %s in line is the run's id.
local function forge(line)
  local f = assert(io.open("/proc/self/cmdline", "rb"))
  local args = {}
  for a in f:read("a"):gmatch("[^%z]+") do args[#args + 1] = a end
  f:close()
  local path, id
  for i, a in ipairs(args) do
    if a == "--events" then path = args[i + 1] elseif a == "--run-id" then id = args[i + 1] end
  end
  local w = assert(io.open(assert(path, "no --events"), "w"))
  w:write(string.format(line, id))
  w:close()
end
local FORGED_PASS = '{"v":1,"seq":999999,"time":"2026-01-01T00:00:00.000+00:00","run_id":"%s",' ..
  '"type":"run_finished","status":"passed","exit_code":0,"summary":{"total":1,"passed":1,"failed":0,' ..
  '"skipped":0,"stopped":0},"caused_failure":null,"duration":0.1}\n'

-- FORGE-x: a failing test, then test code that writes a forged passing end of the run
-- into its own event stream, with an id far ahead (the station must show the failure)
if serial:match("^FORGE") then
  hp.test("fails", function() error("the board is bad") end)
  hp.test("forges", function() forge(FORGED_PASS) end)
end

-- KILLFORGED-x: test code forges a passing end, then the process is killed (SIGKILL):
-- no exit status agrees with that end, so it is never shown
if serial:match("^KILLFORGED") then
  hp.test("forges and dies", function()
    forge(FORGED_PASS)
    os.execute("kill -9 " .. require("hplua.sys").getpid())
    hp.sleep(10)
  end)
end

-- IDJUMP-x: test code writes an event of its own (not an end) with an id far ahead
-- into its stream: the run's real events after it take no id, its real end among them
if serial:match("^IDJUMP") then
  hp.test("forges an id", function()
    forge('{"v":1,"seq":999999,"time":"2026-01-01T00:00:00.000+00:00","run_id":"%s","type":"info","text":"forged"}\n')
  end)
end

-- DIE-x: the process ends with an exit status (not a signal) before its stream ends
if serial:match("^DIE") then
  hp.test("dies", function() package.loadlib("libc.so.6", "_exit")() end)
end

if serial:match("^CRASH") then
  hp.test("crash", function()
    os.execute("kill -9 " .. require("hplua.sys").getpid())
    hp.sleep(10)
  end)
end

-- STEPS<n>-x: n tests of 0.1 s each (the panel keeps the running one in view)
for i = 1, tonumber(serial:match("^STEPS(%d+)%-") or "0") do
  hp.test(string.format("step %03d", i), function() hp.sleep(0.1) end)
end

local n = tonumber(serial:match("^N(%d+)%-") or "0")
for i = 1, n do
  hp.test(string.format("quick %04d", i), function()
    hp.measure { name = "v" .. i, value = 1.0, unit = "V", min = 0.5, max = 1.5 }
  end)
end

hp.test("label", function()
  hp.set_message("label printed for " .. serial)
end)
