local hp = require "hplua"
local util = require "_util"  -- helpers beside the tests: _util.lua

hp.test("adds numbers", function()
  hp.expect(util.add(2, 3)).to_equal(5)
end)

hp.test("board is powered", function(t)
  local board = hp.use("board")
  hp.set_message("testing board " .. board.serial)
  hp.expect(board.powered).to_be_truthy()
end)

hp.test("supply voltage", function()
  hp.measure { name = "vcc", value = 3.31, unit = "V", min = 3.2, max = 3.4 }
end)
