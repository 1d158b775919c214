-- hplua.init: `hplua init [DIR]` writes a starter suite that runs green at once: a
-- suite.lua with a fixture, two test files against a simulated instrument, a
-- limits file, answers for its one operator dialog, and editor support.
local sys = require "hplua.sys"

local M = {}

local FILES = {
  { "suite.lua", [[
-- Loaded before the test files of this folder: fixtures and hooks live here.
local hp = require "hplua"
local dmm = require "_dmm"

hp.set_stand { name = "starter", location = "bench" }

-- A fixture: created on first hp.use, torn down at the end of the run.
hp.fixture("supply", function()
  local supply = dmm.open_supply(5.0)
  return supply, function() supply:off() end
end)
]] },
  { "_dmm.lua", [[
-- A simulated instrument (files starting with _ are helpers, not tests): swap it for
-- hp.serial / hp.tcp or a C module when the real bench is there (docs/instruments.md).
local M = {}

local RAILS = { ["3v3"] = 3.302, ["5v"] = 5.01, ["1v8"] = 1.799 }

function M.open_supply(volts)
  return { volts = volts, on = true, off = function(self) self.on = false end }
end

function M.read_voltage(rail)
  return assert(RAILS[rail], "no rail " .. tostring(rail))
end

return M
]] },
  { "01_power.lua", [[
local hp = require "hplua"
local dmm = require "_dmm"

hp.module { name = "Power rails", critical = true }

hp.test("supply is on", function()
  local supply = hp.use("supply")
  hp.expect(supply.on).to_be(true)
end)

-- Limits for these measurements come from limits.json (hplua --limits limits.json).
for _, rail in ipairs { "3v3", "5v", "1v8" } do
  hp.test("rail " .. rail, { depends = "supply is on", timeout = 5 }, function()
    hp.measure { name = rail, value = dmm.read_voltage(rail) }
  end)
end
]] },
  { "02_firmware.lua", [[
local hp = require "hplua"

hp.test("flash", { attempts = 3, timeout = 30 }, function(t)
  hp.set_message("attempt " .. t.attempt)
  -- a real line runs its flasher here; `sh -c` stands in for it
  local res = hp.process.start("flash", { "sh", "-c", "echo flashing; sleep 0.1; echo done" }):wait(10)
  hp.expect(res.exit_code).to_equal(0)
  hp.measure { name = "flash output", value = res.stdout, match = "done" }
end)

hp.test("LED check", { depends = "flash" }, function()
  -- answered by the operator on a terminal, from answers.json, or in the station's panel
  local ok = hp.dialog { id = "led", kind = "confirm", title = "LED", text = "Is the status LED green?" }
  hp.expect(ok).to_be(true)
end)
]] },
  { "limits.json", [[
{
  "3v3": { "nominal": 3.3, "tolerance_pct": 3, "unit": "V" },
  "5v": { "min": 4.75, "max": 5.25, "marginal_max": 5.2, "unit": "V" },
  "1v8": { "min": 1.71, "max": 1.89, "unit": "V" }
}
]] },
  { "station.lua", [[
-- The station's settings: `hplua serve .` in this folder (or `hplua serve DIR`) opens
-- the operator panel at http://127.0.0.1:8642/ and tests one DUT after another.
-- Every `hplua serve` option has a key here; options on the command line win.
return {
  path = ".",              -- the suite: this folder (station.lua itself is not a test)
  limits = "limits.json",  -- relative paths are relative to this file
  stand = { name = "starter", location = "bench" },
  serial_pattern = "^[%w%-]+$",
  -- slots = 4,            -- DUTs side by side
  -- upload = "postgresql://hplua@factory-db/hplua",   -- the factory's central database
}
]] },
  { "answers.json", [[
{ "led": true }
]] },
  { "README.md", [[
# A starter hplua suite

    hplua --limits limits.json --answers answers.json .     # run it (green)
    hplua --list .                                          # the tests, in run order
    hplua serve .                                           # the operator panel (station.lua)

Files run in natural order; `suite.lua` first; files starting with `_` are helpers.
`_dmm.lua` simulates an instrument: replace it with `hp.serial`, `hp.tcp` or a C module.
]] },
}

local function meta_dir()
  local exe = sys.exepath() or ""
  local candidates = {}
  local src = os.getenv("HPLUA_SRC")
  if src and src ~= "" then candidates[#candidates + 1] = src .. "/meta" end
  local bin = exe:match("^(.*)/[^/]*$") or "."
  candidates[#candidates + 1] = bin .. "/../share/hplua/meta"
  candidates[#candidates + 1] = bin .. "/../meta"
  for _, c in ipairs(candidates) do
    if sys.kind(c .. "/hplua.lua") == "file" then return sys.realpath(c) or c end
  end
end

-- Returns an exit status.
function M.main(args)
  if #args > 1 or (args[1] and args[1]:sub(1, 1) == "-") then
    io.stderr:write("usage: hplua init [DIR]   (writes a starter suite into DIR, default: tests)\n")
    return 4
  end
  local dir = args[1] or "tests"
  local kind = sys.kind(dir)
  if kind and kind ~= "dir" then
    io.stderr:write("hplua: error: init: " .. dir .. " exists and is not a folder\n")
    return 4
  end
  local fs = require "hplua.fs"
  local ok, err = fs.mkdir(dir)
  if not ok then
    io.stderr:write("hplua: error: init: " .. err .. "\n")
    return 4
  end
  local files = { table.unpack(FILES) }
  local meta = meta_dir()
  files[#files + 1] = { ".luarc.json", string.format('{\n  "runtime.version": "Lua 5.4",\n  "workspace.library": [%s]\n}\n',
    meta and ('"' .. meta .. '"') or "") }
  for _, f in ipairs(files) do
    if sys.kind(dir .. "/" .. f[1]) then
      io.stderr:write("hplua: error: init: " .. dir .. "/" .. f[1] .. " exists; nothing was written\n")
      return 4
    end
  end
  for _, f in ipairs(files) do
    local out, werr = io.open(dir .. "/" .. f[1], "w")
    if not out then
      io.stderr:write("hplua: error: init: " .. werr .. "\n")
      return 4
    end
    out:write(f[2])
    out:close()
  end
  io.stdout:write(string.format("wrote a starter suite in %s/ (%d files); run it with:\n  hplua --limits %s/limits.json --answers %s/answers.json %s\n"
    .. "or as a station with an operator panel (settings in %s/station.lua):\n  hplua serve %s\n",
    dir, #files, dir, dir, dir, dir, dir))
  return 0
end

return M
