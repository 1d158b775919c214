-- Four sockets side by side (`hplua --slots 4 examples/slots`): each slot tests one
-- board; the DMM is shared (hp.lock), the chamber takes the whole batch (hp.barrier).
local hp = require "hplua"
local dmm = require "_instrument"
local socket = hp.run.slot or 1 -- a plain run (no --slots) tests one board

hp.test("power on", function()
  hp.set_message("socket " .. socket .. ", serial " .. tostring(hp.run.serial))
  hp.sleep(0.1 * socket) -- boards boot at their own pace
end)

hp.test("supply rail on the shared DMM", function()
  local volts = hp.lock("dmm", function() return dmm.measure_rail(socket) end)
  hp.measure { name = "3v3", value = volts, unit = "V", min = 3.25, max = 3.35 }
end)

hp.test("thermal soak in the chamber", function()
  local n = hp.barrier("chamber door closed") -- every running slot is in
  hp.set_message(n .. " boards in the chamber")
  hp.sleep(0.3)
  hp.barrier("chamber door open")
end)
