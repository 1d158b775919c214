---@meta hplua
-- LuaLS (lua-language-server) annotations for the hplua test author API:
-- completion, hover documentation and type checks in an editor. Not loaded by
-- hplua itself. Point your workspace at this folder, e.g. in .luarc.json:
--   { "runtime.version": "Lua 5.4", "workspace.library": ["/usr/local/share/hplua/meta"] }
-- (`cmake --install` puts it in PREFIX/share/hplua/meta; in the source tree it is meta/).
-- The contract behind it: API.md sections 3, 10 and 11.

---@class hplua
local hp = {}

---The hplua version, e.g. "0.1.0".
---@type string
hp.version = ""

-------------------------------------------------------------------------------
-- Tests, modules, fixtures and hooks
-------------------------------------------------------------------------------

---@class hplua.Test
---@field id string        "module::name"
---@field name string
---@field attempt integer  1 for the first attempt, 2 for the first retry...

---@class hplua.TestOptions
---@field depends? string|string[] ids this test needs: "name" (same file), "module::name", "module::*"; skipped unless all passed
---@field critical? boolean if this test does not pass, every later test is skipped and the run fails
---@field attempts? integer run a failing test up to N times in all; it passes if any attempt passes
---@field timeout? number seconds; the test fails with "timeout after S s", even in a busy loop or a blocking wait
---@field skip? boolean|string do not run it (a string is the reason)

---Declares a test. Tests run in the order they are declared.
---@param name string
---@param opts hplua.TestOptions
---@param fn fun(t: hplua.Test)
---@overload fun(name: string, fn: fun(t: hplua.Test))
function hp.test(name, opts, fn) end

---@class hplua.ModuleOptions
---@field name? string display name of the module (the file)
---@field depends? string|string[] applies to each of its tests
---@field critical? boolean applies to each of its tests

---Module-wide options, at most once per test file.
---@param opts hplua.ModuleOptions
function hp.module(opts) end

---Declares a fixture (in suite.lua or a test file). `fn` runs on the first
---`hp.use(name)` and returns the value and an optional teardown, called at the end
---of the run in reverse order of creation, whatever way the run ends.
---@param name string
---@param fn fun(): any, (fun())?
function hp.fixture(name, fn) end

---The value of a fixture, created on first use.
---@param name string
---@return any
function hp.use(name) end

---Runs fn once before the first test in scope (suite.lua: its folder; a test file: that file).
---@param fn fun()
function hp.before_all(fn) end
---Runs fn after the last test in scope, even when before_all failed.
---@param fn fun()
function hp.after_all(fn) end
---Runs fn before each test in scope.
---@param fn fun()
function hp.before_each(fn) end
---Runs fn after each test in scope.
---@param fn fun()
function hp.after_each(fn) end

---Fails the running test with msg.
---@param msg? any
function hp.fail(msg) end

---Skips the running test at run time.
---@param reason? string
function hp.skip(reason) end

-------------------------------------------------------------------------------
-- Checks and measurements
-------------------------------------------------------------------------------

---@class hplua.Expectation
---@field never hplua.Expectation negates the check that follows
local Expectation = {}
---Deep equality; a failure shows both values and the path of the first difference.
---@param expected any
function Expectation.to_equal(expected) end
---Same as to_equal.
---@param expected any
function Expectation.to_same(expected) end
---Identity (rawequal).
---@param expected any
function Expectation.to_be(expected) end
---@param expected number
---@param tolerance? number default 1e-9
function Expectation.to_be_near(expected, tolerance) end
---The string matches a Lua pattern.
---@param pattern string
function Expectation.to_match(pattern) end
---A substring (plain), or a table element (deep equality).
---@param item any
function Expectation.to_contain(item) end
function Expectation.to_be_truthy() end
function Expectation.to_be_falsy() end
function Expectation.to_be_nil() end
---type() or math.type() of the value.
---@param type_name string
function Expectation.to_be_a(type_name) end
---@param x number
function Expectation.to_be_greater_than(x) end
---@param x number
function Expectation.to_be_less_than(x) end
---The value is a function that raises (an error matching pattern); returns the error.
---@param pattern? string
---@return any
function Expectation.to_fail(pattern) end

---Starts a check: `hp.expect(v).to_equal(3)`, `hp.expect(s).never.to_match("ERR")`.
---@param actual any
---@return hplua.Expectation
function hp.expect(actual) end

---@class hplua.Measurement
---@field name string
---@field value number|string|boolean a NaN value always fails
---@field unit? string
---@field min? number inclusive lower limit (-math.huge: none)
---@field max? number inclusive upper limit (math.huge: none)
---@field gt? number exclusive lower limit
---@field lt? number exclusive upper limit
---@field nominal? number the expected value, with tolerance or tolerance_pct
---@field tolerance? number absolute tolerance around nominal (not negative)
---@field tolerance_pct? number tolerance around nominal in percent (not negative)
---@field expect? number|string|boolean equality
---@field match? string Lua pattern a string value must match
---@field marginal_min? number inside the limits but below this: status "marginal" (the test still passes)
---@field marginal_max? number inside the limits but above this: status "marginal"

---Records a measurement on the running test. Out of limits: the test goes on and
---fails at its end naming every failed measurement. Contradictory limits raise.
---Limits not given here come from `--limits FILE` by name.
---@param m hplua.Measurement
---@return boolean within_limits
function hp.measure(m) end

-------------------------------------------------------------------------------
-- Messages, run information, artifacts, operator
-------------------------------------------------------------------------------

---Records a message on the running test (on the run outside a test) and prints
---it live; a later message with the same key replaces it.
---@param text any
---@param key? string
function hp.set_message(text, key) end

---@param info table serial, part_number, ... (JSON-able)
function hp.set_dut(info) end
---@param info table name, location, ... (JSON-able)
function hp.set_stand(info) end
---@param info table name (required), vendor, model, serial, firmware, address, ... (JSON-able)
function hp.set_instrument(info) end

---Attaches JSON-able data to the running test.
---@param name string
---@param value any
function hp.artifact(name, value) end

---Copies a file (a log, a capture, a photo) into the run's artifact folder and
---records it on the running test.
---@param name string
---@param path string
function hp.attach(name, path) end

---@class hplua.Dialog
---@field id string answers in --answers FILE are looked up by this id
---@field title? string
---@field text? string
---@field kind? "confirm"|"text"|"number"|"choice"|"multi"|"image"
---@field choices? string[] for "choice" and "multi"
---@field min? number for "number"
---@field max? number for "number"
---@field image? string image file, relative to the test file, for "image"

---Asks the operator (terminal, panel or --answers) and returns the answer.
---@param d hplua.Dialog
---@return any answer boolean (confirm, image), string (text, choice), number, or string[] (multi)
function hp.dialog(d) end

---Sleeps in the event loop: child output is read, timeouts and Ctrl-C work.
---@param seconds number
function hp.sleep(seconds) end

---Monotonic seconds.
---@return number
function hp.clock() end

---The current time, ISO 8601 with milliseconds and UTC offset.
---@return string
function hp.now() end

-------------------------------------------------------------------------------
-- The run, slots
-------------------------------------------------------------------------------

---@class hplua.Run
---@field id string the run's UUID
---@field slot integer 1..N with --slots N (1 without)
---@field serial? string the DUT serial (--serial)
---@field args table<string, string> from --arg KEY=VALUE

---Information on the running run.
---@type hplua.Run
hp.run = {}

---The absolute path of the PATH folder of the running test.
---@type string
hp.suite_dir = ""

---Runs fn(...) while holding a station-wide lock shared by all slots (`--slots N`), one
---slot at a time, first come first served; re-entrant within a slot. Released when fn
---returns or raises, when the test times out and when the slot's process dies. Waiting
---honours timeouts and Ctrl-C; a wait that would close a cycle between slots raises,
---naming the cycle. Without slots it just calls fn. Returns fn's results.
---@generic R
---@param name string
---@param fn fun(...): R
---@param ... any
---@return R
function hp.lock(name, fn, ...) end

---Waits until every slot still running reaches the same barrier; a slot that ends or
---dies no longer counts. Returns how many slots passed together (1 without slots).
---@param name string
---@return integer
function hp.barrier(name) end

-------------------------------------------------------------------------------
-- Processes
-------------------------------------------------------------------------------

---@class hplua.ProcessOptions
---@field env? table<string, string> merged into the environment
---@field cwd? string
---@field stdin? string written to the child
---@field timeout? number seconds; then it is terminated and timed_out = true
---@field scope? "test"|"run" "test": terminated when the attempt that started it ends
---@field on_line? fun(line: string) each stdout line, while the test waits or sleeps
---@field stderr? "pipe"|"stdout"

---@class hplua.ProcessResult
---@field name string
---@field pid integer
---@field command string|string[]
---@field exit_code? integer
---@field signal? integer
---@field stdout string
---@field stderr string
---@field started_at string
---@field ended_at string
---@field duration number
---@field timed_out boolean
---@field terminated boolean
---@field max_rss_kb? integer

---@class hplua.Process
---@field name string
---@field pid integer
local Process = {}
---The result if it has finished, else nil. Never blocks.
---@return hplua.ProcessResult?
function Process:collect() end
---Waits for it to finish; on timeout: nil, "timeout".
---@param timeout? number
---@return hplua.ProcessResult|nil result
---@return string? err
function Process:wait(timeout) end
---@return boolean
function Process:alive() end
---SIGTERM to its process group, SIGKILL after grace seconds (default 3).
---@param grace? number
---@return hplua.ProcessResult
function Process:terminate(grace) end

---@class hplua.process
local process = {}
---Starts a child: an argv table (PATH lookup, no shell) or a string for /bin/sh -c.
---@param name string unique among the running processes
---@param command string|string[]
---@param opts? hplua.ProcessOptions
---@return hplua.Process
function process.start(name, command, opts) end
---Starts `hplua -e code` with the same stdlib.
---@param name string
---@param code string
---@param opts? hplua.ProcessOptions
---@return hplua.Process
function process.lua(name, code, opts) end
---@param name string
---@return hplua.ProcessResult?
function process.collect(name) end
---Waits for the named processes (default: all started); on timeout returns nil, "timeout", results so far.
---@param names? string|string[]
---@param timeout? number
---@return table<string, hplua.ProcessResult>|nil results
---@return string? err
---@return table<string, hplua.ProcessResult>? so_far
function process.wait(names, timeout) end
---@param name string
---@return boolean
function process.alive(name) end
---@return string[]
function process.names() end
---@return table<string, hplua.ProcessResult>
function process.results() end
---@param name string
---@param grace? number
---@return hplua.ProcessResult
function process.terminate(name, grace) end
---@param grace? number
function process.terminate_all(grace) end

hp.process = process

-------------------------------------------------------------------------------
-- Streams: serial ports and TCP
-------------------------------------------------------------------------------

---Error codes of stream failures: "ENOENT", "EACCES", "EBUSY", "ENOTTY", "EINVAL",
---"timeout", "closed", "EMSGSIZE" (no line end within max_line), "ECONNREFUSED",
---"EHOSTUNREACH", "EAI_NONAME" (name resolution), or another errno name.
---@alias hplua.StreamCode string

---A byte stream (serial port or TCP connection). Every wait runs in hplua's event
---loop: child output keeps flowing; the test's timeout and Ctrl-C cut it. A call
---that fails returns nil, message, code and, for reads, a copy of the buffered
---data, which stays buffered (a timeout consumes nothing). A timeout argument
---overrides the stream's own `timeout` for that call; with neither, a call waits
---until the test's deadline.
---@class hplua.Stream
local Stream = {}
---Writes all of data.
---@param data string
---@param timeout? number
---@return true|nil ok
---@return string? message
---@return hplua.StreamCode? code
---@return integer? bytes_written
function Stream:write(data, timeout) end
---Exactly n bytes (pyserial's read(n) waits for n bytes too).
---@param n integer
---@param timeout? number
---@return string|nil data
---@return string? message
---@return hplua.StreamCode? code
---@return string? buffered
function Stream:read(n, timeout) end
---One line, without its "\n" and one "\r" before it.
---@param timeout? number
---@return string|nil line
---@return string? message
---@return hplua.StreamCode? code
---@return string? buffered
function Stream:read_line(timeout) end
---The data up to and including the first match of a Lua pattern (searched from
---the start of the buffered data: "^" anchors there).
---@param pattern string
---@param timeout? number
---@return string|nil data
---@return string? message
---@return hplua.StreamCode? code
---@return string? buffered
function Stream:read_until(pattern, timeout) end
---Waits until everything written has left: serial, sent on the line (tcdrain);
---TCP, acknowledged by the peer.
---@param timeout? number
---@return true|nil ok
---@return string? message
---@return hplua.StreamCode? code
---@return integer? bytes_pending
function Stream:drain(timeout) end
---Drops buffered input and what the kernel holds; returns the bytes dropped.
---@return integer
function Stream:discard() end
---Closes it (also done by `<close>` and garbage collection); closing twice is fine.
---@return true
function Stream:close() end

---@class hplua.SerialOptions
---@field baud? integer 1..4000000 (default 9600); rates without a B constant use termios2
---@field data_bits? 5|6|7|8 default 8
---@field parity? "none"|"even"|"odd"|"mark"|"space" default "none"
---@field stop_bits? 1|2 default 1
---@field flow? "none"|"rtscts"|"xonxoff" default "none"
---@field timeout? number default timeout of every call, seconds (default: none, the test's deadline)
---@field max_line? integer longest line or read_until match accepted, bytes (default 65536)

---@class hplua.serial
local serial = {}
---Opens a serial port exclusively, raw mode. A port held by another opener gives
---nil, "DEV: port busy (held by PID N)", "EBUSY".
---@param device string e.g. "/dev/ttyUSB0"
---@param opts? hplua.SerialOptions
---@return hplua.Stream|nil stream
---@return string? message
---@return hplua.StreamCode? code
function serial.open(device, opts) end
hp.serial = serial

---@class hplua.TcpOptions
---@field timeout? number connect timeout and default timeout of every call, seconds
---@field max_line? integer longest line or read_until match accepted, bytes (default 65536)

---@class hplua.tcp
local tcp = {}
---Connects (TCP_NODELAY). Name resolution blocks: prefer numeric addresses.
---@param host string
---@param port integer
---@param opts? hplua.TcpOptions
---@return hplua.Stream|nil stream
---@return string? message
---@return hplua.StreamCode? code
function tcp.connect(host, port, opts) end
hp.tcp = tcp

return hp
