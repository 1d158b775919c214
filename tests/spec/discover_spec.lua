local discover = require "hplua.discover"

-- A fake file system: paths ending in "/" are folders.
local function fake_fs(tree)
  local kinds = {}
  for _, p in ipairs(tree) do
    if p:sub(-1) == "/" then kinds[p:sub(1, -2)] = "dir" else kinds[p] = "file" end
  end
  return {
    kind = function(p)
      if kinds[p] then return kinds[p] end
      return nil, p .. ": No such file or directory"
    end,
    listdir = function(dir)
      local names = {}
      for p in pairs(kinds) do
        local rest = p:sub(#dir + 2)
        if p:sub(1, #dir + 1) == dir .. "/" and not rest:find("/") then names[#names + 1] = rest end
      end
      return names
    end,
  }
end

describe("natural order", function()
  local function sorted(list)
    table.sort(list, discover.natural_less)
    return list
  end

  it("compares digit runs as numbers", function()
    assert.are.same({ "1_a", "2_b", "10_c" }, sorted { "10_c", "2_b", "1_a" })
    assert.are.same({ "a2", "a10", "a100" }, sorted { "a100", "a10", "a2" })
  end)

  it("puts numbers before words and orders equal numbers bytewise", function()
    assert.are.same({ "01", "1", "a" }, sorted { "a", "1", "01" })
  end)

  it("is a strict order", function()
    assert.is_false(discover.natural_less("x", "x"))
    assert.is_true(discover.natural_less("x9y", "x10y"))
    assert.is_false(discover.natural_less("x10y", "x9y"))
  end)
end)

describe("discovery", function()
  it("loads suite.lua first, skips _ and . names, recurses in natural order", function()
    local fs = fake_fs {
      "t/", "t/10_c.lua", "t/2_b.lua", "t/suite.lua", "t/_helper.lua", "t/.x.lua", "t/notes.txt",
      "t/sub/", "t/sub/suite.lua", "t/sub/1_x.lua", "t/_private/", "t/_private/1_no.lua", "t/3_z.lua",
    }
    local items = discover.discover("t", fs)
    local got = {}
    for _, it in ipairs(items) do got[#got + 1] = it.kind .. ":" .. it.path end
    assert.are.same({
      "suite:t/suite.lua", "test:t/2_b.lua", "test:t/3_z.lua", "test:t/10_c.lua",
      "suite:t/sub/suite.lua", "test:t/sub/1_x.lua",
    }, got)
  end)

  it("builds module ids relative to the root", function()
    local items = discover.discover("t", fake_fs { "t/", "t/power/", "t/power/01_supply.lua" })
    assert.are.equal("power/01_supply.lua", items[1].rel)
    assert.are.equal("power/01_supply", discover.module_id(items[1].rel))
  end)

  it("takes a single file with the suite.lua beside it", function()
    local items = discover.discover("t/2_b.lua", fake_fs { "t/", "t/2_b.lua", "t/suite.lua" })
    assert.are.equal(2, #items)
    assert.are.equal("suite", items[1].kind)
    assert.are.equal("2_b.lua", items[2].rel)
  end)

  it("reports a missing root", function()
    local items, err = discover.discover("nope", fake_fs {})
    assert.is_nil(items)
    assert.matches("nope", err)
  end)
end)

describe("discovery through symbolic links", function()
  -- a fake file system whose folders have identities, as sys.stat gives them
  local function linked_fs(dirs, files, links)
    local function resolve(p)
      for from, to in pairs(links) do
        if p == from or p:sub(1, #from + 1) == from .. "/" then return resolve(to .. p:sub(#from + 1)) end
      end
      return p
    end
    local fs = { calls = 0 }
    function fs.kind(p)
      p = resolve(p)
      if dirs[p] then return "dir" end
      if files[p] then return "file" end
      return nil, p .. ": No such file or directory"
    end
    function fs.stat(p)
      local k = fs.kind(p)
      return k and { kind = k, dev = 1, ino = resolve(p) }
    end
    function fs.listdir(p)
      fs.calls = fs.calls + 1
      local r, names = resolve(p), {}
      for _, set in ipairs { dirs, files, links } do
        for q in pairs(set) do
          local rest = q:sub(#r + 2)
          if q:sub(1, #r + 1) == r .. "/" and rest ~= "" and not rest:find("/") then names[#names + 1] = rest end
        end
      end
      return names
    end
    return fs
  end

  it("searches each real folder once: a link to itself or to a parent does not loop", function()
    local fs = linked_fs({ t = true, ["t/sub"] = true }, { ["t/sub/1_a.lua"] = true },
      { ["t/sub/self"] = "t/sub", ["t/sub/up"] = "t", ["t/again"] = "t/sub" })
    local items = assert(discover.discover("t", fs))
    local paths = {}
    for _, it in ipairs(items) do paths[#paths + 1] = it.kind .. " " .. it.path end
    assert.are.same({ "test t/again/1_a.lua" }, paths)
    assert.is_true(fs.calls <= 3)
  end)

  it("stops when the run is interrupted", function()
    local fs = linked_fs({ t = true, ["t/a"] = true, ["t/b"] = true }, { ["t/a/1.lua"] = true, ["t/b/2.lua"] = true }, {})
    local n = 0
    fs.interrupted = function() n = n + 1 return n > 3 and 2 or 1 end -- one signal before, one during
    discover.stopped = nil
    local items = assert(discover.discover("t", fs))
    assert.are.equal(1, #items)
    assert.are.equal("t/a/1.lua", items[1].path)
    assert.is_true(discover.stopped)
    discover.stopped = nil
  end)
end)
