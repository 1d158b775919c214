-- The multimeter fixture: starts the simulator, connects the dmm driver (a C
-- module beside these files) and records the instrument in the report.
local hp = require "hplua"
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."

hp.fixture("dmm", function()
  local dmm = require "dmm"
  local port
  local sim = hp.process.start("dmm-sim", { os.getenv("DMM_SIM") or (here .. "/sim"), "--values", "3.301,4.95,12.61" },
    { on_line = function(line) port = port or tonumber(line:match("^LISTENING (%d+)$")) end })
  local deadline = hp.clock() + 5
  while not port do
    if not sim:alive() then error("the simulator exited: " .. sim:collect().stderr) end
    if hp.clock() > deadline then error("the simulator did not start listening") end
    hp.sleep(0.01)
  end
  local dev = assert(dmm.open("127.0.0.1", port, { timeout = 2 }))
  local idn = assert(dev:query("*IDN?"))
  local vendor, model, serial, fw = idn:match("^([^,]*),([^,]*),([^,]*),([^,]*)$")
  hp.set_instrument { name = "dmm", vendor = vendor, model = model, serial = serial, firmware = fw,
    address = "127.0.0.1:" .. port }
  return dev, function()
    dev:close()
    sim:terminate(1)
  end
end)
