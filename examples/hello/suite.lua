-- Loaded before the test files of this folder: fixtures and hooks live here.
local hp = require "hplua"

hp.fixture("board", function()
  local board = { serial = "SN-0001", powered = true }
  hp.set_dut { serial = board.serial, part_number = "HELLO-1" }
  return board, function() board.powered = false end
end)
