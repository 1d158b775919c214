-- Runs load, loadfile, dofile and require on text chunks and bad arguments; the
-- output must be the same under lua5.4 and under hplua's sandbox (sandbox_spec).
-- Run from a folder holding hash.lua, bad.lua and mod.lua (written by the spec).
local function show(...)
  local t = table.pack(...)
  for i = 1, t.n do t[i] = tostring(t[i]) end
  print(table.concat(t, " | "))
end
local function try(f) show(pcall(f)) end
try(function() return load("return 1+1")() end)
try(function() return load("x = = 1") end)
try(function() return load(42) end)
try(function() load(nil) end)
try(function() return load(function() return nil end) ~= nil end)
try(function() local parts = { "return ", "1", "+2" } local i = 0 return load(function() i = i + 1 return parts[i] end)() end)
try(function() local i = 0 return load(function() i = i + 1 if i == 1 then return "" end return "return 1" end) ~= nil end)
try(function() return load("return x", "=name", "t", { x = 5 })() end)
try(function() return load("return x", "n", "t", nil)() end)
try(function() return load("return ...", "=(dots)")(1, 2) end)
try(function() return load("return 1", "n", "b") end)
try(function() return load(function() return {} end) end)
try(function() return load(function() error("reader broke") end) end)
try(function() return load("return 1", "n", "q") end)
try(function() return load("", "e") ~= nil end)
try(function() return load("\239\187\191return 1") end)
try(function() return loadfile("nonexistent.lua") end)
try(function() return loadfile("hash.lua")() end)
try(function() return loadfile("bad.lua") end)
try(function() return loadfile("hash.lua", "b") end)
try(function() return loadfile("hash.lua", "t", { })() end)
try(function() return loadfile(42, 43) end)
try(function() return loadfile({}) end)
try(function() return dofile("nonexistent.lua") end)
try(function() return dofile("hash.lua") end)
try(function() return dofile("bad.lua") end)
try(function() return dofile({}) end)
package.path = "./?.lua;./?/x.lua"
try(function() return require("mod") end)
try(function() return require("nonexistent") end)
try(function() return require("bad") end)
try(function() return require("a.b") end)
package.path = {}
try(function() return require("zzz") end)
package.path = "./?.lua"
print(select(2, pcall(load, 42)))
print(select(2, pcall(loadfile, 42, {})))
print(select(2, pcall(dofile, {})))
