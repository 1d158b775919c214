-- The bad-input corpus: every case is a real run of hplua on files made here, with
-- its expected exit status and a piece of the expected message (file:line where
-- one exists). Nothing may crash, and results already recorded are kept.
local hp = require "hplua"
local sys = require "hplua.sys"

local exe = sys.exepath()
local root = os.tmpname()
os.remove(root)
assert(os.execute("mkdir -p " .. root))
local is_root = (io.popen("id -u"):read("l")) == "0"
local seq = 0

local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

-- files: { [relative path] = content | true (a folder) | { link = target } }
local function case(name, spec)
  hp.test(name, { skip = spec.skip }, function()
    seq = seq + 1
    local dir = string.format("%s/case%02d", root, seq)
    assert(os.execute("mkdir -p '" .. dir .. "'"))
    local names = {}
    for rel in pairs(spec.files or {}) do names[#names + 1] = rel end
    table.sort(names) -- a folder before what is inside it
    for _, rel in ipairs(names) do
      local content = spec.files[rel]
      local path = dir .. "/" .. rel
      if content == true then
        assert(os.execute("mkdir -p '" .. path .. "'"))
      elseif type(content) == "table" then
        assert(os.execute(string.format("ln -s '%s' '%s'", content.link, path)))
      else
        write(path, content)
      end
    end
    if spec.prepare then spec.prepare(dir) end
    local argv = { exe }
    for _, a in ipairs(spec.args or { "." }) do argv[#argv + 1] = a end
    local r = hp.process.start("run-" .. seq, argv, { cwd = dir, timeout = 60 }):wait()
    local out = r.stdout .. r.stderr
    hp.set_message(out)
    hp.expect(r.signal).to_be_nil()
    hp.expect(r.exit_code).to_equal(spec.status)
    for _, piece in ipairs(type(spec.expect) == "table" and spec.expect or { spec.expect }) do
      hp.expect(out).to_contain(piece)
    end
    for _, piece in ipairs(spec.reject or {}) do
      hp.expect(out).never.to_contain(piece)
    end
  end)
end

local HP = 'local hp = require "hplua"\n'

-- loading
case("syntax error", { files = { ["1_x.lua"] = HP .. "hp.test('a', function()\n  local = 1\nend)\n" },
  status = 2, expect = "./1_x.lua:3: <name> expected near '='" })
case("error while loading", { files = { ["1_x.lua"] = HP .. "local cfg\nprint(cfg.port)\n" },
  status = 2, expect = "./1_x.lua:3: error while loading: attempt to index a nil value (local 'cfg')" })
case("binary garbage", { files = { ["1_x.lua"] = "\0\1\2\3\255\254garbage\200\n\0" }, status = 2, expect = "./1_x.lua:1:" })
local REFUSED = "binary chunks are refused in test code: unverified bytecode can crash the Lua VM"
case("precompiled chunk refused", { files = { ["1_x.lua"] = string.dump(function() return 1 end) },
  status = 2, expect = "./1_x.lua:0: " .. REFUSED })
case("require of a precompiled helper", { files = { ["1_x.lua"] = HP .. "require '_dumped'\n",
  ["_dumped.lua"] = string.dump(function() return {} end) }, status = 2,
  expect = { "./1_x.lua:2: error while loading: error loading module '_dumped' from file './_dumped.lua':", REFUSED } })
local function dumped_test(name, code)
  case(name, { files = { ["1_x.lua"] = HP .. "local d = string.dump(function() return 'ran' end)\n" ..
    "hp.test('bytecode', function()\n  " .. code .. "\nend)\nhp.test('next', function() end)\n",
    ["_d.luac"] = string.dump(function() return "ran" end) },
    status = 1, expect = { "./1_x.lua:4: " .. REFUSED, "1 passed, 1 failed" } })
end
dumped_test("load of bytecode in a test", "assert(load(d))")
dumped_test("load of bytecode with mode b", "assert(load(d, 'd', 'b'))")
dumped_test("load of bytecode from a reader", "local once = d; assert(load(function() local s = once; once = nil; return s end))")
dumped_test("loadfile of bytecode", "assert(loadfile('_d.luac'))")
dumped_test("dofile of bytecode", "dofile('_d.luac')")
-- a dump with one byte changed (found by flipping bytes under lua5.4): it crashes a
-- Lua VM that runs it
case("corrupted bytecode cannot crash the host", { files = { ["1_x.lua"] = HP ..
  "hp.test('corrupt', function()\n  local d = string.dump(function(a, b) local t = {a, b} return t[1] + t[2] end, true)\n" ..
  "  local f, err = load(d:sub(1, 39) .. '\\255' .. d:sub(41))\n  if f then f(1, 2) end\n  error(err)\nend)\n" },
  status = 1, expect = { "./1_x.lua:6: " .. REFUSED, "0 passed, 1 failed" } })
case("a test file that requires itself", { files = { ["1_x.lua"] = HP .. "require '1_x'\nhp.test('t', function() end)\n" },
  status = 2, expect = { "./1_x.lua:2: error while loading: error loading module '1_x' from file './1_x.lua':", "stack overflow" },
  reject = { "(null)" } })
case("empty file", { files = { ["1_x.lua"] = "" }, status = 5, expect = "no tests collected" })
case("50 MB file", {
  prepare = function(dir)
    local f = assert(io.open(dir .. "/1_big.lua", "wb"))
    f:write(HP)
    local line = "-- " .. string.rep("x", 1021) .. "\n"
    local chunk = string.rep(line, 1024)
    for _ = 1, 50 do f:write(chunk) end
    f:write("hp.test('after 50 MB', function() end)\n")
    f:close()
  end,
  status = 0, expect = "1 passed" })
case("a test file that is a folder", { files = { ["1_dir.lua"] = true, ["1_dir.lua/2_in.lua"] = HP .. "hp.test('inside', function() end)\n" },
  status = 0, expect = "PASSED  1_dir.lua/2_in::inside" })
case("dangling link", { files = { ["1_x.lua"] = { link = "/nonexistent/target.lua" } },
  status = 2, expect = "./1_x.lua:0: ./1_x.lua: dangling symbolic link" })
case("unreadable file", { skip = is_root and "root reads every file", files = { ["1_x.lua"] = HP },
  prepare = function(dir) os.execute("chmod 000 '" .. dir .. "/1_x.lua'") end, status = 2, expect = "cannot open file" })

-- wrong option types for hp.test and hp.module (collection errors, with the line)
local function decl(name, code, piece)
  case(name, { files = { ["1_x.lua"] = HP .. code .. "\n" }, status = 2, expect = { "./1_x.lua:2: ", piece } })
end
decl("hp.test: name is a number", "hp.test(42, function() end)", "the name must be a non-empty string, got number")
decl("hp.test: no body", "hp.test('x')", "the test body must be a function, got nil")
decl("hp.test: options are a string", "hp.test('x', 'fast', function() end)", "options must be a table, got string")
decl("hp.test: depends is a number", "hp.test('x', { depends = 7 }, function() end)", "depends must be a string or a table of test ids, got number")
decl("hp.test: depends holds a table", "hp.test('x', { depends = { {} } }, function() end)", "depends[1] must be a string, got table")
decl("hp.test: critical is a string", "hp.test('x', { critical = 'yes' }, function() end)", "critical must be a boolean, got string")
decl("hp.test: attempts is zero", "hp.test('x', { attempts = 0 }, function() end)", "attempts must be a whole number of at least 1, got 0")
decl("hp.test: attempts is fractional", "hp.test('x', { attempts = 1.5 }, function() end)", "attempts must be a whole number of at least 1, got 1.5")
decl("hp.test: timeout is a string", "hp.test('x', { timeout = '5' }, function() end)", "timeout must be a number of seconds, got string")
decl("hp.test: skip is a number", "hp.test('x', { skip = 5 }, function() end)", "skip must be a boolean or a reason string, got number")
decl("hp.test: unknown option", "hp.test('x', { retry = 3 }, function() end)", "unknown option 'retry'")
decl("hp.module: name is a number", "hp.module { name = 5 }", "hp.module: name must be a string, got number")
decl("hp.module: not a table", "hp.module('power')", "hp.module: the argument must be a table, got string")
case("hp.module twice", { files = { ["1_x.lua"] = HP .. "hp.module {}\nhp.module {}\n" }, status = 2,
  expect = "./1_x.lua:3: hp.module called twice (first at line 2)" })

-- wrong types at run time fail the test (with the line), the run goes on
local function runtime(name, code, piece)
  case(name, { files = { ["1_x.lua"] = HP .. "hp.test('bad', function()\n  " .. code .. "\nend)\nhp.test('next', function() end)\n" },
    status = 1, expect = { "./1_x.lua:3: ", piece, "1 passed, 1 failed" } })
end
runtime("process.start: name is a table", "hp.process.start({}, { 'true' })", "bad argument #1 to 'start' (string expected, got table)")
runtime("process.start: command is a number", "hp.process.start('p', 42)", "bad argument #2 to 'start' (table (argv) or string (shell command) expected, got number)")
runtime("process.start: empty argv", "hp.process.start('p', {})", "argv table is empty")
runtime("process.start: env is a string", "hp.process.start('p', { 'true' }, { env = 'A=1' })", "option 'env' must be a table, got string")
runtime("process.start: on_line is a string", "hp.process.start('p', { 'true' }, { on_line = 'print' })", "option 'on_line' must be a function, got string")
runtime("process.start: stderr is bogus", "hp.process.start('p', { 'true' }, { stderr = 'file' })", "option 'stderr' must be \"pipe\" or \"stdout\", got \"file\"")
runtime("process.start: output with on_line", "hp.process.start('p', { 'true' }, { output = '/tmp/x', on_line = print })", "option 'output' sends stdout and stderr to a file: 'stderr' and 'on_line' cannot be used with it")
runtime("process.start: not found", "hp.process.start('p', { 'no-such-program-hplua' })", "cannot start process 'p' (no-such-program-hplua): command not found")
runtime("measure: no name", "hp.measure { value = 1 }", "hp.measure: name must be a non-empty string")
runtime("measure: min is a string", "hp.measure { name = 'v', value = 1, min = '0' }", 'hp.measure "v": min must be a number, got string')
runtime("measure: value is a table", "hp.measure { name = 'v', value = {} }", "hp.measure: value must be a number, string or boolean, got table")
runtime("measure: limits on a string", "hp.measure { name = 'v', value = 'x', max = 1 }", "value must be a number when numeric limits are given, got string")
runtime("serial.open: bad baud", "hp.serial.open('/dev/null', { baud = 12345.6 })",
  "bad argument #2 to 'hp.serial.open' (option 'baud' must be a whole number from 1 to 4000000, got 12345.6)")
runtime("serial.open: baud is a string", "hp.serial.open('/dev/null', { baud = '115200' })", "option 'baud' must be a whole number from 1 to 4000000, got \"115200\"")
runtime("serial.open: parity is bogus", "hp.serial.open('/dev/null', { parity = 'e' })", "option 'parity' must be one of none, even, odd, mark, space, got \"e\"")
runtime("serial.open: unknown option", "hp.serial.open('/dev/null', { bauds = 9600 })", "unknown option 'bauds' (known: baud, data_bits,")
runtime("serial.open: device is a number", "hp.serial.open(0)", "bad argument #1 to 'hp.serial.open' (the device must be a string, got 0)")
runtime("tcp.connect: port is a string", "hp.tcp.connect('127.0.0.1', 'http')", "bad argument #2 to 'hp.tcp.connect' (the port must be a whole number from 1 to 65535, got \"http\")")
runtime("tcp.connect: timeout is a string", "hp.tcp.connect('127.0.0.1', 1, { timeout = '1' })", "option 'timeout' must be a non-negative number of seconds, got \"1\"")

-- error objects of every kind
runtime("error with a table", "error({ code = 1 })", "(error object is a table value)")
runtime("error with nil", "error(nil)", "(error object is a nil value)")
runtime("error with a userdata with __tostring", "error(io.stdout)", "file (0x")
runtime("error with a userdata without __tostring", "error(require('hplua.json').null)", "(error object is a userdata value)")
runtime("error inside __tostring", "error(setmetatable({}, { __tostring = function() error('nested') end }))",
  "(error object is a table value; its __tostring failed: ")
runtime("stack overflow", "local function f() return 1 + f() end f()", "stack overflow")
runtime("os.exit in a test", "os.exit(3)", "os.exit(3) called from test code")

-- test code that overruns its timeout in ways that once slipped past the guard
local function timed(name, code, status, pieces)
  case(name, { files = { ["1_x.lua"] = HP .. "hp.test('bad', { timeout = 0.3 }, function()\n  " .. code ..
    "\nend)\nhp.test('next', function() end)\n" }, status = status, expect = pieces })
end
timed("an error object whose __tostring loops", "error(setmetatable({}, { __tostring = function() while true do end end }))",
  1, { "timeout after 0.3 s", "1 passed, 1 failed" })
timed("a __close that loops", "local x <close> = setmetatable({}, { __close = function() while true do end end })",
  1, { "./1_x.lua:3: timeout after 0.3 s", "1 passed, 1 failed" })
timed("a load whose reader errors, then a loop", "assert(load(function() error('r') end) == nil) while true do end",
  1, { "./1_x.lua:3: timeout after 0.3 s", "1 passed, 1 failed" })
timed("a timeout swallowed in a coroutine", "coroutine.resume(coroutine.create(function() while true do end end))",
  1, { "timeout after 0.3 s", "1 passed, 1 failed" })
timed("a finalizer that loops", "setmetatable({}, { __gc = function() while true do end end }) collectgarbage()",
  2, { "./1_x.lua:3: timeout after 0.3 s; the test was stuck where no hook reaches", "0 passed, 1 failed, 1 skipped" })

case("error() in a fixture teardown", {
  files = { ["1_x.lua"] = HP .. "hp.fixture('f', function() return 1, function() error('teardown broke') end end)\n" ..
    "hp.test('uses', function() hp.use('f') end)\n" },
  status = 1, expect = { "./1_x.lua:2: teardown of fixture \"f\" failed: teardown broke", "1 passed, 0 failed, 0 skipped, 1 error" } })
case("memory bomb under --max-memory", {
  files = { ["1_x.lua"] = HP .. "hp.test('bomb', function()\n  local t = {}\n  for i = 1, 1e9 do t[i] = string.rep('x', 1000) .. i end\nend)\n" ..
    "hp.test('next', function() hp.expect(#string.rep('y', 1000)).to_equal(1000) end)\n" },
  args = { "--max-memory", "64", "." },
  status = 1, expect = { "out of memory: the Lua heap would exceed --max-memory 64 MB", "1 passed, 1 failed" } })

-- command line
case("bad --answers JSON", { files = { ["a.json"] = "{ \"x\": ", ["1_x.lua"] = HP }, args = { "--answers", "a.json", "." },
  status = 4, expect = "--answers a.json: invalid JSON at line 1" })
case("--answers not an object", { files = { ["a.json"] = "[1, 2]", ["1_x.lua"] = HP }, args = { "--answers", "a.json", "." },
  status = 4, expect = "a JSON object (dialog id -> answer) is needed" })
case("unknown option", { args = { "--frobnicate" }, status = 4, expect = "hplua: error: unknown option '--frobnicate'" })
case("missing path", { args = { "no/such/dir" }, status = 4, expect = "hplua: error: path not found: no/such/dir" })
case("--slots 0", { args = { "--slots", "0", "." }, status = 4, expect = "--slots needs a whole number from 1 to 64, got '0'" })
case("--slots many", { args = { "--slots=lots", "." }, status = 4, expect = "--slots needs a whole number from 1 to 64, got 'lots'" })
case("--slots with a missing path", { args = { "--slots", "2", "no/such/dir" }, status = 4,
  expect = "hplua: error: path not found: no/such/dir" })
case("more serials than slots", { args = { "--slots", "2", "--serial", "A", "--serial", "B", "--serial", "C", "." },
  status = 4, expect = "--serial given 3 times for 2 slots (one serial per slot)" })
case("--tap with --slots", { args = { "--slots", "2", "--tap", "." }, status = 4, expect = "--tap cannot be used with --slots" })
case("unknown report placeholder", { files = { ["1_x.lua"] = HP }, args = { "--json", "r-{slto}.json", "." }, status = 4,
  expect = "--json: unknown placeholder {slto} in r-{slto}.json" })
runtime("hp.lock: fn is not a function", "hp.lock('dmm', 42)", "hp.lock: fn must be a function, got number")
runtime("hp.barrier: name is a number", "hp.barrier(7)", "hp.barrier: name must be a non-empty string, got number")
case("bad --timeout", { args = { "--timeout", "soon", "." }, status = 4, expect = "--timeout needs a positive number of seconds, got 'soon'" })
case("bad --max-memory", { args = { "--max-memory", "-1", "." }, status = 4, expect = "--max-memory needs a positive number of megabytes" })
case("report in a folder that does not exist", { files = { ["1_x.lua"] = HP .. "hp.test('ok', function() end)\n" },
  args = { "--json", "no/such/dir/report.json", "." }, status = 4,
  expect = "hplua: error: --json no/such/dir/report.json: its folder does not exist", reject = { "PASSED", "passed" } })
case("--junit in a folder that does not exist", { files = { ["1_x.lua"] = HP .. "hp.test('ok', function() print('RAN') end)\n" },
  args = { "--junit", "/nonexistent/x.xml", "." }, status = 4,
  expect = "hplua: error: --junit /nonexistent/x.xml: its folder does not exist", reject = { "RAN" } })
case("--json is a folder", { files = { ["out"] = true, ["1_x.lua"] = HP .. "hp.test('ok', function() print('RAN') end)\n" },
  args = { "--json", "out", "." }, status = 4, expect = "hplua: error: --json out: it is a folder", reject = { "RAN" } })
case("--json in a folder hplua cannot write", { skip = is_root and "root writes every folder",
  files = { ["ro"] = true, ["1_x.lua"] = HP .. "hp.test('ok', function() print('RAN') end)\n" },
  prepare = function(dir) os.execute("chmod 555 '" .. dir .. "/ro'") end,
  args = { "--json", "ro/r.json", "." }, status = 4, expect = "hplua: error: --json ro/r.json: Permission denied", reject = { "RAN" } })
for _, v in ipairs { "1e308", "1e999", "0x7fffffffffffffff", "nan", "inf" } do
  case("--max-memory " .. v, { args = { "--max-memory", v, "." }, status = 4, expect = "hplua: error: --max-memory" })
end

-- the tree and the test code
case("a symbolic link loop in the test tree", { files = { ["sub"] = true, ["sub/1_t.lua"] = HP .. "hp.test('t', function() end)\n",
  ["sub/self"] = { link = "." }, ["sub/up"] = { link = ".." }, ["sub/z"] = { link = "../sub" } },
  status = 0, expect = "1 passed", reject = { "self/", "up/" } })
case("a table shared many times as an artifact", { files = { ["1_x.lua"] = HP ..
  "hp.test('dag', function()\n  local t = { 'x' }\n  for _ = 1, 22 do t = { t, t } end\n  hp.artifact('dag', t)\nend)\n" ..
  "hp.test('next', function() end)\n" },
  status = 1, expect = { "./1_x.lua:5: hp.artifact: not JSON-able: too large: expands to more than 256 MB", "1 passed, 1 failed" } })
case("warn() as in plain Lua", { files = { ["1_x.lua"] = HP .. "hp.test('w', function()\n  warn('hidden-1')\n" ..
  "  warn('@on')\n  warn('shown ', 'in ', 'parts')\n  warn('@off')\n  warn('hidden-2')\nend)\n" },
  status = 0, expect = { "Lua warning: shown in parts\n", "1 passed" }, reject = { "hidden" } })
case("require = nil in a test", { files = { ["1_x.lua"] = HP .. "hp.test('a', function() require = nil end)\n" ..
  "hp.test('b', function() hp.measure { name = 'm', value = 1 } end)\n" },
  args = { "--junit", "r.xml", "--json", "r.json", "." }, status = 0, expect = "2 passed", reject = { "internal error" } })
case("require = nil and package = nil in a script", { args = { "-e", "require = nil package = nil" }, status = 0,
  reject = { "internal error" } })
case("--exec sets arg like lua.c", { files = { ["s.lua"] = "print('ARG', arg[-1] == require('hplua.sys').exepath(), arg[0], arg[1], ...)\n" },
  args = { "--exec", "s.lua", "x" }, status = 0, expect = "ARG\ttrue\ts.lua\tx\tx" })
case("bad --color", { args = { "--color", "rainbow" }, status = 4, expect = "--color must be auto, always or never" })

hp.after_all(function() os.execute("rm -rf '" .. root .. "'") end)
