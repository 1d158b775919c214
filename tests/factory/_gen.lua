-- hplua --exec _gen.lua HISTORY RUNS TESTS MEASUREMENTS [STATION]
-- Records RUNS finished runs (TESTS tests, MEASUREMENTS measurements spread over them)
-- in HISTORY through the history's own sink, as a run with --upload would: every
-- run is marked for upload. Fast: no test code runs. Prints the run ids, one a line.
local history = require "hplua.history"
local events = require "hplua.events"
local sys = require "hplua.sys"

local path, runs, tests, meas, station = arg[1], tonumber(arg[2]), tonumber(arg[3]), tonumber(arg[4]), arg[5]
assert(path and runs and tests and meas, "usage: _gen.lua HISTORY RUNS TESTS MEASUREMENTS [STATION]")
local store = assert(history.open(path, { create_folders = true }))
local out = {}
for r = 1, runs do
  local run_id = events.uuid()
  local sink = store:sink { upload = true }
  local now = sys.now()
  local ids = {}
  for t = 1, tests do ids[t] = "1_gen::t" .. t end
  sink:run_started { run_id = run_id, time = now, serial = string.format("SN%s-%05d", station or "X", r),
    stand = station and { name = station } or nil, hplua = sys.version, paths = { "gen" }, selected = ids }
  local per = meas // tests
  local extra = meas % tests
  local failed = (r % 10 == 0) and tests or nil -- every tenth run fails its last test
  for t = 1, tests do
    local ms = {}
    for m = 1, per + (t <= extra and 1 or 0) do
      ms[#ms + 1] = { name = "m" .. m, value = 3.3 + (r % 7) * 0.01 + m * 1e-3, unit = "V", min = 3.0, max = 3.6,
        status = "passed" }
    end
    local status = t == failed and "failed" or "passed"
    sink:test_finished { test = ids[t], name = "t" .. t, module = "1_gen", status = status, attempt = 1,
      duration = 0.001, error = status == "failed" and { message = "out of limits", file = "1_gen.lua", line = t } or nil,
      measurements = ms, started_at = now, ended_at = now }
  end
  sink:run_finished { run_id = run_id, time = now, status = failed and "failed" or "passed", exit_code = failed and 1 or 0,
    duration = 0.01, summary = { total = tests, passed = tests - (failed and 1 or 0), failed = failed and 1 or 0,
      skipped = 0, stopped = 0 }, caused_failure = failed and ids[tests] or nil }
  out[#out + 1] = run_id
end
store:close()
io.stdout:write(table.concat(out, "\n"), "\n")
