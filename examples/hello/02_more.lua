local hp = require "hplua"

hp.test("a failing check", function()
  local reading = { volts = 4.9, ok = true }
  hp.expect(reading).to_equal { volts = 5.0, ok = true }
end)

hp.test("not on this stand", { skip = "needs the RF shield" }, function() end)

hp.test("depends on the failing check", { depends = "a failing check" }, function() end)
