-- A simulated DUT: readings derived from the serial, so every board is repeatable.
local hp = require "hplua"

local M = {}

local serial = hp.run.serial or "DEMO-0000"
local n = tonumber(serial:match("(%d+)$") or "0")
local seed = n * 7919 % 1000

-- A reading around `nominal`, spread by the board's "process variation".
function M.read(channel, nominal, spread)
  local k = 0
  for c in channel:gmatch(".") do k = k + c:byte() end
  local x = ((seed * 31 + k * 17) % 1000) / 1000 - 0.5
  return nominal + x * spread
end

M.serial = serial
M.bad_rail = serial:match("9$") ~= nil

return M
