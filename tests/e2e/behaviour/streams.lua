-- hp.serial and hp.tcp against a simulated device (tests/c/streamdev.c) on a
-- pseudo-terminal and on 127.0.0.1: lines, partial data, timeouts, the far end
-- closing, exclusivity, memory bounds, and waits that keep children served.
-- The test's own timeout and Ctrl-C during a blocked read: tests/fixtures/streams.
local hp = require "hplua"
local sys = require "hplua.sys"
local run = require "_run"

local STREAMDEV = assert(os.getenv("STREAMDEV"), "STREAMDEV not set")
local seq = 0

-- Starts the device; returns its handle (<close> ends it) and what it printed
-- after READY (the pty link or the port).
local function device(args)
  seq = seq + 1
  local ready
  local argv = { STREAMDEV }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  local p = hp.process.start("streamdev-" .. seq, argv, { on_line = function(l) ready = ready or l:match("^READY (.*)$") end })
  run.wait_for(function() return ready or not p:alive() end, 10, "the device to be ready")
  if not ready then error("the device did not start: " .. ((p:collect() or {}).stderr or "?"), 2) end
  return p, ready
end

local function pty_device()
  local link = string.format("%s/hplua-tty-%d-%d", os.getenv("TMPDIR") or "/tmp", sys.getpid(), seq + 1)
  return device { "--pty", link }
end

local function tcp_device(...)
  local p, port = device { "--tcp", ... }
  return p, tonumber(port)
end

-- Runs fn and returns its results and the seconds it took.
local function timed(fn, ...)
  local t0 = hp.clock()
  local r = table.pack(fn(...))
  return hp.clock() - t0, table.unpack(r, 1, r.n)
end

hp.test("serial: lines, CRLF, prompts, exact reads", function()
  local dev <close>, link = pty_device()
  local s <close> = assert(hp.serial.open(link, { baud = 115200, timeout = 5 }))
  hp.expect(tostring(s)).to_equal("serial " .. link .. " (open)")
  assert(s:write("*IDN?\n"))
  hp.expect(s:read_line()).to_equal("HPLUA,SIM-LINE,0,1.0")
  assert(s:write("CRLF\n"))
  hp.expect(s:read_line()).to_equal("crlf") -- "\r\n" stripped
  assert(s:write("PROMPT\n"))
  hp.expect(s:read_until("> ")).to_equal("ready\r\n> ")
  assert(s:write("ECHO 0123456789\n"))
  hp.expect(s:read(4)).to_equal("0123")
  hp.expect(s:read(7)).to_equal("456789\n")
  assert(s:write("ECHO value=42;\n"))
  hp.expect(s:read_until("=%d+;")).to_equal("value=42;")
  hp.expect(s:read_line()).to_equal("")
  hp.expect(s:read(0)).to_equal("")
end)

hp.test("serial: partial data and delays: a timeout consumes nothing", function()
  local dev <close>, link = pty_device()
  local s <close> = assert(hp.serial.open(link, { timeout = 5 }))
  assert(s:write("SPLIT abcdefgh\n")) -- "abcd" now, "efgh\n" 300 ms later
  local took, line, msg, code, partial = timed(s.read_line, s, 0.1)
  hp.expect(line).to_be_nil()
  hp.expect(code).to_equal("timeout")
  hp.expect(msg).to_equal(link .. ": no complete line within 0.1 s")
  hp.expect(partial).to_equal("abcd")
  hp.expect(took).to_be_less_than(2)
  hp.expect(s:read_line()).to_equal("abcdefgh") -- the partial data was kept
  assert(s:write("DELAY 300\n"))
  assert(s:write("ECHO late\n"))
  local _, _, code2, partial2 = s:read(5, 0.05)
  hp.expect(code2).to_equal("timeout")
  hp.expect(partial2).to_equal("")
  hp.expect(s:read(5, 5)).to_equal("late\n")
end)

hp.test("serial: a silent device times out with the code timeout", function()
  local dev <close>, link = pty_device()
  local s <close> = assert(hp.serial.open(link, { timeout = 0.3 }))
  assert(s:write("SILENT\n*IDN?\n"))
  local took, line, msg, code = timed(s.read_line, s) -- the stream's own timeout
  hp.expect(line).to_be_nil()
  hp.expect(code).to_equal("timeout")
  hp.expect(msg).to_contain("within 0.3 s")
  hp.expect(took).to_be_greater_than(0.29)
  hp.expect(took).to_be_less_than(2.5)
  local _, _, code2 = s:read_until("never", 0.05)
  hp.expect(code2).to_equal("timeout")
end)

hp.test("serial: the device going away gives closed", function()
  local dev <close>, link = pty_device()
  local s <close> = assert(hp.serial.open(link, { timeout = 10 }))
  assert(s:write("ECHO bye\nCLOSE\n"))
  hp.expect(s:read_line()).to_equal("bye")
  local took, line, msg, code = timed(s.read_line, s)
  hp.expect(line).to_be_nil()
  hp.expect(code).to_equal("closed")
  hp.expect(msg).to_equal(link .. ": closed by the other end")
  hp.expect(took).to_be_less_than(5)
  local _, _, code2 = s:read(1) -- stays closed
  hp.expect(code2).to_equal("closed")
end)

hp.test("serial: a second opener is refused naming the holder's PID", function()
  local dev <close>, link = pty_device()
  local s = assert(hp.serial.open(link))
  local none, msg, code = hp.serial.open(link)
  hp.expect(none).to_be_nil()
  hp.expect(code).to_equal("EBUSY")
  hp.expect(msg).to_equal(string.format("%s: port busy (held by PID %d)", link, sys.getpid()))
  s:close()
  -- another process holds it
  local held = false
  local holder <close> = hp.process.lua("holder", string.format(
    "local hp = require 'hplua'; local s = assert(hp.serial.open(%q)); print('HELD'); io.stdout:flush(); hp.sleep(60)", link),
    { on_line = function(l) held = held or l == "HELD" end })
  run.wait_for(function() return held or not holder:alive() end, 10, "the holder to open the port")
  local _, msg2, code2 = hp.serial.open(link)
  hp.expect(code2).to_equal("EBUSY")
  hp.expect(msg2).to_equal(string.format("%s: port busy (held by PID %d)", link, holder.pid))
  holder:terminate(1)
  local s2 <close> = assert(hp.serial.open(link)) -- free again once the holder is gone
end)

hp.test("serial: open failures and settings seen by stty", function()
  local _, msg, code = hp.serial.open("/nonexistent/ttyUSB9")
  hp.expect(code).to_equal("ENOENT")
  hp.expect(msg).to_equal("/nonexistent/ttyUSB9: No such file or directory")
  _, msg, code = hp.serial.open("/dev/null")
  hp.expect(code).to_equal("ENOTTY")
  hp.expect(msg).to_equal("/dev/null: not a serial port")
  local dev <close>, link = pty_device()
  local s = assert(hp.serial.open(link, { baud = 57600, stop_bits = 2, flow = "rtscts", data_bits = 8, parity = "none" }))
  s:close() -- the settings stay with the terminal
  local r = hp.process.start("stty", { "stty", "-F", link, "-a" }):wait(10)
  hp.expect(r.exit_code).to_equal(0)
  local function words(text)
    local set = {}
    for w in text:gmatch("[^%s;]+") do set[w] = true end
    return set
  end
  hp.expect(r.stdout).to_contain("speed 57600 baud")
  local w = words(r.stdout)
  for _, word in ipairs { "cstopb", "crtscts", "-icanon", "-echo", "-ixon", "-opost", "-isig", "clocal", "cread" } do
    hp.expect(w[word] and word).to_equal(word)
  end
  s = assert(hp.serial.open(link, { baud = 9600, flow = "xonxoff" }))
  s:close()
  r = hp.process.start("stty2", { "stty", "-F", link, "-a" }):wait(10)
  hp.expect(r.stdout).to_contain("speed 9600 baud")
  w = words(r.stdout)
  for _, word in ipairs { "ixon", "ixoff", "-crtscts", "-cstopb" } do
    hp.expect(w[word] and word).to_equal(word)
  end
  -- a rate without a B constant goes through termios2 (checked in tests/c/test_stream.c)
  s = assert(hp.serial.open(link, { baud = 250000 }))
  s:close()
end)

hp.test("serial: misuse raises naming the argument or option", function()
  local dev <close>, link = pty_device()
  local function raises(pattern, fn, ...)
    local ok, err = pcall(fn, ...)
    hp.expect(ok).to_be(false)
    hp.expect(err).to_contain(pattern)
  end
  raises("bad argument #2 to 'hp.serial.open' (option 'baud' must be a whole number from 1 to 4000000, got 0)",
    hp.serial.open, link, { baud = 0 })
  raises("option 'baud' must be a whole number from 1 to 4000000, got 9600.5", hp.serial.open, link, { baud = 9600.5 })
  raises("option 'baud' must be a whole number from 1 to 4000000, got \"9600\"", hp.serial.open, link, { baud = "9600" })
  raises("option 'baud' must be a whole number from 1 to 4000000, got 5000000", hp.serial.open, link, { baud = 5000000 })
  raises("option 'data_bits' must be a whole number from 5 to 8, got 9", hp.serial.open, link, { data_bits = 9 })
  raises("option 'stop_bits' must be a whole number from 1 to 2, got 3", hp.serial.open, link, { stop_bits = 3 })
  raises("option 'parity' must be one of none, even, odd, mark, space, got \"E\"", hp.serial.open, link, { parity = "E" })
  raises("option 'flow' must be one of none, rtscts, xonxoff, got true", hp.serial.open, link, { flow = true })
  raises("option 'timeout' must be a non-negative number of seconds, got -1", hp.serial.open, link, { timeout = -1 })
  raises("unknown option 'speed' (known: baud, data_bits, parity, stop_bits, flow, timeout, max_line)",
    hp.serial.open, link, { speed = 9600 })
  raises("bad argument #1 to 'hp.serial.open' (the device must be a string, got nil)", hp.serial.open)
  raises("bad argument #2 to 'hp.serial.open' (options must be a table, got 9600)", hp.serial.open, link, 9600)
  local s = assert(hp.serial.open(link))
  raises("bad argument #1 to 'write' (string expected, got table)", function() return s:write({}) end)
  raises("bad argument #1 to 'read' (the byte count must not be negative)", function() return s:read(-1) end)
  raises("bad argument #1 to 'read_line' (timeout must not be negative)", function() return s:read_line(-0.5) end)
  raises("bad argument #1 to 'read_line' (number of seconds expected, got string)", function() return s:read_line("1") end)
  raises("bad argument #1 to 'read_until' (malformed pattern (ends with '%'))", function() return s:read_until("%") end)
  s:close()
  s:close() -- closing twice is fine
  raises(link .. ": the stream is closed", function() return s:read_line() end)
  hp.expect(tostring(s)).to_equal("serial " .. link .. " (closed)")
end)

hp.test("serial: child output keeps flowing while a read is blocked", function()
  local dev <close>, link = pty_device()
  local s <close> = assert(hp.serial.open(link))
  local lines, done_at = 0, nil
  local chatter = hp.process.start("chatter", "seq 1 200000; echo END", {
    on_line = function(l) lines = lines + 1; if l == "END" then done_at = hp.clock() end end })
  assert(s:write("DELAY 1500\nECHO answer\n"))
  local line = assert(s:read_line(20))
  local returned_at = hp.clock()
  hp.expect(line).to_equal("answer")
  hp.expect(lines).to_equal(200001) -- 1.2 MB through a pipe: read while the test waited for the device
  hp.expect(done_at).never.to_be_nil()
  hp.expect(done_at).to_be_less_than(returned_at)
  hp.expect(chatter:wait(10).exit_code).to_equal(0)
end)

hp.test("tcp: connection refused", function()
  local dev, port = tcp_device()
  dev:terminate(1) -- nobody listens on the port any more
  local took, s, msg, code = timed(hp.tcp.connect, "127.0.0.1", port, { timeout = 5 })
  hp.expect(s).to_be_nil()
  hp.expect(code).to_equal("ECONNREFUSED")
  hp.expect(msg).to_equal(string.format("127.0.0.1:%d: Connection refused", port))
  hp.expect(took).to_be_less_than(2)
  local _, msg2, code2 = hp.tcp.connect("no-such-host.invalid", 80, { timeout = 5 })
  hp.expect(code2).to_match("^EAI_")
  hp.expect(msg2).to_contain("cannot resolve 'no-such-host.invalid'")
end)

hp.test("tcp: connect times out on a listener whose backlog is full", function()
  local dev <close>, port = tcp_device("--no-accept", "--backlog", "0")
  local held, result = {}, nil
  for _ = 1, 20 do -- the first connections fill the backlog; the next one hangs in SYN_SENT
    local took, s, msg, code = timed(hp.tcp.connect, "127.0.0.1", port, { timeout = 0.5 })
    if not s then result = { took = took, msg = msg, code = code } break end
    held[#held + 1] = s
  end
  hp.expect(result).never.to_be_nil()
  hp.expect(result.code).to_equal("timeout")
  hp.expect(result.msg).to_equal(string.format("127.0.0.1:%d: no connection within 0.5 s", port))
  hp.expect(result.took).to_be_greater_than(0.49)
  hp.expect(result.took).to_be_less_than(2.5)
  for _, s in ipairs(held) do s:close() end
end)

hp.test("tcp: partial lines, line ends and read_until", function()
  local dev <close>, port = tcp_device()
  local s <close> = assert(hp.tcp.connect("127.0.0.1", port, { timeout = 5 }))
  hp.expect(tostring(s)).to_equal(string.format("tcp 127.0.0.1:%d (open)", port))
  assert(s:write("SPLIT hello world\n"))
  local _, _, code, partial = s:read_line(0.1)
  hp.expect(code).to_equal("timeout")
  hp.expect(partial).to_equal("hello")
  hp.expect(s:read_line()).to_equal("hello world")
  assert(s:write("CRLF\nPROMPT\n"))
  hp.expect(s:read_line()).to_equal("crlf")
  hp.expect(s:read_line()).to_equal("ready")
  hp.expect(s:read_until("^> ")).to_equal("> ")
  assert(s:write("ECHO a\r\r\r\nECHO b\n")) -- the device takes one "\r" off its command
  hp.expect(s:read_line()).to_equal("a\r") -- only one trailing \r is stripped
  hp.expect(s:read_line()).to_equal("b")
  assert(s:write("ECHO x\n"))
  hp.expect(s:discard() >= 0).to_be(true)
  s:read_line(0.2) -- whatever the discard did not catch
  hp.expect(s:read(1, 0.05)).to_be_nil()
end)

-- Peak resident memory of this hplua (kB).
local function hwm_kb()
  for l in io.lines("/proc/self/status") do
    local v = l:match("^VmHWM:%s*(%d+)")
    if v then return tonumber(v) end
  end
end

hp.test("tcp: 100 MB from the peer read by lines in bounded memory", function()
  local dev <close>, port = tcp_device()
  local s <close> = assert(hp.tcp.connect("127.0.0.1", port, { timeout = 30, max_line = 4096 }))
  local hwm0 = hwm_kb()
  local heap_peak = 0
  assert(s:write("FLOOD 100000000 1000\n"))
  local bytes, n = 0, 0
  while true do
    local line = assert(s:read_line())
    if line == "END" then break end
    bytes = bytes + #line + 1
    n = n + 1
    if n % 5000 == 0 then heap_peak = math.max(heap_peak, collectgarbage("count")) end
  end
  hp.expect(bytes).to_equal(100000000)
  -- the stream's buffer lives on the Lua heap: it never held more than a line and a read
  hp.expect(heap_peak).to_be_less_than(16 * 1024)
  if not run.under_asan() then -- ASan keeps freed memory in quarantine
    hp.expect(hwm_kb() - hwm0).to_be_less_than(32 * 1024)
  end
  -- a peer that never ends its line: refused at max_line, the memory stays bounded
  assert(s:write("FLOOD 50000000 0\n"))
  local line, msg, code, partial = s:read_line()
  hp.expect(line).to_be_nil()
  hp.expect(code).to_equal("EMSGSIZE")
  hp.expect(msg).to_equal(string.format("127.0.0.1:%d: no end of line within 4096 bytes (max_line)", port))
  hp.expect(#partial).to_be_greater_than(4096)
  hp.expect(#partial).to_be_less_than(4096 + 65536 + 1)
  local _, _, code2 = s:read_until("END", 1)
  hp.expect(code2).to_equal("EMSGSIZE")
end)

hp.test("tcp: the far end closing; writes to a closed peer", function()
  local dev <close>, port = tcp_device()
  local s <close> = assert(hp.tcp.connect("127.0.0.1", port, { timeout = 5 }))
  assert(s:write("ECHO last\nCLOSE\n"))
  hp.expect(s:read_line()).to_equal("last")
  local _, msg, code = s:read_line()
  hp.expect(code).to_equal("closed")
  hp.expect(msg).to_equal(string.format("127.0.0.1:%d: closed by the other end", port))
  local wcode
  for _ = 1, 100 do -- the first write may still be accepted; the reset follows
    local ok, _, c = s:write("ECHO x\n")
    if not ok then wcode = c break end
    hp.sleep(0.01)
  end
  hp.expect(wcode).to_equal("closed")
end)

hp.test("tcp: drain waits for the peer; write and drain time out on a peer that never reads", function()
  local dev <close>, port = tcp_device()
  local s <close> = assert(hp.tcp.connect("127.0.0.1", port, { timeout = 10 }))
  assert(s:write(string.rep("\n", 1 << 20)))
  hp.expect(s:drain()).to_be(true)
  local stuck <close>, sport = tcp_device("--no-accept")
  local t = assert(hp.tcp.connect("127.0.0.1", sport, { timeout = 0.5 }))
  local took, ok, msg, code, sent = timed(t.write, t, string.rep("x", 64 << 20))
  hp.expect(ok).to_be_nil()
  hp.expect(code).to_equal("timeout")
  hp.expect(msg).to_match("could not send within 0.5 s %(%d+ of 67108864 bytes sent%)")
  hp.expect(sent).to_be_greater_than(0)
  hp.expect(took).to_be_less_than(3)
  local _, dmsg, dcode, pending = t:drain(0.2)
  hp.expect(dcode).to_equal("timeout")
  hp.expect(dmsg).to_contain("bytes still unsent after 0.2 s")
  hp.expect(pending).to_be_greater_than(0)
  t:close()
end)

hp.test("tcp: on_line callbacks using the stream a read waits on", function()
  local dev <close>, port = tcp_device()
  local s <close> = assert(hp.tcp.connect("127.0.0.1", port, { timeout = 20 }))
  -- a callback takes lines out of the buffer while the test's read(n) fills it
  local taken, stop = 0, false
  local ticker = hp.process.start("ticker", "for i in $(seq 1 400); do echo t; done",
    { on_line = function()
      local l = not stop and s:read_line(0)
      if l then taken = taken + #l + 1 end
    end })
  assert(s:write("FLOOD 3000000 100\n"))
  local data = assert(s:read(1000000))
  hp.expect(#data).to_equal(1000000)
  ticker:wait(10)
  stop = true -- lines still undelivered must not take more
  hp.set_message("taken by callbacks: " .. taken)
  local rest = 3000000 - 1000000 - taken
  hp.expect(#assert(s:read(rest))).to_equal(rest)
  hp.expect(s:read_line()).to_equal("END")
  -- a callback closes it: the waiting read raises
  local closer <close> = hp.process.start("closer", "sleep 0.1; echo now", { on_line = function() s:close() end })
  local ok, err = pcall(s.read_line, s)
  hp.expect(ok).to_be(false)
  hp.expect(err).to_contain("the stream was closed while a call waited on it")
end)

hp.test("tcp: misuse raises naming the argument or option", function()
  local function raises(pattern, fn, ...)
    local ok, err = pcall(fn, ...)
    hp.expect(ok).to_be(false)
    hp.expect(err).to_contain(pattern)
  end
  raises("bad argument #2 to 'hp.tcp.connect' (the port must be a whole number from 1 to 65535, got 0)",
    hp.tcp.connect, "127.0.0.1", 0)
  raises("the port must be a whole number from 1 to 65535, got \"80\"", hp.tcp.connect, "127.0.0.1", "80")
  raises("bad argument #1 to 'hp.tcp.connect' (the host must be a string, got a table)", hp.tcp.connect, {}, 80)
  raises("unknown option 'baud' (known: timeout, max_line)", hp.tcp.connect, "127.0.0.1", 80, { baud = 9600 })
  raises("option 'max_line' must be a whole number from 1 to 1073741824, got 0", hp.tcp.connect, "127.0.0.1", 80, { max_line = 0 })
end)

hp.test("the example suite runs its C driver and its Lua driver", function()
  local res, rep = run.run({ "../../examples/instrument" })
  hp.expect(res.exit_code).to_equal(1) -- one rail is out of limits on purpose
  for _, id in ipairs { "01_rails::5V rail through the driver's measure", "02_lua_driver::identifies itself",
    "02_lua_driver::3V3 rail", "02_lua_driver::5V rail", "02_lua_driver::5V rail through the driver's measure",
    "02_lua_driver::instrument error queue", "02_lua_driver::a silent instrument times out" } do
    local t = run.test_by_id(rep, id)
    hp.expect(t and t.status).to_equal("passed")
  end
  local t = run.test_by_id(rep, "02_lua_driver::5V rail through the driver's measure")
  hp.expect(t.measurements[1]).to_equal { name = "5v (lua driver)", value = 5.01, unit = "V", min = 4.9, max = 5.1, passed = true, status = "passed" }
end)

hp.test("the test's timeout cuts a blocked read, serial and tcp; child output kept flowing", function()
  local res, rep = run.run({ "-q", "streams" }, { env = { BLOCK_TIMEOUT = "0.7" } })
  hp.expect(res.exit_code).to_equal(1)
  for _, kind in ipairs { "serial", "tcp" } do
    local t = run.test_by_id(rep, "1_blocked::" .. kind .. " read blocked on a silent device")
    hp.expect(t.status).to_equal("failed")
    hp.expect(t.error.message).to_equal("timeout after 0.7 s")
    hp.expect(t.duration).to_be_less_than(0.7 + 1.5) -- the fixtures start inside the test too
  end
  local lines = tonumber(res.stdout:match("LINES (%d+)"))
  hp.expect(lines).to_be_greater_than(5) -- ticks every 20 ms, read while the reads were blocked
end)

hp.test("SIGINT cuts a blocked read", function()
  local blocked = false
  local p, report = run.start({ "-k", "serial read", "streams" },
    { on_line = function(l) if l == "BLOCKED" then blocked = true end end })
  run.wait_for(function() return blocked end, 20, "the read to block")
  hp.sleep(0.2)
  local t0 = hp.clock()
  run.kill(p.pid, "INT")
  local res = p:wait(10)
  hp.expect(hp.clock() - t0).to_be_less_than(5)
  hp.expect(res.exit_code).to_equal(2)
  local rep = run.read_report(report)
  hp.expect(run.test_by_id(rep, "1_blocked::serial read blocked on a silent device").status).to_equal("stopped")
end)
