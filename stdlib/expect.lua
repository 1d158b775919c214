-- hplua.expect: `hp.expect(actual).to_equal(expected)` and friends, in the style
-- of Jest/busted's expect. `.never` negates. Failures name expected and actual
-- values; tables are compared deeply and the first difference is named.
local function fmt(v, depth)
  depth = depth or 0
  if type(v) == "string" then return string.format("%q", v) end
  if type(v) ~= "table" or depth > 2 then return tostring(v) end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b)
    if type(a) == type(b) and (type(a) == "number" or type(a) == "string") then return a < b end
    return type(a) < type(b)
  end)
  local parts = {}
  for i, k in ipairs(keys) do
    if i > 20 then parts[#parts + 1] = "..."; break end
    local key = (math.type(k) == "integer" and k == i) and "" or ("[" .. fmt(k, depth + 1) .. "] = ")
    parts[#parts + 1] = key .. fmt(v[k], depth + 1)
  end
  return "{" .. table.concat(parts, ", ") .. "}"
end

-- nil when equal, else a path and the two differing values.
local function diff(a, b, path, seen)
  if a == b then return nil end
  if type(a) ~= "table" or type(b) ~= "table" then
    return { path = path, actual = a, expected = b }
  end
  seen = seen or {}
  if seen[a] == b then return nil end
  seen[a] = b
  for k, v in pairs(a) do
    local d = diff(v, b[k], path .. "[" .. fmt(k) .. "]", seen)
    if d then return d end
  end
  for k, v in pairs(b) do
    if a[k] == nil then return { path = path .. "[" .. fmt(k) .. "]", actual = nil, expected = v } end
  end
  return nil
end

local function new(actual, negated)
  local e = {}
  local function check(ok, message)
    if negated then ok = not ok; message = "not " .. message end
    if not ok then
      local ctx = package.loaded["hplua.context"]
      if ctx then ctx.assertion = "expected " .. message end -- the runner records kind "assertion"
      error("expected " .. message, 3)
    end
  end

  function e.to_equal(expected)
    local d = diff(actual, expected, "")
    if negated then
      check(d == nil, "value to equal " .. fmt(expected))
    elseif d then
      local where = d.path ~= "" and (" at " .. d.path) or ""
      error(string.format("expected %s, got %s%s", fmt(d.expected), fmt(d.actual), where), 2)
    end
  end
  e.to_same = e.to_equal
  function e.to_be(expected)
    check(rawequal(actual, expected), string.format("%s to be %s", fmt(actual), fmt(expected)))
  end
  function e.to_be_near(expected, tol)
    if type(actual) ~= "number" then error("expected a number, got " .. fmt(actual), 2) end
    tol = tol or 1e-9
    check(math.abs(actual - expected) <= tol, string.format("%s to be within %s of %s", fmt(actual), fmt(tol), fmt(expected)))
  end
  function e.to_match(pattern)
    if type(actual) ~= "string" then error("expected a string matching " .. fmt(pattern) .. ", got " .. fmt(actual), 2) end
    check(actual:find(pattern) ~= nil, string.format("%s to match %s", fmt(actual), fmt(pattern)))
  end
  function e.to_contain(item)
    local found = false
    if type(actual) == "string" then
      found = actual:find(item, 1, true) ~= nil
    elseif type(actual) == "table" then
      for _, v in pairs(actual) do if diff(v, item, "") == nil then found = true break end end
    end
    check(found, string.format("%s to contain %s", fmt(actual), fmt(item)))
  end
  function e.to_be_truthy() check(actual and true or false, fmt(actual) .. " to be truthy") end
  function e.to_be_falsy() check(not actual, fmt(actual) .. " to be falsy") end
  function e.to_be_nil() check(actual == nil, fmt(actual) .. " to be nil") end
  function e.to_be_a(tname) check(type(actual) == tname or math.type(actual) == tname, string.format("%s to be a %s, got %s", fmt(actual), tname, type(actual))) end
  function e.to_be_greater_than(x) check(actual > x, string.format("%s to be greater than %s", fmt(actual), fmt(x))) end
  function e.to_be_less_than(x) check(actual < x, string.format("%s to be less than %s", fmt(actual), fmt(x))) end
  function e.to_fail(pattern)
    if type(actual) ~= "function" then error("expected a function, got " .. fmt(actual), 2) end
    local ok, err = pcall(actual)
    local msg = tostring(err)
    if negated then
      if not ok then error("expected the function not to fail, but it failed with: " .. msg, 2) end
      return
    end
    if ok then error("expected the function to fail, but it returned normally", 2) end
    if pattern and not msg:find(pattern) then
      error(string.format("expected the error to match %s, got %s", fmt(pattern), fmt(msg)), 2)
    end
    return err
  end
  if not negated then e.never = new(actual, true) end
  return e
end

return setmetatable({ format = fmt, diff = diff }, { __call = function(_, actual) return new(actual, false) end })
