-- The run's event stream (--events, API 6): every event type valid against
-- tests/events.schema.json, readable live while the run goes on, through an
-- inherited descriptor too, and in agreement with the exit status and the report.
local hp = require "hplua"
local json = require "hplua.json"
local run = require "_run"

local tests_dir = run.fixtures .. "/.."
local schema = tests_dir .. "/events.schema.json"
local checker = tests_dir .. "/tools/check_events.py"
local n = 0

local function check(path, ...)
  n = n + 1
  local r = hp.process.start("check-events-" .. n, { "/usr/bin/python3", checker, path, schema, ... }):wait(60)
  if r.exit_code ~= 0 then error("events check failed: " .. r.stdout .. r.stderr, 2) end
  return r.stdout
end

-- Does the events file at path hold now (a reader tailing it) every event given as
-- test id and type pairs: has(path, "m::t", "test_started", ...)?
local function has(path, ...)
  local text = run.read(path) or ""
  local want = { ... }
  for i = 1, #want, 2 do
    if not text:find('"test":"' .. want[i]:gsub("%p", "%%%0") .. '","time":"[^"]*","type":"' .. want[i + 1] .. '"') then
      return false
    end
  end
  return true
end

local function read_events(path)
  local list = {}
  for line in io.lines(path) do list[#list + 1] = assert(json.decode(line)) end
  return list
end

hp.test("every event type is valid against the schema", function()
  local events = os.tmpname()
  local res, rep = run.run({ "--events", events, "--answers", "events/answers.json", "events" })
  hp.expect(res.exit_code).to_equal(1)
  check(events, "run_started", "info", "test_started", "message", "measurement", "process_started", "process_ended",
    "dialog_requested", "dialog_answered", "test_finished", "run_error", "run_finished")
  local list = read_events(events)
  local last = list[#list]
  hp.expect(last.exit_code).to_equal(1)
  hp.expect(last.status).to_equal(rep.status)
  hp.expect(last.run_id).to_equal(rep.run_id)
  hp.expect(last.summary).to_equal(rep.summary)
  -- keyed messages: both updates are events; the report keeps the latest
  local status_msgs = 0
  for _, ev in ipairs(list) do
    if ev.type == "message" and ev.key == "status" then status_msgs = status_msgs + 1 end
  end
  hp.expect(status_msgs).to_equal(2)
  local t = run.test_by_id(rep, "1_all::records")
  hp.expect(#t.messages).to_be_greater_than(0)
  hp.expect(t.messages[1].text).to_equal("status: ready")
  local answered = {}
  for _, ev in ipairs(list) do
    if ev.type == "dialog_answered" then answered[ev.id] = ev.value end
  end
  hp.expect(answered).to_equal { led = true, pick = { "a", "c" } }
  os.remove(events)

  events = os.tmpname()
  res = run.run({ "--events", events, "collect_errors" })
  hp.expect(res.exit_code).to_equal(2)
  check(events, "run_started", "collection_error", "run_finished")
  os.remove(events)
end)

hp.test("a reader tailing the file sees each event while the run goes on", function()
  local events, marker = os.tmpname(), os.tmpname()
  os.remove(marker)
  local p = run.start({ "--events", events, "events_live" }, { env = { EVENTS_MARKER = marker } })
  run.wait_for(function() return has(events, "1_live::waits for the reader", "test_started") end, 20,
    "test_started in the events file while the run is live")
  hp.expect(p:alive()).to_be(true)
  io.open(marker, "w"):close()
  hp.expect(p:wait(20).exit_code).to_equal(0)
  check(events, "run_started", "test_started", "test_finished", "run_finished")
  os.remove(events)
  os.remove(marker)
end)

hp.test("a test that computes without waiting: the events before it still reach the reader", function()
  -- a quick test, then one that spins (no wait, no sleep) until the reader has seen both
  -- events: what the run holds back between tests is written before test code runs
  local dir = run.tmpdir()
  local events, marker = dir .. "/events.ndjson", dir .. "/seen"
  local f = assert(io.open(dir .. "/spin.lua", "w"))
  f:write(string.format([[
local hp = require "hplua"
hp.test("quick", function() end)
hp.test("spins", function()
  local t0 = os.clock()
  while os.clock() - t0 < 30 do
    local m = io.open(%q)
    if m then m:close() return end
    for _ = 1, 100000 do end
  end
  error("the reader never saw the events")
end)
]], marker))
  f:close()
  local p = run.start({ "--events", events, dir .. "/spin.lua" })
  local t0 = hp.clock()
  run.wait_for(function() return has(events, "spin::quick", "test_finished", "spin::spins", "test_started") end, 20,
    "the quick test's end and the spinning test's start in the events file")
  hp.expect(hp.clock() - t0 < 2).to_be(true) -- loosely: they are written before the test's code
  hp.expect(p:alive()).to_be(true)
  io.open(marker, "w"):close()
  hp.expect(p:wait(20).exit_code).to_equal(0)
  os.execute("rm -rf '" .. dir .. "'")
end)

hp.test("a test blocked inside a C call: the events before it still reach the reader", function()
  -- io.open of a FIFO blocks in open(2) until a writer comes: no hook, no wait of the loop
  local dir = run.tmpdir()
  local events, fifo = dir .. "/events.ndjson", dir .. "/fifo"
  hp.expect(os.execute("mkfifo '" .. fifo .. "'")).to_be(true)
  local f = assert(io.open(dir .. "/blocked.lua", "w"))
  f:write(string.format([[
local hp = require "hplua"
hp.test("quick", function() end)
hp.test("blocked", function()
  local r = assert(io.open(%q, "r"))
  r:close()
end)
]], fifo))
  f:close()
  local p = run.start({ "--events", events, dir .. "/blocked.lua" })
  run.wait_for(function()
    return has(events, "blocked::quick", "test_finished", "blocked::blocked", "test_started")
  end, 20, "the quick test's end and the blocked test's start in the events file")
  hp.expect(p:alive()).to_be(true)
  local w = assert(io.open(fifo, "w")) -- lets the test go on
  w:close()
  hp.expect(p:wait(20).exit_code).to_equal(0)
  os.execute("rm -rf '" .. dir .. "'")
end)

-- A timeout that comes while the host records a message or a measurement (its event
-- and its place in the test's record) stops the test after that step: the events file
-- and the report agree. 30 tests record in a loop until their timeout (before, about
-- one in four ended with a message in one output and not the other).
hp.test("a test stopped while it records: the events file and the report agree", function()
  local dir = run.tmpdir()
  run.write(dir .. "/rec.lua", [[
local hp = require "hplua"
for i = 1, 30 do
  hp.test("records until its timeout " .. i, { timeout = 0.05 }, function()
    local n = 0
    while true do
      n = n + 1
      hp.set_message("m" .. n)
      hp.measure { name = "v" .. n, value = 1, min = 0, max = 2 }
    end
  end)
end
]])
  local r, rep = run.run({ "-q", "--no-history", "--events", dir .. "/e.ndjson", dir .. "/rec.lua" })
  hp.expect(r.stdout).to_match("30 failed")
  local messages, measurements = {}, {}
  for _, e in ipairs(read_events(dir .. "/e.ndjson")) do
    if e.type == "message" and e.test ~= json.null then messages[e.test] = (messages[e.test] or 0) + 1 end
    if e.type == "measurement" then measurements[e.test] = (measurements[e.test] or 0) + 1 end
  end
  local n = 0
  for _, m in ipairs(rep.modules) do
    for _, t in ipairs(m.tests) do
      n = n + 1
      hp.expect(t.error.message).to_equal("timeout after 0.05 s")
      hp.expect(messages[t.id] or 0, t.id .. " messages").to_equal(#t.messages)
      hp.expect(measurements[t.id] or 0, t.id .. " measurements").to_equal(#t.measurements)
    end
  end
  hp.expect(n).to_equal(30)
  os.execute("rm -rf '" .. dir .. "'")
end)

hp.test("--events fd:N writes to an inherited descriptor", function()
  local events = os.tmpname()
  local r = hp.process.start("fd3", { "sh", "-c", '"$0" --events fd:3 -q pass 3>"$1"', run.exe, events },
    { cwd = run.fixtures }):wait(60)
  hp.expect(r.exit_code).to_equal(0)
  check(events, "run_started", "test_finished", "run_finished")
  os.remove(events)
end)

hp.test("an events file that cannot be opened is a usage error before anything runs", function()
  local res = run.run({ "--events", "/nonexistent/dir/e.ndjson", "pass" })
  hp.expect(res.exit_code).to_equal(4)
  hp.expect(res.stderr).to_match("%-%-events: cannot open /nonexistent/dir/e.ndjson")
  -- an inherited descriptor that is not open, or open for reading only
  local r = hp.process.start("fd9-closed", { "sh", "-c", 'exec "$0" --events fd:9 -q pass 9>&-', run.exe },
    { cwd = run.fixtures }):wait(60)
  hp.expect(r.exit_code).to_equal(4)
  hp.expect(r.stderr).to_contain("--events fd:9: descriptor 9 was not given to hplua (not open when it started)")
  hp.expect(r.stdout).never.to_contain("passed")
  r = hp.process.start("fd9-read", { "sh", "-c", 'exec "$0" --events fd:9 -q pass 9</dev/null', run.exe },
    { cwd = run.fixtures }):wait(60)
  hp.expect(r.exit_code).to_equal(4)
  hp.expect(r.stderr).to_contain("--events fd:9: descriptor 9 is open for reading only")
end)

hp.test("an events stream that cannot be written fails the run, and the report says so", function()
  -- /dev/full takes the open and refuses every write (ENOSPC), as a full disk does;
  -- a reader of the stream missed the run, so it cannot pass
  local res, rep = run.run({ "--events", "/dev/full", "pass" })
  hp.expect(res.exit_code).to_equal(1)
  hp.expect(res.stderr).to_contain("hplua: error: --events /dev/full: write: No space left on device")
  hp.expect(rep.status).to_equal("failed")
  hp.expect(rep.summary.passed).to_equal(2)
  hp.expect(rep.errors[1].kind).to_equal("report")
  hp.expect(rep.errors[1].message).to_contain("--events /dev/full:")
end)

hp.test("with --slots, an events stream that cannot be written fails the run too, said once", function()
  -- the supervisor copies every slot's events to --events: the slots' own reports were
  -- theirs to write, but the exit status is the supervisor's (it had been 0, said nowhere)
  local d = run.tmpdir()
  local p = hp.process.start("slots-full", { run.exe, "--no-history", "--slots", "2", "--events", "/dev/full",
    "--json", d .. "/r-{slot}.json", "pass" }, { cwd = run.fixtures, timeout = 60 })
  local res = p:wait()
  hp.expect(res.exit_code, res.stdout .. res.stderr).to_equal(1)
  local said = select(2, res.stderr:gsub("hplua: error: %-%-events /dev/full: write: No space left on device", ""))
  hp.expect(said, res.stderr).to_equal(1)
  os.execute("rm -rf '" .. d .. "'")
end)

hp.test("an events stream whose reader leaves, and a report that cannot be written: both are in the report", function()
  -- the reader leaves once the last test has started; the stream's next write, at the
  -- run's end, fails, and so does the JUnit report (a FIFO nobody reads): each is a run
  -- error in the JSON report, not only in the exit status
  local d = run.tmpdir()
  run.write(d .. "/1_three.lua", 'local hp = require "hplua"\nhp.test("t1", function() end)\n' ..
    'hp.test("t2", function() end)\nhp.test("t3", function() hp.sleep(0.5) end)\n')
  assert(os.execute(string.format("mkfifo '%s/ev' '%s/junit'", d, d)))
  local reader = hp.process.start("ev-reader", { "sh", "-c",
    'while read -r l; do case "$l" in *::t3*test_started*) exit 0;; esac; done < "$0"', d .. "/ev" })
  local res, rep = run.run({ "--events", d .. "/ev", "--junit", d .. "/junit", d })
  reader:wait(10)
  hp.expect(res.exit_code).to_equal(1)
  local messages = {}
  for _, e in ipairs(rep.errors) do messages[#messages + 1] = e.kind .. ": " .. e.message end
  table.sort(messages)
  hp.expect(#messages, table.concat(messages, "\n")).to_equal(2)
  hp.expect(messages[1]).to_contain("report: --events " .. d .. "/ev:")
  hp.expect(messages[2]).to_contain("report: --junit: cannot write " .. d .. "/junit")
  os.execute("rm -rf '" .. d .. "'")
end)
