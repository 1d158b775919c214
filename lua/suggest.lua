-- hplua.suggest: "did you mean ...?" for a mistyped name (an option, a test id, a
-- fixture, a dialog id), by edit distance.
local M = {}

local function distance(a, b)
  if a == b then return 0 end
  local la, lb = #a, #b
  if la == 0 then return lb end
  if lb == 0 then return la end
  local prev, cur = {}, {}
  for j = 0, lb do prev[j] = j end
  for i = 1, la do
    cur[0] = i
    local ca = a:byte(i)
    for j = 1, lb do
      local cost = ca == b:byte(j) and 0 or 1
      local v = prev[j] + 1
      if cur[j - 1] + 1 < v then v = cur[j - 1] + 1 end
      if prev[j - 1] + cost < v then v = prev[j - 1] + cost end
      cur[j] = v
    end
    prev, cur = cur, prev
  end
  return prev[lb]
end
M.distance = distance

-- The closest candidate to name, if close enough to be a typo; nil otherwise.
function M.closest(name, candidates)
  if type(name) ~= "string" then return nil end
  local best, best_d
  local limit = math.max(2, #name // 3)
  for _, c in ipairs(candidates) do
    if type(c) == "string" and #c < 200 then
      local d = distance(name:lower(), c:lower())
      if d <= limit and (not best_d or d < best_d) then best, best_d = c, d end
    end
  end
  return best
end

-- " (did you mean 'x'?)" or "".
function M.hint(name, candidates)
  local c = M.closest(name, candidates)
  return c and string.format(" (did you mean '%s'?)", c) or ""
end

return M
