-- hplua.dialog: questions for the operator (hp.dialog). The question is published
-- (dialog_requested) and asked of the answer providers in order — the --answers
-- file, the station's panel (--control), the terminal — the first that has an
-- answer gives it (dialog_answered); with none the test fails saying how to give
-- one. Every wait runs in the event loop (timeouts and Ctrl-C cut it).
local sys = require "hplua.sys"
local ctx = require "hplua.context"
local json = require "hplua.json"

local null = json.null
local KINDS = { confirm = true, text = true, number = true, choice = true, multi = true, image = true }

local function check_spec(d)
  if type(d) ~= "table" then error("hp.dialog: a table expected, got " .. type(d), 3) end
  if type(d.id) ~= "string" or d.id == "" then error("hp.dialog: id must be a non-empty string", 3) end
  local kind = d.kind or "confirm"
  if not KINDS[kind] then
    error(string.format("hp.dialog %q: kind must be confirm, text, number, choice, multi or image, got %s", d.id,
      tostring(kind)), 3)
  end
  if kind == "choice" or kind == "multi" then
    if type(d.choices) ~= "table" or #d.choices == 0 then
      error(string.format("hp.dialog %q: choices must be a non-empty list", d.id), 3)
    end
    for i, c in ipairs(d.choices) do
      if type(c) ~= "string" then error(string.format("hp.dialog %q: choices[%d] must be a string", d.id, i), 3) end
    end
  end
  if kind == "image" and type(d.image) ~= "string" then
    error(string.format("hp.dialog %q: image must be the path of an image file (relative to the test file)", d.id), 3)
  end
  for _, k in ipairs { "title", "text" } do
    if d[k] ~= nil and type(d[k]) ~= "string" then error(string.format("hp.dialog %q: %s must be a string", d.id, k), 3) end
  end
  for _, k in ipairs { "min", "max" } do
    if d[k] ~= nil and type(d[k]) ~= "number" then error(string.format("hp.dialog %q: %s must be a number", d.id, k), 3) end
  end
  return kind
end

-- Turns raw input (typed, from the answers file or the panel) into an answer, or nil, why.
local function interpret(d, kind, raw)
  if kind == "confirm" or kind == "image" then
    if type(raw) == "boolean" then return raw end
    local s = type(raw) == "string" and raw:lower():match("^%s*(.-)%s*$")
    if s == "y" or s == "yes" then return true end
    if s == "n" or s == "no" then return false end
    return nil, "answer yes or no"
  elseif kind == "number" then
    local n = (type(raw) == "number" or type(raw) == "string") and tonumber(raw)
    if not n or n ~= n then return nil, "a number is needed" end
    if d.min and n < d.min then return nil, "at least " .. d.min .. " is needed" end
    if d.max and n > d.max then return nil, "at most " .. d.max .. " is allowed" end
    return n
  elseif kind == "choice" then
    local idx = math.tointeger(tonumber(raw))
    if idx and d.choices[idx] then return d.choices[idx] end
    for _, c in ipairs(d.choices) do
      if c == raw then return c end
    end
    return nil, "choose one of: " .. table.concat(d.choices, ", ")
  elseif kind == "multi" then
    local items = {}
    if type(raw) == "table" then
      items = raw
    elseif type(raw) == "string" then
      for part in raw:gmatch("[^,]+") do items[#items + 1] = part:match("^%s*(.-)%s*$") end
    else
      return nil, "a list of choices is needed"
    end
    local picked, seen = json.array(), {}
    for _, item in ipairs(items) do
      local c
      local idx = type(item) == "string" and math.tointeger(tonumber(item))
      if idx and d.choices[idx] then c = d.choices[idx] end
      for _, choice in ipairs(d.choices) do
        if choice == item then c = choice end
      end
      if not c then return nil, "choose any of: " .. table.concat(d.choices, ", ") end
      if not seen[c] then seen[c] = true; picked[#picked + 1] = c end
    end
    return picked
  end
  if type(raw) ~= "string" then return nil, "a text is needed" end
  return raw
end

-- The providers: each returns answer, source or nil (no answer from it).
local function from_answers(d, kind)
  local given = ctx.answers and ctx.answers[d.id]
  if given == nil then return nil end
  local answer, why = interpret(d, kind, given)
  if answer == nil then
    error(string.format("--answers: the answer for dialog %q does not fit: %s (got %s)", d.id, why, tostring(given)), 0)
  end
  return answer, "answers"
end

local function from_panel(d, kind)
  local control = ctx.control
  if not control then return nil end
  return control:answer(d.id, function(raw) return interpret(d, kind, raw) end), "panel"
end

local function from_terminal(d, kind)
  if not sys.isatty(0) then return nil end
  local err = io.stderr
  local head = d.title and (d.title .. ": ") or ""
  err:write("\n[dialog " .. d.id .. "] " .. head .. (d.text or "") .. "\n")
  if kind == "image" then err:write("  (image: " .. d.image_path .. ")\n") end
  if kind == "choice" or kind == "multi" then
    for i, c in ipairs(d.choices) do err:write(string.format("  %d) %s\n", i, c)) end
  end
  local suffix = (kind == "confirm" or kind == "image") and " [y/n] " or kind == "choice" and " choice: "
    or kind == "multi" and " choices (comma-separated): " or kind == "number" and " number: " or " > "
  while true do
    err:write(suffix)
    err:flush()
    sys.wait_readable(0)
    local line = io.stdin:read("l")
    if line == nil then error(string.format("dialog %q: no answer (standard input closed)", d.id), 0) end
    local answer, why = interpret(d, kind, line)
    if answer ~= nil then return answer, "terminal" end
    err:write("  " .. why .. "\n")
  end
end

local PROVIDERS = { from_answers, from_panel, from_terminal }

local function list(t)
  if not t then return null end
  local a = json.array()
  for i, v in ipairs(t) do a[i] = v end
  return a
end

return function(d)
  local kind = check_spec(d)
  local cur = ctx.current
  if not cur then error("hp.dialog must be called while a test runs", 2) end
  if kind == "image" then
    local dir = (cur.test.file or ""):match("^(.*)/[^/]*$") or "."
    d.image_path = d.image:sub(1, 1) == "/" and d.image or (dir .. "/" .. d.image)
    d.image_path = sys.realpath(d.image_path) or d.image_path
  end
  ctx.emit("dialog_requested", { test = cur.test.id, id = d.id, kind = kind, title = d.title or null,
    text = d.text or null, choices = list(d.choices), min = d.min or null, max = d.max or null,
    image = d.image_path or null })
  for _, provider in ipairs(PROVIDERS) do
    local ok, answer, source = pcall(provider, d, kind)
    if not ok then error(answer, 2) end
    if answer ~= nil then
      ctx.emit("dialog_answered", { test = cur.test.id, id = d.id, value = answer, source = source })
      local shown = type(answer) == "table" and table.concat(answer, ", ") or tostring(answer)
      ctx.message(string.format("Dialog %s: %s", d.id, shown))
      return answer
    end
  end
  local hint = ""
  if ctx.answers then
    local ids = {}
    for k in pairs(ctx.answers) do ids[#ids + 1] = k end
    table.sort(ids)
    local near = require("hplua.suggest").closest(d.id, ids)
    if near then hint = string.format(" (--answers has %q: did you mean that?)", near) end
  end
  error(string.format("dialog %q needs an operator: run on a terminal, or give --answers FILE with {\"%s\": ...}%s",
    d.id, d.id, hint), 2)
end
