-- The LuaLS annotations (meta/hplua.lua) describe what the real module offers:
-- every public function of hp, hp.process, hp.serial, hp.tcp and of a stream.
local hp = require "hplua"

local function read(path)
  local f = assert(io.open(path))
  local text = f:read("a")
  f:close()
  return text
end

describe("meta/hplua.lua", function()
  local meta = read("meta/hplua.lua")

  it("is valid Lua declaring the hplua module", function()
    assert.is_function(load(meta, "@meta/hplua.lua", "t"))
    assert.truthy(meta:find("^%-%-%-@meta hplua\n"))
  end)

  it("documents every public function of hp and its tables", function()
    local missing = {}
    local function check(tbl, prefix, pattern)
      for k, v in pairs(tbl) do
        if type(k) == "string" and not k:find("^_") and type(v) == "function" and not meta:find(pattern:format(k)) then
          missing[#missing + 1] = prefix .. k
        end
      end
    end
    check(hp, "hp.", "\nfunction hp%%.%s%%(")
    check(hp.process, "hp.process.", "\nfunction process%%.%s%%(")
    check(hp.serial, "hp.serial.", "\nfunction serial%%.%s%%(")
    check(hp.tcp, "hp.tcp.", "\nfunction tcp%%.%s%%(")
    check(debug.getregistry()["hplua.stream"].__index, "stream:", "\nfunction Stream:%s%%(")
    table.sort(missing)
    assert.are.same({}, missing)
  end)
end)
