-- hplua.history: every run recorded in a SQLite database as it happens (docs/history.md).
-- The store opens (creating, migrating, marking dead runs aborted) and answers the
-- queries of `hplua history`; its sink subscribes to the run's event stream and
-- commits the run when it starts, each test when it finishes, and the run when it ends.
local sqlite = require "hplua.sqlite"
local json = require "hplua.json"
local sys = require "hplua.sys"

local M = { SCHEMA_VERSION = 2 }

local BUSY_MS = 10000 -- how long a write waits for another process's transaction
local null = json.null
local repair = json.utf8_repair

-- Text as the JSON report carries it: invalid UTF-8 and NUL bytes become U+FFFD.
local function text(v)
  if v == nil or v == null then return nil end
  return repair(type(v) == "string" and v or tostring(v))
end

-- A number as the JSON report carries it (NaN and infinities are null there).
local function num(v)
  if type(v) == "number" and v == v and v ~= math.huge and v ~= -math.huge then return v end
  return nil
end

local function int(v)
  v = num(v)
  return v and math.tointeger(v) or v
end

local function jtext(v)
  if v == nil or v == null then return nil end
  local s = json.encode(v)
  return s
end

-- A measured value or limit: numbers, strings and booleans as SQLite holds them.
local function value(v)
  local t = type(v)
  if t == "number" then return num(v) end
  if t == "string" then return repair(v) end
  if t == "boolean" then return v and 1 or 0 end
  return jtext(v)
end

local function bool(v)
  if v == nil or v == null then return nil end
  return v and 1 or 0
end

---------------------------------------------------------------------------------------
-- Location

-- The history file for a run or `hplua history`: opts.history, else $HPLUA_HISTORY,
-- else $XDG_DATA_HOME/hplua/history.db (~/.local/share/hplua/history.db).
-- Returns path, is_default; or false when opts.no_history.
function M.location(opts, getenv)
  getenv = getenv or os.getenv
  opts = opts or {}
  if opts.no_history then return false end
  if opts.history and opts.history ~= "" then return opts.history, false end
  local env = getenv("HPLUA_HISTORY")
  if env and env ~= "" then return env, false end
  local data = getenv("XDG_DATA_HOME")
  if not data or data:sub(1, 1) ~= "/" then
    local home = getenv("HOME")
    if not home or home == "" then return nil, "cannot find the history: set HOME, XDG_DATA_HOME or HPLUA_HISTORY, or use --history FILE" end
    data = home .. "/.local/share"
  end
  return data .. "/hplua/history.db", true
end

---------------------------------------------------------------------------------------
-- Schema

-- Version 1: the tables and columns of API section 7 and nothing more.
M.SCHEMA_V1 = [[
CREATE TABLE runs (run_id TEXT PRIMARY KEY, started_at TEXT, ended_at TEXT, status TEXT,
  exit_code INTEGER, serial TEXT, stand TEXT, slot INTEGER, report TEXT);
CREATE TABLE tests (run_id TEXT, test_id TEXT, attempt INTEGER, status TEXT, duration REAL, error TEXT);
CREATE TABLE measurements (run_id TEXT, test_id TEXT, name TEXT, value, unit TEXT, status TEXT);
]]

local function unix(col) return "round((julianday(" .. col .. ") - 2440587.5) * 86400000.0) / 1000.0" end

-- Version 2: everything the run's events carry. Tables keyed (run_id, seq) WITHOUT
-- ROWID keep a run's rows together, so a finished test dirties one page per table.
local V2 = [[
ALTER TABLE runs ADD COLUMN retest INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN started_ts REAL;
ALTER TABLE runs ADD COLUMN ended_ts REAL;
ALTER TABLE runs ADD COLUMN duration REAL;
ALTER TABLE runs ADD COLUMN caused_failure TEXT;
ALTER TABLE runs ADD COLUMN summary TEXT;
ALTER TABLE runs ADD COLUMN total INTEGER;
ALTER TABLE runs ADD COLUMN passed INTEGER;
ALTER TABLE runs ADD COLUMN failed INTEGER;
ALTER TABLE runs ADD COLUMN skipped INTEGER;
ALTER TABLE runs ADD COLUMN stopped INTEGER;
ALTER TABLE runs ADD COLUMN dut TEXT;
ALTER TABLE runs ADD COLUMN hplua TEXT;
ALTER TABLE runs ADD COLUMN paths TEXT;
ALTER TABLE runs ADD COLUMN args TEXT;
ALTER TABLE runs ADD COLUMN selected INTEGER;
ALTER TABLE runs ADD COLUMN host TEXT;
ALTER TABLE runs ADD COLUMN pid INTEGER;
ALTER TABLE runs ADD COLUMN pid_start INTEGER;
ALTER TABLE runs ADD COLUMN boot_id TEXT;
ALTER TABLE runs ADD COLUMN upload_pending INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN uploaded_at TEXT;
ALTER TABLE runs ADD COLUMN upload_error TEXT;
UPDATE runs SET started_ts = ]] .. unix("started_at") .. [[, ended_ts = ]] .. unix("ended_at") .. [[;
UPDATE runs SET status = 'aborted' WHERE status IS NULL OR status = '';
UPDATE runs SET retest = 1 WHERE serial IS NOT NULL AND EXISTS (SELECT 1 FROM runs AS p
  WHERE p.serial = runs.serial AND (p.started_ts < runs.started_ts OR (p.started_ts = runs.started_ts AND p.rowid < runs.rowid)));

CREATE TABLE tests_v2 (
  run_id TEXT NOT NULL, seq INTEGER NOT NULL, test_id TEXT NOT NULL, attempt INTEGER, status TEXT NOT NULL,
  duration REAL, error TEXT, error_file TEXT, error_line INTEGER, skip_reason TEXT, name TEXT, module TEXT,
  started_at TEXT, ended_at TEXT, PRIMARY KEY (run_id, seq)) WITHOUT ROWID;
INSERT INTO tests_v2 (run_id, seq, test_id, attempt, status, duration, error)
  SELECT coalesce(run_id, ''), rowid, coalesce(test_id, ''), attempt, coalesce(status, ''), duration, error FROM tests;
DROP TABLE tests;
ALTER TABLE tests_v2 RENAME TO tests;

CREATE TABLE measurements_v2 (
  run_id TEXT NOT NULL, seq INTEGER NOT NULL, test_id TEXT, attempt INTEGER, name TEXT, value, unit TEXT,
  status TEXT, min, max, gt, lt, nominal, tolerance, tolerance_pct, expect, match, marginal_min, marginal_max,
  PRIMARY KEY (run_id, seq)) WITHOUT ROWID;
INSERT INTO measurements_v2 (run_id, seq, test_id, name, value, unit, status)
  SELECT coalesce(run_id, ''), rowid, test_id, name, value, unit, status FROM measurements;
DROP TABLE measurements;
ALTER TABLE measurements_v2 RENAME TO measurements;

CREATE TABLE attempts (run_id TEXT NOT NULL, test_seq INTEGER NOT NULL, attempt INTEGER NOT NULL,
  test_id TEXT, status TEXT, duration REAL, error TEXT, PRIMARY KEY (run_id, test_seq, attempt)) WITHOUT ROWID;
CREATE TABLE messages (run_id TEXT NOT NULL, seq INTEGER NOT NULL, test_id TEXT, time TEXT, text TEXT, key TEXT,
  PRIMARY KEY (run_id, seq)) WITHOUT ROWID;
CREATE TABLE processes (run_id TEXT NOT NULL, seq INTEGER NOT NULL, test_id TEXT, name TEXT, pid INTEGER,
  command TEXT, exit_code INTEGER, signal INTEGER, duration REAL, timed_out INTEGER, terminated INTEGER,
  stdout_bytes INTEGER, stderr_bytes INTEGER, started_at TEXT, ended_at TEXT,
  PRIMARY KEY (run_id, seq)) WITHOUT ROWID;
CREATE TABLE artifacts (run_id TEXT NOT NULL, seq INTEGER NOT NULL, test_id TEXT, name TEXT, path TEXT,
  PRIMARY KEY (run_id, seq)) WITHOUT ROWID;
CREATE TABLE errors (run_id TEXT NOT NULL, seq INTEGER NOT NULL, kind TEXT, message TEXT, file TEXT, line INTEGER,
  PRIMARY KEY (run_id, seq)) WITHOUT ROWID;

CREATE INDEX runs_started ON runs (started_ts);
CREATE INDEX runs_serial ON runs (serial, started_ts);
CREATE INDEX runs_running ON runs (status) WHERE status = 'running';
CREATE INDEX runs_upload ON runs (upload_pending) WHERE upload_pending = 1;
CREATE INDEX tests_failed ON tests (test_id) WHERE status = 'failed';
]]

-- MIGRATIONS[n] takes a database from version n - 1 to n (inside one transaction).
local MIGRATIONS = { M.SCHEMA_V1, V2 }

---------------------------------------------------------------------------------------
-- Errors: a message naming the file, what went wrong and what to do.

local ADVICE = {
  SQLITE_NOTADB = "is not a SQLite database; move it away, or choose another file with --history FILE",
  SQLITE_CORRUPT = "is corrupt; move it away and keep it for recovery (sqlite3 FILE .recover), or choose another file with --history FILE",
  SQLITE_READONLY = "cannot be written (read-only file or file system); make it writable, or choose another file with --history FILE",
  SQLITE_CANTOPEN = "cannot be opened; check that its folder exists and is writable, or choose another file with --history FILE",
  SQLITE_FULL = "cannot grow: the disk is full; free some space",
  SQLITE_BUSY = "stayed locked by another process for " .. BUSY_MS // 1000 .. " s; is something holding it open?",
  SQLITE_IOERR = "could not be read or written (I/O error); check the disk",
  SQLITE_PERM = "cannot be opened: permission denied; fix its permissions, or choose another file with --history FILE",
}

function M.explain(path, message, code)
  local advice = ADVICE[code] or "failed"
  return string.format("history %s %s (%s: %s)", path, advice, code or "error", tostring(message))
end

---------------------------------------------------------------------------------------
-- Liveness of the process that owns a run.

local function read_file(path)
  local f = io.open(path)
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

-- Start time of a process (clock ticks since boot, field 22 of /proc/PID/stat).
local function start_time(pid)
  local s = read_file("/proc/" .. pid .. "/stat")
  if not s then return nil end
  local rest = s:match("^.*%)%s+(.*)$") -- the command name may hold spaces and parentheses
  if not rest then return nil end
  local n, state = 2, nil
  for field in rest:gmatch("%S+") do
    n = n + 1
    if n == 3 then state = field end
    if n == 22 then return math.tointeger(tonumber(field)), state end
  end
end
M._start_time = start_time

local function boot_id()
  return (read_file("/proc/sys/kernel/random/boot_id") or ""):match("%S+") or ""
end

local function hostname()
  return (read_file("/proc/sys/kernel/hostname") or ""):match("%S+") or ""
end

local ME = nil
local function me()
  if not ME then
    local pid = sys.getpid()
    ME = { pid = pid, pid_start = start_time(pid), boot_id = boot_id(), host = hostname() }
  end
  return ME
end

-- Is the process that recorded this running run still alive (same boot, same
-- PID, same start time: a recycled PID does not count)?
local function owner_alive(row)
  if not row.pid then return false end
  if row.boot_id ~= me().boot_id then return false end
  -- a zombie has ended: its parent (or the subreaper that adopted it) has not yet
  -- collected it, which may take as long as that process likes
  local st, state = start_time(row.pid)
  return st ~= nil and st == row.pid_start and state ~= "Z" and state ~= "X"
end

---------------------------------------------------------------------------------------
-- The store

local Store = {}
Store.__index = Store

local function fail(store, message, code)
  return nil, M.explain(store.path, message, code), code
end

function Store:stmt(sql)
  local s = self.stmts[sql]
  if not s then
    local err, code
    s, err, code = self.db:prepare(sql)
    if not s then
      self.last_code = code
      error(M.explain(self.path, err, code), 0)
    end
    self.stmts[sql] = s
  end
  return s
end

-- Runs fn inside BEGIN IMMEDIATE ... COMMIT; returns true or nil, message, code.
-- fn returns true or nil, message, code; anything else rolls back.
function Store:transaction(fn)
  local ok, err, code = self:stmt("BEGIN IMMEDIATE"):exec()
  if not ok then return nil, err, code end
  local pok, fok, ferr, fcode = pcall(fn)
  if pok and fok then
    ok, err, code = self:stmt("COMMIT"):exec()
    if ok then return true end
  elseif pok then
    err, code = ferr, fcode
  else
    err, code = tostring(fok), "SQLITE_ERROR"
  end
  if self.db:in_transaction() then self.db:exec("ROLLBACK") end
  return nil, err, code
end

local function exec_sql(db, sql)
  local ok, err, code = db:exec(sql)
  if not ok then return nil, err, code end
  return true
end

function Store:version()
  local row, err, code = self:stmt("PRAGMA user_version"):first()
  if not row then return nil, err, code end
  return row.user_version
end

function Store:migrate()
  local v, err, code = self:version()
  if not v then return nil, err, code end
  if v > M.SCHEMA_VERSION then
    return nil, string.format("history %s has schema version %d, newer than this hplua knows (%d); use a newer hplua, or choose another file with --history FILE",
      self.path, v, M.SCHEMA_VERSION), "SCHEMA"
  end
  if v == M.SCHEMA_VERSION then return true end
  if self.readonly then return true end -- read as it is (queries may miss newer columns)
  return self:transaction(function()
    local now = self:version() -- another process may have migrated meanwhile
    for n = now + 1, M.SCHEMA_VERSION do
      local ok, merr, mcode = exec_sql(self.db, MIGRATIONS[n])
      if not ok then return nil, "migration to schema version " .. n .. ": " .. merr, mcode end
      ok, merr, mcode = exec_sql(self.db, "PRAGMA user_version = " .. n)
      if not ok then return nil, merr, mcode end
    end
    return true
  end)
end

-- Marks runs aborted whose process is gone; returns the number marked.
function Store:mark_aborted()
  if self.readonly then return 0 end
  local dead = {}
  for row in self:stmt("SELECT run_id, pid, pid_start, boot_id FROM runs WHERE status = 'running'"):rows() do
    if not owner_alive(row) then dead[#dead + 1] = row.run_id end
  end
  if #dead == 0 then return 0 end
  local ok, err, code = self:abort_runs(dead)
  if not ok then return nil, err, code end
  return #dead
end

-- Marks these running runs aborted, their counts from the tests recorded; true or nil, message, code.
function Store:abort_runs(dead)
  return self:transaction(function()
    local upd = self:stmt([[UPDATE runs SET status = 'aborted',
        ended_at = coalesce((SELECT max(ended_at) FROM tests WHERE tests.run_id = runs.run_id), started_at),
        total = (SELECT count(*) FROM tests WHERE tests.run_id = runs.run_id),
        passed = (SELECT count(*) FROM tests WHERE tests.run_id = runs.run_id AND status = 'passed'),
        failed = (SELECT count(*) FROM tests WHERE tests.run_id = runs.run_id AND status = 'failed'),
        skipped = (SELECT count(*) FROM tests WHERE tests.run_id = runs.run_id AND status = 'skipped'),
        stopped = (SELECT count(*) FROM tests WHERE tests.run_id = runs.run_id AND status = 'stopped')
      WHERE run_id = ? AND status = 'running']])
    for _, id in ipairs(dead) do
      local uok, uerr, ucode = upd:exec(id)
      if not uok then return nil, uerr, ucode end
    end
    return self:stmt("UPDATE runs SET ended_ts = " .. unix("ended_at") .. ", duration = " .. unix("ended_at") .. " - started_ts WHERE status = 'aborted' AND ended_ts IS NULL"):exec()
  end)
end

function Store:close()
  for _, s in pairs(self.stmts) do s:finalize() end
  self.stmts = {}
  self.db:close()
end
Store.__close = Store.close

-- Opens (creating and migrating) a history database.
--   opts.create_folders  create missing parent folders (mode 0700): the default location
--   opts.read            for `hplua history`: do not create the file; fall back to
--                        reading a file that cannot be written
-- Returns the store, or nil, message, code. A file of another kind, a corrupt or
-- read-only one, or a missing folder is refused with a message saying what to do.
function M.open(path, opts)
  opts = opts or {}
  local dir = path:match("^(.*)/[^/]*$") or "."
  if dir == "" then dir = "/" end
  if not opts.create_folders then
    local kind = sys.kind(dir)
    if kind ~= "dir" then
      return nil, string.format("history %s cannot be created: its folder %s %s; create the folder, or choose another file with --history FILE",
        path, dir, kind and "is not a folder" or "does not exist"), "SQLITE_CANTOPEN"
    end
  end
  local kind = sys.kind(path)
  if kind and kind ~= "file" then
    return nil, string.format("history %s is not a regular file; choose another file with --history FILE", path), "SQLITE_CANTOPEN"
  end
  if opts.read and not kind then return nil, string.format("history %s does not exist (no run recorded yet)", path), "ENOENT" end
  local flags = opts.immutable and "ri" or opts.read and "w" or (opts.create_folders and "wcp" or "wc")
  local db, err, code = sqlite.open(path, flags, BUSY_MS)
  if not db then return nil, M.explain(path, err, code), code end
  local store = setmetatable({ db = db, path = path, stmts = {} }, Store)
  local ok, s, e, c = pcall(M.prepare_store, store, opts)
  if ok and s then return s end
  store:close()
  if not ok then s, e, c = nil, tostring(s), store.last_code end
  if opts.read and c == "SQLITE_CANTOPEN" and not opts.immutable then
    -- read-only media: no -shm file can be made, and no one can change the file
    local copy = setmetatable({ immutable = true }, { __index = opts })
    local store2 = M.open(path, copy)
    if store2 then return store2 end
  end
  return nil, e, c
end

-- The checks and set-up of a freshly opened store: returns it, or nil, message, code.
function M.prepare_store(store, opts)
  local db, path = store.db, store.path
  local err, code
  local function bail(e, c)
    return nil, e, c
  end
  if db:readonly() then
    if not opts.read then return bail(M.explain(path, "attempt to write a readonly database", "SQLITE_READONLY"), "SQLITE_READONLY") end
    store.readonly = true
  end
  -- The first read of the file: a file of another kind or a broken one fails here.
  -- Switching a file to write-ahead logging takes it whole, and SQLite answers BUSY at
  -- once (no busy timeout) while another process holds it: several runs creating one
  -- history at the same moment. Try again for as long as a write would wait.
  local row
  local give_up = sys.clock() + BUSY_MS / 1000
  repeat
    row, err, code = store:stmt("PRAGMA journal_mode = WAL"):first()
    local again = not row and code == "SQLITE_BUSY" and sys.clock() < give_up
    if again then sys.sleep(0.005) end
  until not again
  if not row then return bail(M.explain(path, err, code), code) end
  if row.journal_mode ~= "wal" and row.journal_mode ~= "memory" and not store.readonly then
    return bail(M.explain(path, "cannot use write-ahead logging (journal mode " .. tostring(row.journal_mode) .. ")", "SQLITE_CANTOPEN"), "SQLITE_CANTOPEN")
  end
  -- WAL: a commit is safe from a crash of hplua without an fsync (see docs/history.md)
  local ok
  ok, err, code = exec_sql(db, "PRAGMA synchronous = NORMAL")
  if not ok then return bail(M.explain(path, err, code), code) end
  ok, err, code = store:migrate()
  if not ok then return bail(code == "SCHEMA" and err or M.explain(path, err, code), code) end
  ok, err, code = store:mark_aborted()
  if not ok then return bail(M.explain(path, err, code), code) end
  if not opts.read then
    -- prove the file and its folder take a write now, before the run starts
    ok, err, code = store:transaction(function() return true end)
    if not ok then return bail(M.explain(path, err, code), code) end
  end
  return store
end

-- For the CLI before collection: the store the run's sink will write, or nil, message.
function M.open_for_run(path, opts)
  local store, err = M.open(path, opts)
  if not store then return nil, err end
  return store
end

---------------------------------------------------------------------------------------
-- The sink: one transaction when the run starts, one per finished test, one at the end.

local SQL = {
  run_start = [[INSERT OR IGNORE INTO runs (run_id, started_at, started_ts, status, serial, stand, slot, retest,
      hplua, paths, args, selected, host, pid, pid_start, boot_id)
    VALUES (?1, ?2, ]] .. unix("?2") .. [[, 'running', ?3, ?4, ?5,
      ?3 IS NOT NULL AND EXISTS (SELECT 1 FROM runs WHERE serial = ?3 AND run_id <> ?1), ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)]],
  test = [[INSERT OR REPLACE INTO tests (run_id, seq, test_id, attempt, status, duration, error, error_file,
      error_line, skip_reason, name, module, started_at, ended_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)]],
  attempt = [[INSERT OR REPLACE INTO attempts (run_id, test_seq, attempt, test_id, status, duration, error)
    VALUES (?, ?, ?, ?, ?, ?, ?)]],
  measurement = [[INSERT OR REPLACE INTO measurements (run_id, seq, test_id, attempt, name, value, unit, status,
      min, max, gt, lt, nominal, tolerance, tolerance_pct, expect, match, marginal_min, marginal_max)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)]],
  message = "INSERT OR REPLACE INTO messages (run_id, seq, test_id, time, text, key) VALUES (?, ?, ?, ?, ?, ?)",
  process = [[INSERT OR REPLACE INTO processes (run_id, seq, test_id, name, pid, command, exit_code, signal, duration,
      timed_out, terminated, stdout_bytes, stderr_bytes, started_at, ended_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)]],
  artifact = "INSERT OR REPLACE INTO artifacts (run_id, seq, test_id, name, path) VALUES (?, ?, ?, ?, ?)",
  error = "INSERT OR REPLACE INTO errors (run_id, seq, kind, message, file, line) VALUES (?, ?, ?, ?, ?, ?)",
  dut = "UPDATE runs SET dut = ?2, stand = coalesce(?3, stand) WHERE run_id = ?1",
  -- the outbox mark from the start: a run that never finishes (SIGKILL) is uploaded as aborted
  upload_mark = "UPDATE runs SET upload_pending = 1 WHERE run_id = ?",
  run_end = [[UPDATE runs SET ended_at = ?2, ended_ts = ]] .. unix("?2") .. [[, status = ?3, exit_code = ?4,
      report = ?5, summary = ?6, total = ?7, passed = ?8, failed = ?9, skipped = ?10, stopped = ?11,
      duration = ?12, caused_failure = ?13, upload_pending = ?14 WHERE run_id = ?1]],
}

local Sink = {}
Sink.__index = Sink

-- opts.on_error(message): told when a write fails (the run goes on; the records are
-- kept and written with the next commit). opts.upload: mark the run for upload (9).
-- opts.owner: the PID of the process that records the run (hplua.recorder), named
-- as the run's owner from its first record (a run is "running" while it lives).
-- A run commits once per test: with SQLite's default (a checkpoint each 1,000 pages
-- of log, two fsyncs each) a run of 2,000 trivial tests would stop for a dozen
-- checkpoints. The run's connection lets the log grow to WAL_PAGES pages (32 MiB)
-- before one; the last connection to close checkpoints and removes the log, as before.
local WAL_PAGES = 8192

function Store:sink(opts)
  opts = opts or {}
  self.db:exec("PRAGMA wal_autocheckpoint = " .. WAL_PAGES)
  return setmetatable({ store = self, pending = {}, seq = { test = 0, measurement = 0, message = 0, process = 0,
    artifact = 0, error = 0 }, on_error = opts.on_error, upload = opts.upload, owner = opts.owner, failures = 0 }, Sink)
end

function Sink:next(kind)
  local n = self.seq[kind] + 1
  self.seq[kind] = n
  return n
end

function Sink:add(name, ...)
  local p = self.pending
  p[#p + 1] = table.pack(name, ...)
end

-- Commits everything pending in one transaction; on failure keeps it for the next.
function Sink:commit(final)
  local store = self.store
  local pending = self.pending
  local function write_all()
    for i = 1, #pending do
      local op = pending[i]
      local eok, eerr, ecode = store:stmt(SQL[op[1]]):exec(table.unpack(op, 2, op.n))
      if not eok then return nil, eerr, ecode end
    end
    return true
  end
  -- one record (a test without messages or measurements): a statement is its own
  -- transaction, without the cost of BEGIN and COMMIT statements around it
  local commit = #pending == 1 and write_all or function() return store:transaction(write_all) end
  local ok, err, code = commit()
  if not ok and code == "SQLITE_FULL" then
    -- the write-ahead log holds old copies of pages: moving it into the database
    -- and truncating it may free enough space
    store.db:exec("PRAGMA wal_checkpoint(TRUNCATE)")
    ok, err, code = commit()
  end
  if ok then
    if self.failures > 0 and self.on_error and not final then
      self.on_error(string.format("history %s: writing again after %d failed commit(s); nothing was lost", store.path, self.failures))
    end
    self.pending, self.failures, self.error = {}, 0, nil
    return true
  end
  self.failures = self.failures + 1
  self.error = M.explain(store.path, err, code)
  -- tell once per stretch of failures, not once per test
  if self.failures == 1 and self.on_error and not final then
    self.on_error(self.error .. "; the run goes on and its records are kept to be written when possible")
  end
  return nil, self.error
end

local function started_at(ev)
  return text(ev.started_at) or text(ev.time) or sys.now()
end

function Sink:run_started(ev)
  local m = me()
  self.run_id = text(ev.run_id)
  self.started = true
  -- the owner: this process, or the one that records the run (opts.owner, a PID)
  local pid, pid_start = m.pid, m.pid_start
  if self.owner then pid, pid_start = self.owner, start_time(self.owner) end
  self:add("run_start", self.run_id, started_at(ev), text(ev.serial), jtext(ev.stand), int(ev.slot),
    text(ev.hplua), jtext(ev.paths), jtext(ev.args), type(ev.selected) == "table" and #ev.selected or nil,
    m.host, pid, pid_start, m.boot_id)
  if self.upload then self:add("upload_mark", self.run_id) end
  self:commit() -- at once, batched or not: the run is in the history from its start
end

local function error_parts(e)
  if e == nil or e == null then return nil end
  if type(e) ~= "table" then return text(e) end
  return text(e.message), text(e.file), int(e.line)
end

function Sink:message(ev)
  if ev.test ~= nil and ev.test ~= null then return end -- test messages come with test_finished
  self:add("message", self.run_id, self:next("message"), nil, text(ev.time), text(ev.text), text(ev.key))
end

function Sink:process_ended(ev)
  local cmd = ev.command
  self:add("process", self.run_id, self:next("process"), text(ev.test), text(ev.name), int(ev.pid),
    type(cmd) == "table" and jtext(cmd) or text(cmd), int(ev.exit_code), int(ev.signal), num(ev.duration),
    bool(ev.timed_out), bool(ev.terminated), int(ev.stdout_bytes), int(ev.stderr_bytes), text(ev.started_at),
    text(ev.ended_at))
end

function Sink:collection_error(ev)
  self:add("error", self.run_id, self:next("error"), "collection", text(ev.message), text(ev.file), int(ev.line))
end

function Sink:run_error(ev)
  self:add("error", self.run_id, self:next("error"), text(ev.kind) or "run", text(ev.message), text(ev.file), int(ev.line))
end

function Sink:info(ev)
  if ev.dut ~= nil or ev.stand ~= nil then
    self.dut = ev.dut ~= nil and ev.dut or self.dut
    self:add("dut", self.run_id, jtext(self.dut), jtext(ev.stand))
  end
end

local function measurement_status(m)
  if m.status ~= nil and m.status ~= null then return text(m.status) end
  if m.passed ~= nil then return m.passed and "passed" or "failed" end
end

function Sink:test_finished(ev)
  local run_id, test_id = self.run_id, text(ev.test)
  local seq = self:next("test")
  local emsg, efile, eline = error_parts(ev.error)
  self:add("test", run_id, seq, test_id, int(ev.attempt or ev.attempts), text(ev.status), num(ev.duration), emsg,
    efile, eline, text(ev.skip_reason), text(ev.name), text(ev.module), text(ev.started_at), text(ev.ended_at))
  local attempts = ev.attempt_results
  if type(attempts) == "table" and #attempts > 1 then
    for _, a in ipairs(attempts) do
      self:add("attempt", run_id, seq, int(a.attempt), test_id, text(a.status), num(a.duration), (error_parts(a.error)))
    end
  end
  local final = int(ev.attempt or ev.attempts)
  for _, m in ipairs(type(ev.measurements) == "table" and ev.measurements or {}) do
    self:add("measurement", run_id, self:next("measurement"), test_id, final, text(m.name), value(m.value),
      text(m.unit), measurement_status(m), value(m.min), value(m.max), value(m.gt), value(m.lt), value(m.nominal),
      value(m.tolerance), value(m.tolerance_pct), value(m.expect), value(m.match), value(m.marginal_min),
      value(m.marginal_max))
  end
  for _, msg in ipairs(type(ev.messages) == "table" and ev.messages or {}) do
    self:add("message", run_id, self:next("message"), test_id, text(msg.time), text(msg.text), text(msg.key))
  end
  for _, a in ipairs(type(ev.attachments) == "table" and ev.attachments or {}) do -- hp.attach: files
    self:add("artifact", run_id, self:next("artifact"), test_id, text(a.name), text(a.path))
  end
  local arts = ev.artifacts
  if type(arts) == "table" and next(arts) then
    local names = {}
    for k in pairs(arts) do names[#names + 1] = k end
    table.sort(names, function(a, b) return tostring(a) < tostring(b) end)
    for _, k in ipairs(names) do
      local a = arts[k]
      local name, path = k, a
      if type(a) == "table" then name, path = a.name or k, a.path end
      self:add("artifact", run_id, self:next("artifact"), test_id, text(name), type(path) == "string" and text(path) or jtext(path))
    end
  end
  if not self.batch then self:commit() end
end

function Sink:run_finished(ev, run)
  if not self.started then self:run_started(ev) end
  local report
  if run and run.report_text then
    local ok, r = pcall(run.report_text, run)
    report = ok and r or nil
  end
  local s = type(ev.summary) == "table" and ev.summary or {}
  local ended = text(ev.ended_at) or text(ev.time) or sys.now()
  self:add("run_end", self.run_id, ended, text(ev.status), int(ev.exit_code), report and text(report), jtext(ev.summary),
    int(s.total), int(s.passed), int(s.failed), int(s.skipped), int(s.stopped), num(ev.duration),
    text(ev.caused_failure), self.upload and 1 or 0)
  -- the end of the run is made durable against power loss too: one fsync of the WAL
  self.store.db:exec("PRAGMA synchronous = FULL")
  local ok, err = self:commit(true)
  self.store.db:exec("PRAGMA synchronous = NORMAL")
  if not ok then
    -- nothing recorded may be lost silently: the run fails (like an unwritable --json)
    self.failed = string.format("%s; %d record(s) of run %s are not in the history", err, #self.pending, tostring(self.run_id))
    if run and run.output_error then
      run:output_error(self.failed)
    elseif self.on_error then
      self.on_error(self.failed)
    end
  end
  self.finished = true
end

function Sink:close()
  if not self.finished and #self.pending > 0 then self:commit(true) end
  self.store:close()
end

---------------------------------------------------------------------------------------
-- Report path placeholders: {run_id} {serial} {slot} {date} {time}

local function safe(s)
  s = tostring(s):gsub("[^%w%-%.%+@=,_]", "_")
  if s == "." or s == ".." then s = s:gsub("%.", "_") end
  return s
end

-- expand_placeholders(path, run) -> path | nil, message. run: { run_id, serial, slot,
-- started_at (ISO 8601) }. {date} is the run's start date (YYYY-MM-DD), {time} its
-- time (HHMMSS), both in the run's own UTC offset; values are made safe for a file name.
function M.expand_placeholders(path, run)
  run = run or {}
  local started = run.started_at or sys.now()
  local values = {
    run_id = run.run_id and safe(run.run_id) or "norun",
    serial = (run.serial ~= nil and run.serial ~= "") and safe(run.serial) or "noserial",
    slot = run.slot and safe(run.slot) or "0",
    date = started:sub(1, 10),
    time = (started:sub(12, 19):gsub(":", "")),
  }
  local bad
  local out = path:gsub("{([^{}]*)}", function(name)
    local v = values[name]
    if not v then bad = bad or name end
    return v
  end)
  if bad then
    return nil, string.format("unknown placeholder {%s} in %s (known: {run_id}, {serial}, {slot}, {date}, {time})", bad, path)
  end
  return out
end

-- The placeholders a path uses, as a set.
function M.placeholders(path)
  local set = {}
  for name in path:gmatch("{([^{}]*)}") do set[name] = true end
  return set
end

---------------------------------------------------------------------------------------
-- Queries for `hplua history`

local RUN_COLUMNS = [[run_id, started_at, ended_at, status, exit_code, serial, stand, slot, retest, duration,
  caused_failure, total, passed, failed, skipped, stopped, upload_pending, hplua]]

-- list{serial, status, ended, limit} -> rows, newest first (ended: no running runs)
function Store:list(f)
  local where, args = {}, {}
  if f.serial then where[#where + 1] = "serial = ?"; args[#args + 1] = f.serial end
  if f.status then where[#where + 1] = "status = ?"; args[#args + 1] = f.status end
  if f.ended then where[#where + 1] = "status <> 'running'" end
  local sql = "SELECT " .. RUN_COLUMNS .. " FROM runs" .. (#where > 0 and (" WHERE " .. table.concat(where, " AND ")) or "")
    .. " ORDER BY started_ts DESC, rowid DESC LIMIT ?"
  args[#args + 1] = f.limit or 20
  local out = {}
  for row in self:stmt(sql):rows(table.unpack(args)) do out[#out + 1] = row end
  return out
end

function Store:count(sql, ...)
  local row = assert(self:stmt(sql):first(...))
  return row and row.n or 0
end

-- The newest run of the same PATHs that ended (or was aborted), and the ids of its
-- failed tests: { run_id, started_at, ids } | nil (--last-failed).
function Store:last_failed(paths)
  local run = self:stmt("SELECT run_id, started_at FROM runs WHERE paths = ? AND status <> 'running'"
    .. " ORDER BY started_ts DESC, rowid DESC LIMIT 1"):first(jtext(json.array(paths)))
  if not run then return nil end
  run.ids = {}
  for row in self:stmt("SELECT test_id FROM tests WHERE run_id = ? AND status = 'failed' ORDER BY seq"):rows(run.run_id) do
    run.ids[#run.ids + 1] = row.test_id
  end
  return run
end

-- find(id_or_prefix) -> run_id | nil, message
function Store:find(id)
  local rows = {}
  for row in self:stmt("SELECT run_id FROM runs WHERE run_id >= ?1 AND run_id < ?1 || x'ff' ORDER BY run_id LIMIT 3"):rows(id) do
    rows[#rows + 1] = row.run_id
  end
  for _, r in ipairs(rows) do
    if r == id then return r end
  end
  if #rows == 0 then return nil, string.format("no run %s in %s", id, self.path) end
  if #rows > 1 then return nil, string.format("run id %s is ambiguous (%s, %s%s)", id, rows[1], rows[2], #rows > 2 and ", ..." or "") end
  return rows[1]
end

function Store:run(run_id)
  local run = self:stmt("SELECT * FROM runs WHERE run_id = ?"):first(run_id)
  if not run then return nil end
  run.tests = {}
  for t in self:stmt("SELECT * FROM tests WHERE run_id = ? ORDER BY seq"):rows(run_id) do
    t.measurements = {}
    t.messages = {}
    run.tests[#run.tests + 1] = t
  end
  local by_id = {}
  for _, t in ipairs(run.tests) do by_id[t.test_id] = t end
  for m in self:stmt("SELECT * FROM measurements WHERE run_id = ? ORDER BY seq"):rows(run_id) do
    local t = by_id[m.test_id]
    if t then t.measurements[#t.measurements + 1] = m end
  end
  for m in self:stmt("SELECT * FROM messages WHERE run_id = ? ORDER BY seq"):rows(run_id) do
    local t = m.test_id and by_id[m.test_id]
    if t then t.messages[#t.messages + 1] = m end
  end
  run.errors = {}
  for e in self:stmt("SELECT * FROM errors WHERE run_id = ? ORDER BY seq"):rows(run_id) do run.errors[#run.errors + 1] = e end
  return run
end

-- The run's JSON report; for a run that never finished (aborted, running), one
-- rebuilt from what was recorded, in the same format.
function Store:report_text(run_id)
  local row = self:stmt("SELECT report FROM runs WHERE run_id = ?"):first(run_id)
  if not row then return nil end
  if row.report then return row.report end
  local run = self:run(run_id)
  local arr = json.array
  local modules, by_module = arr(), {}
  local summary = { total = 0, passed = 0, failed = 0, skipped = 0, stopped = 0 }
  local caused
  for _, t in ipairs(run.tests) do
    summary.total = summary.total + 1
    if summary[t.status] then summary[t.status] = summary[t.status] + 1 end
    if t.status == "failed" and not caused then caused = t.test_id end
    local mid = t.module or t.test_id:match("^(.*)::") or ""
    local m = by_module[mid]
    if not m then
      m = { id = mid, name = mid, tests = arr(), started_at = t.started_at }
      by_module[mid] = m
      modules[#modules + 1] = m
    end
    m.ended_at = t.ended_at
    local ms = arr()
    for i, x in ipairs(t.measurements) do
      ms[i] = { name = x.name, value = x.value, unit = x.unit, min = x.min, max = x.max, expect = x.expect,
        status = x.status, passed = x.status ~= "failed" }
    end
    local msgs = arr()
    for i, x in ipairs(t.messages) do msgs[i] = { time = x.time, text = x.text, key = x.key } end
    m.tests[#m.tests + 1] = { id = t.test_id, name = t.name, status = t.status, started_at = t.started_at,
      ended_at = t.ended_at, duration = t.duration, attempts = t.attempt,
      error = t.error and { message = t.error, file = t.error_file, line = t.error_line } or null,
      skip_reason = t.skip_reason or null, messages = msgs, measurements = ms, artifacts = {} }
  end
  local errors = arr()
  for i, e in ipairs(run.errors) do errors[i] = { message = e.message, file = e.file, line = e.line, kind = e.kind } end
  local report = { hplua = run.hplua, run_id = run.run_id, status = run.status, started_at = run.started_at,
    ended_at = run.ended_at or null, duration = run.duration, exit_code = null, caused_failure = caused or null,
    stand = run.stand and json.decode(run.stand) or {}, dut = run.dut and json.decode(run.dut) or {},
    serial = run.serial, slot = run.slot, instruments = arr(), messages = arr(), errors = errors,
    collection_errors = arr(), summary = summary, modules = modules, processes = arr(),
    paths = run.paths and json.decode(run.paths) or arr() }
  return assert(json.encode(report, true)) .. "\n"
end

local function since_ts(store, since)
  if not since then return 0 end
  local has_zone = since:match("[zZ]$") or since:match("[+-]%d%d:?%d%d$") and #since > 10
  local row = store:stmt("SELECT (julianday(?1" .. (has_zone and "" or ", 'utc'") .. ") - 2440587.5) * 86400.0 AS ts"):first(since)
  return row and row.ts
end

-- A valid --since value? (YYYY-MM-DD, optionally with a time and a UTC offset)
function M.valid_date(s)
  return s:match("^%d%d%d%d%-%d%d%-%d%d$") or s:match("^%d%d%d%d%-%d%d%-%d%d[T ]%d%d:%d%d")
end

-- stats{since} -> { runs, by_status, serials, first_pass, final, failing }
function Store:stats(f)
  local ts = since_ts(self, f.since)
  local st = { since = f.since, runs = 0, by_status = {}, failing = {} }
  for row in self:stmt("SELECT status, count(*) AS n FROM runs WHERE coalesce(started_ts, 0) >= ? GROUP BY status"):rows(ts) do
    st.by_status[row.status or "?"] = row.n
    st.runs = st.runs + row.n
  end
  -- serials first tested in the period: passed the first time / passed in the end (a
  -- first run still going counts once it has a verdict)
  local first = self:stmt([[SELECT count(DISTINCT serial) AS serials,
      count(DISTINCT CASE WHEN status = 'passed' THEN serial END) AS first_passed
    FROM runs WHERE retest = 0 AND serial IS NOT NULL AND status <> 'running' AND coalesce(started_ts, 0) >= ?]]):first(ts)
  local final = self:stmt([[SELECT count(DISTINCT f.serial) AS n FROM runs AS f
    WHERE f.retest = 0 AND f.serial IS NOT NULL AND f.status <> 'running' AND coalesce(f.started_ts, 0) >= ?
      AND EXISTS (SELECT 1 FROM runs AS r WHERE r.serial = f.serial AND r.status = 'passed')]]):first(ts)
  st.serials = first and first.serials or 0
  local function ratio(n, d) return d > 0 and n / d or nil end
  st.first_pass = { passed = first and first.first_passed or 0, serials = st.serials }
  st.first_pass.yield = ratio(st.first_pass.passed, st.serials)
  st.final = { passed = final and final.n or 0, serials = st.serials }
  st.final.yield = ratio(st.final.passed, st.serials)
  local sql, args
  if f.since then
    sql = [[SELECT test_id, count(*) AS failures FROM tests WHERE status = 'failed'
      AND run_id IN (SELECT run_id FROM runs WHERE started_ts >= ?) GROUP BY test_id ORDER BY failures DESC, test_id LIMIT ?]]
    args = { ts, f.top or 10 }
  else
    sql = [[SELECT test_id, count(*) AS failures FROM tests WHERE status = 'failed'
      GROUP BY test_id ORDER BY failures DESC, test_id LIMIT ?]]
    args = { f.top or 10 }
  end
  for row in self:stmt(sql):rows(table.unpack(args)) do
    st.failing[#st.failing + 1] = { test_id = row.test_id, failures = row.failures, share = ratio(row.failures, st.runs) }
  end
  st.upload_pending = self:count("SELECT count(*) AS n FROM runs WHERE upload_pending = 1")
  return st
end

return M
