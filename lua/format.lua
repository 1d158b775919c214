-- hplua.format: how values and measurements read in the console, TAP and JUnit.
local M = {}

function M.value(v)
  if type(v) == "number" then
    if math.type(v) == "integer" then return tostring(v) end
    return string.format("%.6g", v)
  end
  return tostring(v)
end

-- "vcc = 3.31 V [3.2, 3.4] ok"
function M.measurement(m)
  local fmt_value = M.value
  local limits = {}
  if m.min ~= nil or m.max ~= nil then
    limits[#limits + 1] = string.format("[%s, %s]", m.min ~= nil and fmt_value(m.min) or "-inf", m.max ~= nil and fmt_value(m.max) or "inf")
  end
  if m.expect ~= nil then limits[#limits + 1] = "expect " .. fmt_value(m.expect) end
  return string.format("%s = %s%s%s %s", m.name, fmt_value(m.value), m.unit and (" " .. m.unit) or "",
    #limits > 0 and (" " .. table.concat(limits, " ")) or "", m.passed and "ok" or "OUT OF LIMITS")
end

return M
