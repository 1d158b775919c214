-- hplua.discover: finds test files and suite.lua files under the given paths,
-- in run order. Pure functions over a small file-system interface (hplua.sys),
-- so the specs can drive them.
local M = {}

-- Natural order: digit runs compare as numbers ("2_x" < "10_x"), the rest bytewise.
local function chunks(s)
  local out = {}
  for digits, other in s:gmatch("(%d*)(%D*)") do
    if digits ~= "" then out[#out + 1] = digits end
    if other ~= "" then out[#out + 1] = other end
  end
  return out
end

function M.natural_less(a, b)
  if a == b then return false end
  local ca, cb = chunks(a), chunks(b)
  for i = 1, math.min(#ca, #cb) do
    local x, y = ca[i], cb[i]
    if x ~= y then
      local dx, dy = x:match("^%d"), y:match("^%d")
      if dx and dy then
        local sx, sy = x:gsub("^0+", ""), y:gsub("^0+", "")
        if #sx ~= #sy then return #sx < #sy end
        if sx ~= sy then return sx < sy end
        -- equal numbers written differently ("01" vs "1"): fall through to bytes
      elseif dx or dy then
        return dx ~= nil -- numbers before words
      else
        return x < y
      end
    end
  end
  if #ca ~= #cb then return #ca < #cb end
  return a < b
end

local function skipped_name(name)
  local c = name:sub(1, 1)
  return c == "_" or c == "."
end

-- Module id of a test file: its path relative to the root, without ".lua".
function M.module_id(rel)
  return (rel:gsub("%.lua$", ""))
end

local function join(dir, name)
  if dir == "" then return name end
  return dir .. "/" .. name
end

-- Returns a list of items in run order:
--   { kind = "suite", path, dir }        a suite.lua (dir relative to the root)
--   { kind = "test", path, rel, dir }    a test file
--   { kind = "error", path, message }    something that looks like a test file but cannot be used
-- or nil, message when root itself does not exist.
-- Each real folder is searched once (by device and inode, when fs has stat), so a
-- symbolic link to a folder above cannot loop; on SIGINT or SIGTERM during the search
-- (fs.interrupted) it stops and returns what it found, and sets M.stopped (the caller treats
-- the run as interrupted during collection).
function M.discover(root, fs)
  fs = fs or require "hplua.sys"
  local items = {}
  local kind, err = fs.kind(root)
  if not kind then return nil, err end
  local seen = {}
  -- only a signal that arrives while searching stops it (an earlier one is the
  -- runner's to see, as for any other step)
  local signals_before = fs.interrupted and fs.interrupted() or 0

  local function walk(dir_path, dir_rel)
    if fs.interrupted and (fs.interrupted() or 0) > signals_before then
      M.stopped = true
      return
    end
    if fs.stat then
      local st = fs.stat(dir_path)
      if st then
        local id = st.dev .. ":" .. st.ino
        if seen[id] then return end
        seen[id] = true
      end
    end
    local names, lerr = fs.listdir(dir_path)
    if not names then
      items[#items + 1] = { kind = "error", path = dir_path, message = "cannot read folder: " .. lerr }
      return
    end
    table.sort(names, M.natural_less)
    for _, name in ipairs(names) do
      if name == "suite.lua" then
        local p = join(dir_path, name)
        if fs.kind(p) == "file" then
          items[#items + 1] = { kind = "suite", path = p, dir = dir_rel }
        end
        break
      end
    end
    for _, name in ipairs(names) do
      -- a station.lua beside the suite's top files is `hplua serve`'s settings
      if not skipped_name(name) and name ~= "suite.lua" and not (name == "station.lua" and dir_rel == "") then
        local p, rel = join(dir_path, name), join(dir_rel, name)
        local k, kerr = fs.kind(p)
        if k == "dir" then
          walk(p, rel)
        elseif name:match("%.lua$") then
          if k == "file" then
            items[#items + 1] = { kind = "test", path = p, rel = rel, dir = dir_rel }
          else
            items[#items + 1] = { kind = "error", path = p, message = kerr or "not a regular file" }
          end
        end
      end
    end
  end

  if kind == "dir" then
    local base = root:gsub("/+$", "")
    walk(base ~= "" and base or "/", "")
  else
    local dir, name = root:match("^(.*)/([^/]*)$")
    if not dir then dir, name = ".", root end
    local suite = join(dir == "." and "" or dir, "suite.lua")
    if suite ~= root and fs.kind(suite) == "file" then
      items[#items + 1] = { kind = "suite", path = suite, dir = "" }
    end
    items[#items + 1] = { kind = "test", path = root, rel = name, dir = "" }
  end
  return items
end

return M
