-- hplua benchmarks, side by side with their baselines, from one run.
--   hplua --exec bench/bench.lua --hplua PATH --bin DIR [--out FILE] [--smoke]
-- DIR holds the C helpers (spawn, exiter). --smoke uses tiny sizes (ctest runs it);
-- --only 6,7 runs those sections.
local hp = require "hplua"
local json = require "hplua.json"

local opts = { out = nil, smoke = false, only = nil }
do
  local i = 1
  while arg[i] do
    local a = arg[i]
    if a == "--smoke" then opts.smoke = true
    elseif a == "--only" then
      opts.only = {}
      for n in assert(arg[i + 1], "--only needs a list"):gmatch("%d+") do opts.only[tonumber(n)] = true end
      i = i + 1
    elseif a == "--hplua" or a == "--bin" or a == "--out" then opts[a:sub(3)] = assert(arg[i + 1], a .. " needs a value"); i = i + 1
    else error("unknown argument " .. a) end
    i = i + 1
  end
end
local HPLUA = assert(opts.hplua, "--hplua PATH is required")
local function want(n) return opts.only == nil or opts.only[n] end
local BIN = assert(opts.bin, "--bin DIR is required")
local PY = "/usr/bin/python3"
local S = opts.smoke
local size = {
  startup_runs = S and 3 or 30, tests = S and 50 or 2000, test_runs = S and 1 or 9, pytest_runs = S and 1 or 3,
  children = S and 20 or 500, spawn_runs = S and 1 or 5, latency = S and 10 or 200, poll_latency = S and 5 or 200,
  capture = S and (1 << 20) or (256 << 20), capture_both = S and (1 << 20) or (64 << 20), capture_runs = S and 1 or 3,
  big_suite = S and 500 or 100000, big_runs = S and 1 or 5, keyed = S and 2000 or 40000,
  keyed_small = S and 1000 or 100000, keyed_large = S and 10000 or 1000000,
  history_runs = S and 1000 or 100000, history_query_runs = S and 3 or 9,
  round_trips = S and 200 or 10000, rt_runs = S and 1 or 5,
  cpu_loop = S and 20000 or 3000000, cpu_runs = S and 1 or 9,
  live = S and { 20, 160 } or { 500, 4000 }, all = S and 50 or 4000, busy = S and 20 or 2000,
  busy_latency = S and 10 or 200, measures = S and { 2000, 20000 } or { 100000, 1000000 },
}

local tmp = os.tmpname()
os.remove(tmp)
assert(os.execute("mkdir -p " .. tmp))

local seq = 0
local function run(argv, opts2)
  seq = seq + 1
  -- test runs record no history unless the benchmark says so (section 7 measures it)
  if argv[1] == HPLUA and not (argv[2] or ""):match("^%-%-exec$") and argv[2] ~= "--version" and argv[2] ~= "history"
      and not table.concat(argv, " "):find("%-%-history") then
    argv = { argv[1], "--no-history", table.unpack(argv, 2) }
  end
  -- started through bench-bin/rss, so max_rss_kb is the command's own peak, not the harness's;
  -- self_cpu: its own process's CPU seconds, children_cpu: that of the descendants it reaped
  local rss_file = tmp .. "/rss-" .. seq
  local r = hp.process.start("bench-" .. seq, { BIN .. "/rss", rss_file, table.unpack(argv) }, opts2):wait()
  if r.exit_code ~= 0 and not (opts2 and opts2.ok_status == r.exit_code) then
    error(string.format("%s failed (%s): %s%s", table.concat(argv, " "), tostring(r.exit_code or r.signal), r.stdout, r.stderr))
  end
  local f = io.open(rss_file)
  r.max_rss_kb = f and tonumber(f:read("l")) or 0
  local self_ns, total_us = (f and f:read("l") or ""):match("^(%d+) (%d+)$")
  if f then f:close() end
  if self_ns then r.self_cpu, r.children_cpu = self_ns / 1e9, total_us / 1e6 - self_ns / 1e9 end
  os.remove(rss_file)
  return r
end

local function median(xs)
  table.sort(xs)
  local n = #xs
  if n % 2 == 1 then return xs[(n + 1) // 2] end
  return (xs[n // 2] + xs[n // 2 + 1]) / 2
end

local function pct(xs, p)
  table.sort(xs)
  return xs[math.max(1, math.ceil(#xs * p))]
end

-- Runs argv `runs` times; median wall seconds and the peak RSS.
local function time_cmd(argv, runs, o)
  local ts, rss = {}, 0
  for _ = 1, runs do
    local r = run(argv, o)
    ts[#ts + 1] = r.duration
    rss = math.max(rss, r.max_rss_kb)
  end
  return median(ts), rss
end

-- Two commands run in turn (a, b, a, b, ...): on a machine whose speed drifts, the
-- ratio of their medians is steadier than from runs of one and then the other.
-- -> median and peak RSS of a, then of b.
local function time_pair(a, b, runs)
  local ta, tb, ra, rb = {}, {}, 0, 0
  for _ = 1, runs do
    local r = run(a)
    ta[#ta + 1], ra = r.duration, math.max(ra, r.max_rss_kb)
    r = run(b)
    tb[#tb + 1], rb = r.duration, math.max(rb, r.max_rss_kb)
  end
  return median(ta), ra, median(tb), rb
end

-- Runs a program that prints its own elapsed seconds; median of those.
local function time_inner(argv, runs, warmup)
  for _ = 1, warmup or 0 do run(argv) end
  local ts, rss = {}, 0
  for _ = 1, runs do
    local r = run(argv)
    ts[#ts + 1] = assert(tonumber(r.stdout:match("([%d.e-]+)%s*$")), "no time printed by " .. argv[1])
    rss = math.max(rss, r.max_rss_kb)
  end
  return median(ts), rss
end

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

local rows = {}
local growth
local function row(name, unit, h, h_rss, base_name, b, b_rss, goal, better)
  local ratio
  if h and b and h > 0 and b > 0 then ratio = better == "lower" and b / h or h / b end
  rows[#rows + 1] = { benchmark = name, unit = unit, hplua = h, hplua_rss_kb = h_rss, baseline = base_name,
    baseline_value = b, baseline_rss_kb = b_rss, speedup = ratio, goal = goal }
  io.stderr:write(string.format("  %s vs %s done\n", name, base_name))
end

io.stderr:write("benchmarks" .. (S and " (smoke sizes)" or "") .. " in " .. tmp .. "\n")

-- 1. start-up
if want(1) then
  local h, hr = time_cmd({ HPLUA, "--version" }, size.startup_runs)
  local l, lr = time_cmd({ "lua5.4", "-e", "" }, size.startup_runs)
  local p, pr = time_cmd({ PY, "-c", "import pytest" }, size.startup_runs)
  row("start-up", "s", h, hr, "lua5.4 -e ''", l, lr, "<= 2x lua5.4", "lower")
  row("start-up", "s", h, hr, "python3 -c 'import pytest'", p, pr, "", "lower")
end

-- 2. trivial tests and a dependency chain, vs pytest (the suites are written whatever
-- the sections: 10 and 11 run the flat one too)
do
  local n = size.tests
  local lua, py, luac, pyc = {}, {}, {}, {}
  lua[1] = 'local hp = require "hplua"'
  luac[1] = lua[1]
  py[1] = "import pytest"
  pyc[1] = py[1]
  for i = 1, n do
    lua[#lua + 1] = string.format('hp.test("t%d", function() end)', i)
    luac[#luac + 1] = i == 1 and 'hp.test("t1", function() end)'
      or string.format('hp.test("t%d", { depends = "t%d" }, function() end)', i, i - 1)
    py[#py + 1] = string.format("def test_%d():\n    pass", i)
    pyc[#pyc + 1] = (i == 1 and "@pytest.mark.dependency()\n"
      or string.format('@pytest.mark.dependency(depends=["test_%d"])\n', i - 1)) .. string.format("def test_%d():\n    pass", i)
  end
  for _, d in ipairs { "flat", "chain" } do assert(os.execute("mkdir -p " .. tmp .. "/" .. d)) end
  write(tmp .. "/flat/trivial.lua", table.concat(lua, "\n") .. "\n")
  write(tmp .. "/flat/test_trivial.py", table.concat(py, "\n") .. "\n")
  write(tmp .. "/chain/chain.lua", table.concat(luac, "\n") .. "\n")
  write(tmp .. "/chain/test_chain.py", table.concat(pyc, "\n") .. "\n")
end
if want(2) then
  local n = size.tests
  for _, case in ipairs { { "flat", "trivial", "trivial tests" }, { "chain", "chain", "tests in a dependency chain" } } do
    local dir = tmp .. "/" .. case[1]
    local h, hr = time_cmd({ HPLUA, "-q", dir .. "/" .. case[2] .. ".lua" }, size.test_runs)
    local p, pr = time_cmd({ PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", dir .. "/test_" .. case[2] .. ".py" },
      size.pytest_runs, { cwd = dir })
    row(string.format("%d %s", n, case[3]), "s", h, hr, "pytest", p, pr,
      case[1] == "flat" and ">= 30x faster, RSS <= 10 MB" or "", "lower")
  end
end

-- 3. start and collect short children
if want(3) then
  local n = size.children
  write(tmp .. "/spawn.lua", string.format([[
local hp = require "hplua"
local t0 = hp.clock()
for i = 1, %d do hp.process.start("c" .. i, { "true" }):wait() end
print(hp.clock() - t0)
]], n))
  write(tmp .. "/spawn.py", string.format([[
import subprocess, time
t0 = time.monotonic()
for i in range(%d):
    p = subprocess.Popen(["true"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.communicate()
print(time.monotonic() - t0)
]], n))
  local h, hr = time_inner({ HPLUA, "--exec", tmp .. "/spawn.lua" }, size.spawn_runs)
  local c, cr = time_inner({ BIN .. "/spawn", tostring(n), "true" }, size.spawn_runs)
  local p, pr = time_inner({ PY, tmp .. "/spawn.py" }, size.spawn_runs)
  row(n .. " children started and collected", "s", h, hr, "C posix_spawn+waitpid", c, cr, "<= 1.25x C", "lower")
  row(n .. " children started and collected", "s", h, hr, "Python Popen+communicate", p, pr, "", "lower")
end

-- 4. exit-detection latency
if want(4) then
  write(tmp .. "/latency.lua", string.format([[
local hp = require "hplua"
local lat = {}
for i = 1, %d do
  local r = hp.process.start("e" .. i, { %q, tostring((i * 37) %% 50) }):wait()
  lat[#lat + 1] = hp.clock() - tonumber(r.stdout)
end
table.sort(lat)
print(lat[(#lat + 1) // 2], lat[math.ceil(#lat * 0.99)])
]], size.latency, BIN .. "/exiter"))
  write(tmp .. "/latency.py", string.format([[
import subprocess, time
lat = []
for i in range(%d):
    p = subprocess.Popen([%q, str((i * 37) %% 50)], stdout=subprocess.PIPE)
    while p.poll() is None:
        time.sleep(0.2)
    lat.append(time.monotonic() - float(p.stdout.read()))
lat.sort()
print(lat[(len(lat) - 1) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99 + 0.999) - 1)])
]], size.poll_latency, BIN .. "/exiter"))
  local h = run({ HPLUA, "--exec", tmp .. "/latency.lua" })
  local p = run({ PY, tmp .. "/latency.py" })
  local hm, h99 = h.stdout:match("(%S+)%s+(%S+)")
  local pm, p99 = p.stdout:match("(%S+)%s+(%S+)")
  row("exit latency, median", "ms", tonumber(hm) * 1000, h.max_rss_kb, "0.2 s polling loop", tonumber(pm) * 1000, p.max_rss_kb, "< 1 ms", "lower")
  row("exit latency, p99", "ms", tonumber(h99) * 1000, h.max_rss_kb, "0.2 s polling loop", tonumber(p99) * 1000, p.max_rss_kb, "< 5 ms", "lower")
  local c = run({ BIN .. "/latency", BIN .. "/exiter", "0", tostring(size.latency) })
  local cm, c99 = c.stdout:match("(%S+)%s+(%S+)")
  row("exit latency, median", "ms", tonumber(hm) * 1000, h.max_rss_kb, "C read+waitpid", tonumber(cm) * 1000, c.max_rss_kb, "", "lower")
  row("exit latency, p99", "ms", tonumber(h99) * 1000, h.max_rss_kb, "C read+waitpid", tonumber(c99) * 1000, c.max_rss_kb, "", "lower")
end

-- 10. outputs: the event stream and the streamed reports (issue 12)
if want(10) then
  local flat = tmp .. "/flat/trivial.lua"
  local ev = tmp .. "/events.ndjson"
  local plain, _, with_events = time_pair({ HPLUA, "-q", flat }, { HPLUA, "-q", "--events", ev, flat }, size.test_runs)
  row(string.format("%d trivial tests --events", size.tests), "s", with_events, nil, "the same without --events",
    plain, nil, "<= 1.10x", "lower")

  local lua = { 'local hp = require "hplua"' }
  for i = 1, size.big_suite do lua[#lua + 1] = string.format('hp.test("t%d", function() end)', i) end
  write(tmp .. "/big.lua", table.concat(lua, "\n") .. "\n")
  local bare, bare_rss, rep, rep_rss = time_pair({ HPLUA, "-q", tmp .. "/big.lua" },
    { HPLUA, "-q", "--json", tmp .. "/big.json", "--junit", tmp .. "/big.xml", tmp .. "/big.lua" }, size.big_runs)
  row(string.format("%d tests --json --junit", size.big_suite), "s", rep, rep_rss, "the same without reports",
    bare, bare_rss, "<= 1.3x time and RSS", "lower")

  -- keyed messages: O(1) each (40,000 distinct keys; then x10 messages over 1,000 keys)
  local function keyed(n, keys)
    write(tmp .. "/keyed.lua", string.format([[
local hp = require "hplua"
hp.test("keyed", function()
  local t0 = hp.clock()
  for i = 1, %d do hp.set_message("value " .. i, "k" .. (i %% %d)) end
  print(hp.clock() - t0)
end)
]], n, keys))
    local r = run({ HPLUA, "-q", tmp .. "/keyed.lua" })
    return assert(tonumber(r.stdout:match("^([%d.e-]+)\n")), "no time printed: " .. r.stdout)
  end
  local distinct = keyed(size.keyed, size.keyed)
  row(string.format("%d distinct message keys", size.keyed), "s", distinct, nil, "goal", S and 0.5 or 0.5, nil,
    "< 0.5 s", "lower")
  local small, large = keyed(size.keyed_small, 1000), keyed(size.keyed_large, 1000)
  row(string.format("keyed messages x10 (%d -> %d)", size.keyed_small, size.keyed_large), "x", large / small, nil,
    "linear", 10, nil, "<= ~10x", "lower")
end

-- 11. the run history (issue 13): recording cost, and queries over a large history
if want(11) then
  local flat = tmp .. "/flat/trivial.lua"
  local db = tmp .. "/history.db"
  local plain = time_cmd({ HPLUA, "-q", "--no-history", flat }, size.test_runs)
  local with = time_cmd({ HPLUA, "-q", "--history", db, flat }, size.test_runs)
  row(string.format("%d trivial tests, history on", size.tests), "s", with, nil, "the same, --no-history", plain, nil,
    "<= 1.15x", "lower")
  -- the floor: the SQLite writes alone, in C (bench/histfloor.c), with this run's own
  -- JSON report; the end (the report committed, synced) cannot overlap the run, and
  -- 15% of the run is the whole budget
  local rep = tmp .. "/floor-report.json"
  run({ HPLUA, "-q", "--no-history", "--json", rep, flat })
  local ends = {}
  for i = 1, size.test_runs do
    local fdb = tmp .. "/floor" .. i .. ".db"
    local r = run({ BIN .. "/histfloor", fdb, rep, tostring(size.tests) })
    ends[#ends + 1] = assert(tonumber(r.stdout:match("^(%S+)")), "histfloor: " .. r.stdout .. r.stderr)
    for _, suffix in ipairs { "", "-wal", "-shm" } do os.remove(fdb .. suffix) end
  end
  row("history floor: SQLite end commit, C", "s", median(ends), nil, "15% of the run, --no-history",
    0.15 * plain, nil, "floor <= budget", "lower")
  -- a history of many runs: 5 tests each, 1 in 20 failing, serials seen 1-3 times
  local big = tmp .. "/big-history.db"
  local history = require "hplua.history"
  local sqlite = require "hplua.sqlite"
  assert(history.open_for_run(big)):close()
  local hdb = assert(sqlite.open(big))
  assert(hdb:exec("BEGIN"))
  local ins_run = assert(hdb:prepare([[INSERT INTO runs (run_id, started_at, started_ts, ended_at, status, exit_code,
    serial, retest, total, passed, failed, skipped, stopped, duration, report) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 5, ?, ?, 0, 0, 1.5, ?)]]))
  local ins_test = assert(hdb:prepare("INSERT INTO tests (run_id, seq, test_id, attempt, status, duration) VALUES (?, ?, ?, 1, ?, 0.3)"))
  local t0 = 1700000000
  for i = 1, size.history_runs do
    local id = string.format("%08x-0000-4000-8000-%012x", i, i)
    local fails = i % 20 == 0
    local serial = "SN" .. (i // 2)
    local ts = t0 + i * 60
    local iso = os.date("!%Y-%m-%dT%H:%M:%S.000+00:00", ts)
    assert(ins_run:exec(id, iso, ts, iso, fails and "failed" or "passed", fails and 1 or 0, serial, i % 2 == 1 and 1 or 0,
      fails and 4 or 5, fails and 1 or 0, '{"status":"' .. (fails and "failed" or "passed") .. '"}'))
    for k = 1, 5 do
      assert(ins_test:exec(id, k, "power/0" .. k .. "_rail::check " .. k, fails and k == (i // 20) % 5 + 1 and "failed" or "passed"))
    end
  end
  assert(hdb:exec("COMMIT"))
  hdb:close()
  local serial = "SN" .. (size.history_runs // 3)
  local list = time_cmd({ HPLUA, "history", "--history", big, "list", "--serial", serial }, size.history_query_runs)
  local list_sql = time_cmd({ "sqlite3", big, "SELECT run_id, started_at, status FROM runs WHERE serial = '" .. serial ..
    "' ORDER BY started_ts DESC LIMIT 20" }, size.history_query_runs)
  row(string.format("history list --serial, %d runs", size.history_runs), "ms", list * 1000, nil, "sqlite3 shell, same query",
    list_sql * 1000, nil, "< 50 ms", "lower")
  local stats = time_cmd({ HPLUA, "history", "--history", big, "stats" }, size.history_query_runs)
  local stats_sql = time_cmd({ "sqlite3", big, "SELECT status, count(*) FROM runs GROUP BY status" }, size.history_query_runs)
  row(string.format("history stats, %d runs", size.history_runs), "ms", stats * 1000, nil, "sqlite3 shell, count by status",
    stats_sql * 1000, nil, "< 1000 ms", "lower")
end

-- 5. capture throughput
if want(5) then
  local function case(bytes, both, label)
    local cmd = both and string.format("head -c %d /dev/zero & head -c %d /dev/zero >&2; wait", bytes, bytes)
      or string.format("head -c %d /dev/zero", bytes)
    local total = both and 2 * bytes or bytes
    write(tmp .. "/capture.lua", string.format([[
local hp = require "hplua"
local t0 = hp.clock()
local r = hp.process.start("cap", %q):wait()
assert(#r.stdout + #r.stderr == %d)
print(hp.clock() - t0)
]], cmd, total))
    write(tmp .. "/capture.py", string.format([[
import subprocess, time
t0 = time.monotonic()
out, err = subprocess.Popen(%q, shell=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE).communicate()
assert len(out) + len(err) == %d
print(time.monotonic() - t0)
]], cmd, total))
    -- one warm-up run each: on a VM the first touch of fresh memory is much slower
    local h, hr = time_inner({ HPLUA, "--exec", tmp .. "/capture.lua" }, size.capture_runs, 1)
    local p, pr = time_inner({ PY, tmp .. "/capture.py" }, size.capture_runs, 1)
    local gb = total / 1e9
    row(label, "GB/s", gb / h, hr, "Python communicate", gb / p, pr, both and "" or ">= 1 GB/s", "higher")
  end
  case(size.capture, false, string.format("capture %d MiB stdout", size.capture >> 20))
  case(size.capture_both, true, string.format("capture %d MiB stdout + stderr", size.capture_both >> 20))
end

-- 12. request/response round trips with a device (tests/c/streamdev.c) over a pty
-- and over TCP: hp.serial/hp.tcp against the same exchanges in a raw C loop
if want(12) then
  local n = size.round_trips
  write(tmp .. "/rt.lua", string.format([[
local hp = require "hplua"
local kind, where = arg[1], arg[2]
local s = kind == "pty" and assert(hp.serial.open(where, { baud = 115200, timeout = 5 }))
  or assert(hp.tcp.connect("127.0.0.1", tonumber(where), { timeout = 5 }))
local t0 = hp.clock()
for _ = 1, %d do
  assert(s:write("ECHO x\n"))
  assert(s:read_line() == "x")
end
print(hp.clock() - t0)
s:close()
]], n))
  local function device(args)
    local ready
    local p = hp.process.start("streamdev-" .. args[1], { BIN .. "/streamdev", table.unpack(args) },
      { on_line = function(l) ready = ready or l:match("^READY (.*)$") end })
    local deadline = hp.clock() + 10
    while not ready do
      assert(p:alive() and hp.clock() < deadline, "streamdev did not start")
      hp.sleep(0.01)
    end
    return p, ready
  end
  for _, kind in ipairs { "pty", "tcp" } do
    local p, where = device(kind == "pty" and { "--pty", tmp .. "/tty" } or { "--tcp" })
    -- interleaved runs: both sides see the same load on a shared machine
    local hs, cs, hr, cr = {}, {}, 0, 0
    for i = 0, size.rt_runs do -- run 0 warms up
      local h = run({ HPLUA, "--exec", tmp .. "/rt.lua", kind, where })
      local c = run({ BIN .. "/streamrt", kind, where, tostring(n) })
      if i > 0 then
        hs[#hs + 1], cs[#cs + 1] = tonumber(h.stdout), tonumber(c.stdout)
        hr, cr = math.max(hr, h.max_rss_kb), math.max(cr, c.max_rss_kb)
      end
    end
    local h, c = median(hs), median(cs)
    row(string.format("%d round trips, %s", n, kind == "pty" and "hp.serial (pty)" or "hp.tcp"), "s", h, hr,
      "C write/poll/read loop", c, cr, "<= 1.5x C", "lower")
    p:terminate(1)
  end
end

-- 13. guard cost: a CPU-bound Lua loop (arithmetic and table work) as a test with a
-- timeout and as a script, against lua5.4 running the same code (CPU seconds).
if want(13) then
  local body = string.format([[
local t0 = os.clock()
local t, s = {}, 0
for i = 1, %d do
  s = s + (i * 7) %% 13
  t[i %% 1000 + 1] = { i, s }
  if i %% 3 == 0 then s = s - #t end
end
io.stderr:write("CPU ", os.clock() - t0, "\n")
]], size.cpu_loop)
  write(tmp .. "/cpu.lua", body)
  os.execute("mkdir -p " .. tmp .. "/cpu_test")
  write(tmp .. "/cpu_test/cpu.lua", 'local hp = require "hplua"\nhp.test("loop", { timeout = 600 }, function()\n' .. body .. "end)\n")
  -- the three commands take turns, so a change in the machine's load hits them alike
  local cmds = { { "lua5.4", tmp .. "/cpu.lua" }, { HPLUA, "-q", tmp .. "/cpu_test" }, { HPLUA, "--exec", tmp .. "/cpu.lua" } }
  local ts, rss = { {}, {}, {} }, { 0, 0, 0 }
  for i = 0, size.cpu_runs do
    for k, argv in ipairs(cmds) do
      local r = run(argv)
      local v = assert(tonumber(r.stderr:match("CPU ([%d.e-]+)")), "no CPU time printed by " .. argv[1])
      if i > 0 then ts[k][#ts[k] + 1] = v end -- round 0 warms up
      rss[k] = math.max(rss[k], r.max_rss_kb)
    end
  end
  local l = median(ts[1])
  row("CPU-bound Lua loop in a test (timeout)", "s", median(ts[2]), rss[2], "lua5.4 same loop", l, rss[1], "<= 1.05x lua5.4", "lower")
  row("CPU-bound Lua loop, --exec script", "s", median(ts[3]), rss[3], "lua5.4 same loop", l, rss[1], "<= 1.05x lua5.4", "lower")
end

-- 6. the loop's cost with many live children: N children alive at once, then all
-- terminated and collected; 8x the children should cost at most 9x the time
if want(6) then
  local ts = {}
  for _, n in ipairs(size.live) do
    write(tmp .. "/live.lua", string.format([[
local hp = require "hplua"
local t0 = hp.clock()
for i = 1, %d do hp.process.start("c" .. i, { %q, "600000" }) end
hp.process.terminate_all(5)
print(hp.clock() - t0)
]], n, BIN .. "/exiter"))
    local h, hr = time_inner({ HPLUA, "--exec", tmp .. "/live.lua" }, 1)
    ts[#ts + 1] = { n = n, t = h, rss = hr }
  end
  local a, b = ts[1], ts[2]
  row(string.format("%d live children, started and ended", b.n), "s", b.t, b.rss,
    string.format("%d live children x %d", a.n, b.n // a.n), a.t * (b.n / a.n), a.rss, "growth <= 9x for 8x", "lower")
  growth = growth or {}
  growth[#growth + 1] = string.format("live children %d -> %d: time x%.2f (work x%d)", a.n, b.n, b.t / a.t, b.n // a.n)
end

-- 7. many children started at once and collected, vs bare C
if want(7) then
  local n = size.all
  write(tmp .. "/all.lua", string.format([[
local hp = require "hplua"
local t0 = hp.clock()
for i = 1, %d do hp.process.start("c" .. i, { "true" }) end
hp.process.wait()
print(hp.clock() - t0)
]], n))
  local h, hr = time_inner({ HPLUA, "--exec", tmp .. "/all.lua" }, 1)
  local c, cr = time_inner({ BIN .. "/spawn", "--all", tostring(n), "true" }, 1)
  row(n .. " children at once, collected", "s", h, hr, "C posix_spawn+waitpid(-1)", c, cr, "<= 1.2x C", "lower")
end

-- 8. exit-detection latency with many other children alive
if want(8) then
  write(tmp .. "/busy.lua", string.format([[
local hp = require "hplua"
for i = 1, %d do hp.process.start("idle" .. i, { %q, "600000" }) end
local lat = {}
for i = 1, %d do
  local r = hp.process.start("e" .. i, { %q, tostring((i * 37) %% 50) }):wait()
  lat[#lat + 1] = hp.clock() - tonumber(r.stdout)
end
hp.process.terminate_all(5)
table.sort(lat)
print(lat[(#lat + 1) // 2], lat[math.ceil(#lat * 0.99)])
]], size.busy, BIN .. "/exiter", size.busy_latency, BIN .. "/exiter"))
  local h = run({ HPLUA, "--exec", tmp .. "/busy.lua" })
  local hm, h99 = h.stdout:match("(%S+)%s+(%S+)")
  -- the floor on this machine now: bare C, the same children, blocking read + waitpid
  local c = run({ BIN .. "/latency", BIN .. "/exiter", tostring(size.busy), tostring(size.busy_latency) })
  local cm, c99 = c.stdout:match("(%S+)%s+(%S+)")
  local base = string.format("C read+waitpid, %d alive", size.busy)
  row(string.format("exit latency, %d alive, median", size.busy), "ms", tonumber(hm) * 1000, h.max_rss_kb, base,
    tonumber(cm) * 1000, c.max_rss_kb, "< 1 ms", "lower")
  row(string.format("exit latency, %d alive, p99", size.busy), "ms", tonumber(h99) * 1000, h.max_rss_kb, base,
    tonumber(c99) * 1000, c.max_rss_kb, "< 2 ms", "lower")
end

-- 9. capture vs a plain pipe between two dd, measured in the same run
if want(9) then
  local bytes = size.capture
  local mib = bytes >> 20
  write(tmp .. "/capture.lua", string.format([[
local hp = require "hplua"
local t0 = hp.clock()
local r = hp.process.start("cap", { "dd", "if=/dev/zero", "bs=1M", "count=%d" }):wait()
assert(#r.stdout == %d)
print(hp.clock() - t0)
]], mib, bytes))
  local cmds = {
    { HPLUA, "--exec", tmp .. "/capture.lua" },
    { "sh", "-c", string.format("t0=$(date +%%s.%%N); dd if=/dev/zero bs=1M count=%d 2>/dev/null | dd of=/dev/null bs=1M 2>/dev/null; t1=$(date +%%s.%%N); echo \"$t1 - $t0\" | bc -l", mib) },
    { BIN .. "/capture", tostring(mib), "--best" },
  }
  -- the commands take turns, so a change in the machine's load hits them alike; round 0
  -- warms up (on a VM the first touch of fresh memory is much slower). Whatever runs
  -- right after a run that freed 256 MiB of small pages (the plain C one) was seen to
  -- take up to 10x longer on this VM: that one runs last, alone.
  local ts, rss = { {}, {}, {} }, { 0, 0, 0 }
  for i = 0, size.capture_runs do
    for k, argv in ipairs(cmds) do
      local r = run(argv)
      if i > 0 then
        ts[k][#ts[k] + 1] = assert(tonumber(r.stdout:match("([%d.e-]+)%s*$")), "no time printed by " .. argv[1])
        rss[k] = math.max(rss[k], r.max_rss_kb)
      end
    end
  end
  local plain, plain_rss = time_inner({ BIN .. "/capture", tostring(mib) }, 1)
  local h, dd, best = median(ts[1]), median(ts[2]), median(ts[3])
  local gb = bytes / 1e9
  local name = string.format("capture %d MiB (dd)", mib)
  -- dd | dd reuses one small buffer; a capture must touch fresh memory for every byte
  row(name, "GB/s", gb / h, rss[1], "dd | dd", gb / dd, rss[2], ">= 0.8x dd|dd", "higher")
  row(name, "GB/s", gb / h, rss[1], "C, final size known, huge pages", gb / best, rss[3], "", "higher")
  row(name, "GB/s", gb / h, rss[1], "C read into one buffer", gb / plain, plain_rss, "", "higher")
  growth = growth or {}
  growth[#growth + 1] = string.format("capture %d MiB: peak RSS %.1f MiB = %.2fx the captured size (goal <= 1.15x)",
    mib, rss[1] / 1024, rss[1] * 1024 / bytes)
end

-- 14. hp.measure with limits: linear in the number of calls, and what each costs
-- beyond building its table (the same loop handing the table to an empty function)
if want(14) then
  local function per_call(n, real)
    write(tmp .. "/measure.lua", string.format([[
local hp = require "hplua"
local sink = function(t) return t end
hp.test("measure", function()
  local f = %s
  local t0 = hp.clock()
  for i = 1, %d do f { name = "v" .. (i %% 100), value = 3.3, unit = "V", min = 3.2, max = 3.4, marginal_max = 3.39 } end
  print(hp.clock() - t0)
end)
]], real and "hp.measure" or "sink", n))
    local r = run({ HPLUA, "-q", tmp .. "/measure.lua" })
    return assert(tonumber(r.stdout:match("^([%d.e-]+)\n")), "no time printed: " .. r.stdout) / n
  end
  local a, b = size.measures[1], size.measures[2]
  local base_a, real_a, real_b = per_call(a, false), per_call(a, true), per_call(b, true)
  row(string.format("hp.measure, %d calls (per call)", a), "us", real_a * 1e6, nil, "the loop without hp.measure",
    base_a * 1e6, nil, "<= 2 us more", "lower")
  row(string.format("hp.measure x10 calls (%d -> %d), per call", a, b), "x", real_b / real_a, nil, "linear", 1, nil,
    "~1x per call", "lower")
end

-- 15. the factory upload (API 9) against a throw-away local PostgreSQL: runs of 50 tests
-- and 100 measurements sent by `hplua history upload` (batched INSERT + COPY) beside a
-- plain uploader making one INSERT per row; and a run with the server down vs no upload.
if want(15) then
  local src = debug.getinfo(1, "S").source:match("^@(.*)/bench/[^/]*$") or "."
  package.path = src .. "/tests/factory/?.lua;" .. package.path
  local pg = require "_pg"
  if not pg.bindir() then
    io.stderr:write("  factory upload: skipped (no PostgreSQL server binaries)\n")
  else
    local server = pg.start()
    local ok, err = pcall(function()
      local env = { PGPASSWORD = pg.PASSWORD, HPLUA_UPLOAD = false }
      local runs = S and 20 or 2000
      local hist = tmp .. "/upload.db"
      run({ HPLUA, "--exec", src .. "/tests/factory/_gen.lua", hist, tostring(runs), "50", "100", "bench" })
      local url = server:url("postgres", server:createdb("bench"))
      local t0 = hp.clock()
      local r = run({ HPLUA, "history", "upload", "--history", hist, "--upload", url }, { env = env })
      local t = hp.clock() - t0
      assert(r.stdout == string.format("uploaded %d, pending 0\n", runs), r.stdout .. r.stderr)
      -- the baseline: the same rows, one INSERT each, one transaction per run
      local base_runs = S and 5 or 100
      local hist2 = tmp .. "/upload2.db"
      run({ HPLUA, "--exec", src .. "/tests/factory/_gen.lua", hist2, tostring(base_runs), "50", "100", "base" })
      write(tmp .. "/rowwise.lua", [[
local pq, sqlite = require "hplua.pq", require "hplua.sqlite"
local conn = assert(pq.connect(arg[2]))
local db = assert(sqlite.open(arg[1], "r"))
for run in db:prepare("SELECT * FROM runs"):rows() do
  assert(conn:exec("BEGIN"))
  assert(conn:exec("INSERT INTO hplua_runs (run_id, station, status, serial, started_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    run.run_id, "base", run.status, run.serial, run.started_at))
  for t in db:prepare("SELECT * FROM tests WHERE run_id = ?"):rows(run.run_id) do
    assert(conn:exec("INSERT INTO hplua_tests (run_id, seq, test_id, status, duration) VALUES ($1, $2, $3, $4, $5)",
      t.run_id, t.seq, t.test_id, t.status, t.duration))
  end
  for m in db:prepare("SELECT * FROM measurements WHERE run_id = ?"):rows(run.run_id) do
    assert(conn:exec("INSERT INTO hplua_measurements (run_id, seq, test_id, name, value, unit, status, min, max) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
      m.run_id, m.seq, m.test_id, m.name, m.value, m.unit, m.status, m.min, m.max))
  end
  assert(conn:exec("COMMIT"))
end
]])
      t0 = hp.clock()
      run({ HPLUA, "--exec", tmp .. "/rowwise.lua", hist2, url }, { env = env })
      local tb = hp.clock() - t0
      row("upload, runs of 50 tests + 100 meas.", "runs/s", runs / t, nil, "one INSERT per row", base_runs / tb, nil,
        ">= 500 runs/s", "higher")
      -- a run with the server down (refused at once) vs no upload at all
      local lines = { 'local hp = require "hplua"' }
      for i = 1, 50 do lines[#lines + 1] = string.format("hp.test(%q, function() hp.measure { name = 'v', value = 1, max = 2 } end)", "t" .. i) end
      write(tmp .. "/updown.lua", table.concat(lines, "\n") .. "\n")
      server:stop("fast")
      local n = S and 3 or 15
      local hd = tmp .. "/down.db"
      -- the rate a station keeps: after the first failed attempt has set the retry back-off
      -- (that first run also creates the outbox's tables and starts the uploader once)
      local down_argv = { HPLUA, "-q", "--history", hd, "--upload", url, tmp .. "/updown.lua" }
      local none_argv = { HPLUA, "-q", "--history", tmp .. "/none.db", tmp .. "/updown.lua" }
      for _ = 1, 3 do run(down_argv, { env = env }); run(none_argv, { env = env }) end
      hp.sleep(1) -- the uploader started by the first run has given up
      local down = time_cmd(down_argv, n, { env = env })
      local none = time_cmd(none_argv, n, { env = env })
      row("run of 50 tests, upload server down", "s", down, nil, "no upload configured", none, nil, "same rate", "lower")
    end)
    server:destroy()
    if not ok then error(err, 0) end
  end
end

-- 16. slots: N DUTs of a suite that mostly waits (an instrument's settling time, a
-- child process), 8 slots against 1 (wall), and the supervisor's own CPU against the
-- slots' (`hplua --slots N` as a user runs it, timed from outside by bench/rss.c)
if want(16) then
  local n_slots, tests, wait = S and 2 or 8, S and 2 or 5, S and 0.05 or 0.2
  local dir = tmp .. "/slots"
  assert(os.execute("mkdir -p " .. dir))
  write(dir .. "/1_wait.lua", string.format([[
local hp = require "hplua"
for i = 1, %d do
  hp.test("step " .. i, function()
    hp.sleep(%g) -- the instrument settles
    local r = hp.process.start("dut", { "sleep", "%g" }):wait()
    hp.expect(r.exit_code).to_equal(0)
    hp.lock("dmm", function() hp.measure { name = "v", value = 3.3, min = 3, max = 4 } end)
  end)
end
]], tests, wait, wait))
  -- the command itself; run's bench/rss reads its own CPU before reaping it, and that
  -- with its slots (wait4's rusage)
  local function once(k)
    local r = run({ HPLUA, "--no-history", "-q", "--slots", tostring(k), dir })
    return r.duration, assert(r.self_cpu, "no CPU time read"), r.children_cpu, r.max_rss_kb
  end
  local one, _, _, one_rss = once(1)
  local many, own, kids, many_rss = once(n_slots)
  row(string.format("%d slots of a waiting suite (wall)", n_slots), "s", many, many_rss, "1 slot", one, one_rss,
    "<= 1.15x of 1 slot", "lower")
  row(string.format("supervisor CPU share, %d slots", n_slots), "%", kids > 0 and 100 * own / kids or 0, nil,
    "the slots' own CPU", 100, nil, "<= 5%", "lower")
end

-- the table
local function fmt(v, unit)
  if v == nil then return "-" end
  if unit == "s" then return string.format("%.4f s", v) end
  if unit == "ms" then return string.format("%.3f ms", v) end
  return string.format("%.2f %s", v, unit)
end
local lines = { string.format("%-40s %14s %9s  %-28s %14s %9s %9s  %s", "benchmark", "hplua", "RSS MB", "baseline",
  "baseline", "RSS MB", "hplua is", "goal") }
for _, r in ipairs(rows) do
  local better
  if r.speedup then better = r.speedup >= 1 and string.format("%.2fx", r.speedup) or string.format("1/%.2fx", 1 / r.speedup) end
  lines[#lines + 1] = string.format("%-40s %14s %9.1f  %-28s %14s %9.1f %9s  %s", r.benchmark, fmt(r.hplua, r.unit),
    (r.hplua_rss_kb or 0) / 1024, r.baseline, fmt(r.baseline_value, r.unit), (r.baseline_rss_kb or 0) / 1024,
    better or "-", r.goal or "")
end
print(table.concat(lines, "\n"))
print("('hplua is' = how many times faster hplua is than the baseline; medians; RSS = peak of the measured process)")
for _, g in ipairs(growth or {}) do print(g) end
if opts.out then
  local ok, err = json.write_atomic(opts.out, json.encode({ smoke = S, sizes = size, rows = rows, hplua = hp.version,
    date = hp.now() }, true) .. "\n")
  assert(ok, err)
  print("results: " .. opts.out)
end
os.execute("rm -rf " .. tmp)
