-- The sandbox of test code (host/lsandbox.c): binary chunks refused by load,
-- loadfile, dofile and require; everything else exactly as in plain Lua, compared
-- side by side with the stand-alone lua5.4.
local hp = require "hplua"
local sys = require "hplua.sys"

local REFUSED = "binary chunks are refused in test code: unverified bytecode can crash the Lua VM"
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$")
if here:sub(1, 1) ~= "/" then
  local p = io.popen("pwd")
  here = p:read("l") .. "/" .. here
  p:close()
end
local n = 0

local function run(argv, cwd)
  n = n + 1
  local r = hp.process.start("sandbox-" .. n, argv, { cwd = cwd, stderr = "stdout" }):wait(60)
  return r.stdout, r.exit_code
end

describe("hplua.sandbox", function()
  local dir
  setup(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir))
    local function write(name, s)
      local f = assert(io.open(dir .. "/" .. name, "wb"))
      f:write(s)
      f:close()
    end
    write("hash.lua", "#!/usr/bin/lua\nreturn 1, 2\n")
    write("bad.lua", "local x = = 1\n")
    write("mod.lua", "return 'mod', ...\n")
    write("dumped.lua", string.dump(function() return 7 end))
    write("hashdump.lua", "#!x\n" .. string.dump(function() return 8 end))
    local d = string.dump(function() return 9 end)
    write("corrupt.lua", d:sub(1, 20) .. string.rep("\255", 64) .. d:sub(85))
  end)
  teardown(function() os.execute("rm -rf '" .. dir .. "'") end)

  it("behaves like lua5.4 for text chunks and bad arguments", function()
    local plain = run({ "lua5.4", here .. "/sandbox/compare.lua" }, dir)
    local ours = run({ sys.exepath(), "-e", string.format(
      "require('hplua.sandbox').install() arg = nil dofile(%q)", here .. "/sandbox/compare.lua") }, dir)
    local function normal(s)
      s = s:gsub("0x%x+", "ADDR"):gsub("\n\tno file '[^'\n]*/lib/hplua/[^'\n]*'", "") -- hplua's module folder
      return (s:gsub("[^\n]*/compare%.lua:", "compare.lua:"))
    end
    assert.are.equal(normal(plain), normal(ours))
    assert.matches("bad argument #1 to 'load'", ours)
  end)

  it("refuses binary chunks everywhere, with the reason", function()
    local out, code = run({ sys.exepath(), "-e", [[
      require('hplua.sandbox').install()
      local d = string.dump(function() return 1 end)
      print(select(2, load(d)))
      print(select(2, load(d, "x", "b")))
      local i = 0
      print(select(2, load(function() i = i + 1 if i == 1 then return d end end)))
      print(select(2, loadfile("dumped.lua")))
      print(select(2, loadfile("hashdump.lua")))
      print(select(2, loadfile("corrupt.lua")))
      print(select(2, pcall(dofile, "dumped.lua")))
      package.path = "./?.lua"
      print(select(2, pcall(require, "dumped")))
    ]] }, dir)
    assert.are.equal(0, code)
    assert.are.equal(string.rep(REFUSED .. "\n", 7) .. "error loading module 'dumped' from file './dumped.lua':\n\t" .. REFUSED .. "\n", out)
  end)

  it("is not installed for hplua -e: plain Lua loads bytecode there", function()
    local out, code = run({ sys.exepath(), "-e", "print(load(string.dump(function() return 'ran' end))())" }, dir)
    assert.are.equal(0, code)
    assert.are.equal("ran\n", out)
  end)
end)
