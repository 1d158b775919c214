-- hplua.format: how values and measurements read in the console, TAP and JUnit.
local M = {}

function M.value(v)
  if type(v) == "number" then
    if math.type(v) == "integer" then return tostring(v) end
    return string.format("%.6g", v)
  end
  return tostring(v)
end

-- Limits as people write them: "3.2 … 3.4 V", "≤ 0.25", "> 0", "3.3 V ± 0.1",
-- "= true", "~ ^OK".
function M.limits(m)
  local v, u = M.value, m.unit and (" " .. m.unit) or ""
  local parts = {}
  if m.min ~= nil and m.max ~= nil then
    parts[#parts + 1] = v(m.min) .. " … " .. v(m.max) .. u
  elseif m.min ~= nil then
    parts[#parts + 1] = "≥ " .. v(m.min) .. u
  elseif m.max ~= nil then
    parts[#parts + 1] = "≤ " .. v(m.max) .. u
  end
  if m.gt ~= nil then parts[#parts + 1] = "> " .. v(m.gt) .. u end
  if m.lt ~= nil then parts[#parts + 1] = "< " .. v(m.lt) .. u end
  if m.nominal ~= nil then
    parts[#parts + 1] = v(m.nominal) .. u .. " ± " .. (m.tolerance_pct and (v(m.tolerance_pct) .. "%") or v(m.tolerance))
  end
  if m.expect ~= nil then parts[#parts + 1] = "= " .. v(m.expect) end
  if m.match ~= nil then parts[#parts + 1] = "~ " .. m.match end
  if m.marginal_min ~= nil and m.marginal_max ~= nil then
    parts[#parts + 1] = "marginal outside " .. v(m.marginal_min) .. " … " .. v(m.marginal_max)
  elseif m.marginal_min ~= nil then
    parts[#parts + 1] = "marginal below " .. v(m.marginal_min)
  elseif m.marginal_max ~= nil then
    parts[#parts + 1] = "marginal above " .. v(m.marginal_max)
  end
  return table.concat(parts, ", ")
end

local function numeric(m)
  for _, k in ipairs { "min", "max", "gt", "lt", "nominal" } do
    if m[k] ~= nil then return true end
  end
  return false
end

-- Was the run (its final event, run_finished) stopped before any test was marked
-- failed or stopped? TAP and JUnit then add an entry of the run's own, so that a
-- reader of either sees that it did not pass.
function M.stopped_unmarked(ev)
  local sm = ev.summary
  return ev.status == "stopped" and type(sm) == "table" and sm.failed + sm.stopped == 0
end

-- "vcc = 3.31 V (3.2 … 3.4 V) ok"
function M.measurement(m)
  local limits = M.limits(m)
  local status = m.status or (m.passed and "passed" or "failed")
  local label = status == "passed" and "ok" or status == "marginal" and "MARGINAL"
    or numeric(m) and "OUT OF LIMITS" or "FAILED"
  return string.format("%s = %s%s%s %s", m.name, M.value(m.value), m.unit and (" " .. m.unit) or "",
    limits ~= "" and (" (" .. limits .. ")") or "", label)
end

return M
