-- hplua.expect: `hp.expect(actual).to_equal(expected)` and friends, in the style
-- of Jest/busted's expect. `.never` negates. Failures name expected and actual
-- values; tables are compared deeply and the first difference is named.
local function fmt(v, depth)
  depth = depth or 0
  if type(v) == "string" then
    if #v > 200 then
      return string.format("%q", v:sub(1, 80)):gsub("\\\n", "\\n") .. string.format("… (%d bytes)", #v)
    end
    return (string.format("%q", v):gsub("\\\n", "\\n"))
  end
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

-- Raises a failed check (the runner records it with kind "assertion"; detail, the
-- full values of a compacted message, goes to the report).
local function fail(message, level, detail)
  local ctx = package.loaded["hplua.context"]
  if ctx then ctx.assertion, ctx.assertion_detail = message, detail end
  error(message, level + 1)
end

local LONG = 120

-- A line of s shown around column col, at most LONG characters, escaped.
local function excerpt(line, col)
  local from = math.max(1, col - 40)
  local piece = line:sub(from, from + LONG - 1)
  local q = string.format("%q", piece):gsub("\\\n", "\\n")
  return (from > 1 and "…" or "") .. q .. (from + LONG - 1 < #line and "…" or "")
end

local function lines_of(s)
  local out = {}
  for l in (s .. "\n"):gmatch("([^\n]*)\n") do out[#out + 1] = l end
  return out
end

-- Two long strings: where they first differ, with a line of context, not the whole values.
local function string_diff(actual, expected)
  local a, b = lines_of(actual), lines_of(expected)
  local i = 1
  while i <= #a and i <= #b and a[i] == b[i] do i = i + 1 end
  local la, lb = a[i] or "", b[i] or ""
  local col = 1
  while col <= #la and col <= #lb and la:sub(col, col) == lb:sub(col, col) do col = col + 1 end
  local out = { string.format("expected strings to be equal; they differ at line %d, column %d (%d vs %d lines, %d vs %d bytes):",
    i, col, #b, #a, #expected, #actual) }
  if i > 1 then out[#out + 1] = string.format("    line %d:   %s", i - 1, excerpt(a[i - 1], col)) end
  out[#out + 1] = string.format("  - expected: %s", b[i] and excerpt(lb, col) or "(no such line)")
  out[#out + 1] = string.format("  + actual:   %s", a[i] and excerpt(la, col) or "(no such line)")
  return table.concat(out, "\n")
end

-- note: hp.expect's optional second argument, said after any failure (as pytest's
-- `assert x, note`), on the lines after the failure's own message.
local function new(actual, negated, note)
  local e = {}
  local fail = note == nil and fail or function(message, level, detail)
    fail(message .. "\n" .. tostring(note), level + 1, detail) -- not a tail call: level counts this frame
  end
  local function check(ok, message)
    if negated then ok = not ok; message = "not " .. message end
    if not ok then fail("expected " .. message, 3) end
  end

  function e.to_equal(expected)
    local d = diff(actual, expected, "")
    if negated then
      check(d == nil, "value to equal " .. fmt(expected))
    elseif d then
      if type(d.actual) == "string" and type(d.expected) == "string" and
        (#d.actual > LONG or #d.expected > LONG or d.actual:find("\n") or d.expected:find("\n")) then
        local msg = string_diff(d.actual, d.expected)
        if d.path ~= "" then msg = msg .. "\n  at " .. d.path end
        fail(msg, 2, { expected = d.expected, actual = d.actual })
      end
      local where = d.path ~= "" and (" at " .. d.path) or ""
      fail(string.format("expected %s, got %s%s", fmt(d.expected), fmt(d.actual), where), 2)
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
      if not ok then fail("expected the function not to fail, but it failed with: " .. msg, 2) end
      return
    end
    if ok then fail("expected the function to fail, but it returned normally", 2) end
    if pattern and not msg:find(pattern) then
      fail(string.format("expected the error to match %s, got %s", fmt(pattern), fmt(msg)), 2)
    end
    return err
  end
  if not negated then e.never = new(actual, true, note) end
  return e
end

return setmetatable({ format = fmt, diff = diff }, { __call = function(_, actual, note) return new(actual, false, note) end })
