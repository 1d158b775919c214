-- scpi: the dmm driver again, in plain Lua over hp.tcp (dmm.c is the C version).
-- Every wait is in hplua's event loop, as with hplua_wait_fd in C: a slow or
-- silent instrument never freezes the run, child output keeps flowing, and the
-- test's timeout and Ctrl-C still work.
--
--   local scpi = require "_scpi"
--   local dev <close> = assert(scpi.open("192.0.2.10", 5025, { timeout = 2 }))
--   local volts = tonumber(assert(dev:query("MEAS:VOLT:DC?")))
--   dev:measure("vcc", "MEAS:VOLT:DC?", 3.2, 3.4, "V")   -- recorded on the test
--
-- Instrument problems (refused, timed out, closed) return nil, message, code;
-- misuse (a command with a newline, a closed connection) raises.
local hp = require "hplua"

local M = {}
local Device = {}
Device.__index = Device

-- open(host, port, [{ timeout = seconds }]) -> device | nil, message, code
function M.open(host, port, opts)
  local conn, err, code = hp.tcp.connect(host, port, { timeout = opts and opts.timeout or 5 })
  if not conn then return nil, "scpi: " .. err, code end
  return setmetatable({ conn = conn, address = host .. ":" .. port }, Device)
end

-- dev:write(cmd) -> true | nil, message, code
function Device:write(cmd)
  if type(cmd) ~= "string" or cmd:find("\n", 1, true) then
    error("scpi: one SCPI command without a newline expected", 2)
  end
  return self.conn:write(cmd .. "\n")
end

-- dev:query(cmd, [timeout]) -> reply line | nil, message, code
function Device:query(cmd, timeout)
  local ok, err, code = self:write(cmd)
  if not ok then return nil, err, code end
  return self.conn:read_line(timeout)
end

-- dev:measure(name, query, [min, max, [unit]]) -> value, within_limits | nil, message, code
function Device:measure(name, query, min, max, unit)
  local reply, err, code = self:query(query)
  if not reply then return nil, err, code end
  local value = tonumber(reply)
  if not value then return nil, string.format("scpi: reply to %s is not a number: %s", query, reply), "EPROTO" end
  return value, hp.measure { name = name, value = value, unit = unit, min = min, max = max }
end

function Device:close() self.conn:close() end
Device.__close = Device.close

function Device:__tostring() return "scpi " .. self.address end

return M
