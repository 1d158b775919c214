-- The same checks as 01_rails.lua through the driver written in Lua (_scpi.lua).
local hp = require "hplua"

hp.test("identifies itself", function()
  local dev = hp.use("dmm_lua")
  hp.expect(assert(dev:query("*IDN?"))).to_match("^HPLUA,SIM%-DMM,")
end)

local function rail(name, min, max)
  return function()
    local dev = hp.use("dmm_lua")
    local volts = tonumber(assert(dev:query("MEAS:VOLT:DC?")))
    hp.measure { name = name, value = volts, unit = "V", min = min, max = max }
  end
end

hp.test("3V3 rail", rail("3v3", 3.2, 3.4))
hp.test("5V rail", rail("5v", 4.9, 5.1))

hp.test("5V rail through the driver's measure", function()
  local dev = hp.use("dmm_lua")
  assert(dev:write("CONF:VOLT 5.01"))
  local volts, ok = assert(dev:measure("5v (lua driver)", "MEAS:VOLT:DC?", 4.9, 5.1, "V"))
  hp.expect(ok).to_be(true)
  hp.expect(volts).to_equal(5.01)
end)

hp.test("instrument error queue", function()
  local dev = hp.use("dmm_lua")
  assert(dev:write("FOO:BAR"))
  hp.expect(dev:query("SYST:ERR?")).to_equal('-113,"Undefined header"')
  hp.expect(dev:query("SYST:ERR?")).to_equal('+0,"No error"')
end)

hp.test("a silent instrument times out", function()
  local dev = hp.use("dmm_lua")
  assert(dev:write("SIM:SILENT")) -- this simulator answers nothing from now on
  local t0 = hp.clock()
  local reply, err, code = dev:query("*IDN?", 0.3)
  hp.expect(reply).to_be_nil()
  hp.expect(code).to_equal("timeout")
  hp.expect(err).to_contain("no complete line within 0.3 s")
  hp.expect(hp.clock() - t0).to_be_less_than(2)
end)
