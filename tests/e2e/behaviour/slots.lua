-- Several DUTs at once (API 10): `hplua --slots N` on real child processes, real
-- signals, real FIFOs and a real history database (tests/fixtures/slots).
local hp = require "hplua"
local run = require "_run"
local json = require "hplua.json"

local SLOTS = run.fixtures .. "/slots"

local tmpdir = run.tmpdir
local read = run.read
local n = 0
local function start(args, opts)
  n = n + 1
  local argv = { run.exe }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  opts = opts or {}
  opts.cwd, opts.timeout = SLOTS, opts.timeout or 120
  return hp.process.start("slots-" .. n, argv, opts)
end

local function hplua(args, opts)
  local r = start(args, opts):wait()
  return r, r.stdout .. r.stderr
end

-- args with --serial SN1 ... --serial SNk before the last word (the suite)
local function serials(k, args)
  local suite = table.remove(args)
  for i = 1, k do
    args[#args + 1] = "--serial"
    args[#args + 1] = "SN" .. i
  end
  args[#args + 1] = suite
  return args
end

local function history_runs(db)
  local r = hplua({ "history", "--history", db, "list", "--json" })
  hp.expect(r.exit_code, r.stderr).to_equal(0)
  local runs = json.decode(r.stdout)
  table.sort(runs, function(a, b) return a.slot < b.slot end)
  return runs
end

hp.test("4 slots, slot 3 SIGKILLed mid-run: the others finish, slot 3 is aborted with what it finished", function()
  local dir = tmpdir()
  local db = dir .. "/h.db"
  local r, out = hplua(serials(4, { "--slots", "4", "--history", db, "--json", dir .. "/r-{slot}.json", "--arg", "kill=3", "basic" }))
  hp.expect(r.exit_code, out).to_equal(2) -- the worst slot's: an aborted run
  for _, i in ipairs { 1, 2, 4 } do
    local rep = json.decode(assert(read(dir .. "/r-" .. i .. ".json"), "report of slot " .. i))
    hp.expect(rep.status).to_equal("passed")
    hp.expect(rep.slot).to_equal(i)
    hp.expect(rep.serial).to_equal("SN" .. i)
    hp.expect(rep.summary.passed).to_equal(3)
    hp.expect(out).to_match("slot " .. i .. " SN" .. i .. ": PASSED  3 passed, 0 failed of 3")
  end
  hp.expect(out).to_match("slot 3 SN3: ABORTED  1 passed, 0 failed of 3 in [%d.]+ s  %(report " .. dir:gsub("%p", "%%%0") .. "/r%-3%.json%)")
  hp.expect(out).to_match("its process was killed by SIGKILL; it was running 1_dut::firmware")
  hp.expect(out).to_match("4 slots: 3 passed, 1 aborted %(exit status 2%)")
  -- slot 3's report is rebuilt from its history: what it finished, then aborted
  local rep3 = json.decode(assert(read(dir .. "/r-3.json"), "report of slot 3"))
  hp.expect(rep3.status).to_equal("aborted")
  hp.expect(rep3.summary.passed).to_equal(1)
  local runs = history_runs(db)
  hp.expect(#runs).to_equal(4)
  for i, h in ipairs(runs) do
    hp.expect(h.slot).to_equal(i)
    hp.expect(h.serial).to_equal("SN" .. i)
    hp.expect(h.status).to_equal(i == 3 and "aborted" or "passed")
  end
end)

hp.test("4 slots share a lock: hold intervals never overlap and nobody starves", function()
  local dir = tmpdir()
  local log = dir .. "/holds.log"
  local r, out = hplua({ "--no-history", "--arg", "log=" .. log, "--slots", "4", "lock" })
  hp.expect(r.exit_code, out).to_equal(0)
  local holds = {}
  for line in assert(read(log)):gmatch("[^\n]+") do
    local slot, asked, granted, released = line:match("^(%d+) (%S+) (%S+) (%S+)$")
    holds[#holds + 1] = { slot = tonumber(slot), asked = tonumber(asked), granted = tonumber(granted),
      released = tonumber(released) }
  end
  hp.expect(#holds).to_equal(12)
  table.sort(holds, function(a, b) return a.granted < b.granted end)
  for i = 2, #holds do
    hp.expect(holds[i].granted >= holds[i - 1].released, "hold " .. i .. " overlaps the one before").to_be_truthy()
  end
  -- first come, first served: while a slot waits, each other slot holds at most once
  for _, h in ipairs(holds) do
    local before = 0
    for _, o in ipairs(holds) do
      if o.slot ~= h.slot and o.granted > h.asked and o.granted < h.granted then before = before + 1 end
    end
    hp.expect(before, "holds granted while slot " .. h.slot .. " waited").to_be_less_than(4)
  end
end)

hp.test("a lock held by a slot that dies is released: the waiter proceeds", function()
  local dir = tmpdir()
  local r, out = hplua({ "--no-history", "--slots", "2", "-v", "--json", dir .. "/r-{slot}.json", "dies" })
  hp.expect(r.exit_code, out).to_equal(2)
  -- no history to rebuild its report from: the summary says it has none
  hp.expect(out).to_match("slot 1: ABORTED  0 passed, 0 failed of 1 in [%d.]+ s  %(no report%)")
  hp.expect(read(dir .. "/r-1.json")).to_be_nil()
  hp.expect(out).to_match("slot 2: PASSED  1 passed, 0 failed of 1 in [%d.]+ s  %(report " .. dir:gsub("%p", "%%%0") .. "/r%-2%.json%)")
  hp.expect(out).to_match("slot 2: PASSED  1 passed")
  hp.expect(out).to_match("1 passed, 1 aborted")
end)

hp.test("two slots taking two locks in opposite order: one fails naming the cycle, the other proceeds", function()
  local dir = tmpdir()
  local r, out = hplua({ "--no-history", "--slots", "2", "--json", dir .. "/{slot}.json", "cycle" })
  hp.expect(r.exit_code, out).to_equal(1)
  local reps = { json.decode(assert(read(dir .. "/1.json"))), json.decode(assert(read(dir .. "/2.json"))) }
  -- slot 1 normally asks first and slot 2 closes the cycle; under load it may be the other way
  local failed = reps[1].status == "failed" and 1 or 2
  local other = 3 - failed
  hp.expect(reps[other].status).to_equal("passed")
  hp.expect(reps[failed].status).to_equal("failed")
  local t = reps[failed].modules[1].tests[1]
  local first = failed == 2 and "'A' held by slot 1" or "'B' held by slot 2"
  local second = failed == 2 and "'B' held by slot 2" or "'A' held by slot 1"
  hp.expect(t.error.message).to_contain(string.format("wait cycle between slots: slot %d waits for lock %s, " ..
    "slot %d waits for lock %s", failed, first, other, second))
  hp.expect(t.error.file).to_equal("cycle/1_two_locks.lua")
end)

hp.test("a test timeout releases a held lock and cancels a waiting one", function()
  local dir = tmpdir()
  local r, out = hplua({ "--no-history", "--slots", "2", "--json", dir .. "/{slot}.json", "timeout" })
  hp.expect(r.exit_code, out).to_equal(1)
  local one = json.decode(assert(read(dir .. "/1.json"))).modules[1].tests
  local two = json.decode(assert(read(dir .. "/2.json"))).modules[1].tests
  hp.expect(one[1].error.message).to_equal("timeout after 0.5 s")
  hp.expect(one[2].error.message).to_equal("timeout after 0.5 s")
  hp.expect(one[3].status).to_equal("passed")
  for i = 1, 3 do hp.expect(two[i].status, two[i].id).to_equal("passed") end
end)

hp.test("a barrier with 4 slots where one fails before it: the other 3 pass it", function()
  local dir = tmpdir()
  local r, out = hplua({ "--no-history", "--slots", "4", "--json", dir .. "/{slot}.json", "--arg", "fail=3",
    "--arg", "expect=3", "barrier" })
  hp.expect(r.exit_code, out).to_equal(1)
  for i = 1, 4 do
    local rep = json.decode(assert(read(dir .. "/" .. i .. ".json")))
    local chamber = rep.modules[1].tests[2]
    if i == 3 then
      hp.expect(rep.status).to_equal("failed")
      hp.expect(chamber.status).to_equal("skipped")
    else
      hp.expect(rep.status).to_equal("passed")
      hp.expect(chamber.status).to_equal("passed")
    end
  end
end)

hp.test("each slot's reports and events carry its slot and serial; hplua history shows 4 runs", function()
  local dir = tmpdir()
  local db, events = dir .. "/h.db", dir .. "/events.ndjson"
  local r, out = hplua(serials(4, { "--slots", "4", "--history", db, "--events", events,
    "--json", dir .. "/{serial}-{run_id}.json", "--junit", dir .. "/{slot}.xml", "basic" }))
  hp.expect(r.exit_code, out).to_equal(0)
  local by_slot = {}
  for line in assert(read(events)):gmatch("[^\n]+") do
    local ev = json.decode(line)
    hp.expect(math.type(ev.slot), line).to_equal("integer")
    by_slot[ev.slot] = by_slot[ev.slot] or {}
    table.insert(by_slot[ev.slot], ev)
  end
  local runs = history_runs(db)
  hp.expect(#runs).to_equal(4)
  for i = 1, 4 do
    local evs = by_slot[i]
    hp.expect(evs[1].type).to_equal("run_started")
    hp.expect(evs[1].serial).to_equal("SN" .. i)
    hp.expect(evs[#evs].type).to_equal("run_finished")
    local run_id = evs[1].run_id
    hp.expect(runs[i].run_id).to_equal(run_id)
    hp.expect(runs[i].serial).to_equal("SN" .. i)
    local rep = json.decode(assert(read(string.format("%s/SN%d-%s.json", dir, i, run_id))))
    hp.expect(rep.slot).to_equal(i)
    hp.expect(rep.serial).to_equal("SN" .. i)
    hp.expect(read(dir .. "/" .. i .. ".xml")).to_match("<testsuites")
  end
end)

-- The supervisor reads events in batches (lua/slots.lua): a slot that writes fast is
-- read as fast, and nothing it writes is lost, split or repeated.
hp.test("2 slots writing thousands of events: every one arrives once, in order, in --events", function()
  local dir = tmpdir()
  local suite, events = dir .. "/suite", dir .. "/events.ndjson"
  assert(os.execute("mkdir -p " .. suite))
  local f = assert(io.open(suite .. "/1_chatty.lua", "w"))
  f:write([[
local hp = require "hplua"
hp.test("chatty", function()
  for i = 1, 4000 do hp.set_message("line " .. i .. " " .. string.rep("x", 200)) end
end)
hp.test("after", function() end)
]])
  f:close()
  local r, out = hplua({ "--no-history", "-q", "--slots", "2", "--events", events, suite })
  hp.expect(r.exit_code, out).to_equal(0)
  hp.expect(r.duration, "two slots of 4000 messages each").to_be_less_than(60)
  local next_i, finished = { 0, 0 }, { 0, 0 }
  for line in assert(read(events)):gmatch("[^\n]+") do
    local ev = json.decode(line)
    if ev.type == "message" then
      local i = tonumber(ev.text:match("^line (%d+) "))
      hp.expect(i, line).to_equal(next_i[ev.slot] + 1)
      next_i[ev.slot] = i
    elseif ev.type == "test_finished" then
      finished[ev.slot] = finished[ev.slot] + 1
    end
  end
  hp.expect(next_i).to_equal({ 4000, 4000 })
  hp.expect(finished).to_equal({ 2, 2 })
  hp.expect(out).to_match("2 slots: 2 passed %(exit status 0%)")
end)

hp.test("Ctrl-C stops every slot within 5 s and leaves no process behind", function()
  local marker = run.unique_marker()
  local p = start({ "--no-history", "--slots", "3", "-v", "--arg", "marker=" .. marker, "hang" })
  run.wait_for(function() return #run.find_processes("sleep " .. marker) >= 3 end, 30, "every slot to wait")
  local t0 = hp.clock()
  run.kill(p.pid, "INT")
  local r = p:wait(10)
  hp.expect(hp.clock() - t0).to_be_less_than(5)
  hp.expect(r.exit_code, r.stdout .. r.stderr).to_equal(2)
  hp.expect(r.stdout).to_match("3 slots: 3 stopped")
  hp.expect(run.survivors(marker, 2)).to_equal({})
  -- the slots' own hplua (each carries the run's --arg marker=...; other runs on the machine do not)
  hp.expect(run.find_processes("marker=" .. marker)).to_equal({})
end)

hp.test("--json or --junit without {slot} or {run_id} with --slots 2: usage error, exit 4", function()
  local r, out = hplua({ "--slots", "2", "--json", "/tmp/same.json", "basic" })
  hp.expect(r.exit_code).to_equal(4)
  hp.expect(out).to_match("%-%-json /tmp/same.json with %-%-slots 2: every slot would write the same file; " ..
    "put {slot} or {run_id} in the path")
  r, out = hplua({ "--slots", "2", "--junit", "out.xml", "basic" })
  hp.expect(r.exit_code).to_equal(4)
  hp.expect(out).to_match("out%-{slot}%.xml")
  r, out = hplua({ "--serial", "A", "--serial", "B", "basic" })
  hp.expect(r.exit_code).to_equal(4)
  hp.expect(out).to_match("several serials need %-%-slots N")
end)

hp.test("without slots, hp.lock runs fn and hp.barrier returns at once", function()
  hp.expect(hp.lock("x", function(a, b) return a + b, "ok" end, 1, 2)).to_equal(3)
  hp.expect(select(2, hp.lock("x", function() return 1, "two" end))).to_equal("two")
  hp.expect(hp.barrier("b")).to_equal(1)
  hp.expect(function() hp.lock("", function() end) end).to_fail("name must be a non%-empty string")
  hp.expect(function() hp.lock("x") end).to_fail("fn must be a function")
end)
