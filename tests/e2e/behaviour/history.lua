-- The run history under stress: concurrent writers, SIGKILL at random moments, a
-- full disk, a read-only file system. Real hplua runs, real files, the database
-- checked with PRAGMA integrity_check.
local hp = require "hplua"
local run = require "_run"
local json = require "hplua.json"
local sqlite = require "hplua.sqlite"
local history = require "hplua.history"

local tmpdir = run.tmpdir
local function write(path, s)
  local f = assert(io.open(path, "w"))
  f:write(s)
  f:close()
end

-- A suite of n tests; body is the Lua code of each test (i is its number).
local function suite(dir, n, body)
  local lines = { 'local hp = require "hplua"' }
  for i = 1, n do
    lines[#lines + 1] = string.format("hp.test(%q, function() local i = %d %s end)", "t" .. i, i, body or "")
  end
  write(dir .. "/suite_" .. n .. ".lua", table.concat(lines, "\n") .. "\n")
  return dir .. "/suite_" .. n .. ".lua"
end

local function query(path, sql, ...)
  local db <close> = assert(sqlite.open(path, "r"))
  -- finalized before the connection closes (a statement left to the collector keeps
  -- the database's files open, and the small disk busy)
  local st <close> = assert(db:prepare(sql))
  local out = {}
  for r in st:rows(...) do out[#out + 1] = r end
  return out
end

local function integrity(path)
  return query(path, "PRAGMA integrity_check")[1].integrity_check
end

-- The pid that owns the running run p records into db: its recorder, named in the
-- run's first record (waits for that record; checks it is not the run's own pid).
local function recorder_of(db, p)
  local owner
  run.wait_for(function()
    local ok, rows = pcall(query, db, "SELECT pid FROM runs WHERE status = 'running'")
    owner = ok and rows[1] and rows[1].pid or nil
    return owner ~= nil or not p:alive()
  end, 30, "the run's first record")
  hp.expect(owner).never.to_be_nil()
  hp.expect(owner).never.to_equal(p.pid)
  return owner
end

local n = 0
local function hplua(args, opts)
  n = n + 1
  local argv = { run.exe }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  return hp.process.start("hplua-" .. n, argv, opts)
end

hp.test("8 runs writing one history at once: all complete, nothing lost", function()
  local dir = tmpdir()
  local file = suite(dir, 200)
  local db = dir .. "/h.db"
  local procs = {}
  for i = 1, 8 do procs[i] = hplua({ "-q", "--history", db, "--serial", "SN" .. i, file }, { timeout = 120 }) end
  for i, p in ipairs(procs) do
    local r = p:wait()
    hp.expect(r.exit_code, "run " .. i .. ": " .. r.stdout .. r.stderr).to_equal(0)
  end
  hp.expect(integrity(db)).to_equal("ok")
  local runs = query(db, "SELECT status, total, (SELECT count(*) FROM tests WHERE tests.run_id = runs.run_id) AS n FROM runs")
  hp.expect(#runs).to_equal(8)
  for _, r in ipairs(runs) do hp.expect(r).to_equal { status = "passed", total = 200, n = 200 } end
  os.execute("rm -rf '" .. dir .. "'")
end)

-- Each connection leaves the write-ahead log to the next (no checkpoint at close); a
-- run's recorder moves it into the database once it has grown past 4 MiB. Ten runs
-- that log about 40 MiB between them: the log never holds much more than 4 MiB and a
-- run's own (without that, SQLite's own checkpoint comes at 32 MiB).
hp.test("the write-ahead log stays bounded over many runs", function()
  local dir = tmpdir()
  local file = suite(dir, 200, 'hp.set_message(string.rep("x", 8000) .. i)')
  local db = dir .. "/h.db"
  local biggest = 0
  for i = 1, 10 do
    local r = hplua({ "-q", "--history", db, file }, { timeout = 120 }):wait()
    hp.expect(r.exit_code, r.stdout .. r.stderr).to_equal(0)
    local st = require("hplua.sys").stat(db .. "-wal")
    if st then biggest = math.max(biggest, st.size) end
  end
  hp.expect(#query(db, "SELECT run_id FROM runs")).to_equal(10)
  hp.expect(integrity(db)).to_equal("ok")
  hp.set_message(string.format("largest log %.1f MiB", biggest / 1048576))
  hp.expect(biggest).to_be_less_than(12 * 1048576)
  os.execute("rm -rf '" .. dir .. "'")
end)

hp.test("SIGKILL at random moments: every test the events call finished is recorded; the run ends aborted", function()
  math.randomseed(tonumber(os.getenv("HPLUA_FAULT_SEED") or "13"))
  local dir = tmpdir()
  local file = suite(dir, 2000, "if i % 50 == 0 then hp.sleep(0.001) end")
  local db = dir .. "/h.db"
  for round = 1, 20 do
    local events = dir .. "/events-" .. round .. ".ndjson"
    local p = hplua({ "-q", "--history", db, "--events", events, file }, { timeout = 120 })
    run.wait_for(function()
      local f = io.open(events)
      local s = f and f:read("a") or ""
      if f then f:close() end
      return s:find('"test_finished"', 1, true) ~= nil or not p:alive()
    end, 30, "the first finished test")
    hp.sleep(math.random() * 0.3)
    if p:alive() then run.kill(p.pid, "KILL", false, true) end -- it may end meanwhile
    local r = p:wait(20)
    local finished, run_id = {}, nil
    for line in io.lines(events) do
      local ev = json.decode(line) -- a torn last line is skipped
      if ev then
        run_id = ev.run_id
        if ev.type == "test_finished" then finished[#finished + 1] = ev.test end
      end
    end
    -- the recorder (a process of its own) reads what the run wrote to the end, commits
    -- it and marks the run aborted: wait for that (it takes milliseconds)
    if run_id then
      run.wait_for(function()
        local row = query(db, "SELECT status FROM runs WHERE run_id = ?", run_id)[1]
        return row and row.status ~= "running"
      end, 20, "the recorder to finish run " .. run_id)
    end
    hp.expect(integrity(db)).to_equal("ok")
    if run_id then -- the recorder (the run's owner in the table) is gone too: nothing left behind
      local owner = query(db, "SELECT pid FROM runs WHERE run_id = ?", run_id)[1].pid
      run.wait_for(function() return owner == p.pid or not io.open("/proc/" .. owner .. "/stat") end, 10,
        "the recorder " .. tostring(owner) .. " to exit")
    end
    local recorded = {}
    for _, row in ipairs(query(db, "SELECT test_id FROM tests WHERE run_id = ?", run_id)) do recorded[row.test_id] = true end
    for _, id in ipairs(finished) do
      if not recorded[id] then error(string.format("round %d: %s finished in the events but is not in the history", round, id)) end
    end
    local store = assert(history.open(db)) -- the next open marks it aborted
    store:close()
    local status = query(db, "SELECT status FROM runs WHERE run_id = ?", run_id)[1].status
    local n_recorded = 0
    for _ in pairs(recorded) do n_recorded = n_recorded + 1 end
    if r.signal and not (status == "passed" and n_recorded == 2000) then
      -- a kill that lands after the run's end was committed (while hplua exits) leaves it passed,
      -- with every test recorded; any earlier kill leaves it aborted
      hp.expect(status).to_equal("aborted")
    elseif r.signal then
      hp.expect(status).to_equal("passed")
    else
      hp.expect(status).to_equal("passed") -- the run ended before the kill
    end
    hp.set_message(string.format("round %d: %d tests finished, %s", round, #finished, status), "round")
  end
  os.execute("rm -rf '" .. dir .. "'")
end)

hp.test("the run SIGKILLed while its recorder is behind: no other opener aborts the run early; every finished test is kept", function()
  local dir = tmpdir()
  local file = suite(dir, 400, "hp.sleep(0.005)")
  local db = dir .. "/h.db"
  local events = dir .. "/events.ndjson"
  local p = hplua({ "-q", "--history", db, "--events", events, file }, { timeout = 120 })
  local owner = recorder_of(db, p)
  -- the recorder falls behind (stopped), the run goes on, then dies
  run.kill(owner, "STOP")
  run.wait_for(function()
    local f = io.open(events)
    local s = f and f:read("a") or ""
    if f then f:close() end
    local _, n_finished = s:gsub('"test_finished"', "")
    return n_finished >= 200 or not p:alive()
  end, 30, "200 finished tests in the events")
  if p:alive() then run.kill(p.pid, "KILL", false, true) end
  p:wait(20)
  -- another process opens the history meanwhile: the run is still being recorded. A
  -- reader's open (it marks dead runs aborted too, but proves no write: the stopped
  -- recorder may hold the write lock, and a writer would wait for it)
  local store = assert(history.open(db, { read = true }))
  store:close()
  hp.expect(query(db, "SELECT status FROM runs")[1].status).to_equal("running")
  run.kill(owner, "CONT")
  run.wait_for(function() return query(db, "SELECT status FROM runs")[1].status ~= "running" end, 20,
    "the recorder to finish")
  local recorded = {}
  for _, row in ipairs(query(db, "SELECT test_id FROM tests")) do recorded[row.test_id] = true end
  local finished = 0
  for line in io.lines(events) do
    local ev = json.decode(line)
    if ev and ev.type == "test_finished" then
      finished = finished + 1
      if not recorded[ev.test] then error(ev.test .. " finished in the events but is not in the history") end
    end
  end
  hp.expect(finished >= 200).to_be(true)
  hp.expect(query(db, "SELECT status FROM runs")[1].status).to_equal("aborted")
  hp.expect(integrity(db)).to_equal("ok")
  os.execute("rm -rf '" .. dir .. "'")
end)

-- SQLite's locks on the WAL index (the -shm file) tell other openers that it is in
-- use. A process that opens and closes a descriptor of that file drops every POSIX
-- lock it holds on it; a later opener then rebuilt the index under the recorder's
-- mapping (the recorder died of SIGBUS, its run's records lost). While the run goes
-- on, the recorder holds a lock on the -shm file (/proc/locks).
hp.test("the recorder keeps SQLite's lock on the WAL index while it records", function()
  local dir = tmpdir()
  local file = suite(dir, 300, "hp.sleep(0.01)")
  local db = dir .. "/h.db"
  local p = hplua({ "-q", "--history", db, file }, { timeout = 120 })
  local owner = recorder_of(db, p)
  local sys = require "hplua.sys"
  -- the recorder opens the database when the run's first frames come
  run.wait_for(function()
    for _, fd in ipairs(sys.listdir("/proc/" .. owner .. "/fd") or {}) do
      local target = sys.realpath("/proc/" .. owner .. "/fd/" .. fd)
      if target and target:sub(-8) == "h.db-shm" then return true end
    end
    return not p:alive()
  end, 30, "the recorder to open the database")
  local st = assert(sys.stat(db .. "-shm"))
  local function holds()
    for line in io.lines("/proc/locks") do
      local pid, ino = line:match("^%d+:%s+POSIX%s+%S+%s+%S+%s+(%d+)%s+%x+:%x+:(%d+)")
      if tonumber(pid) == owner and tonumber(ino) == st.ino then return true end
    end
    return false
  end
  local seen = 0
  for _ = 1, 5 do
    if p:alive() and holds() then seen = seen + 1 end
    hp.sleep(0.05)
  end
  local alive = p:alive()
  if alive then run.kill(p.pid, "KILL", false, true) end
  p:wait(20)
  hp.expect(alive, "the run ended before the check").to_be(true)
  hp.expect(seen, "of 5 looks at /proc/locks").to_equal(5)
  os.execute("rm -rf '" .. dir .. "'")
end)

hp.test("the recorder killed mid-run: the run goes on, fails naming the history, the database consistent", function()
  local dir = tmpdir()
  local file = suite(dir, 300, "hp.sleep(0.01)")
  local db = dir .. "/h.db"
  local p = hplua({ "-q", "--history", db, file }, { timeout = 120 })
  run.kill(recorder_of(db, p), "KILL")
  local r = p:wait(60)
  hp.expect(r.stdout).to_match("300 passed")
  hp.expect(r.exit_code).to_equal(1)
  hp.expect(r.stderr).to_match("hplua: error: history " .. db:gsub("%p", "%%%0") .. ": the history recorder is gone")
  hp.expect(integrity(db)).to_equal("ok")
  local store = assert(history.open(db)) -- its owner is gone: the run is aborted, its committed tests kept
  store:close()
  local row = query(db, "SELECT status, total FROM runs")[1]
  hp.expect(row.status).to_equal("aborted")
  hp.expect(row.total < 300).to_be(true)
  os.execute("rm -rf '" .. dir .. "'")
end)

-- Mounts a small tmpfs (root only); returns its folder or skips the test.
local function small_disk(size)
  local dir = tmpdir()
  local r = hp.process.start("mount-" .. dir, { "mount", "-t", "tmpfs", "-o", "size=" .. size, "tmpfs", dir }):wait()
  if r.exit_code ~= 0 then
    os.remove(dir)
    hp.skip("cannot mount a tmpfs here (needs root): " .. r.stderr:gsub("%s+$", ""))
  end
  return dir
end

-- Unmounts the small disk and raises the test's error (ok, err: its pcall), or the
-- unmount's: a file of the disk still open (a history left open) keeps it busy.
local function unmount(dir, ok, err)
  local r = hp.process.start("umount-" .. dir, { "umount", dir }):wait()
  if r.exit_code == 0 then os.execute("rm -rf '" .. dir .. "'") end
  if not ok then error(err, 0) end
  hp.expect(r.exit_code, "umount " .. dir .. ": " .. r.stderr).to_equal(0)
end

hp.test("a full disk: the run goes on, says so, and writes its records when space comes back", function()
  local dir = small_disk("2m")
  local ok, err = pcall(function()
    local db = dir .. "/h.db"
    local filler = dir .. "/filler"
    -- test 5 fills the disk, test 30 frees it again; tests write large messages, and
    -- those after take a while, so the recorder commits while the disk is full and after
    local file = suite(tmpdir(), 40, string.format([[
      if i > 5 then hp.sleep(0.02) end
      if i == 5 then
        local f = assert(io.open(%q, "w"))
        local chunk = string.rep("x", 4096)
        while f:write(chunk) and f:flush() do end
        f:close()
      elseif i == 30 then
        os.remove(%q)
      end
      hp.set_message(string.rep("m", 3000) .. i)]], filler, filler))
    local r = hplua({ "-q", "--history", db, file }, { timeout = 60 }):wait()
    hp.expect(r.stderr).to_match("history " .. db:gsub("%p", "%%%0") .. " cannot grow: the disk is full")
    hp.expect(r.stderr).to_match("nothing was lost")
    hp.expect(r.exit_code, r.stdout .. r.stderr).to_equal(0)
    hp.expect(integrity(db)).to_equal("ok")
    hp.expect(query(db, "SELECT status, total FROM runs")[1]).to_equal { status = "passed", total = 40 }
    hp.expect(query(db, "SELECT count(*) AS n FROM tests")[1].n).to_equal(40)
    hp.expect(query(db, "SELECT count(*) AS n FROM messages")[1].n).to_equal(40)
  end)
  unmount(dir, ok, err)
end)

hp.test("a disk that stays full: a clear error, exit 1, the database consistent", function()
  local dir = small_disk("400k")
  local ok, err = pcall(function()
    local db = dir .. "/h.db"
    local filler = dir .. "/filler"
    local file = suite(tmpdir(), 20, string.format([[
      if i == 5 then
        local f = assert(io.open(%q, "w"))
        local chunk = string.rep("x", 4096)
        while f:write(chunk) and f:flush() do end
        f:close()
      end
      hp.set_message(string.rep("m", 3000) .. i)]], filler))
    local r = hplua({ "-q", "--history", db, file }, { timeout = 60 }):wait()
    hp.expect(r.exit_code).to_equal(1)
    hp.expect(r.stdout).to_match("20 passed")
    hp.expect(r.stderr).to_match("hplua: error: history .* cannot grow: the disk is full.*record%(s%) of run .* are not in the history")
    os.remove(filler)
    hp.expect(integrity(db)).to_equal("ok")
    local store = assert(history.open(db))
    store:close()
    hp.expect(query(db, "SELECT status FROM runs")[1].status).to_equal("aborted")
  end)
  unmount(dir, ok, err)
end)

hp.test("a read-only file system: the run does not start (exit 4) and says why", function()
  local dir = small_disk("1m")
  local ok, err = pcall(function()
    local file = suite(tmpdir(), 3)
    local db = dir .. "/h.db"
    hp.expect(hplua({ "-q", "--history", db, file }):wait().exit_code).to_equal(0)
    local r = hp.process.start("remount-" .. dir, { "mount", "-o", "remount,ro", dir }):wait()
    hp.expect(r.exit_code, r.stderr).to_equal(0)
    r = hplua({ "-q", "--history", db, file }):wait()
    hp.expect(r.exit_code).to_equal(4)
    hp.expect(r.stdout).to_equal("")
    hp.expect(r.stderr).to_match("history " .. db:gsub("%p", "%%%0") .. " cannot be written %(read%-only file or file system%)")
    r = hplua({ "-q", "--history", dir .. "/new.db", file }):wait()
    hp.expect(r.exit_code).to_equal(4)
    hp.expect(r.stderr).to_match("history .*/new%.db cannot be opened; check that its folder exists and is writable")
    r = hplua({ "-q", "--no-history", "--history", db, file }):wait()
    hp.expect(r.exit_code).to_equal(0)
    r = hplua({ "history", "--history", db, "list", "--json" }):wait()
    hp.expect(r.exit_code, r.stderr).to_equal(0)
    hp.expect(#json.decode(r.stdout)).to_equal(1)
  end)
  unmount(dir, ok, err)
end)
