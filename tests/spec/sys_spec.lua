-- hplua.sys: reads through the buffer it keeps (sys.read), with a growing max.
local sys = require "hplua.sys"

describe("hplua.sys read", function()
  local path = os.tmpname()
  after_each(function() os.remove(path) end)

  it("reads every byte whatever max asks, the kept buffer growing and replaced", function()
    -- 3 MiB of a pattern that shows any byte out of place
    local parts = {}
    for i = 1, 3 * 1024 do parts[i] = string.format("%07d", i) .. string.rep(string.char(65 + i % 26), 1017) end
    local want = table.concat(parts)
    local f = assert(io.open(path, "wb"))
    f:write(want)
    f:close()
    local fd = assert(sys.open(path, "r"))
    local got, at = {}, 0
    -- small (no heap buffer), growing (the kept buffer replaced by a bigger one each
    -- time), smaller again (the bigger one reused), and over 1 MiB (a buffer of its own)
    for _, max in ipairs { 100, 20000, 300000, 900000, 50000, 1048576, 2000000, 17, 65536 } do
      local data = assert(sys.read(fd, max))
      assert.is_true(#data <= max)
      assert.are.equal(want:sub(at + 1, at + #data), data)
      got[#got + 1] = data
      at = at + #data
      collectgarbage() -- nothing the read left behind may be freed from under the next
    end
    while true do
      local data = assert(sys.read(fd, 700000))
      if data == "" then break end
      got[#got + 1] = data
    end
    sys.close(fd)
    assert.are.equal(#want, #table.concat(got))
    assert.is_true(table.concat(got) == want)
  end)
end)
