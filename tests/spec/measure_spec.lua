local measure = require "hplua.measure"
local format = require "hplua.format"

local function status(s, v) return measure.evaluate(s, v) end

describe("hp.measure limits", function()
  it("the quick path (min/max/marginal) agrees with check + evaluate, or declines", function()
    local picks = { nil, -math.huge, -1, 0, 0.5, 1, 2, math.huge, 0 / 0, "1", true }
    math.randomseed(42)
    local function pick() return picks[math.random(#picks)] end
    local agreed, declined = 0, 0
    for _ = 1, 20000 do
      local s = { min = pick(), max = pick(), marginal_min = pick(), marginal_max = pick() }
      if math.random(5) == 1 then s.gt = 0 end
      local v = pick()
      local quick = measure.quick(s, v)
      if quick == nil then
        declined = declined + 1
      else
        local problem, stated = measure.check(s)
        assert.is_nil(problem)
        assert.is_true(stated)
        assert.equal(measure.evaluate(s, v), quick)
        agreed = agreed + 1
      end
    end
    assert.is_true(agreed > 100, "agreed " .. agreed)
    assert.is_true(declined > 500, "declined " .. declined)
  end)

  it("min/max are inclusive, gt/lt exclusive, exactly at the limit", function()
    assert.equal("passed", status({ min = 3.2, max = 3.4 }, 3.2))
    assert.equal("passed", status({ min = 3.2, max = 3.4 }, 3.4))
    assert.equal("failed", status({ min = 3.2, max = 3.4 }, 3.41))
    assert.equal("failed", status({ gt = 0 }, 0))
    assert.equal("passed", status({ gt = 0 }, 1e-9))
    assert.equal("failed", status({ lt = 5 }, 5))
    assert.equal("passed", status({ lt = 5 }, 4.999))
  end)

  it("nominal with an absolute or a relative tolerance", function()
    assert.equal("passed", status({ nominal = 3.3, tolerance = 0.1 }, 3.4))
    assert.equal("failed", status({ nominal = 3.3, tolerance = 0.1 }, 3.41))
    assert.equal("passed", status({ nominal = 100, tolerance_pct = 5 }, 105))
    assert.equal("failed", status({ nominal = 100, tolerance_pct = 5 }, 94.9))
    assert.equal("passed", status({ nominal = -10, tolerance_pct = 10 }, -11))
  end)

  it("expect compares numbers, strings and booleans; match takes a Lua pattern", function()
    assert.equal("passed", status({ expect = true }, true))
    assert.equal("failed", status({ expect = true }, false))
    assert.equal("passed", status({ expect = "OK" }, "OK"))
    assert.equal("failed", status({ expect = 3 }, 3.5))
    assert.equal("passed", status({ match = "^FW%d+%.%d+$" }, "FW1.2"))
    assert.equal("failed", status({ match = "^FW%d+%.%d+$" }, "fw1.2"))
  end)

  it("marginal: inside the limits but close still passes, as marginal", function()
    local s = { min = 3.2, max = 3.4, marginal_min = 3.22, marginal_max = 3.38 }
    assert.equal("marginal", status(s, 3.21))
    assert.equal("passed", status(s, 3.3))
    assert.equal("marginal", status(s, 3.39))
    assert.equal("failed", status(s, 3.5))
  end)

  it("NaN values fail; infinite limits are no limit", function()
    assert.equal("failed", status({ min = 0 }, 0 / 0))
    assert.equal("failed", status({}, 0 / 0))
    assert.equal("passed", status({ min = -math.huge, max = math.huge }, 1e308))
    assert.equal("passed", status({ max = math.huge }, math.huge))
    local rec = measure.record_limits({ min = -math.huge, max = 5 }, {})
    assert.is_nil(rec.min)
    assert.equal(5, rec.max)
  end)

  it("names contradictory and invalid limits", function()
    assert.matches("contradictory limits: nothing is >= 3.4 and <= 3.2", measure.check { min = 3.4, max = 3.2 })
    assert.matches("contradictory limits", measure.check { gt = 1, lt = 1 })
    assert.is_nil((measure.check { min = 1, max = 1 }))
    assert.matches("tolerance must not be negative", measure.check { nominal = 1, tolerance = -0.1 })
    assert.matches("min must not be NaN", measure.check { min = 0 / 0 })
    assert.matches("max must be a number, got string", measure.check { max = "5" })
    assert.matches("nominal needs tolerance", measure.check { nominal = 1 })
    assert.matches("match is not a valid Lua pattern", measure.check { match = "[a" })
    assert.matches("marginal_min 3.1 is below the lower limit 3.2",
      measure.check { min = 3.2, max = 3.4, marginal_min = 3.1 })
    local st, why = measure.evaluate({ max = 1 }, "x")
    assert.is_nil(st)
    assert.matches("value must be a number when numeric limits are given", why)
  end)

  it("prints limits as people write them", function()
    assert.equal("3.2 … 3.4 V", format.limits { min = 3.2, max = 3.4, unit = "V" })
    assert.equal("≤ 0.25", format.limits { max = 0.25 })
    assert.equal("≥ 1", format.limits { min = 1 })
    assert.equal("= true", format.limits { expect = true })
    assert.equal("3.3 V ± 5%", format.limits { nominal = 3.3, tolerance_pct = 5, unit = "V" })
    assert.equal("flag = false (= true) FAILED",
      format.measurement { name = "flag", value = false, expect = true, passed = false, status = "failed" })
    assert.equal("v = 3.21 V (3.2 … 3.4 V, marginal outside 3.22 … 3.38) MARGINAL", format.measurement {
      name = "v", value = 3.21, unit = "V", min = 3.2, max = 3.4, marginal_min = 3.22, marginal_max = 3.38,
      passed = true, status = "marginal" })
  end)

  it("keeps sys.atomic (a step a timeout waits for) to the host: test code is refused", function()
    local sys = require "hplua.sys"
    local ok, err = pcall(sys.atomic, function() end)
    assert.is_false(ok)
    assert.matches("private to the host", tostring(err), 1, true)
    ok, err = pcall(function() return sys.atomic(require("hplua").set_message, "x") end)
    assert.is_false(ok)
    assert.matches("private to the host", tostring(err), 1, true)
  end)
end)
