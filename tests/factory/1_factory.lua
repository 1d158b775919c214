-- The factory upload (API 9) against a real PostgreSQL server: faults from issue 19.
-- Every count is made by SQL through psql. "Nothing lost" means every run ends up
-- exactly once in PostgreSQL.
local hp = require "hplua"
local sys = require "hplua.sys"
local sqlite = require "hplua.sqlite"
local pg = require "_pg"

local EXE = sys.exepath()
local HERE = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local FIXTURES = assert(os.getenv("HPLUA_FIXTURES"), "HPLUA_FIXTURES not set")
local server
local n = 0

hp.before_all(function()
  server = pg.start()
  -- a user that may log in but create nothing (PostgreSQL 15: no CREATE on public)
  server:psql("CREATE ROLE reader LOGIN PASSWORD '" .. pg.PASSWORD .. "'")
end)

-- a test that failed with the server stopped does not take the next one along
hp.before_each(function()
  if server and not server:pid() then assert(server:start()) end
end)

hp.after_all(function()
  if server then server:destroy() end
end)

local function tmpdir()
  local d = os.tmpname()
  os.remove(d)
  assert(os.execute("mkdir -p '" .. d .. "'"))
  return d
end

-- Runs hplua ARGS (env: extra variables); returns its result.
local function hplua(args, env, timeout)
  n = n + 1
  local argv = { EXE }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  local e = { PGPASSWORD = pg.PASSWORD, HPLUA_UPLOAD = false }
  for k, v in pairs(env or {}) do e[k] = v end
  return hp.process.start("hplua-" .. n, argv, { env = e, timeout = timeout or 120, cwd = FIXTURES }):wait()
end

local function local_pending(db)
  local h <close> = assert(sqlite.open(db, "r"))
  return assert(h:prepare("SELECT count(*) AS n FROM runs WHERE upload_pending = 1")):first().n
end

local function gen(db, runs, tests, meas, station)
  local r = hplua({ "--exec", HERE .. "/_gen.lua", db, tostring(runs), tostring(tests), tostring(meas), station })
  assert(r.exit_code == 0, r.stderr)
  local ids = {}
  for id in r.stdout:gmatch("[^\n]+") do ids[#ids + 1] = id end
  return ids
end

local function wait_for(cond, limit, what)
  local deadline = hp.clock() + limit
  while not cond() do
    if hp.clock() > deadline then error("gave up waiting for " .. what, 2) end
    hp.sleep(0.05)
  end
end

-- An HTTP request by python3's urllib (a client that is not hplua's): body, status.
local HTTP_PY = [[
import sys, urllib.request as u
req = u.Request(sys.argv[2], method=sys.argv[1])
try:
    r = u.urlopen(req, timeout=30)
    body, code = r.read(), r.status
except u.HTTPError as e:
    body, code = e.read(), e.code
sys.stdout.write(body.decode() + "\n" + str(code))
]]
local function http(method, url)
  n = n + 1
  local r = hp.process.start("http-" .. n, { "python3", "-c", HTTP_PY, method, url }, { timeout = 60 }):wait()
  local body, code = r.stdout:match("^(.*)\n(%d+)$")
  assert(code, r.stderr)
  return body, tonumber(code)
end

local dbs = 0
local function fresh_db()
  dbs = dbs + 1
  return server:createdb("factory" .. dbs)
end

hp.test("server down when the runs end: exit status unchanged, queued; up later: history upload delivers all", function()
  local dir = tmpdir()
  local db = fresh_db()
  local url = server:url("postgres", db)
  local h = dir .. "/h.db"
  server:stop("fast")
  for i = 1, 3 do
    local r = hplua({ "-q", "--history", h, "--upload", url, "--serial", "SN" .. i, "fail" })
    assert(r.exit_code == 1, r.stderr) -- the suite's own verdict, not the upload's
    hp.expect(r.stderr).never.to_contain("upload")
  end
  local r = hplua({ "history", "upload", "--history", h, "--upload", url })
  hp.expect(r.exit_code).to_equal(1)
  hp.expect(r.stderr).to_contain("the server is unreachable")
  hp.expect(r.stderr).to_contain("stay queued")
  hp.expect(r.stdout).to_equal("uploaded 0, pending 3\n")
  hp.expect(local_pending(h)).to_equal(3)
  local list = hplua({ "history", "--history", h })
  hp.expect(list.stdout).to_contain("3 runs waiting for upload")
  hp.expect(list.stdout).to_contain("last upload attempt: upload to " .. url .. ": the server is unreachable")
  assert(server:start())
  -- the last URL is kept (without password): no need to repeat it
  r = hplua({ "history", "upload", "--history", h })
  assert(r.exit_code == 0, r.stderr)
  hp.expect(r.stdout).to_equal("uploaded 3, pending 0\n")
  hp.expect(server:count("SELECT count(*) FROM hplua_runs", db)).to_equal(3)
  hp.expect(server:count("SELECT count(DISTINCT serial) FROM hplua_runs WHERE status = 'failed'", db)).to_equal(3)
  local tests = server:count("SELECT count(*) FROM hplua_tests", db)
  hp.expect(tests).to_be_greater_than(0)
  -- sending again changes nothing
  r = hplua({ "history", "upload", "--history", h })
  hp.expect(r.stdout).to_equal("uploaded 0, pending 0\n")
  hp.expect(server:count("SELECT count(*) FROM hplua_tests", db)).to_equal(tests)
end)

hp.test("a run with --upload uploads beside it, with its measurements", function()
  local dir = tmpdir()
  local db = fresh_db()
  local h = dir .. "/h.db"
  local r = hplua({ "-q", "--history", h, "--serial", "SN-L", "--limits", "limits/revA.json", "limits/1_rails.lua" },
    { HPLUA_UPLOAD = server:url("postgres", db) })
  assert(r.exit_code == 1, r.stdout .. r.stderr) -- two tests of the fixture fail by design
  wait_for(function() return local_pending(h) == 0 end, 30, "the detached uploader")
  local local_meas
  do
    local hdb <close> = assert(sqlite.open(h, "r"))
    local_meas = hdb:prepare("SELECT count(*) AS n FROM measurements"):first().n
  end
  hp.expect(local_meas).to_be_greater_than(0)
  hp.expect(server:count("SELECT count(*) FROM hplua_measurements m JOIN hplua_runs r USING (run_id) WHERE r.serial = 'SN-L'", db))
    .to_equal(local_meas)
  hp.expect(server:count("SELECT count(*) FROM hplua_schema WHERE version = 1", db)).to_equal(1)
  -- every value arrives exact (PostgreSQL prints the shortest text that reads back the same)
  local function exact(v) return v == nil and "nil" or string.format("%.17g", v) end
  local want = {}
  do
    local hdb <close> = assert(sqlite.open(h, "r"))
    for m in hdb:prepare("SELECT test_id, name, value, unit, status, min, max, lt FROM measurements ORDER BY seq"):rows() do
      want[#want + 1] = table.concat({ m.test_id, m.name, exact(m.value), m.unit or "", m.status,
        exact(m.min), exact(m.max), exact(m.lt) }, "|")
    end
  end
  local got = {}
  for l in server:psql([[SELECT test_id, name, value, coalesce(unit, ''), status, min, max, lt
      FROM hplua_measurements ORDER BY seq]], db):gmatch("[^\n]+") do
    local f = {}
    for x in (l .. "|"):gmatch("([^|]*)|") do f[#f + 1] = x end
    local function n(x) return exact(tonumber(x)) end
    got[#got + 1] = table.concat({ f[1], f[2], n(f[3]), f[4], f[5], n(f[6]), n(f[7]), n(f[8]) }, "|")
  end
  hp.expect(got).to_equal(want)
end)

hp.test("wrong password, unknown database, no privileges, TLS required: a clear message, runs stay queued", function()
  local dir = tmpdir()
  local db = fresh_db()
  local h = dir .. "/h.db"
  gen(h, 2, 2, 2)
  local cases = {
    { server:url("postgres", db), { PGPASSWORD = "wrong" }, "wrong password" },
    { server:url("postgres", "no_such_db"), {}, 'unknown database "no_such_db"' },
    { server:url("reader", db), {}, "missing privileges" },
    { server:url("postgres", db, "?sslmode=require"), {}, "TLS is required" },
  }
  for i, c in ipairs(cases) do
    local queued = 2 + i - 1
    local r = hplua({ "history", "upload", "--history", h, "--upload", c[1] }, c[2])
    assert(r.exit_code == 1, c[3] .. ": " .. r.stderr)
    hp.expect(r.stderr).to_contain(c[3])
    hp.expect(r.stderr).to_contain("stay queued")
    hp.expect(r.stdout).to_equal(string.format("uploaded 0, pending %d\n", queued))
    hp.expect(local_pending(h)).to_equal(queued)
    -- testing goes on: a run with the same target passes and is recorded
    local run = hplua({ "-q", "--history", h, "--upload", c[1], "pass" }, c[2])
    assert(run.exit_code == 0, run.stderr)
  end
  hp.expect(local_pending(h)).to_equal(2 + #cases)
  local r = hplua({ "history", "upload", "--history", h, "--upload", server:url("postgres", db) })
  hp.expect(r.stdout).to_equal(string.format("uploaded %d, pending 0\n", 2 + #cases))
  hp.expect(server:count("SELECT count(*) FROM hplua_runs", db)).to_equal(2 + #cases)
end)

hp.test("server killed mid-upload (between statements, inside COPY): no partial run, delivered once later", function()
  for _, where in ipairs { "hplua_runs", "hplua_measurements" } do
    local dir = tmpdir()
    local db = fresh_db()
    local url = server:url("postgres", db)
    local h = dir .. "/h.db"
    gen(h, 1, 1, 1)
    local r = hplua({ "history", "upload", "--history", h, "--upload", url })
    assert(r.stdout == "uploaded 1, pending 0\n", r.stderr) -- the schema exists now
    local ids = gen(h, 20, 5, 50)
    server:psql([[CREATE FUNCTION stall() RETURNS trigger LANGUAGE plpgsql AS
      $$ BEGIN PERFORM pg_sleep(60); RETURN NULL; END $$]], db)
    server:psql("CREATE TRIGGER stall AFTER INSERT ON " .. where .. " FOR EACH STATEMENT EXECUTE FUNCTION stall()", db)
    n = n + 1
    local up = hp.process.start("upload-" .. n, { EXE, "history", "upload", "--history", h, "--upload", url },
      { env = { PGPASSWORD = pg.PASSWORD }, timeout = 120 })
    wait_for(function()
      return server:count("SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'") > 0
    end, 60, "the upload to reach the trigger on " .. where)
    server:stop("immediate")
    r = up:wait()
    assert(r.exit_code == 1, where .. ": " .. r.stderr)
    hp.expect(r.stderr).to_contain("stay queued")
    hp.expect(local_pending(h)).to_equal(20)
    assert(server:start())
    hp.expect(server:count("SELECT count(*) FROM hplua_runs", db), where).to_equal(1) -- nothing of the batch
    hp.expect(server:count("SELECT count(*) FROM hplua_tests", db)).to_equal(1)
    server:psql("DROP TRIGGER IF EXISTS stall ON " .. where, db) -- (psql's own commits are not synchronous)
    r = hplua({ "history", "upload", "--history", h, "--upload", url })
    assert(r.stdout == "uploaded 20, pending 0\n", r.stderr)
    hp.expect(server:count("SELECT count(*) FROM hplua_runs", db)).to_equal(21)
    hp.expect(server:count("SELECT count(*) FROM hplua_tests", db)).to_equal(1 + 20 * 5)
    hp.expect(server:count("SELECT count(*) FROM hplua_measurements", db)).to_equal(1 + 20 * 50)
    local listed = server:psql("SELECT string_agg(run_id, ',' ORDER BY run_id) FROM hplua_runs WHERE run_id IN ('"
      .. table.concat(ids, "','") .. "')", db)
    table.sort(ids)
    hp.expect(listed).to_equal(table.concat(ids, ","))
  end
end)

hp.test("8 stations x 500 runs uploading at once, server restarted once: exactly 4000 runs", function()
  local dir = tmpdir()
  local db = fresh_db()
  local url = server:url("postgres", db)
  local TESTS, MEAS = 4, 8
  local gens = {}
  for i = 1, 8 do
    n = n + 1
    gens[i] = hp.process.start("gen-" .. n, { EXE, "--exec", HERE .. "/_gen.lua", dir .. "/h" .. i .. ".db", "500",
      tostring(TESTS), tostring(MEAS), "station" .. i }, { timeout = 120 })
  end
  for _, g in ipairs(gens) do hp.expect(g:wait().exit_code).to_equal(0) end
  local ups = {}
  local function start_upload(i)
    n = n + 1
    return hp.process.start("up-" .. n, { EXE, "history", "upload", "--history", dir .. "/h" .. i .. ".db", "--upload", url },
      { env = { PGPASSWORD = pg.PASSWORD }, timeout = 120 })
  end
  for i = 1, 8 do ups[i] = start_upload(i) end
  -- (the first uploader to connect makes the tables: until then the query fails)
  wait_for(function()
    local ok, count = pcall(server.count, server, "SELECT count(*) FROM hplua_runs", db)
    return ok and count > 0
  end, 60, "the first runs")
  server:restart()
  local failed = 0
  for _, u in ipairs(ups) do
    if u:wait().exit_code ~= 0 then failed = failed + 1 end
  end
  -- the queued rest goes with the next attempt
  for i = 1, 8 do
    local r = hplua({ "history", "upload", "--history", dir .. "/h" .. i .. ".db", "--upload", url })
    assert(r.exit_code == 0, r.stderr)
    hp.expect(r.stdout).to_match("pending 0\n$")
  end
  hp.expect(server:count("SELECT count(*) FROM hplua_runs", db)).to_equal(4000)
  hp.expect(server:count("SELECT count(DISTINCT run_id) FROM hplua_runs", db)).to_equal(4000)
  hp.expect(server:count("SELECT count(DISTINCT station) FROM hplua_runs", db)).to_equal(8)
  hp.expect(server:count("SELECT count(*) FROM hplua_tests", db)).to_equal(4000 * TESTS)
  hp.expect(server:count("SELECT count(*) FROM hplua_measurements", db)).to_equal(4000 * MEAS)
  hp.expect(server:count([[SELECT count(*) FROM (SELECT station FROM hplua_runs GROUP BY station
    HAVING count(*) = 500) s]], db)).to_equal(8)
  print(string.format("%d of 8 uploaders were cut off by the restart", failed))
end)

hp.test("a station SIGKILLed with runs pending uploads them after its restart", function()
  local dir = tmpdir()
  local db = fresh_db()
  local url = server:url("postgres", db)
  local h = dir .. "/h.db"
  server:stop("fast")
  gen(h, 3, 2, 4, "line1")
  hp.expect(local_pending(h)).to_equal(3)
  local base
  local function serve()
    n = n + 1
    base = nil
    return hp.process.start("serve-" .. n, { EXE, "serve", "--port", "0", "--history", h, "pass" },
      { env = { PGPASSWORD = pg.PASSWORD, HPLUA_UPLOAD = url }, timeout = 120, cwd = FIXTURES,
        on_line = function(l) base = base or l:match("(http://127%.0%.0%.1:%d+)/") end })
  end
  local st = serve()
  wait_for(function() return base ~= nil end, 30, "the station's address")
  -- its first try fails (server down): the runs stay queued, and the panel says how many
  local state = http("GET", base .. "/api/state")
  hp.expect(require("hplua.json").decode(state).uploads_pending).to_equal(3)
  hp.process.start("kill-" .. n, { "kill", "-KILL", tostring(st.pid) }):wait()
  st:wait()
  hp.expect(local_pending(h)).to_equal(3)
  assert(server:start())
  st = serve()
  wait_for(function() return local_pending(h) == 0 end, 30, "the restarted station's upload")
  st:terminate(5)
  hp.expect(server:count("SELECT count(*) FROM hplua_runs WHERE station = 'line1'", db)).to_equal(3)
end)

hp.test("hub: stations' last runs, yield per station and per test, latest failures; read-only; token off loopback", function()
  local json = require "hplua.json"
  local dir = tmpdir()
  local db = fresh_db()
  local url = server:url("postgres", db)
  for i, runs in ipairs { 10, 20 } do
    local h = dir .. "/h" .. i .. ".db"
    gen(h, runs, 4, 4, "line" .. i) -- every tenth run fails its last test
    local r = hplua({ "history", "upload", "--history", h, "--upload", url })
    assert(r.exit_code == 0, r.stderr)
  end
  local r = hplua({ "hub", "--bind", "0.0.0.0", "--upload", url }, { HPLUA_TOKEN = false })
  hp.expect(r.exit_code).to_equal(4)
  hp.expect(r.stderr).to_contain("--token")
  local base
  n = n + 1
  local hub = hp.process.start("hub-" .. n, { EXE, "hub", "--port", "0", "--upload", url },
    { env = { PGPASSWORD = pg.PASSWORD, HPLUA_UPLOAD = false, HPLUA_TOKEN = false }, timeout = 120,
      on_line = function(l) base = base or l:match("(http://127%.0%.0%.1:%d+)/") end })
  wait_for(function() return base ~= nil end, 30, "the hub's address")
  local function get(path, method) return http(method or "GET", base .. path) end
  local body, code = get("/api/hub?days=7")
  assert(code == 200, body)
  local doc = assert(json.decode(body))
  hp.expect(#doc.stations).to_equal(2)
  hp.expect(doc.stations[1].station).to_equal("line1")
  hp.expect(doc.stations[1].runs).to_equal(10)
  hp.expect(doc.stations[2].runs).to_equal(20)
  hp.expect(doc.stations[1].yield).to_be_near(0.9, 1e-9)
  hp.expect(doc.stations[2].yield).to_be_near(0.9, 1e-9)
  hp.expect(#doc.last_runs).to_equal(10) -- five per station
  hp.expect(doc.tests[1].test_id).to_equal("1_gen::t4")
  hp.expect(doc.tests[1].failed).to_equal(3)
  hp.expect(doc.tests[1].yield).to_be_near(27 / 30, 1e-9)
  hp.expect(#doc.failures).to_equal(3)
  hp.expect(doc.failures[1].error).to_equal("out of limits")
  hp.expect(doc.database).never.to_contain(pg.PASSWORD)
  body, code = get("/")
  hp.expect(code).to_equal(200)
  hp.expect(body).to_contain("<title>hplua hub</title>")
  _, code = get("/api/hub", "POST")
  hp.expect(code).to_equal(405)
  _, code = get("/api/hub?days=-1")
  hp.expect(code).to_equal(400)
  hub:terminate(5)
end)
