local history = require "hplua.history"
local sqlite = require "hplua.sqlite"
local json = require "hplua.json"
local sys = require "hplua.sys"

local function tmpdir()
  local d = os.tmpname()
  os.remove(d)
  assert(os.execute("mkdir -p '" .. d .. "'"))
  return d
end

local function write(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

local function query(path, sql, ...)
  local db <close> = assert(sqlite.open(path, "r"))
  local out = {}
  for r in assert(db:prepare(sql)):rows(...) do out[#out + 1] = r end
  return out
end

-- A synthetic run through the sink, as the event bus would publish it.
local function feed(store, o)
  o = o or {}
  local sink = store:sink { on_error = o.on_error }
  local run_id = o.run_id or require("hplua.events").uuid()
  local seq = 0
  local function ev(kind, t)
    seq = seq + 1
    t.v, t.seq, t.type, t.run_id, t.time = 1, seq, kind, run_id, o.time or "2024-05-31T08:00:00.000+02:00"
    return t
  end
  sink:run_started(ev("run_started", { hplua = "0.1.0", paths = { "tests" }, args = {}, serial = o.serial or json.null,
    stand = { name = "bench 1" }, selected = { "m::a", "m::b" }, started_at = o.time or "2024-05-31T08:00:00.000+02:00" }))
  for i, t in ipairs(o.tests or { { "m::a", "passed" } }) do
    sink:test_finished(ev("test_finished", { test = t[1], name = t[1]:match("::(.*)$"), module = "m", status = t[2],
      attempt = t.attempts or 1, attempts = t.attempts or 1, duration = 0.25 * i,
      error = t[2] == "failed" and { message = t.message or "boom", file = "m.lua", line = 7 } or json.null,
      skip_reason = json.null, started_at = "2024-05-31T08:00:01.000+02:00", ended_at = "2024-05-31T08:00:02.000+02:00",
      attempt_results = t.attempt_results or {}, measurements = t.measurements or {}, messages = t.messages or {},
      artifacts = t.artifacts or {} }))
    if o.after_test then o.after_test(i, sink) end
  end
  if o.unfinished then return run_id, sink end
  local passed = true
  for _, t in ipairs(o.tests or {}) do if t[2] ~= "passed" then passed = false end end
  sink:run_finished(ev("run_finished", { status = passed and "passed" or "failed", exit_code = passed and 0 or 1,
    summary = { total = #(o.tests or { 1 }), passed = 0, failed = 0, skipped = 0, stopped = 0 }, duration = 3.5,
    caused_failure = json.null, ended_at = "2024-05-31T08:00:03.500+02:00" }),
    { report_text = function() return o.report or '{"status":"passed"}\n' end })
  return run_id, sink
end

describe("hplua.history", function()
  local dir, path
  before_each(function()
    dir = tmpdir()
    path = dir .. "/history.db"
  end)
  after_each(function() os.execute("rm -rf '" .. dir .. "'") end)

  describe("location", function()
    local function env(t) return function(k) return t[k] end end
    it("takes --history, then HPLUA_HISTORY, then XDG_DATA_HOME, then HOME", function()
      local all = env { HPLUA_HISTORY = "/e.db", XDG_DATA_HOME = "/xdg", HOME = "/home/op" }
      assert.are.same({ "/f.db", false }, { history.location({ history = "/f.db" }, all) })
      assert.are.same({ "/e.db", false }, { history.location({}, all) })
      assert.are.same({ "/xdg/hplua/history.db", true }, { history.location({}, env { XDG_DATA_HOME = "/xdg", HOME = "/h" }) })
      assert.are.same({ "/h/.local/share/hplua/history.db", true }, { history.location({}, env { HOME = "/h" }) })
      assert.is_false(history.location({ no_history = true, history = "/f.db" }, all))
      local p, err = history.location({}, env {})
      assert.is_nil(p)
      assert.matches("HPLUA_HISTORY", err)
    end)
  end)

  describe("expand_placeholders", function()
    local run = { run_id = "0b9c-11", serial = "SN/42 a", slot = 3, started_at = "2024-05-31T08:09:10.123+02:00" }
    it("fills run_id, serial, slot, date and time, safe for a file name", function()
      assert.are.equal("r/0b9c-11_SN_42_a_3_2024-05-31_080910.json",
        history.expand_placeholders("r/{run_id}_{serial}_{slot}_{date}_{time}.json", run))
      assert.are.equal("plain.json", history.expand_placeholders("plain.json", run))
      assert.are.equal("noserial-0.json", history.expand_placeholders("{serial}-{slot}.json", { serial = "" }))
      assert.are.equal("__.json", history.expand_placeholders("{serial}.json", { serial = ".." }))
    end)
    it("refuses an unknown placeholder, naming it", function()
      local p, err = history.expand_placeholders("out/{serail}.json", run)
      assert.is_nil(p)
      assert.matches("unknown placeholder {serail} in out/{serail}.json", err, 1, true)
    end)
    it("lists the placeholders a path uses", function()
      assert.are.same({ slot = true, date = true }, history.placeholders("a/{slot}/{date}.json"))
      assert.are.same({}, history.placeholders("a.json"))
    end)
  end)

  describe("a new database", function()
    it("is created with the current schema, in WAL mode, mode 0600", function()
      local store = assert(history.open_for_run(path))
      store:close()
      assert.are.equal(2, query(path, "PRAGMA user_version")[1].user_version)
      assert.are.equal("wal", query(path, "PRAGMA journal_mode")[1].journal_mode)
      local names = {}
      for _, r in ipairs(query(path, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")) do names[#names + 1] = r.name end
      assert.are.same({ "artifacts", "attempts", "errors", "measurements", "messages", "processes", "runs", "tests" }, names)
      local p = io.popen("stat -c %a '" .. path .. "'")
      assert.are.equal("600", p:read("l"))
      p:close()
    end)

    it("creates the default location's folders, but not a folder named explicitly", function()
      local store = assert(history.open_for_run(dir .. "/x/y/h.db", { create_folders = true }))
      store:close()
      local s, err = history.open_for_run(dir .. "/missing/h.db")
      assert.is_nil(s)
      assert.matches("history " .. dir .. "/missing/h.db cannot be created: its folder " .. dir .. "/missing does not exist", err, 1, true)
    end)
  end)

  describe("the sink", function()
    it("records the run, its tests, measurements, messages, attempts and the report", function()
      local store = assert(history.open_for_run(path))
      local run_id = feed(store, { serial = "SN1", report = '{"status":"failed","x":1}\n', tests = {
        { "m::a", "passed", measurements = { { name = "vcc", value = 3.31, unit = "V", min = 3.2, max = 3.4, status = "passed" },
          { name = "id", value = "ABC", expect = "ABC", status = "passed" },
          { name = "nan", value = 0 / 0, status = "failed" } },
          messages = { { time = "t1", text = "hello", key = json.null } }, artifacts = { scope = "/tmp/scope.png" } },
        { "m::b", "failed", attempts = 2, message = "relay stuck", attempt_results = {
          { attempt = 1, status = "failed", duration = 0.1, error = { message = "first" } },
          { attempt = 2, status = "failed", duration = 0.2, error = { message = "relay stuck" } } } },
      } })
      store:close()
      local run = query(path, "SELECT * FROM runs")[1]
      assert.are.equal(run_id, run.run_id)
      assert.are.equal("failed", run.status)
      assert.are.equal(1, run.exit_code)
      assert.are.equal("SN1", run.serial)
      assert.are.equal(0, run.retest)
      assert.are.same({ name = "bench 1" }, json.decode(run.stand))
      assert.are.equal('{"status":"failed","x":1}\n', run.report)
      assert.are.equal("2024-05-31T08:00:00.000+02:00", run.started_at)
      assert.are.equal(1717135200.0, run.started_ts) -- 06:00 UTC
      assert.are.equal(sys.getpid(), run.pid)
      local tests = query(path, "SELECT * FROM tests ORDER BY seq")
      assert.are.equal(2, #tests)
      assert.are.equal("m::a", tests[1].test_id)
      assert.are.equal("passed", tests[1].status)
      assert.are.equal(2, tests[2].attempt)
      assert.are.equal("relay stuck", tests[2].error)
      assert.are.equal("m.lua", tests[2].error_file)
      assert.are.equal(7, tests[2].error_line)
      local ms = query(path, "SELECT * FROM measurements ORDER BY seq")
      assert.are.equal(3, #ms)
      assert.are.same({ 3.31, "V", 3.2, 3.4, "passed", "m::a" }, { ms[1].value, ms[1].unit, ms[1].min, ms[1].max, ms[1].status, ms[1].test_id })
      assert.are.same({ "ABC", "ABC" }, { ms[2].value, ms[2].expect })
      assert.is_nil(ms[3].value) -- NaN is null, as in the JSON report
      assert.are.same({ { test_id = "m::a", text = "hello", time = "t1", run_id = run_id, seq = 1 } }, query(path, "SELECT * FROM messages"))
      assert.are.same({ "first", "relay stuck" }, { query(path, "SELECT error FROM attempts ORDER BY attempt")[1].error,
        query(path, "SELECT error FROM attempts ORDER BY attempt")[2].error })
      assert.are.equal("/tmp/scope.png", query(path, "SELECT path FROM artifacts WHERE name = 'scope'")[1].path)
    end)

    it("commits each test as it finishes", function()
      local store = assert(history.open_for_run(path))
      local seen = {}
      feed(store, { unfinished = true, tests = { { "m::a", "passed" }, { "m::b", "passed" }, { "m::c", "passed" } },
        after_test = function(i) seen[i] = query(path, "SELECT count(*) AS n FROM tests")[1].n end })
      assert.are.same({ 1, 2, 3 }, seen)
      assert.are.equal("running", query(path, "SELECT status FROM runs")[1].status)
      store:close()
    end)

    it("marks a serial seen before as a retest", function()
      local store = assert(history.open_for_run(path))
      local first = feed(store, { serial = "SN7", tests = { { "m::a", "failed" } } })
      local second = feed(store, { serial = "SN7" })
      local other = feed(store, { serial = "SN8" })
      local none = feed(store, {})
      store:close()
      local r = {}
      for _, row in ipairs(query(path, "SELECT run_id, retest FROM runs")) do r[row.run_id] = row.retest end
      assert.are.same({ [first] = 0, [second] = 1, [other] = 0, [none] = 0 }, r)
    end)

    it("stores text as the JSON report carries it: NUL and invalid UTF-8 repaired, huge kept whole", function()
      local store = assert(history.open_for_run(path))
      local weird = "ok \0 \255\254 caf\195\169 " .. string.rep("long line ", 100000)
      feed(store, { tests = { { "m::\255odd", "failed", message = weird, messages = { { time = "t", text = weird } } } } })
      store:close()
      local want = json.utf8_repair(weird)
      assert.are_not.equal(weird, want)
      assert.are.equal(want, query(path, "SELECT error FROM tests")[1].error)
      assert.are.equal(want, query(path, "SELECT text FROM messages")[1].text)
      assert.are.equal(json.utf8_repair("m::\255odd"), query(path, "SELECT test_id FROM tests")[1].test_id)
      -- and exactly what the JSON report says
      assert.are.equal(want, json.decode(json.encode({ s = weird })).s)
    end)

    it("keeps records a failed commit could not write and writes them with the next", function()
      local store = assert(history.open_for_run(path))
      local errors = {}
      local blocker
      feed(store, { unfinished = true, on_error = function(m) errors[#errors + 1] = m end,
        tests = { { "m::a", "passed" }, { "m::b", "passed" }, { "m::c", "passed" } },
        after_test = function(i)
          if i == 1 then -- another process holds the write lock: the next commit fails
            blocker = assert(sqlite.open(path, "rw", 0))
            assert(blocker:exec("BEGIN IMMEDIATE"))
            store.db:busy_timeout(0)
          elseif i == 2 then
            assert(blocker:exec("COMMIT"))
          end
        end })
      store:close()
      blocker:close()
      assert.are.equal(2, #errors)
      assert.matches("history " .. path .. " stayed locked", errors[1], 1, true)
      assert.matches("the run goes on", errors[1], 1, true)
      assert.matches("nothing was lost", errors[2], 1, true)
      assert.are.equal(3, query(path, "SELECT count(*) AS n FROM tests")[1].n)
    end)
  end)

  describe("unfinished runs", function()
    local function running_run(store, fields)
      local run_id = feed(store, { unfinished = true, tests = { { "m::a", "passed" }, { "m::b", "failed" } } })
      if not next(fields) then return run_id end
      local db <close> = assert(sqlite.open(path))
      local sets, vals = {}, {}
      for k, v in pairs(fields) do sets[#sets + 1] = k .. " = ?"; vals[#vals + 1] = v end
      vals[#vals + 1] = run_id
      assert(db:prepare("UPDATE runs SET " .. table.concat(sets, ", ") .. " WHERE run_id = ?"):exec(table.unpack(vals)))
      return run_id
    end

    local function status_after_open(run_id)
      local s = assert(history.open(path))
      s:close()
      return query(path, "SELECT status, total, passed, failed, ended_at FROM runs WHERE run_id = ?", run_id)[1]
    end

    it("are marked aborted when their process is gone, with their tests intact", function()
      local store = assert(history.open_for_run(path))
      local dead = require("hplua").process.start("gone", { "true" }):wait().pid
      local run_id = running_run(store, { pid = dead })
      store:close()
      local r = status_after_open(run_id)
      assert.are.same({ status = "aborted", total = 2, passed = 1, failed = 1, ended_at = "2024-05-31T08:00:02.000+02:00" }, r)
      assert.are.equal(2, query(path, "SELECT count(*) AS n FROM tests WHERE run_id = ?", run_id)[1].n)
    end)

    it("are marked aborted when their process has ended but is not yet collected (a zombie)", function()
      local hp, sys = require "hplua", require "hplua.sys"
      -- the short sleep ends after its parent has become the long one, which never collects it
      local pidfile = os.tmpname()
      local parent <close> = setmetatable({ p = hp.process.start("zombie-parent",
        { "sh", "-c", "sleep 0.1 & echo $! > " .. pidfile .. "; exec sleep 30" }) },
        { __close = function(t) t.p:terminate(0) end }) -- ended whatever the assertions say
      local pid
      local deadline = sys.clock() + 5
      repeat
        local f = io.open(pidfile)
        pid = f and math.tointeger(tonumber(f:read("a")))
        if f then f:close() end
        if not pid then sys.sleep(0.01) end
      until pid or sys.clock() > deadline
      os.remove(pidfile)
      assert.is_not_nil(pid)
      local function state()
        local f = io.open("/proc/" .. pid .. "/stat")
        local st = f and f:read("a"):match("%)%s+(%S)")
        if f then f:close() end
        return st
      end
      deadline = sys.clock() + 5
      while state() ~= "Z" and sys.clock() < deadline do sys.sleep(0.01) end
      assert.are.equal("Z", state())
      local store = assert(history.open_for_run(path))
      local run_id = running_run(store, { pid = pid, pid_start = history._start_time(pid) })
      store:close()
      assert.are.equal("aborted", status_after_open(run_id).status)
    end)

    it("are left alone while their process lives (a recycled PID or another boot does not count)", function()
      local store = assert(history.open_for_run(path))
      local live = running_run(store, {}) -- this very process
      local recycled = running_run(store, { pid_start = -1 })
      local rebooted = running_run(store, { boot_id = "another-boot" })
      store:close()
      assert.are.equal("running", status_after_open(live).status)
      assert.are.equal("aborted", status_after_open(recycled).status)
      assert.are.equal("aborted", status_after_open(rebooted).status)
    end)

    it("rebuild a JSON report from what was recorded", function()
      local store = assert(history.open_for_run(path))
      local run_id = running_run(store, { pid = 0 })
      store:close()
      local s = assert(history.open(path, { read = true }))
      local rep = json.decode(s:report_text(run_id))
      s:close()
      assert.are.equal("aborted", rep.status)
      assert.are.equal(run_id, rep.run_id)
      assert.are.same({ total = 2, passed = 1, failed = 1, skipped = 0, stopped = 0 }, rep.summary)
      assert.are.equal("m::b", rep.caused_failure)
      assert.are.equal("boom", rep.modules[1].tests[2].error.message)
    end)
  end)

  describe("migration", function()
    it("takes a version 1 database to version 2 and loses nothing", function()
      local db = assert(sqlite.open(path))
      assert(db:exec(history.SCHEMA_V1 .. [[
        INSERT INTO runs VALUES ('r1', '2024-01-02T10:00:00.000+01:00', '2024-01-02T10:00:05.000+01:00', 'failed', 1, 'SN1', '{"id":"st"}', NULL, '{"status":"failed"}');
        INSERT INTO runs VALUES ('r2', '2024-01-03T10:00:00.000+01:00', '2024-01-03T10:00:05.000+01:00', 'passed', 0, 'SN1', NULL, 2, '{"status":"passed"}');
        INSERT INTO runs VALUES ('r3', '2024-01-04T10:00:00.000+01:00', NULL, NULL, NULL, NULL, NULL, NULL, NULL);
        INSERT INTO tests VALUES ('r1', 'm::a', 1, 'failed', 0.5, 'boom');
        INSERT INTO tests VALUES ('r2', 'm::a', 2, 'passed', 0.25, NULL);
        INSERT INTO measurements VALUES ('r1', 'm::a', 'vcc', 3.1, 'V', 'failed');
        INSERT INTO measurements VALUES ('r2', 'm::a', 'label', 'ok', NULL, 'passed');
        PRAGMA user_version = 1;]]))
      db:close()
      local store = assert(history.open(path))
      store:close()
      assert.are.equal(2, query(path, "PRAGMA user_version")[1].user_version)
      local runs = query(path, "SELECT run_id, started_at, ended_at, status, exit_code, serial, stand, slot, report, retest, started_ts FROM runs ORDER BY run_id")
      assert.are.same({ run_id = "r1", started_at = "2024-01-02T10:00:00.000+01:00", ended_at = "2024-01-02T10:00:05.000+01:00",
        status = "failed", exit_code = 1, serial = "SN1", stand = '{"id":"st"}', report = '{"status":"failed"}', retest = 0,
        started_ts = 1704186000.0 }, runs[1])
      assert.are.same({ "passed", 1, 2 }, { runs[2].status, runs[2].retest, runs[2].slot })
      assert.are.equal("aborted", runs[3].status) -- never finished
      local tests = query(path, "SELECT run_id, test_id, attempt, status, duration, error FROM tests ORDER BY run_id")
      assert.are.same({ { run_id = "r1", test_id = "m::a", attempt = 1, status = "failed", duration = 0.5, error = "boom" },
        { run_id = "r2", test_id = "m::a", attempt = 2, status = "passed", duration = 0.25 } }, tests)
      local ms = query(path, "SELECT run_id, test_id, name, value, unit, status FROM measurements ORDER BY run_id")
      assert.are.same({ { run_id = "r1", test_id = "m::a", name = "vcc", value = 3.1, unit = "V", status = "failed" },
        { run_id = "r2", test_id = "m::a", name = "label", value = "ok", status = "passed" } }, ms)
      -- and the migrated database takes new runs
      local s2 = assert(history.open_for_run(path))
      feed(s2, { serial = "SN1" })
      s2:close()
      assert.are.equal(1, query(path, "SELECT retest FROM runs WHERE run_id NOT IN ('r1', 'r2', 'r3')")[1].retest)
    end)

    it("refuses a database from a newer hplua", function()
      local db = assert(sqlite.open(path))
      assert(db:exec("CREATE TABLE runs (run_id); PRAGMA user_version = 99"))
      db:close()
      local s, err = history.open_for_run(path)
      assert.is_nil(s)
      assert.matches("has schema version 99, newer than this hplua knows (2)", err, 1, true)
    end)
  end)

  describe("bad files", function()
    it("says a file that is not SQLite is not a database, naming it", function()
      write(path, string.rep("hello, this is a text file\n", 200))
      local s, err = history.open_for_run(path)
      assert.is_nil(s)
      assert.matches("history " .. path .. " is not a SQLite database", err, 1, true)
      assert.matches("SQLITE_NOTADB", err, 1, true)
    end)

    it("says a damaged database is corrupt", function()
      local store = assert(history.open_for_run(path))
      feed(store, {})
      store:close()
      local db = assert(sqlite.open(path))
      assert(db:exec("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode = DELETE"))
      db:close()
      local f = assert(io.open(path, "r+b"))
      f:seek("set", 100) -- the schema's page, after the file header
      f:write(string.rep("\255", 3000))
      f:close()
      local s, err = history.open_for_run(path)
      assert.is_nil(s)
      assert.matches("history " .. path .. " is corrupt", err, 1, true)
    end)

    it("refuses a folder or a FIFO in place of the file", function()
      assert(os.execute("mkdir '" .. path .. "'"))
      local s, err = history.open_for_run(path)
      assert.is_nil(s)
      assert.matches("is not a regular file", err, 1, true)
    end)
  end)

  describe("queries", function()
    it("list newest first, filtered; find by unique prefix; stats with yields", function()
      local store = assert(history.open_for_run(path))
      local function run(serial, status, day, fails)
        local tests = { { "m::a", status } }
        if fails then tests[1] = { fails, "failed" } end
        return feed(store, { serial = serial, tests = tests, time = "2024-05-" .. day .. "T08:00:00.000+00:00",
          run_id = serial .. "-" .. day })
      end
      run("A", "failed", "01", "m::x") -- A: fails, then passes on retest
      run("A", "passed", "02")
      run("B", "passed", "03")         -- B: passes first time
      run("C", "failed", "04", "m::x") -- C: fails twice
      run("C", "failed", "05", "m::y")
      local list = store:list { limit = 10 }
      assert.are.same({ "C-05", "C-04", "B-03", "A-02", "A-01" }, { list[1].run_id, list[2].run_id, list[3].run_id,
        list[4].run_id, list[5].run_id })
      assert.are.equal(2, #store:list { serial = "C" })
      assert.are.equal(1, #store:list { status = "passed", limit = 1 })
      assert.are.equal("B-03", store:find("B"))
      assert.is_nil(store:find("Z"))
      assert.matches("ambiguous", select(2, store:find("C")))
      local st = store:stats {}
      assert.are.equal(5, st.runs)
      assert.are.same({ passed = 2, failed = 3 }, st.by_status)
      assert.are.equal(3, st.serials)
      assert.are.same({ passed = 1, serials = 3, yield = 1 / 3 }, st.first_pass)
      assert.are.same({ passed = 2, serials = 3, yield = 2 / 3 }, st.final)
      assert.are.same({ test_id = "m::x", failures = 2, share = 2 / 5 }, st.failing[1])
      local since = store:stats { since = "2024-05-03T00:00Z" }
      assert.are.equal(3, since.runs)
      assert.are.same({ passed = 1, serials = 2, yield = 0.5 }, since.first_pass)
      assert.are.equal(2, #since.failing)
      -- a first run still going has no verdict yet: not in the yields
      assert(store.db:exec("INSERT INTO runs (run_id, serial, status, started_ts) VALUES ('D-06', 'D', 'running', 1e10)"))
      assert.are.same({ passed = 1, serials = 3, yield = 1 / 3 }, store:stats({}).first_pass)
      store:close()
    end)
  end)
end)
