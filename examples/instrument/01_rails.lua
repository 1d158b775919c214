local hp = require "hplua"

hp.test("identifies itself", function()
  local dev = hp.use("dmm")
  hp.expect(assert(dev:query("*IDN?"))).to_match("^HPLUA,SIM%-DMM,")
end)

local function rail(name, min, max)
  return function()
    local dev = hp.use("dmm")
    local volts = tonumber(assert(dev:query("MEAS:VOLT:DC?")))
    hp.measure { name = name, value = volts, unit = "V", min = min, max = max }
  end
end

hp.test("3V3 rail", rail("3v3", 3.2, 3.4))
hp.test("5V rail", rail("5v", 4.9, 5.1))
hp.test("12V rail (out of limits on purpose)", rail("12v", 11.4, 12.6))

hp.test("5V rail through the driver's measure", function()
  local dev = hp.use("dmm")
  assert(dev:write("CONF:VOLT 5.01"))
  local volts, ok = assert(dev:measure("5v (driver)", "MEAS:VOLT:DC?", 4.9, 5.1, "V"))
  hp.expect(ok).to_be(true)
  hp.expect(volts).to_equal(5.01)
end)

hp.test("instrument error queue", function()
  local dev = hp.use("dmm")
  assert(dev:write("FOO:BAR"))
  hp.expect(dev:query("SYST:ERR?")).to_equal('-113,"Undefined header"')
  hp.expect(dev:query("SYST:ERR?")).to_equal('+0,"No error"')
end)
