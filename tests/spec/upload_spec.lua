-- The factory upload's pieces that need no server (the rest: tests/factory/).
local upload = require "hplua.upload"
local cli = require "hplua.cli"
local sqlite = require "hplua.sqlite"
local pq = require "hplua.pq"

describe("factory upload", function()
  it("takes postgresql:// URLs only and never shows a password", function()
    assert.is_true(upload.valid_url("postgresql://line1@db/quality"))
    assert.is_true(upload.valid_url("postgres://db/q?sslmode=require"))
    assert.is_false(upload.valid_url("mysql://db/q"))
    assert.is_false(upload.valid_url("host=db dbname=q"))
    assert.are.equal("postgresql://line1@db:5433/q", upload.redact("postgresql://line1:s3cr%40t@db:5433/q"))
    assert.are.equal("postgresql://line1@db/q", upload.redact("postgresql://line1@db/q"))
  end)

  it("names the problem of a failed connection", function()
    local url = "postgresql://u:pw@h/db"
    local function says(msg, code, text)
      local m = upload.explain(url, msg, code)
      assert.matches(text, m, 1, true)
      assert.is_nil(m:find("pw@", 1, true))
    end
    says('connection to server failed: FATAL:  password authentication failed for user "u"', "connect", "wrong password")
    says('connection to server failed: FATAL:  database "db" does not exist', "connect", 'unknown database "db"')
    says("server does not support SSL, but SSL was required", "connect", "TLS is required")
    says("connection to server failed: Connection refused", "connect", "the server is unreachable")
    says("permission denied for schema public", "42501", "missing privileges")
    says("server closed the connection unexpectedly", "closed", "the connection to the server was lost")
  end)

  it("is an option of a run: checked, and refused without the history", function()
    assert.are.equal("postgresql://h/db", assert(cli.parse { "--upload", "postgresql://h/db" }).upload)
    assert.matches("postgresql://USER@HOST", select(2, cli.parse { "--upload", "db.example" }))
    assert.matches("needs the history", select(2, cli.parse { "--upload", "postgresql://h/db", "--no-history" }))
  end)

  it("fails a connection with nil, message, code, and a bad parameter raises", function()
    local conn, err, code = pq.connect("postgresql://nobody@127.0.0.1:1/x", { connect_timeout = 2 })
    assert.is_nil(conn)
    assert.are.equal("connect", code)
    assert.matches("127.0.0.1", err, 1, true)
    assert.has_error(function() pq.connect("x", { connect_timeout = 0 }) end)
  end)

  it("makes COPY rows in C: exact numbers, escaped text, NULL as \\N", function()
    local db <close> = assert(sqlite.open(":memory:"))
    local st = assert(db:prepare("SELECT ?1, ?2, ?3, ?4, ?5"))
    local text = assert(st:copy_text(0.1 + 0.2, "a\tb\nc\\d\re", nil, 42, 1 / 0))
    assert.are.equal("0.30000000000000004\ta\\tb\\nc\\\\d\\re\t\\N\t42\tInfinity\n", text)
    assert.are.equal(0.1 + 0.2, tonumber(text:match("^[^\t]+")))
    local none = assert(db:prepare("SELECT 1 WHERE 0"))
    assert.are.equal("", none:copy_text())
  end)
end)
