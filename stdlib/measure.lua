-- hplua.measure: hp.measure's limits (API 11): min/max (inclusive), gt/lt (exclusive),
-- nominal with tolerance or tolerance_pct, expect (equality), match (a Lua pattern),
-- and marginal_min/marginal_max (inside the limits but close: status "marginal", the
-- test still passes). Infinite limits mean no limit. Limits that contradict each
-- other or have the wrong type are the caller's mistake (raised at the call);
-- --limits FILE gives limits to measurements that state none of their own.
local M = {}

local NUMERIC = { "min", "max", "gt", "lt", "nominal", "tolerance", "tolerance_pct", "marginal_min", "marginal_max" }
local LIMIT_KEYS = { "expect", "match" }
for _, k in ipairs(NUMERIC) do LIMIT_KEYS[#LIMIT_KEYS + 1] = k end
M.LIMIT_KEYS = LIMIT_KEYS

local function finite(x) return x ~= nil and x == x and x > -math.huge and x < math.huge end

-- The effective bounds: lo, lo_inclusive, hi, hi_inclusive (nil: unbounded). No
-- closures: hp.measure may be called a million times in a run.
local function bounds(s)
  local lo, lo_in, hi, hi_in
  local min, gt, max, lt = s.min, s.gt, s.max, s.lt
  if finite(min) then lo, lo_in = min, true end
  if finite(gt) and (not lo or gt >= lo) then lo, lo_in = gt, false end
  if finite(max) then hi, hi_in = max, true end
  if finite(lt) and (not hi or lt <= hi) then hi, hi_in = lt, false end
  local nominal = s.nominal
  if nominal and (s.tolerance or s.tolerance_pct) then
    local tol = s.tolerance or math.abs(nominal) * s.tolerance_pct / 100
    local a, b = nominal - tol, nominal + tol
    if finite(a) and (not lo or a > lo) then lo, lo_in = a, true end
    if finite(b) and (not hi or b < hi) then hi, hi_in = b, true end
  end
  return lo, lo_in, hi, hi_in
end

local function fmt(x) return require("hplua.format").value(x) end

-- nil, or what is wrong with a set of limits (from a call or a limits file); then
-- whether any limit is given at all.
function M.check(s)
  local any = s.expect ~= nil or s.match ~= nil
  for i = 1, #NUMERIC do
    local k = NUMERIC[i]
    local v = s[k]
    if v ~= nil then
      if type(v) ~= "number" then return string.format("%s must be a number, got %s", k, type(v)) end
      if v ~= v then return k .. " must not be NaN" end
      any = true
    end
  end
  if not any then return nil, false end
  if s.tolerance and s.tolerance < 0 then return "tolerance must not be negative, got " .. fmt(s.tolerance) end
  if s.tolerance_pct and s.tolerance_pct < 0 then return "tolerance_pct must not be negative, got " .. fmt(s.tolerance_pct) end
  if s.tolerance and s.tolerance_pct then return "give tolerance or tolerance_pct, not both" end
  if (s.tolerance or s.tolerance_pct) and s.nominal == nil then return "tolerance needs nominal" end
  if s.nominal ~= nil and not (s.tolerance or s.tolerance_pct) then return "nominal needs tolerance or tolerance_pct" end
  local e = s.expect
  if e ~= nil and type(e) ~= "number" and type(e) ~= "string" and type(e) ~= "boolean" then
    return "expect must be a number, string or boolean, got " .. type(e)
  end
  if e ~= nil and e ~= e then return "expect must not be NaN" end
  if s.match ~= nil then
    if type(s.match) ~= "string" then return "match must be a string (a Lua pattern), got " .. type(s.match) end
    local ok, err = pcall(string.find, "", s.match)
    if not ok then return "match is not a valid Lua pattern: " .. tostring(err):gsub("^.-: ", "") end
  end
  local lo, lo_in, hi, hi_in = bounds(s)
  if lo and hi and (lo > hi or (lo == hi and not (lo_in and hi_in))) then
    return string.format("contradictory limits: nothing is %s %s and %s %s", lo_in and ">=" or ">", fmt(lo),
      hi_in and "<=" or "<", fmt(hi))
  end
  local mlo, mhi = s.marginal_min, s.marginal_max
  if mlo and mhi and mlo > mhi then
    return string.format("contradictory limits: marginal_min %s > marginal_max %s", fmt(mlo), fmt(mhi))
  end
  if mlo and lo and mlo < lo then return string.format("marginal_min %s is below the lower limit %s", fmt(mlo), fmt(lo)) end
  if mhi and hi and mhi > hi then return string.format("marginal_max %s is above the upper limit %s", fmt(mhi), fmt(hi)) end
  return nil, true
end

local function numeric_limits(s)
  for _, k in ipairs(NUMERIC) do
    if s[k] ~= nil then return true end
  end
  return false
end

-- Status of value v under limits s: "passed", "marginal" or "failed"; nil, why when the
-- value cannot be compared with the limits given.
function M.evaluate(s, v)
  local tv = type(v)
  if tv ~= "number" and numeric_limits(s) then
    return nil, "value must be a number when numeric limits are given, got " .. tv
  end
  if s.match ~= nil and tv ~= "string" then return nil, "value must be a string when match is given, got " .. tv end
  if tv == "number" and v ~= v then return "failed" end -- NaN is never within limits
  if tv == "number" then
    local lo, lo_in, hi, hi_in = bounds(s)
    if lo and (v < lo or (v == lo and not lo_in)) then return "failed" end
    if hi and (v > hi or (v == hi and not hi_in)) then return "failed" end
  end
  if s.expect ~= nil and v ~= s.expect then return "failed" end
  if s.match ~= nil and not v:find(s.match) then return "failed" end
  if tv == "number" and ((s.marginal_min and v < s.marginal_min) or (s.marginal_max and v > s.marginal_max)) then
    return "marginal"
  end
  return "passed"
end

-- The common case, quickly: a number against finite min and/or max, maybe with finite
-- marginal_min/marginal_max, and no other limit. Returns the status check + evaluate
-- would give, or nil when the limits are anything else (or wrong: the general path
-- then says why). hp.measure may be called a million times in a run.
local huge = math.huge
function M.quick(s, v)
  local min, max = s.min, s.max
  if (min == nil and max == nil) or type(v) ~= "number" or v ~= v then return nil end
  if s.gt ~= nil or s.lt ~= nil or s.nominal ~= nil or s.tolerance ~= nil or s.tolerance_pct ~= nil
      or s.expect ~= nil or s.match ~= nil then
    return nil
  end
  if min ~= nil and (type(min) ~= "number" or not (min > -huge and min < huge)) then return nil end
  if max ~= nil and (type(max) ~= "number" or not (max > -huge and max < huge)) then return nil end
  if min and max and min > max then return nil end
  local mlo, mhi = s.marginal_min, s.marginal_max
  if mlo ~= nil and (type(mlo) ~= "number" or not (mlo > -huge and mlo < huge) or (min and mlo < min)) then return nil end
  if mhi ~= nil and (type(mhi) ~= "number" or not (mhi > -huge and mhi < huge) or (max and mhi > max)) then return nil end
  if mlo and mhi and mlo > mhi then return nil end
  if (min and v < min) or (max and v > max) then return "failed" end
  if (mlo and v < mlo) or (mhi and v > mhi) then return "marginal" end
  return "passed"
end

-- The limits a record keeps (infinite ones are no limit and are left out).
function M.record_limits(s, rec)
  for i = 1, #LIMIT_KEYS do
    local k = LIMIT_KEYS[i]
    local v = s[k]
    if v ~= nil and (type(v) ~= "number" or finite(v)) then rec[k] = v end
  end
  return rec
end

-- ---- --limits FILE ----

local ENTRY_KEYS = { unit = true }
for _, k in ipairs(LIMIT_KEYS) do ENTRY_KEYS[k] = true end

local loaded -- { path, entries = { name -> spec }, used = { name -> true } }

-- Loads and checks a limits file (JSON object or a Lua file returning a table) keyed
-- by measurement name. Returns true or nil, message naming the file and the entry.
function M.load(path)
  local data
  if path:match("%.lua$") then
    local chunk, err = loadfile(path, "t")
    if not chunk then return nil, "--limits: " .. tostring(err) end
    local ok, res = pcall(chunk)
    if not ok then return nil, "--limits " .. path .. ": " .. tostring(res) end
    data = res
  else
    local f, err = io.open(path)
    if not f then return nil, "--limits: " .. err end
    local text = f:read("a")
    f:close()
    local derr
    data, derr = require("hplua.json").decode(text)
    if data == nil then return nil, "--limits " .. path .. ": " .. tostring(derr) end
  end
  if type(data) ~= "table" then return nil, "--limits " .. path .. ": a table of measurement names is needed" end
  local entries = {}
  for name, spec in pairs(data) do
    if type(name) ~= "string" then return nil, string.format("--limits %s: key %s is not a measurement name", path, tostring(name)) end
    if type(spec) ~= "table" then
      return nil, string.format("--limits %s: entry '%s' must be a table of limits, got %s", path, name, type(spec))
    end
    for k in pairs(spec) do
      if not ENTRY_KEYS[k] then return nil, string.format("--limits %s: entry '%s': unknown key '%s'", path, name, tostring(k)) end
    end
    if spec.unit ~= nil and type(spec.unit) ~= "string" then
      return nil, string.format("--limits %s: entry '%s': unit must be a string, got %s", path, name, type(spec.unit))
    end
    local problem = M.check(spec)
    if problem then return nil, string.format("--limits %s: entry '%s': %s", path, name, problem) end
    entries[name] = spec
  end
  loaded = { path = path, entries = entries, used = {} }
  return true
end

-- The file's entry for a measurement name (marked used), or nil.
function M.entry(name)
  if not loaded then return nil end
  local e = loaded.entries[name]
  if e then loaded.used[name] = true end
  return e
end

-- Warnings for the entries no measurement used.
function M.unused_warnings()
  if not loaded then return {} end
  local out = {}
  for name in pairs(loaded.entries) do
    if not loaded.used[name] then
      out[#out + 1] = string.format("--limits %s: entry '%s' was not used by any measurement", loaded.path, name)
    end
  end
  table.sort(out)
  return out
end

return M
