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
  end)
end

local HP = 'local hp = require "hplua"\n'

-- loading
case("syntax error", { files = { ["1_x.lua"] = HP .. "hp.test('a', function()\n  local = 1\nend)\n" },
  status = 2, expect = "./1_x.lua:3: <name> expected near '='" })
case("error while loading", { files = { ["1_x.lua"] = HP .. "local cfg\nprint(cfg.port)\n" },
  status = 2, expect = "./1_x.lua:3: error while loading: attempt to index a nil value (local 'cfg')" })
case("binary garbage", { files = { ["1_x.lua"] = "\0\1\2\3\255\254garbage\200\n\0" }, status = 2, expect = "./1_x.lua:1:" })
case("precompiled chunk refused", { files = { ["1_x.lua"] = string.dump(function() return 1 end) },
  status = 2, expect = "attempt to load a binary chunk (mode is 't')" })
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
case("bad --timeout", { args = { "--timeout", "soon", "." }, status = 4, expect = "--timeout needs a positive number of seconds, got 'soon'" })
case("bad --max-memory", { args = { "--max-memory", "-1", "." }, status = 4, expect = "--max-memory needs a positive number of megabytes" })
case("report in a folder that does not exist", { files = { ["1_x.lua"] = HP .. "hp.test('ok', function() end)\n" },
  args = { "--json", "no/such/dir/report.json", "." }, status = 1,
  expect = { "1 passed, 0 failed", "hplua: error: cannot write no/such/dir/report.json: No such file or directory" } })
case("bad --color", { args = { "--color", "rainbow" }, status = 4, expect = "--color must be auto, always or never" })

hp.after_all(function() os.execute("rm -rf '" .. root .. "'") end)
