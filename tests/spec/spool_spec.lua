local spool = require "hplua.spool"

-- Appends pieces, returns the spool and the marks between them.
local function filled(s, pieces)
  local marks = { s:mark() }
  for _, p in ipairs(pieces) do
    s:append(p)
    marks[#marks + 1] = s:mark()
  end
  return marks
end

local function in_memory()
  local s = spool.new()
  s:to_memory() -- as when no temporary file can be made or written
  return s
end

local function memory_from_start()
  return spool.new { memory = true } -- the history recorder's: no temporary file at all
end

describe("hplua.spool", function()
  for _, kind in ipairs { "file", "memory", "memory from the start" } do
    local make = kind == "file" and spool.new or kind == "memory" and in_memory or memory_from_start

    it("gives back the text between any two marks (" .. kind .. ")", function()
      local s = make()
      local pieces = { "alpha", "", ",beta", ",gamma\n", string.rep("x", 1000) }
      local marks = filled(s, pieces)
      local all = table.concat(pieces)
      assert.are.equal(all, s:read(marks[1], marks[#marks]))
      for i = 1, #marks do
        for j = i, #marks do
          assert.are.equal(all:sub(marks[i] + 1, marks[j]), s:read(marks[i], marks[j]))
        end
      end
      -- byte offsets inside pieces too
      assert.are.equal("pha,be", s:read(2, 8))
      s:append("more") -- appending after a read goes on at the end
      assert.are.equal(all .. "more", s:read(0, s:mark()))
      s:close()
    end)

    it("hands large ranges over in chunks and stops at a failed write (" .. kind .. ")", function()
      local s = make()
      local big = string.rep("0123456789", 250000) -- 2.5 MB
      s:append(big)
      local chunks, got = 0, {}
      assert.is_true(s:copy(0, s:mark(), function(c)
        chunks = chunks + 1
        got[#got + 1] = c
        return true
      end))
      assert.are.equal(big, table.concat(got))
      if kind == "file" then assert.is_true(chunks >= 3) end
      local calls = 0
      local ok, err, code = s:copy(0, s:mark(), function()
        calls = calls + 1
        return nil, "disk full", "ENOSPC"
      end)
      assert.are.same({ nil, "disk full", "ENOSPC" }, { ok, err, code })
      assert.are.equal(1, calls)
      s:close()
    end)
  end

  it("moves what the file holds to memory and goes on", function()
    local s = spool.new()
    s:append("head,")
    local m = s:mark()
    s:to_memory()
    s:append("tail")
    assert.are.equal("head,tail", s:read(0, s:mark()))
    assert.are.equal("tail", s:read(m, s:mark()))
    s:close()
  end)

  it("gives its temporary file a stdio buffer of the size asked, freed with the file", function()
    local sys = require "hplua.sys"
    for _, size in ipairs { 0, 1, 4096, 1 << 18 } do
      local f = assert(sys.tmpfile(size))
      local piece = string.rep("x", 99) .. "\n"
      for _ = 1, 5000 do assert(f:write(piece)) end
      assert(f:seek("set", 0))
      local text = f:read("a")
      assert.are.equal(500000, #text)
      assert.are.equal(piece, text:sub(-100))
      assert(f:close())
    end
    local dropped = assert(sys.tmpfile(1 << 16)) -- never closed: its __gc closes and frees
    dropped:write("x")
    dropped = nil
    collectgarbage()
    assert.has_error(function() sys.tmpfile(-1) end)
    assert.has_error(function() sys.tmpfile(1 << 30) end)
  end)

  it("loses and repeats nothing when the k-th write or flush of its file fails, for every k", function()
    -- the temporary file wrapped: its k-th write puts half of what it was given into
    -- the file (a disk that fills mid-write) and fails; its k-th flush fails
    local sys = require "hplua.sys"
    local real_tmpfile, real_pread = sys.tmpfile, sys.pread
    local fail_at, calls, failed
    local Wrap = {}
    Wrap.__index = Wrap
    function Wrap:write(...)
      calls = calls + 1
      if calls ~= fail_at then return self.f:write(...) end
      failed = true
      local s = table.concat { ... }
      self.f:write(s:sub(1, #s // 2))
      self.f:flush()
      return nil, "File too large", 27
    end
    function Wrap:flush()
      calls = calls + 1
      if calls ~= fail_at then return self.f:flush() end
      failed = true
      return nil, "No space left on device", 28
    end
    function Wrap:close() return self.f:close() end
    sys.tmpfile = function(n) return setmetatable({ f = real_tmpfile(n) }, Wrap) end
    sys.pread = function(f, off, len) return real_pread(getmetatable(f) == Wrap and f.f or f, off, len) end
    local ok, err = pcall(function()
      local k = 0
      repeat
        k = k + 1
        fail_at, calls, failed = k, 0, false
        local seed = 7
        local function rand(n)
          seed = (seed * 1103515245 + 12345) % 2147483648
          return seed % n + 1
        end
        local s = spool.new()
        local all, marks = {}, { 0 }
        for i = 1, 100 do
          local piece = string.rep(string.char(65 + i % 26), rand(5) == 1 and 0 or rand(12000))
          local comma = i > 1 and rand(2) == 1
          s:append(piece, comma)
          all[#all + 1] = (comma and "," or "") .. piece
          if rand(8) == 1 then marks[#marks + 1] = s:mark() end
          if rand(30) == 1 then -- a read mid-run flushes too
            local m = marks[rand(#marks)]
            assert.are.equal(table.concat(all):sub(m + 1), s:read(m, s:mark()))
          end
        end
        local whole = table.concat(all)
        assert.are.equal(#whole, s:mark())
        for _, m in ipairs(marks) do
          assert.are.equal(whole:sub(m + 1), s:read(m, s:mark()), "k " .. k .. ", from " .. m)
        end
        assert.are.equal(failed, s.file == nil) -- in memory exactly when a call failed
        s:close()
      until not failed
      assert.is_true(k > 20)
    end)
    sys.tmpfile, sys.pread = real_tmpfile, real_pread
    assert(ok, err)
  end)
end)

describe("hplua.json encoding paths", function()
  local json = require "hplua.json"

  it("sorts the keys of small and large objects alike", function()
    for _, n in ipairs { 1, 2, 47, 48, 49, 300 } do
      local t, keys = {}, {}
      for i = 1, n do
        local k = string.format("k%03d", (i * 7919) % 1000)
        t[k] = i
      end
      for k in pairs(t) do keys[#keys + 1] = k end
      table.sort(keys)
      local parts = {}
      for i, k in ipairs(keys) do parts[i] = string.format("%q:%d", k, t[k]) end
      assert.are.equal("{" .. table.concat(parts, ",") .. "}", json.encode(t))
    end
    -- keys that are not strings take the general path, sorted by their text
    assert.are.equal('{"1":"a","10":"b","x":true}', json.encode({ [1] = "a", [10] = "b", x = true }))
  end)

  it("writes whole microseconds, integers and other numbers as %.15g does", function()
    for _, v in ipairs { 0.002725, 1.5, 2.0, 100.0, 0.0001, 0.00001, 999999999.999999, 1e9, -0.25, 0.1, 1 / 3,
      123456.000001, -42, 0, math.mininteger, math.maxinteger } do
      local want = math.type(v) == "integer" and string.format("%d", v) or string.format("%.15g", v)
      if math.type(v) == "float" and tonumber(want) ~= v then want = string.format("%.17g", v) end
      assert.are.equal(want, json.encode(v))
    end
  end)

  it("returns a valid string from utf8_repair unchanged and repairs the rest", function()
    assert.are.equal("plain é text", json.utf8_repair("plain é text"))
    assert.are.equal("a\239\191\189b", json.utf8_repair("a\0b"))
    assert.are.equal("\239\191\189x", json.utf8_repair("\255x"))
  end)
end)
