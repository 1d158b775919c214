local hp = require "hplua"
local dut = require "_dut"
hp.module { name = "Power rails", critical = true }

hp.test("supply current", function()
  hp.set_dut { serial = dut.serial, part_number = "DEMO-BOARD-A" }
  hp.set_message("powering the board at 12 V")
  hp.sleep(0.4)
  hp.measure { name = "i_in", value = dut.read("i_in", 0.085, 0.02), unit = "A", max = 0.15 }
end)

hp.test("3.3 V rail", function()
  hp.set_message("measuring the 3.3 V rail")
  hp.sleep(0.3)
  local v = dut.bad_rail and 3.02 or dut.read("v33", 3.30, 0.08)
  hp.measure { name = "v33", value = v, unit = "V", min = 3.20, max = 3.40 }
end)

hp.test("1.8 V rail", function()
  hp.sleep(0.3)
  hp.measure { name = "v18", value = dut.read("v18", 1.80, 0.05), unit = "V", min = 1.71, max = 1.89 }
end)
