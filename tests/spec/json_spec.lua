local json = require "hplua.json"

describe("hplua.json", function()
  it("round-trips nested values", function()
    local v = { name = "x", list = { 1, 2.5, true }, nested = { ok = false } }
    assert.are.same(v, json.decode(json.encode(v)))
  end)

  it("decodes only the top-level members asked for", function()
    local text = '{"type":"test_finished","status":"failed","error":{"message":"m"},"messages":[{"text":"x"}]}'
    assert.are.same({ type = "test_finished", error = { message = "m" } }, json.decode(text, { type = true, error = true }))
    assert.are.same({ 1, 2 }, json.decode("[1,2]", { type = true })) -- not an object: all of it
  end)

  it("encodes marked empty tables as arrays and json.null as null", function()
    assert.are.equal('{"a":[],"b":null}', json.encode({ a = json.array(), b = json.null }):gsub('"b":null,"a":%[%]', '"a":[],"b":null'))
  end)

  it("repairs invalid UTF-8 instead of emitting it", function()
    local s = json.encode("ok \255 \192\128 end")
    assert.are.equal('"ok \239\191\189 \239\191\189\239\191\189 end"', s)
  end)

  it("refuses functions and cycles with a message", function()
    assert.matches("cannot encode a function", select(2, json.encode({ f = print })))
    local t = {}
    t.self = t
    assert.matches("nested too deeply", select(2, json.encode(t)))
  end)

  it("names the line of a syntax error", function()
    local v, err = json.decode('{\n "a": 1,\n oops }')
    assert.is_nil(v)
    assert.matches("line 3", err)
  end)
end)

describe("hplua.json lines and frames", function()
  it("encodes each value once into a line buffer, and leaves it as it was when a value cannot be", function()
    local lines = json.lines()
    assert.is_true(lines:add({ b = 1, a = "x" }))
    assert.is_nil((lines:add({ f = print })))
    assert.is_true(lines:add(json.array { 1, json.null }))
    assert.are.equal(25, lines:size())
    assert.are.equal('{"a":"x","b":1}\n[1,null]\n', lines:take())
    assert.are.equal(0, lines:size())
  end)

  it("sorts the keys of tables of one shape the same way every time, even when a key is new", function()
    local out = {}
    for i = 1, 5 do
      local t = { zeta = i, alpha = i, mid = i }
      if i == 4 then t.beta = i end -- another shape among the same keys
      out[i] = json.encode(t)
    end
    assert.are.equal('{"alpha":1,"mid":1,"zeta":1}', out[1])
    assert.are.equal('{"alpha":4,"beta":4,"mid":4,"zeta":4}', out[4])
    assert.are.equal('{"alpha":5,"mid":5,"zeta":5}', out[5])
  end)

  it("writes the buffer to a descriptor, and says why it cannot", function()
    local sys = require "hplua.sys"
    local path = os.tmpname()
    local fd = assert(sys.open(path, "w"))
    local lines = json.lines()
    lines:add({ n = 1 })
    assert.is_true(lines:write(fd))
    sys.close(fd)
    local f = assert(io.open(path))
    assert.are.equal('{"n":1}\n', f:read("a"))
    f:close()
    os.remove(path)
    local ok, err, code = lines:write(fd) -- closed now
    assert.is_nil(ok)
    assert.matches("write: ", err)
    assert.are.equal("EBADF", code)
  end)

  it("drains: writes and clears in one call, and clears when the write fails too", function()
    local sys = require "hplua.sys"
    local path = os.tmpname()
    local fd = assert(sys.open(path, "w"))
    local lines = json.lines()
    lines:add({ n = 1 })
    assert.is_true(lines:drain(fd))
    assert.are.equal(0, lines:size())
    lines:add({ n = 2 })
    assert.is_true(lines:drain(fd))
    sys.close(fd)
    local f = assert(io.open(path))
    assert.are.equal('{"n":1}\n{"n":2}\n', f:read("a"))
    f:close()
    os.remove(path)
    lines:add({ n = 3 })
    local ok, err, code = lines:drain(fd) -- closed now
    assert.is_nil(ok)
    assert.matches("write: ", err)
    assert.are.equal("EBADF", code)
    assert.are.equal(0, lines:size())
  end)

  it("packs values into frames that unpack to the same values, marks and nulls kept", function()
    local lines = json.lines()
    local v = { s = "a\0b", i = -7, d = 0.1, t = true, f = false, n = json.null, arr = json.array { 1, "two" },
      empty = json.array(), seq = { 10, 20 }, [3] = "three", nested = { deeper = { x = 1.5 } } }
    assert.is_true(lines:pack(v))
    assert.is_true(lines:pack("next"))
    local ok, err = lines:pack({ f = print })
    assert.is_nil(ok)
    assert.matches("cannot pack a function", err)
    local data = lines:take()
    local got, pos = json.unpack(data)
    assert.are.same(v, got)
    assert.are.equal(json.null, got.n)
    assert.are.equal(getmetatable(json.array()), getmetatable(got.arr))
    assert.are.equal(getmetatable(json.array()), getmetatable(got.empty))
    assert.is_nil(getmetatable(got.seq))
    local second, pos2 = json.unpack(data, pos)
    assert.are.equal("next", second)
    assert.are.equal(#data + 1, pos2)
  end)

  it("says a frame is not all there yet, and raises on a damaged one", function()
    local lines = json.lines()
    lines:pack({ a = "long enough" })
    local data = lines:take()
    for cut = 0, #data - 1 do
      local v, pos = json.unpack(data:sub(1, cut))
      assert.is_nil(v)
      assert.are.equal(1, pos)
    end
    local bad = data:sub(1, 4) .. "?" .. data:sub(6)
    assert.has_error(function() json.unpack(bad) end)
    local short = string.pack("<I4", 3) .. "s\255\255"
    assert.has_error(function() json.unpack(short) end)
  end)
end)

describe("hplua.json encoding of nasty values", function()
  local function enc(v) return assert(json.encode(v)) end

  it("writes numbers JSON can read back exactly", function()
    assert.are.equal("-0", enc(-0.0))
    assert.are.equal("0", enc(0))
    assert.are.equal("1e+308", enc(1e308))
    assert.are.equal(5e-324, json.decode(enc(5e-324)))
    assert.are.equal("-9223372036854775808", enc(math.mininteger))
    assert.are.equal("9223372036854775807", enc(math.maxinteger))
    assert.are.equal("0.1", enc(0.1))
    assert.are.equal(1 / 3, json.decode(enc(1 / 3)))
    -- JSON has no infinities or NaN: null (the report writes measurements as text)
    assert.are.equal("[null,null,null]", enc(json.array { math.huge, -math.huge, 0 / 0 }))
  end)

  it("escapes controls and line separators, repairs invalid UTF-8 and NUL", function()
    assert.are.equal('"a\\u0001\\u001b[\\n\\t\\r\\"\\\\/"', enc("a\1\27[\n\t\r\"\\/"))
    assert.are.equal('"\\u2028\\u2029"', enc("\u{2028}\u{2029}"))
    assert.are.equal('"\u{FFFE}\u{FFFF}\127"', enc("\u{FFFE}\u{FFFF}\127")) -- valid JSON as they are
    assert.are.equal('"a\u{FFFD}b \u{FFFD}\u{FFFD} \u{FFFD}\u{FFFD}\u{FFFD}"', enc("a\0b \192\175 \237\160\128"))
    assert.are.equal('{"\u{FFFD}":1}', enc({ ["\255"] = 1 }))
  end)

  -- a plain reference: sorted keys, each byte escaped as the encoder does for ASCII
  local function ref(v)
    if type(v) == "string" then
      return '"' .. v:gsub('[%c"\\\127]', function(c)
        local named = { ["\n"] = "\\n", ["\t"] = "\\t", ["\r"] = "\\r", ["\b"] = "\\b", ["\f"] = "\\f", ['"'] = '\\"', ["\\"] = "\\\\", ["\127"] = "\127" }
        return named[c] or string.format("\\u%04x", c:byte())
      end) .. '"'
    elseif type(v) == "table" then
      local keys = {}
      for k in pairs(v) do keys[#keys + 1] = k end
      table.sort(keys)
      for i, k in ipairs(keys) do keys[i] = ref(k) .. ":" .. ref(v[k]) end
      return "{" .. table.concat(keys, ",") .. "}"
    end
    return tostring(v)
  end

  it("escapes a special byte wherever it falls in a long plain string", function()
    for _, c in ipairs { "\0", "\1", "\31", '"', "\\", "\127", "\n", "\200" } do
      for len = 1, 40 do
        for at = 1, len do
          local text = string.rep("a", at - 1) .. c .. string.rep("b", len - at)
          local want = c == "\0" and '"' .. text:gsub("%z", "\u{FFFD}") .. '"' or c == "\200" and '"' .. text:gsub("\200", "\u{FFFD}") .. '"' or ref(text)
          assert.are.equal(want, enc(text))
        end
      end
    end
  end)

  it("writes objects of many shapes as a plain sorted encoder does, keys collected and made again", function()
    local pool = { "a", "b", "zz", "m", "key with space", 'qu"ote', "back\\slash", "ctl\1", string.rep("k", 40), string.rep("l", 41), "\u{e9}t\u{e9}" }
    local seed = 7
    local function rand(n) seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n + 1 end
    local function object(round, depth)
      local t = {}
      for _ = 1, rand(12) do
        local k = rand(3) == 1 and pool[rand(#pool)] or string.format("k%d", rand(60)) -- made anew each time
        -- values: numbers, strings, and objects of other shapes inside (which may take
        -- the cache entry of the object around them while it is being written)
        t[k] = depth < 3 and rand(4) == 1 and object(round, depth + 1) or rand(2) == 1 and round or ("v" .. k)
      end
      return t
    end
    for round = 1, 3000 do
      local t = object(round, 1)
      local got = enc(t)
      if not got:find("\u{e9}", 1, true) then assert.are.equal(ref(t), got) end
      assert.are.same(t, json.decode(got))
      if round % 100 == 0 then collectgarbage() end -- key strings die; their addresses come back
    end
  end)

  it("writes the keys of an object right after an object of another shape inside it", function()
    for i = 1, 2000 do
      local inner = {}
      for k = 1, 6 do inner[string.format("longer%d_%d", i, k)] = k end
      local got = enc({ a = inner, b = 1, c = 2 })
      assert.are.equal(',"b":1,"c":2}', got:sub(-13))
      assert.are.same({ a = inner, b = 1, c = 2 }, json.decode(got))
    end
  end)

  it("writes an object through json.fields as json.encode writes the same table", function()
    local keys = { "zeta", "a", "key with space", 'qu"ote', "back\\slash", "ctl\1", "\u{e9}t\u{e9}", "m", "ab", "b" }
    local f = json.fields(keys)
    local seed = 11
    local function rand(n) seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n + 1 end
    local choices = { function() return nil end, function() return json.null end, function() return rand(1000) end,
      function() return rand(1000) / 7 end, function() return "s\n\"" .. rand(9) end, function() return json.array() end,
      function() return {} end, function() return { x = { 1, 2, { y = "z" } }, [1] = nil } end,
      function() return json.array({ { k = 1 }, "t", json.null }) end, function() return rand(2) == 1 end }
    for _ = 1, 2000 do
      local t, vals = {}, {}
      for i, k in ipairs(keys) do
        vals[i] = choices[rand(#choices)]()
        t[k] = vals[i]
      end
      assert.are.equal(json.encode(t, false, math.huge), f:encode(table.unpack(vals, 1, #keys)))
    end
    assert.are.equal("{}", f:encode())
    assert.are.equal('{"a":1}', f:encode(nil, 1))
    local bad, err = f:encode(function() end)
    assert.is_nil(bad)
    assert.matches("cannot encode a function", err)
    assert.has_error(function() json.fields {} end)
    assert.has_error(function() json.fields { "a", "a" } end)
    assert.has_error(function() json.fields { "a", 1 } end)
    assert.has_error(function() json.fields { string.rep("k", 1100) } end)
  end)

  it("sorts keys and writes pretty text with two-space indents", function()
    assert.are.equal('{"a":[1,{}],"b":true,"c":null}', enc({ c = json.null, b = true, a = { 1, {} } }))
    assert.are.equal('{\n  "a": [\n    1\n  ],\n  "b": {}\n}', json.encode({ b = {}, a = { 1 } }, true))
  end)

  it("stops a table shared many times before it expands to gigabytes", function()
    local t = { "x" }
    for _ = 1, 22 do t = { t, t } end
    local started = os.clock()
    local v, err = json.encode(t)
    assert.is_nil(v)
    assert.are.equal("too large: expands to more than 256 MB", err)
    assert.is_true(os.clock() - started < 30)
    -- the budget can be given: bytes of text plus 32 per value
    assert.are.equal("too large: expands to more than 100 bytes", select(2, json.encode(string.rep("x", 100), false, 100)))
    assert.are.equal(102, #json.encode(string.rep("x", 100), false, 200))
    assert.are.equal(2 ^ 10 * 4 + 1, #select(1, json.encode(string.rep("abcd", 2 ^ 10) .. "", false, math.huge)) - 1)
  end)
end)

describe("hplua.json report files", function()
  local sys = require "hplua.sys"
  local dir
  before_each(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir))
  end)
  after_each(function() os.execute("rm -rf '" .. dir .. "'") end)

  local function read(p)
    local f = assert(io.open(p, "rb"))
    local s = f:read("a")
    f:close()
    return s
  end
  local function entries()
    local names = sys.listdir(dir)
    table.sort(names)
    return table.concat(names, " ")
  end
  local function sh(cmd) assert(os.execute(cmd)) end

  it("replaces a file atomically and leaves no temporary", function()
    assert.is_true(json.write_atomic(dir .. "/r.json", "one"))
    assert.is_true(json.write_atomic(dir .. "/r.json", "two"))
    assert.are.equal("two", read(dir .. "/r.json"))
    assert.are.equal("r.json", entries())
    local umask = require("hplua").process.start("umask", "umask"):wait(10).stdout
    assert.are.equal(tonumber("644", 8) & ~tonumber(umask, 8), sys.stat(dir .. "/r.json").mode) -- 0644 minus the umask
  end)

  it("does not follow a planted link at the old predictable temporary name", function()
    local victim = dir .. "/victim"
    sh("echo secret > " .. victim .. " && chmod 600 " .. victim)
    sh(string.format("ln -s %s %s/r.json.tmp.%d", victim, dir, sys.getpid()))
    assert.is_true(json.write_atomic(dir .. "/r.json", "report"))
    assert.are.equal("secret\n", read(victim))
    assert.are.equal(tonumber("600", 8), sys.stat(victim).mode)
  end)

  it("keeps a link to a regular file and replaces the file it points to", function()
    sh(string.format("echo old > %s/real.json && ln -s real.json %s/link.json", dir, dir))
    assert.is_true(json.write_atomic(dir .. "/link.json", "new"))
    assert.are.equal("new", read(dir .. "/real.json"))
    assert.are.equal("link.json real.json", entries())
    assert.is_true(os.execute("test -L " .. dir .. "/link.json"))
  end)

  it("refuses a folder, a dangling link and a missing folder, naming the path", function()
    local v, err, code = json.write_atomic(dir, "x")
    assert.is_nil(v)
    assert.are.equal("cannot write " .. dir .. ": it is a folder", err)
    assert.are.equal("EISDIR", code)
    sh(string.format("ln -s nowhere %s/dangling", dir))
    v, err, code = json.write_atomic(dir .. "/dangling", "x")
    assert.are.equal("cannot write " .. dir .. "/dangling: it is a symbolic link to a missing file", err)
    assert.are.equal("ENOENT", code)
    v, err, code = json.check_target(dir .. "/no/such/r.json")
    assert.are.equal("cannot write " .. dir .. "/no/such/r.json: its folder does not exist", err)
    assert.are.equal("ENOENT", code)
    assert.is_true(json.check_target(dir .. "/fresh.json"))
    assert.are.equal("dangling", entries()) -- checking leaves nothing behind
  end)

  it("writes into a FIFO directly and never replaces it", function()
    local fifo = dir .. "/fifo"
    sh("mkfifo " .. fifo)
    -- nobody reads it: an error, not a hang, and the FIFO stays
    local v, err, code = json.write_atomic(fifo, "x")
    assert.is_nil(v)
    assert.are.equal("cannot write " .. fifo .. ": no process reads the FIFO", err)
    assert.are.equal("ENXIO", code)
    assert.is_true(json.check_target(fifo)) -- checking does not open it
    local hp = require "hplua"
    local reader = hp.process.start("fifo-reader", { "cat", fifo })
    local ok
    for _ = 1, 200 do -- until cat has opened its end
      ok = json.write_atomic(fifo, '{"via":"fifo"}')
      if ok then break end
      hp.sleep(0.02)
    end
    assert.is_true(ok)
    assert.are.equal('{"via":"fifo"}', reader:wait(10).stdout)
    assert.is_true(os.execute("test -p " .. fifo))
    assert.are.equal("fifo", entries())
  end)

  it("streams through open_atomic: nothing at the path until commit", function()
    local p = dir .. "/s.json"
    local h = assert(json.open_atomic(p))
    assert.is_true(h:write("[1,", "2]"))
    assert.is_true(h:sync())
    assert.is_nil(io.open(p))
    assert.is_true(h:commit())
    assert.are.equal("[1,2]", read(p))
    local v, err, code = h:commit()
    assert.is_nil(v)
    assert.are.equal("closed", code)
    assert.matches("already committed or aborted", err)
    -- abort, <close> and garbage collection all remove the temporary
    h = assert(json.open_atomic(dir .. "/a.json"))
    h:write("x")
    h:abort()
    do
      local c <close> = assert(json.open_atomic(dir .. "/c.json"))
      c:write("x")
    end
    json.open_atomic(dir .. "/g.json"):write("x")
    collectgarbage()
    collectgarbage()
    assert.are.equal("s.json", entries())
  end)

  it("copies a range of an open file into the report (handle:copy), to a file and to a FIFO", function()
    local src = assert(sys.tmpfile(4096))
    local text = {}
    for i = 1, 20000 do text[i] = string.format("%05d,", i) end
    text = table.concat(text)
    src:write(text) -- still in the stdio buffer in part: copy flushes it first
    local p = dir .. "/c.json"
    local h = assert(json.open_atomic(p))
    assert.is_true(h:write("["))
    assert.is_true(h:copy(src, 6, #text - 7)) -- from "00002" to before the last ","
    assert.is_true(h:copy(src, 0, 0))
    assert.is_true(h:write("]"))
    assert.is_true(h:commit())
    assert.are.equal("[" .. text:sub(7, -2) .. "]", read(p))
    os.remove(p)
    -- past the file's end: an error, and the handle keeps it
    h = assert(json.open_atomic(p))
    local v, err, code = h:copy(src, #text - 3, 10)
    assert.is_nil(v)
    assert.are.equal("EIO", code)
    assert.matches("cannot write", err)
    h:abort()
    assert.has_error(function() h:copy(src, -1, 1) end)
    -- a FIFO (a pipe: no page cache to copy from, into)
    local fifo = dir .. "/cf"
    sh("mkfifo " .. fifo)
    local hp = require "hplua"
    local reader = hp.process.start("copy-reader", { "cat", fifo })
    local w
    for _ = 1, 200 do
      w = json.open_atomic(fifo)
      if w then break end
      hp.sleep(0.02)
    end
    assert(w, "the reader never opened the FIFO")
    assert.is_true(w:copy(src, 0, #text))
    assert.is_true(w:commit())
    assert.are.equal(text, reader:wait(10).stdout)
    src:close()
    assert.has_error(function() json.open_atomic(dir .. "/x"):copy(src, 0, 1) end)
    os.remove(fifo)
    collectgarbage()
    assert.are.equal("", entries())
  end)

  it("writes into its own stdout directly (what /dev/stdout resolves to)", function()
    -- a private link to /proc/self/fd/1, not /dev/stdout itself: a broken build must
    -- not be able to replace a system file
    sh(string.format("ln -s /proc/self/fd/1 %s/out", dir))
    local hp = require "hplua"
    local r = hp.process.start("to-stdout", { sys.exepath(), "-e",
      string.format("io.stdout:write('before ') io.stdout:flush() assert(require('hplua.json').write_atomic(%q, 'report'))", dir .. "/out") }):wait(30)
    assert.are.equal(0, r.exit_code)
    assert.are.equal("before report", r.stdout)
    assert.is_true(os.execute("test -L " .. dir .. "/out"))
    assert.are.equal("out", entries())
  end)
end)

describe("hplua.json.members", function()
  local json = require "hplua.json"

  -- every member as decode gives it, for the same text
  local function same_as_decode(text, ...)
    local got = table.pack(json.members(text, ...))
    local whole = json.decode(text)
    assert.is_true(got[1], text)
    for i, k in ipairs { ... } do
      assert.are.same(whole[k], got[i + 1], k .. " of " .. text)
    end
  end

  it("gives the named top-level members as decode does, nested ones decoded", function()
    same_as_decode('{"seq":12,"type":"test_finished","error":{"message":"x \\"q\\"","traceback":null},'
      .. '"duration":2.5e-05,"ok":true,"no":false,"nothing":null,"list":[1,[2,{"seq":3}],"]"]}',
      "seq", "type", "error", "duration", "ok", "no", "nothing", "list", "absent")
    same_as_decode('{"t":"\\u00e9\\n\\ud83d\\ude00","n":-0,"big":12345678901234567890,"f":1.0,"e":-3E2}',
      "t", "n", "big", "f", "e")
    same_as_decode('  {  "a" : 1 ,  "b" : { } , "c" : [ ] }  ', "a", "b", "c")
    same_as_decode('{}', "a")
  end)

  it("takes the last of a repeated member, as decode does", function()
    same_as_decode('{"a":1,"b":2,"a":3}', "a", "b")
  end)

  it("skips a member it was not asked for without reading it as the one asked for", function()
    -- a nested "seq", and a string holding what looks like a member
    local ok, seq, kind = json.members('{"error":{"seq":99},"text":"\\",\\"seq\\":98","seq":5,"type":"t"}', "seq", "type")
    assert.is_true(ok)
    assert.are.equal(5, seq)
    assert.are.equal("t", kind)
  end)

  it("refuses what is not one well-formed object, naming where", function()
    for text, where in pairs {
      ['[1]'] = "not an object at byte 1",
      [''] = "not an object at byte 1",
      ['{"a":1'] = "the object's end at byte 7",
      ['{"a":1} x'] = "text after the object at byte 9",
      ['{"a":"x\1"}'] = "a member's value at byte 6",
      ['{"a":[1,2}'] = "a member's value at byte 6",
      ['{"a":{"b":1]}'] = "a member's value at byte 6",
      ['{"a" 1}'] = "a member's name at byte 6",
      ['{a:1}'] = "a member's name at byte 2",
      ['{"a":"open}'] = "a member's value at byte 6",
      ['{"a":}'] = "a member's value at byte 6",
    } do
      local ok, err = json.members(text, "a")
      assert.is_nil(ok, text)
      assert.are.equal("invalid JSON: " .. where, err, text)
    end
    -- what decode refuses, members refuses, whether the member is asked for or not:
    -- a value with text after it, a bad literal, number or escape, a stray comma
    for _, text in ipairs { '{"a":tru}', '{"a":1x}', '{"a":truex}', '{"a":nullx}', '{"a":0x10}', '{"a":1.2.3}',
      '{"a":-}', '{"a":1e}', '{"a":"\\x"}', '{"a":[1,]}', '{"a":{"c"}}',
      '{"a":{"c":1,}}', '{"a":[,1]}', '{"a":{,}}', '{"a":1,}' } do
      for _, key in ipairs { "a", "other" } do
        assert.is_nil(json.decode(text), text)
        local ok, err = json.members(text, key)
        assert.is_nil(ok, text .. " asking for " .. key)
        assert.matches("^invalid JSON: ", err)
      end
    end
  end)

  it("keeps to JSON's grammar where cJSON's decode is lenient", function()
    for _, text in ipairs { '{"a":01}', '{"a":1.}', '{"a":"\\u12g4"}', '{"a":"x\ty"}', '\1{"a":1}' } do
      assert.is_nil((json.members(text, "a")), text)
    end
  end)

  it("finds a member whose name is written with escapes, as decode does", function()
    same_as_decode('{"\\u0061":1}', "a")
    same_as_decode('{"a":1,"\\u0061":2,"q\\"":3}', "a", 'q"')
  end)

  it("refuses nesting deeper than decode takes", function()
    local deep = string.rep("[", 300) .. string.rep("]", 300)
    assert.is_nil((json.members('{"a":' .. deep .. '}', "b")))
    assert.is_true((json.members('{"a":' .. string.rep("[", 150) .. string.rep("]", 150) .. '}', "b")))
  end)

  it("checks its arguments", function()
    assert.has_error(function() json.members({}, "a") end)
    assert.has_error(function() json.members("{}", 1, {}) end)
    local keys = {}
    for i = 1, 17 do keys[i] = "k" .. i end
    assert.has_error(function() json.members("{}", table.unpack(keys)) end)
  end)
end)

describe("hplua.json numbers out of an integer's range", function()
  local json = require "hplua.json"
  it("decodes them as floats (no cast out of range)", function()
    for _, text in ipairs { "1e19", "-1e19", "1e400", "-1e400", "9007199254740993", "1.5e300" } do
      local v = json.decode(text)
      assert.are.equal("float", math.type(v), text)
      local ok, w = json.members('{"a":' .. text .. '}', "a")
      assert.is_true(ok)
      assert.are.equal(v, w, text)
    end
    assert.are.equal("integer", math.type(json.decode("9007199254740991")))
  end)
end)
