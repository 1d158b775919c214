local sqlite = require "hplua.sqlite"

local function tmpdir()
  local d = os.tmpname()
  os.remove(d)
  assert(os.execute("mkdir -p '" .. d .. "'"))
  return d
end

local function mode_of(path)
  local p = io.popen("stat -c %a '" .. path .. "'")
  local m = p:read("l")
  p:close()
  return m
end

describe("hplua.sqlite", function()
  local dir
  before_each(function() dir = tmpdir() end)
  after_each(function() os.execute("rm -rf '" .. dir .. "'") end)

  it("runs statements with positional and named parameters", function()
    local db = assert(sqlite.open(":memory:"))
    assert(db:exec("CREATE TABLE t (a, b)"))
    local ins = assert(db:prepare("INSERT INTO t VALUES (?, ?)"))
    assert(ins:exec(1, "one"))
    assert(ins:exec(2, nil))
    assert.are.equal(1, db:changes())
    assert.are.equal(2, db:last_insert_rowid())
    local named = assert(db:prepare("INSERT INTO t VALUES (:a, :b)"))
    assert(named:exec { a = 3, b = "three" })
    local rows = {}
    for r in assert(db:prepare("SELECT a, b FROM t WHERE a >= ? ORDER BY a")):rows(2) do rows[#rows + 1] = r end
    assert.are.same({ { a = 2 }, { a = 3, b = "three" } }, rows)
    local sel = assert(db:prepare("SELECT b FROM t WHERE a = ?"))
    assert.are.same({ b = "one" }, sel:first(1))
    assert.is_false(sel:first(99))
    assert.is_true(sel:bind(3):step())
    assert.are.equal("three", sel:get(1))
    assert.are.same({ b = "three" }, sel:row())
    assert.is_false(sel:step())
    assert.are.same({ "b" }, sel:columns())
    db:close()
  end)

  it("binds text of exec where it is, and keeps none of it bound after, failed or not", function()
    local db = assert(sqlite.open(":memory:"))
    assert(db:exec("CREATE TABLE t (v UNIQUE)"))
    local ins = assert(db:prepare("INSERT INTO t VALUES (?)"))
    assert(ins:exec(string.rep("s", 200000) .. "!"))
    -- a failure (the same text again) clears the bindings too
    local ok, err, code = ins:exec(string.rep("s", 200000) .. "!")
    assert.is_nil(ok)
    assert.are.equal("SQLITE_CONSTRAINT", code)
    assert.truthy(err:find("UNIQUE", 1, true))
    collectgarbage()
    collectgarbage()
    assert.is_false(ins:step()) -- stepped again: a NULL, not text of a call that has returned
    local rows = {}
    for r in db:prepare("SELECT v FROM t ORDER BY rowid"):rows() do rows[#rows + 1] = r.v or "NULL" end
    assert.are.same({ string.rep("s", 200000) .. "!", "NULL" }, rows)
    -- a field read through __index is copied (nothing else holds that string)
    local named = assert(db:prepare("INSERT INTO t VALUES (:a)"))
    local t = setmetatable({}, { __index = function(_, k) return k .. string.rep("x", 1000) end })
    assert(named:exec(t))
    collectgarbage()
    assert.are.same({ n = 1 }, db:prepare("SELECT count(*) AS n FROM t WHERE v = ?"):first("a" .. string.rep("x", 1000)))
    -- first copies what it binds (the row it makes may raise, out of memory)
    local sel = assert(db:prepare("SELECT ? AS v"))
    local big = string.rep("r", 300000) .. "end"
    assert.are.same({ v = big }, sel:first(big))
    db:close()
  end)

  it("round-trips every byte of a string, as text and as a blob", function()
    local db = assert(sqlite.open(":memory:"))
    assert(db:exec("CREATE TABLE t (v)"))
    local weird = "a\0b\255\254 \192\128 end" .. string.rep("x", 100000)
    assert(db:prepare("INSERT INTO t VALUES (?)"):exec(weird))
    assert(db:prepare("INSERT INTO t VALUES (?)"):bind_blob(1, weird):step() == false)
    local got = {}
    for r in db:prepare("SELECT v, typeof(v) AS ty FROM t"):rows() do got[#got + 1] = r end
    assert.are.equal(weird, got[1].v)
    assert.are.equal("text", got[1].ty)
    assert.are.equal(weird, got[2].v)
    assert.are.equal("blob", got[2].ty)
  end)

  it("keeps integers, floats and booleans", function()
    local db = assert(sqlite.open(":memory:"))
    local r = db:prepare("SELECT ? AS i, ? AS f, ? AS t, ? AS n"):first(1 << 62, 0.1, true, nil)
    assert.are.equal(1 << 62, r.i)
    assert.are.equal(math.type(r.i), "integer")
    assert.are.equal(0.1, r.f)
    assert.are.equal(1, r.t)
    assert.is_nil(r.n)
  end)

  it("returns nil, message, code for failures of the world", function()
    local db = assert(sqlite.open(":memory:"))
    local s, err, code = db:prepare("SELECT * FROM missing")
    assert.is_nil(s)
    assert.matches("no such table", err)
    assert.are.equal("SQLITE_ERROR", code)
    assert(db:exec("CREATE TABLE u (k PRIMARY KEY)"))
    local ins = db:prepare("INSERT INTO u VALUES (?)")
    assert(ins:exec(1))
    local ok, cerr, ccode = ins:exec(1)
    assert.is_nil(ok)
    assert.matches("UNIQUE", cerr)
    assert.are.equal("SQLITE_CONSTRAINT", ccode)
    assert(ins:exec(2)) -- the statement is usable after a failure
    local nodb, oerr, ocode = sqlite.open(dir .. "/no/such/folder/x.db")
    assert.is_nil(nodb)
    assert.is_string(oerr)
    assert.are.equal("SQLITE_CANTOPEN", ocode)
  end)

  it("names a file that is not a database SQLITE_NOTADB", function()
    local path = dir .. "/notes.txt"
    local f = assert(io.open(path, "w"))
    f:write(string.rep("these are not the pages you are looking for\n", 100))
    f:close()
    local db = assert(sqlite.open(path))
    local ok, err, code = db:exec("SELECT * FROM sqlite_master")
    assert.is_nil(ok)
    assert.matches("not a database", err)
    assert.are.equal("SQLITE_NOTADB", code)
  end)

  it("waits for a lock, then says SQLITE_BUSY", function()
    local path = dir .. "/busy.db"
    local a = assert(sqlite.open(path))
    assert(a:exec("PRAGMA journal_mode = WAL; CREATE TABLE t (x)"))
    local b = assert(sqlite.open(path, "rw", 50))
    assert(a:exec("BEGIN IMMEDIATE"))
    local ok, err, code = b:exec("BEGIN IMMEDIATE")
    assert.is_nil(ok)
    assert.matches("locked", err)
    assert.are.equal("SQLITE_BUSY", code)
    assert(a:exec("COMMIT"))
    assert(b:exec("BEGIN IMMEDIATE; INSERT INTO t VALUES (1); COMMIT"))
  end)

  it("opens read-only when asked and refuses writes there", function()
    local path = dir .. "/ro.db"
    assert(assert(sqlite.open(path)):exec("CREATE TABLE t (x)"))
    local db = assert(sqlite.open(path, "r"))
    assert.is_true(db:readonly())
    local ok, _, code = db:exec("INSERT INTO t VALUES (1)")
    assert.is_nil(ok)
    assert.are.equal("SQLITE_READONLY", code)
    assert.is_nil((sqlite.open(dir .. "/absent.db", "rw")))
  end)

  it("creates files 0600 and, with p, missing folders 0700", function()
    local path = dir .. "/a/b/h.db"
    local db = assert(sqlite.open(path, "rwcp"))
    assert(db:exec("PRAGMA journal_mode = WAL; CREATE TABLE t (x); INSERT INTO t VALUES (1)"))
    assert.are.equal("600", mode_of(path))
    assert.are.equal("600", mode_of(path .. "-wal"))
    assert.are.equal("700", mode_of(dir .. "/a"))
    assert.are.equal("700", mode_of(dir .. "/a/b"))
    db:close()
  end)

  it("raises on misuse, naming what is wrong", function()
    local db = assert(sqlite.open(":memory:"))
    local s = assert(db:prepare("SELECT ?"))
    assert.has_error(function() s:bind(print) end)
    assert.has_error(function() s:bind(1, 2) end)
    assert.has_error(function() db:prepare("SELECT 1; SELECT 2") end)
    assert.has_error(function() sqlite.open(":memory:", "x") end)
    s:finalize()
    assert.has_error(function() s:step() end, "sqlite: the statement is finalized")
    local s2 = assert(db:prepare("SELECT 1"))
    db:close()
    assert.has_error(function() db:exec("SELECT 1") end, "sqlite: the database is closed")
    assert.has_error(function() s2:step() end, "sqlite: the statement's database is closed")
    s2:finalize()
    db:close() -- closing twice is harmless
  end)

  it("closes with <close> and raises in a broken rows loop", function()
    local handle
    do
      local db <close> = assert(sqlite.open(":memory:"))
      handle = db
    end
    assert.matches("closed", tostring(handle))
    local db = assert(sqlite.open(":memory:"))
    assert(db:exec("CREATE TABLE t (x); INSERT INTO t VALUES (1), (2)"))
    local s = assert(db:prepare("SELECT 1 / 0 + abs(-9223372036854775807 - x) AS v FROM t"))
    assert.has_error(function() for _ in s:rows() do end end)
  end)
end)
