-- hplua.station_config: the station's configuration file (`hplua serve --config
-- station.lua`): a Lua file returning a table. Every command-line option of
-- `hplua serve` has a key; unknown keys and wrong types are errors naming
-- file:line. Relative paths are relative to the file's folder.
local M = {}

local function is_list_of_strings(v)
  if type(v) ~= "table" then return false end
  local n = 0
  for k, x in pairs(v) do
    if math.type(k) ~= "integer" or type(x) ~= "string" then return false end
    n = n + 1
  end
  return n == #v
end

local function is_map_of_scalars(v)
  if type(v) ~= "table" then return false end
  for k, x in pairs(v) do
    if type(k) ~= "string" or (type(x) ~= "string" and type(x) ~= "number" and type(x) ~= "boolean") then
      return false
    end
  end
  return true
end

local function positive_integer(v) return math.type(v) == "integer" and v > 0 end
local function positive_number(v) return type(v) == "number" and v > 0 and v == v end
local function string_value(v) return type(v) == "string" and v ~= "" end

-- key -> { check, what it must be, is a path? }
M.KEYS = {
  path = { string_value, "a path (string)", true },
  port = { function(v) return math.type(v) == "integer" and v >= 0 and v <= 65535 end, "a port number 0..65535" },
  bind = { string_value, "an IP address (string)" },
  token = { string_value, "a non-empty string" },
  slots = { positive_integer, "a positive integer" },
  timeout = { positive_number, "a positive number of seconds" },
  max_memory = { positive_number, "a positive number of megabytes" },
  keywords = { is_list_of_strings, "a list of strings (-k)" },
  args = { is_map_of_scalars, "a table of KEY = value (--arg)" },
  limits = { string_value, "a path (string)", true },
  upload = { string_value, "a postgresql:// URL (string)" },
  history = { function(v) return v == false or string_value(v) end, "a path (string) or false", true },
  json = { string_value, "a path pattern (string)", true },
  junit = { string_value, "a path pattern (string)", true },
  stop_grace = { positive_number, "a positive number of seconds" },
  stand = { is_map_of_scalars, "a table like { name = ..., location = ... }" },
  serial_pattern = { string_value, "a Lua pattern (string)" },
  suite_name = { string_value, "a string" },
}

-- The line that sets key in the file's text (for messages), or nil.
local function line_of(text, key)
  local n = 0
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    if line:match("^%s*" .. key .. "%s*=") or line:match("[{,]%s*" .. key .. "%s*=")
        or line:find('["' .. key .. '"]', 1, true) then
      return n
    end
  end
end

local function dirname(path)
  return path:match("^(.*)/[^/]*$") or "."
end

local function suggest(key)
  local best, best_d
  for k in pairs(M.KEYS) do
    -- a cheap similarity: shared prefix, or one edit apart in length
    local d = math.abs(#k - #key)
    local common = 0
    for i = 1, math.min(#k, #key) do
      if k:sub(i, i) == key:sub(i, i) then common = common + 1 end
    end
    d = d + (math.min(#k, #key) - common)
    if d <= 2 and (not best_d or d < best_d) then best, best_d = k, d end
  end
  return best and (" (did you mean '" .. best .. "'?)") or ""
end

-- load(path) -> config table (paths made absolute-ish) | nil, "file:line: message"
function M.load(path)
  local f, oerr = io.open(path, "r")
  if not f then return nil, "--config: " .. tostring(oerr) end
  local text = f:read("a")
  f:close()
  local env = setmetatable({}, { __index = _G })
  local chunk, err = load(text, "@" .. path, "t", env)
  if not chunk then return nil, err end
  local ok, value = pcall(chunk)
  if not ok then return nil, tostring(value) end
  if type(value) ~= "table" then
    return nil, string.format("%s: the file must return a table of settings, got %s", path, type(value))
  end
  local errors = {}
  local keys = {}
  for k in pairs(value) do keys[#keys + 1] = tostring(k) end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local v = value[k]
    local spec = M.KEYS[k]
    local line = line_of(text, k)
    local where = line and (path .. ":" .. line) or path
    if not spec then
      errors[#errors + 1] = string.format("%s: unknown key '%s'%s", where, k, suggest(k))
    elseif not spec[1](v) then
      errors[#errors + 1] = string.format("%s: '%s' must be %s, got %s", where, k, spec[2],
        type(v) == "string" and string.format("%q", v) or tostring(v))
    end
  end
  if value.serial_pattern and #errors == 0 then
    local pok, perr = pcall(string.find, "", value.serial_pattern)
    if not pok then
      local line = line_of(text, "serial_pattern")
      errors[#errors + 1] = string.format("%s: 'serial_pattern' is not a valid Lua pattern: %s",
        line and (path .. ":" .. line) or path, tostring(perr):gsub("^.-:%d+: ", ""))
    end
  end
  if #errors > 0 then return nil, table.concat(errors, "\n") end
  local base = dirname(path)
  local out = {}
  for k, v in pairs(value) do
    if M.KEYS[k][3] and type(v) == "string" and v:sub(1, 1) ~= "/" then v = base .. "/" .. v end
    out[k] = v
  end
  return out
end

return M
