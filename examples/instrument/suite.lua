-- The multimeter fixtures: each starts a simulator and connects a driver to it,
-- the C module (dmm.c) or the plain Lua one (_scpi.lua over hp.tcp), and records
-- the instrument in the report.
local hp = require "hplua"
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."

-- Starts a simulator; returns its handle and port.
local function start_sim(name)
  local port
  local sim = hp.process.start(name, { os.getenv("DMM_SIM") or (here .. "/sim"), "--values", "3.301,4.95,12.61" },
    { on_line = function(line) port = port or tonumber(line:match("^LISTENING (%d+)$")) end })
  local deadline = hp.clock() + 5
  while not port do
    if not sim:alive() then error("the simulator exited: " .. sim:collect().stderr) end
    if hp.clock() > deadline then error("the simulator did not start listening") end
    hp.sleep(0.01)
  end
  return sim, port
end

local function identify(dev, name, port)
  local idn = assert(dev:query("*IDN?"))
  local vendor, model, serial, fw = idn:match("^([^,]*),([^,]*),([^,]*),([^,]*)$")
  hp.set_instrument { name = name, vendor = vendor, model = model, serial = serial, firmware = fw,
    address = "127.0.0.1:" .. port }
end

hp.fixture("dmm", function()
  local dmm = require "dmm"
  local sim, port = start_sim("dmm-sim")
  local dev = assert(dmm.open("127.0.0.1", port, { timeout = 2 }))
  identify(dev, "dmm", port)
  return dev, function()
    dev:close()
    sim:terminate(1)
  end
end)

hp.fixture("dmm_lua", function()
  local scpi = require "_scpi"
  local sim, port = start_sim("dmm-sim-lua")
  local dev = assert(scpi.open("127.0.0.1", port, { timeout = 2 }))
  identify(dev, "dmm (lua driver)", port)
  return dev, function()
    dev:close()
    sim:terminate(1)
  end
end)
