-- hplua.dialog: questions for the operator. On a terminal it prompts (on stderr, so
-- TAP on stdout stays clean); otherwise the answer comes from --answers; with neither
-- the test fails saying how to give one. The wait runs in the event loop.
local sys = require "hplua.sys"
local ctx = require "hplua.context"

local KINDS = { confirm = true, text = true, number = true, choice = true }

local function check_spec(d)
  if type(d) ~= "table" then error("hp.dialog: a table expected, got " .. type(d), 3) end
  if type(d.id) ~= "string" or d.id == "" then error("hp.dialog: id must be a non-empty string", 3) end
  local kind = d.kind or "confirm"
  if not KINDS[kind] then
    error(string.format("hp.dialog %q: kind must be confirm, text, number or choice, got %s", d.id, tostring(kind)), 3)
  end
  if kind == "choice" then
    if type(d.choices) ~= "table" or #d.choices == 0 then
      error(string.format("hp.dialog %q: choices must be a non-empty list", d.id), 3)
    end
    for i, c in ipairs(d.choices) do
      if type(c) ~= "string" then error(string.format("hp.dialog %q: choices[%d] must be a string", d.id, i), 3) end
    end
  end
  for _, k in ipairs { "title", "text" } do
    if d[k] ~= nil and type(d[k]) ~= "string" then error(string.format("hp.dialog %q: %s must be a string", d.id, k), 3) end
  end
  return kind
end

-- Turns raw input (typed or from the answers file) into an answer, or nil, why.
local function interpret(d, kind, raw)
  if kind == "confirm" then
    if type(raw) == "boolean" then return raw end
    local s = type(raw) == "string" and raw:lower():match("^%s*(.-)%s*$")
    if s == "y" or s == "yes" then return true end
    if s == "n" or s == "no" then return false end
    return nil, "answer yes or no"
  elseif kind == "number" then
    local n = tonumber(raw)
    if not n then return nil, "a number is needed" end
    if d.min and n < d.min then return nil, "at least " .. d.min .. " is needed" end
    if d.max and n > d.max then return nil, "at most " .. d.max .. " is allowed" end
    return n
  elseif kind == "choice" then
    local idx = tonumber(raw)
    if idx and d.choices[idx] then return d.choices[idx] end
    for _, c in ipairs(d.choices) do
      if c == raw then return c end
    end
    return nil, "choose one of: " .. table.concat(d.choices, ", ")
  end
  if type(raw) ~= "string" then return nil, "a text is needed" end
  return raw
end

local function prompt(d, kind)
  local err = io.stderr
  local head = d.title and (d.title .. ": ") or ""
  err:write("\n[dialog " .. d.id .. "] " .. head .. (d.text or "") .. "\n")
  if kind == "choice" then
    for i, c in ipairs(d.choices) do err:write(string.format("  %d) %s\n", i, c)) end
  end
  local suffix = kind == "confirm" and " [y/n] " or kind == "choice" and " choice: " or kind == "number" and " number: " or " > "
  while true do
    err:write(suffix)
    err:flush()
    sys.wait_readable(0)
    local line = io.stdin:read("l")
    if line == nil then error(string.format("dialog %q: no answer (standard input closed)", d.id), 0) end
    local answer, why = interpret(d, kind, line)
    if answer ~= nil then return answer end
    err:write("  " .. why .. "\n")
  end
end

return function(d)
  local kind = check_spec(d)
  if not ctx.current then error("hp.dialog must be called while a test runs", 2) end
  local answer
  local given = ctx.answers and ctx.answers[d.id]
  if given ~= nil then
    local why
    answer, why = interpret(d, kind, given)
    if answer == nil then
      error(string.format("--answers: the answer for dialog %q does not fit: %s (got %s)", d.id, why, tostring(given)), 2)
    end
  elseif sys.isatty(0) then
    answer = prompt(d, kind)
  else
    error(string.format("dialog %q needs an operator: run on a terminal, or give --answers FILE with {\"%s\": ...}",
      d.id, d.id), 2)
  end
  ctx.message(string.format("Dialog %s: %s", d.id, tostring(answer)))
  return answer
end
