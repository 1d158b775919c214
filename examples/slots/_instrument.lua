-- A simulated shared instrument: one bench DMM wired through a relay matrix to all
-- four sockets. It takes one connection at a time: a second user while it is busy
-- is a wiring fault (the measurement would be wrong), so it raises.
local hp = require "hplua"

local M = {}
local BUSY = "/tmp/hplua-example-slots-dmm.busy"

-- Measures the supply rail of the DUT in `socket`; takes about 0.2 s.
function M.measure_rail(socket)
  local f = io.open(BUSY, "r")
  if f then
    local who, since = f:read("n", "n")
    f:close()
    -- a connection older than a second is a leftover of a killed run, not a user
    if since and hp.clock() - since < 1 then
      error("the DMM is already connected to socket " .. tostring(who) .. " (use hp.lock)", 2)
    end
  end
  f = assert(io.open(BUSY, "w"))
  f:write(socket, " ", hp.clock(), "\n")
  f:close()
  hp.sleep(0.2) -- relays switch, the DMM settles
  os.remove(BUSY)
  return 3.30 + socket * 0.004 -- each socket reads a little differently
end

return M
