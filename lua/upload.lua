-- hplua.upload: the factory uploader (API section 9, docs/factory.md). Store and
-- forward: a run is committed to the local history first, with an outbox mark
-- (runs.upload_pending); this module sends marked runs to a central PostgreSQL
-- database, one transaction per batch, keyed by run_id (INSERT ... ON CONFLICT DO
-- NOTHING), and clears the marks once the server has committed. A run whose run_id
-- is already there is skipped with its tests and measurements, so sending twice (a
-- crash between the server's commit and the local unmark) is harmless.
--
-- It never runs in a run's path: after a run `hplua` starts a detached
-- `hplua history upload --quiet` (upload.after_run); `hplua serve` does the same
-- every 30 s while runs are pending.
local pq = require "hplua.pq"
local sys = require "hplua.sys"

local M = { SCHEMA_VERSION = 1 }

local RETRY_MIN, RETRY_MAX = 5, 30 -- seconds: automatic retries back off from 5 s to 30 s
local BATCH_RUNS, BATCH_ROWS = 200, 20000
local CONNECT_TIMEOUT = 10

---------------------------------------------------------------------------------------
-- The target

-- A conninfo URL as hplua accepts it: postgresql:// or postgres://.
function M.valid_url(url)
  return type(url) == "string" and (url:match("^postgresql://") or url:match("^postgres://")) ~= nil
end

-- The URL without a password (the password comes from PGPASSWORD or ~/.pgpass): what
-- is shown and kept in the history.
function M.redact(url)
  return (url:gsub("^(postgres[%w]*://[^:@/?]*):[^@/?]*@", "%1@"))
end

---------------------------------------------------------------------------------------
-- The central schema. MIGRATIONS[n] takes it from version n - 1 to n.

local V1 = {
  [[CREATE TABLE hplua_runs (
    run_id text PRIMARY KEY,
    station text NOT NULL,
    host text,
    serial text,
    slot integer,
    retest boolean NOT NULL DEFAULT false,
    status text NOT NULL,
    exit_code integer,
    started_at timestamptz,
    ended_at timestamptz,
    duration double precision,
    caused_failure text,
    total integer, passed integer, failed integer, skipped integer, stopped integer,
    stand jsonb, dut jsonb, paths jsonb, hplua text,
    uploaded_at timestamptz NOT NULL DEFAULT now())]],
  "CREATE INDEX hplua_runs_started ON hplua_runs (started_at)",
  "CREATE INDEX hplua_runs_station ON hplua_runs (station, started_at)",
  "CREATE INDEX hplua_runs_serial ON hplua_runs (serial, started_at)",
  [[CREATE TABLE hplua_tests (
    run_id text NOT NULL,
    seq integer NOT NULL,
    test_id text NOT NULL,
    name text, module text, attempt integer,
    status text NOT NULL,
    duration double precision,
    error text, error_file text, error_line integer, skip_reason text,
    started_at timestamptz, ended_at timestamptz,
    PRIMARY KEY (run_id, seq))]],
  "CREATE INDEX hplua_tests_test ON hplua_tests (test_id, status)",
  [[CREATE TABLE hplua_measurements (
    run_id text NOT NULL,
    seq integer NOT NULL,
    test_id text, attempt integer, name text,
    value double precision, value_text text, unit text, status text,
    min double precision, max double precision, gt double precision, lt double precision,
    nominal double precision, tolerance double precision, tolerance_pct double precision,
    marginal_min double precision, marginal_max double precision, expect text, match text,
    PRIMARY KEY (run_id, seq))]],
  "CREATE INDEX hplua_measurements_name ON hplua_measurements (test_id, name)",
}
local MIGRATIONS = { V1 }
M.MIGRATIONS = MIGRATIONS

-- Any number stands for the lock: every uploader and the hub take the same one.
local LOCK = 0x68706c75 -- "hplu"

local function version(conn)
  local rows, err, code = conn:exec("SELECT max(version) AS v FROM hplua_schema")
  if not rows then return nil, err, code end
  return rows[1].v or 0
end

-- Creates or migrates the central tables (once per connection); true | nil, message, code.
function M.ensure_schema(conn)
  local v, err, code = version(conn)
  if v == M.SCHEMA_VERSION then return true end
  if v and v > M.SCHEMA_VERSION then
    return nil, string.format("the central database has schema version %d, newer than this hplua knows (%d); update hplua on this station",
      v, M.SCHEMA_VERSION), "SCHEMA"
  end
  if not v and code ~= "42P01" then return nil, err, code end -- 42P01: no such table yet
  local ok
  ok, err, code = conn:exec("BEGIN")
  if not ok then return nil, err, code end
  local function step(sql, ...)
    if not ok then return end
    ok, err, code = conn:exec(sql, ...)
  end
  step("SELECT pg_advisory_xact_lock($1)", LOCK) -- stations starting together migrate once
  step([[CREATE TABLE IF NOT EXISTS hplua_schema (version integer PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now(), hplua text)]])
  local now = 0
  if ok then
    local rows
    rows, err, code = conn:exec("SELECT max(version) AS v FROM hplua_schema")
    ok = rows ~= nil
    now = ok and rows[1].v or 0
  end
  for n = now + 1, M.SCHEMA_VERSION do
    for _, sql in ipairs(MIGRATIONS[n]) do step(sql) end
    step("INSERT INTO hplua_schema (version, hplua) VALUES ($1, $2)", n, sys.version)
  end
  step("COMMIT")
  if not ok then
    if conn:transaction_status() ~= "unknown" then conn:exec("ROLLBACK") end
    return nil, err, code
  end
  return true
end

---------------------------------------------------------------------------------------
-- Messages: what went wrong, in words, and what to do.

local function explain(url, message, code)
  local m = message or ""
  local what
  if code == "connect" then
    if m:find("password authentication failed", 1, true) or m:find("no password supplied", 1, true) then
      what = "wrong password or user (libpq reads the password from PGPASSWORD or ~/.pgpass)"
    elseif m:find("database \"[^\"]*\" does not exist") then
      what = "unknown database " .. (m:match("database (\"[^\"]*\") does not exist") or "")
        .. " (create it, e.g. createdb, or fix the URL)"
    elseif m:find("role \"[^\"]*\" does not exist") then
      what = "unknown user " .. (m:match("role (\"[^\"]*\") does not exist") or "")
    elseif m:find("SSL", 1, true) or m:find("TLS", 1, true) or m:find("ssl", 1, true) then
      what = "TLS is required (sslmode in the URL) but cannot be used with this server"
    elseif m:find("Connection refused", 1, true) or m:find("could not connect", 1, true)
      or m:find("timeout expired", 1, true) or m:find("No such file or directory", 1, true) then
      what = "the server is unreachable (down, or a wrong host or port)"
    elseif m:find("could not translate host name", 1, true) then
      what = "unknown host name"
    elseif m:find("no pg_hba.conf entry", 1, true) then
      what = "the server refuses this station (no pg_hba.conf entry)"
    else
      what = "cannot connect"
    end
  elseif code == "42501" then
    what = "missing privileges (the first upload needs CREATE on the schema, later ones INSERT and SELECT on the hplua_* tables)"
  elseif code == "closed" or (code and code:match("^57P")) or (code and code:match("^08")) then
    what = "the connection to the server was lost"
  elseif code == "SCHEMA" then
    return message
  else
    what = "the server refused the upload"
  end
  return string.format("upload to %s: %s: %s", M.redact(url), what, m:gsub("\n%s*", "; "))
end
M.explain = explain

---------------------------------------------------------------------------------------
-- Local state: backoff of automatic retries, and the last target (without password)

local STATE_SQL = [[CREATE TABLE IF NOT EXISTS upload_state (id INTEGER PRIMARY KEY CHECK (id = 1),
  target TEXT, failures INTEGER NOT NULL DEFAULT 0, next_try_ts REAL, last_try TEXT, last_ok TEXT, last_error TEXT)]]

local function state(store)
  if store.readonly then
    local ok, row = pcall(function() return store:stmt("SELECT * FROM upload_state WHERE id = 1"):first() end)
    return ok and row or {}
  end
  assert(store.db:exec(STATE_SQL))
  return store:stmt("SELECT * FROM upload_state WHERE id = 1"):first() or {}
end
M.state = state

local function save_state(store, fields)
  return store:transaction(function()
    local ok, err, code = store:stmt("INSERT OR IGNORE INTO upload_state (id) VALUES (1)"):exec()
    if not ok then return nil, err, code end
    return store:stmt([[UPDATE upload_state SET target = coalesce(?1, target), failures = ?2, next_try_ts = ?3,
      last_try = ?4, last_ok = coalesce(?5, last_ok), last_error = ?6 WHERE id = 1]]):exec(fields.target,
      fields.failures, fields.next_try_ts, fields.last_try, fields.last_ok, fields.last_error)
  end)
end

function M.pending(store)
  return store:count("SELECT count(*) AS n FROM runs WHERE upload_pending = 1")
end

---------------------------------------------------------------------------------------
-- One batch

local RUN_COLS = { "run_id", "station", "host", "serial", "slot", "retest", "status", "exit_code", "started_at",
  "ended_at", "duration", "caused_failure", "total", "passed", "failed", "skipped", "stopped", "stand", "dut", "paths",
  "hplua" }
local TEST_COLS = { "run_id", "seq", "test_id", "name", "module", "attempt", "status", "duration", "error",
  "error_file", "error_line", "skip_reason", "started_at", "ended_at" }
local MEAS_COLS = { "run_id", "seq", "test_id", "attempt", "name", "value", "value_text", "unit", "status", "min",
  "max", "gt", "lt", "nominal", "tolerance", "tolerance_pct", "marginal_min", "marginal_max", "expect", "match" }
local NUMERIC_LIMITS = { "min", "max", "gt", "lt", "nominal", "tolerance", "tolerance_pct", "marginal_min",
  "marginal_max" }

local insert_sql = {}
local function runs_insert(n)
  if not insert_sql[n] then
    local rows, k = {}, 0
    for i = 1, n do
      local ph = {}
      for j = 1, #RUN_COLS do
        k = k + 1
        ph[j] = "$" .. k
      end
      rows[i] = "(" .. table.concat(ph, ",") .. ")"
    end
    insert_sql[n] = "INSERT INTO hplua_runs (" .. table.concat(RUN_COLS, ",") .. ") VALUES " .. table.concat(rows, ",")
      .. " ON CONFLICT (run_id) DO NOTHING RETURNING run_id"
  end
  return insert_sql[n]
end

-- The COPY rows of a run's tests and measurements, made by SQLite in C
-- (stmt:copy_text): numbers exact, text escaped. Measured values that are not numbers
-- go to value_text; limits that are not numbers are left out.
local function num(col) return "CASE WHEN typeof(" .. col .. ") IN ('integer', 'real') THEN " .. col .. " END" end
local TESTS_SQL = "SELECT " .. table.concat(TEST_COLS, ", ") .. " FROM tests WHERE run_id = ? ORDER BY seq"
local MEAS_SQL
do
  local cols = {}
  for i, c in ipairs(MEAS_COLS) do
    if c == "value" then
      cols[i] = num("value")
    elseif c == "value_text" then
      cols[i] = "CASE WHEN typeof(value) IN ('integer', 'real') THEN NULL ELSE CAST(value AS TEXT) END"
    elseif c == "expect" or c == "match" then
      cols[i] = "CAST(" .. c .. " AS TEXT)"
    else
      cols[i] = c
    end
  end
  for _, c in ipairs(NUMERIC_LIMITS) do
    for i, x in ipairs(cols) do if x == c then cols[i] = num(c) end end
  end
  MEAS_SQL = "SELECT " .. table.concat(cols, ", ") .. " FROM measurements WHERE run_id = ? ORDER BY seq"
end

local function decode(s)
  if type(s) ~= "string" then return nil end
  local ok, v = pcall(require("hplua.json").decode, s)
  return ok and v or nil
end

-- The run's station: the stand's name (hp.set_stand), else the host name.
local function station_of(r)
  local stand = decode(r.stand)
  if type(stand) == "table" and type(stand.name) == "string" and stand.name ~= "" then return stand.name end
  return r.host or "unknown"
end

-- Reads the batch from the history: runs (in order), and COPY text per run.
local function read_batch(store, ids)
  local runs, tests, meas = {}, {}, {}
  local q_run = store:stmt("SELECT * FROM runs WHERE run_id = ?")
  local q_tests, q_meas = store:stmt(TESTS_SQL), store:stmt(MEAS_SQL)
  for _, id in ipairs(ids) do
    local r = q_run:first(id)
    if r then
      r.station = station_of(r)
      r.retest = r.retest == 1
      runs[#runs + 1] = r
      tests[id] = assert(q_tests:copy_text(id))
      meas[id] = assert(q_meas:copy_text(id))
    end
  end
  return runs, tests, meas
end

-- Sends one batch in one transaction; returns the number of runs sent, or nil,
-- message, code (nothing of the batch is committed then).
local function send_batch(conn, runs, tests, meas)
  local params, k = {}, 0
  for _, r in ipairs(runs) do
    for _, c in ipairs(RUN_COLS) do
      k = k + 1
      params[k] = r[c]
    end
  end
  local ok, err, code = conn:exec("BEGIN")
  if not ok then return nil, err, code end
  local fresh
  fresh, err, code = conn:exec(runs_insert(#runs), table.unpack(params, 1, k))
  if fresh and #fresh > 0 then
    local tl, ml = {}, {}
    for _, row in ipairs(fresh) do
      if (tests[row.run_id] or "") ~= "" then tl[#tl + 1] = tests[row.run_id] end
      if (meas[row.run_id] or "") ~= "" then ml[#ml + 1] = meas[row.run_id] end
    end
    ok = true
    if #tl > 0 then
      ok, err, code = conn:copy("COPY hplua_tests (" .. table.concat(TEST_COLS, ",") .. ") FROM STDIN", tl)
    end
    if ok and #ml > 0 then
      ok, err, code = conn:copy("COPY hplua_measurements (" .. table.concat(MEAS_COLS, ",") .. ") FROM STDIN", ml)
    end
    if not ok then fresh = nil end
  end
  if fresh then
    ok, err, code = conn:exec("COMMIT")
    if ok then return #runs end
  end
  if conn:transaction_status() ~= "unknown" then conn:exec("ROLLBACK") end
  return nil, err, code
end

-- The local unmark, after the server's commit.
local function unmark(store, ids)
  local now = sys.now()
  return store:transaction(function()
    local upd = store:stmt("UPDATE runs SET upload_pending = 0, uploaded_at = ?2, upload_error = NULL WHERE run_id = ?1")
    for _, id in ipairs(ids) do
      local ok, err, code = upd:exec(id, now)
      if not ok then return nil, err, code end
    end
    return true
  end)
end

-- The next batch of pending runs: finished (or aborted) ones, oldest first, up to
-- BATCH_RUNS runs or about BATCH_ROWS measurements.
local function next_batch(store, after)
  local ids, rows = {}, 0
  local q = store:stmt([[SELECT run_id, (SELECT count(*) FROM measurements m WHERE m.run_id = runs.run_id) AS n
    FROM runs WHERE upload_pending = 1 AND status <> 'running' AND rowid > ? ORDER BY rowid LIMIT ?]])
  local last = after
  for row in q:rows(after, BATCH_RUNS) do
    if #ids > 0 and rows + row.n > BATCH_ROWS then break end
    ids[#ids + 1] = row.run_id
    rows = rows + row.n
  end
  if #ids > 0 then
    last = store:stmt("SELECT rowid AS r FROM runs WHERE run_id = ?"):first(ids[#ids]).r
  end
  return ids, last
end

---------------------------------------------------------------------------------------
-- The uploader

-- Sends every pending run of the store. opts.url; opts.automatic (a background
-- retry: respects the backoff). Returns { uploaded, pending, skipped = true when the
-- backoff said not yet }, or nil, message, code, { uploaded, pending }.
function M.run(store, opts)
  local url = opts.url
  local st = state(store)
  local now = sys.wall()
  if opts.automatic and (st.failures or 0) > 0 and st.next_try_ts and now < st.next_try_ts then
    return { uploaded = 0, pending = M.pending(store), skipped = true }
  end
  local uploaded = 0
  local function failed(err, code)
    local msg = explain(url, err, code)
    local failures = (st.failures or 0) + 1
    local delay = math.min(RETRY_MIN * 2 ^ (failures - 1), RETRY_MAX)
    save_state(store, { target = M.redact(url), failures = failures, next_try_ts = sys.wall() + delay,
      last_try = sys.now(), last_error = msg })
    store:transaction(function()
      return store:stmt("UPDATE runs SET upload_error = ? WHERE upload_pending = 1"):exec(msg)
    end)
    return nil, msg, code, { uploaded = uploaded, pending = M.pending(store) }
  end
  local pending = M.pending(store)
  if pending == 0 then
    save_state(store, { target = M.redact(url), failures = 0, last_try = sys.now(), last_ok = sys.now() })
    return { uploaded = 0, pending = 0 }
  end
  local conn, err, code = pq.connect(url, { connect_timeout = CONNECT_TIMEOUT })
  if not conn then return failed(err, code) end
  -- a server-wide synchronous_commit = off would acknowledge a COMMIT a crash can still
  -- undo, after the local mark is cleared: this session waits for the flush
  local ok = conn:exec("SHOW synchronous_commit")
  if ok and ok[1] and ok[1].synchronous_commit == "off" then ok, err, code = conn:exec("SET synchronous_commit = on") end
  if not ok then
    conn:close()
    return failed(err, code)
  end
  ok, err, code = M.ensure_schema(conn)
  if not ok then
    conn:close()
    return failed(err, code)
  end
  local after = 0
  while true do
    local ids
    ids, after = next_batch(store, after)
    if #ids == 0 then break end
    local runs, tests, meas = read_batch(store, ids)
    local n
    n, err, code = send_batch(conn, runs, tests, meas)
    if not n then
      conn:close()
      return failed(err, code)
    end
    ok, err, code = unmark(store, ids)
    if not ok then
      conn:close()
      -- delivered, still marked: the next upload skips them on the server (run_id)
      return nil, "the runs reached the server but the history could not be updated: " .. tostring(err), code,
        { uploaded = uploaded + n, pending = M.pending(store) }
    end
    uploaded = uploaded + n
  end
  conn:close()
  save_state(store, { target = M.redact(url), failures = 0, last_try = sys.now(), last_ok = sys.now() })
  return { uploaded = uploaded, pending = M.pending(store) }
end

-- After a run (or by `hplua serve` while runs are pending): starts a detached
-- `hplua history upload --quiet` unless the backoff says not yet. The URL goes in
-- the environment (HPLUA_UPLOAD), never on a command line other users can read.
-- Returns true, or false and the seconds until the backoff allows a try. checked: the
-- caller has asked M.due already.
function M.start_background(history_path, url, checked)
  if not checked then
    local store = require("hplua.history").open(history_path, { read = true })
    if store then
      local due, wait = M.due(store)
      store:close()
      if not due then return false, wait end
    end
  end
  return sys.detach({ sys.exepath(), "history", "upload", "--quiet", "--history", history_path },
    { HPLUA_UPLOAD = url })
end

-- May an automatic upload try now? true | false, seconds to wait. Reads only (a run
-- asks before it starts, on the history it has open anyway).
function M.due(store)
  local ok, st = pcall(function() return store:stmt("SELECT * FROM upload_state WHERE id = 1"):first() end)
  if not ok or not st or (st.failures or 0) == 0 or not st.next_try_ts then return true end
  local wait = st.next_try_ts - sys.wall()
  if wait <= 0 then return true end
  return false, wait
end

return M
