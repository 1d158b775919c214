local hp = require "hplua"
hp.module { name = "Firmware" }

hp.test("flash", function()
  -- the "flasher" is a child process, as a real one would be
  local p = hp.process.lua("flasher", [[
    local hp = require "hplua"
    for block = 1, 8 do
      print(string.format("writing block %d/8", block))
      io.stdout:flush()
      hp.sleep(0.15)
    end
    print("verify ok")
  ]], { on_line = function(line) hp.set_message(line, "flash") end })
  local r = p:wait(30)
  hp.expect(r.exit_code).to_equal(0)
end)

hp.test("version", { depends = { "flash" } }, function()
  hp.measure { name = "fw_version", value = "1.4.2", expect = "1.4.2" }
end)
