-- A stand-in for the run child of `hplua serve` (HPLUA_SERVE_CHILD=this file):
-- speaks the station's side of the contract (--events FIFO, --control FIFO,
-- --run-id, --serial, --json) without running a suite. The serial says what to do:
-- DIALOG-<kind> asks one dialog, CRASH-x dies by SIGKILL midway, SLOW-x sleeps
-- 1 s per test, FAIL-x fails the last test, N<count>-x runs <count> tests (default 3),
-- HOSTILE-x writes malformed event lines first.
local http = require "hplua.http"
local sys = require "hplua.sys"
local json = require "hplua.json"

local a = {}
local i = 1
while i <= #arg do
  local k = arg[i]
  if k == "--" then a.path = arg[i + 1]; break end
  if k:sub(1, 2) == "--" then a[k:sub(3)] = arg[i + 1]; i = i + 2 else i = i + 1 end
end
local out = assert(io.open(a.events, "w"))
local seq = 0
local function emit(ev)
  seq = seq + 1
  ev.v, ev.seq, ev.time, ev.run_id = 1, seq, sys.now(), a["run-id"]
  out:write(json.encode(ev), "\n")
  out:flush()
end
local serial = a.serial or ""
local n = tonumber(serial:match("^N(%d+)%-") or "3")
local dialog_kind = serial:match("^DIALOG%-(%a+)")
local ids = json.array({})
for k = 1, n do ids[k] = string.format("fake::t%04d", k) end
emit { type = "run_started", serial = a.serial, selected = ids, paths = { a.path }, args = {}, stand = {} }
if serial:match("^HOSTILE") then
  -- lines the station must drop: a test "passed" by a malformed member, an id far
  -- ahead in a line broken after it, a carriage return that would end an EventSource
  -- line, text that is no object; then the run goes on with the next ids
  local rid = a["run-id"]
  for _, line in ipairs {
    '{"duration":1x,"run_id":"' .. rid .. '","seq":2,"status":"passed","test":"fake::t0001","type":"test_finished","v":1}',
    '{"run_id":"' .. rid .. '","seq":99,"test":"fake::t0001","text":"hi","type":"message","v":1,"x":[tru]}',
    '{"run_id":"' .. rid .. '","seq":3,"text":"evil","type":"info",\r\r"data":1,"v":1}',
    '{"run_id":"' .. rid .. '","seq":3,"test":"fake::t0001","text":"bad \\x escape","type":"message","v":1}',
    '["not", "an", "object"]', 'text',
  } do
    out:write(line, "\n")
  end
  out:flush()
end
local passed, failed = 0, 0
for k, id in ipairs(ids) do
  emit { type = "test_started", test = id, name = id:match("::(.*)"), module = "fake", attempt = 1 }
  emit { type = "measurement", test = id, name = "v", value = 3.3, unit = "V", min = 3.0, max = 3.6, status = "passed" }
  if k == 1 and dialog_kind then
    local kind = dialog_kind
    emit { type = "dialog_requested", test = id, id = "d1", kind = kind, title = "Check", text = "Is it <b>ok</b>?",
      choices = (kind == "choice" or kind == "multi") and { "red", "green" } or nil, min = kind == "number" and 1 or nil,
      max = kind == "number" and 5 or nil }
    local ctl = assert(http.open_fifo(a.control, "r"))
    local buf = ""
    while not buf:find("\n") do
      sys.wait_readable(ctl:fileno())
      buf = buf .. (ctl:read() or "")
    end
    local ans = json.decode(buf:match("^[^\n]*"))
    emit { type = "dialog_answered", id = ans.id, value = ans.value, source = "panel" }
  end
  if k == 2 and serial:match("^CRASH") then http.kill(sys.getpid(), "KILL") end
  if serial:match("^SLOW") then sys.sleep(1) end
  local st = (k == n and serial:match("^FAIL")) and "failed" or "passed"
  if st == "passed" then passed = passed + 1 else failed = failed + 1 end
  emit { type = "test_finished", test = id, status = st, attempt = 1, attempts = 1, duration = 0.001,
    error = st == "failed" and { message = "<script>alert(1)</script> too low" } or nil }
end
local status = failed > 0 and "failed" or "passed"
local summary = { total = n, passed = passed, failed = failed, skipped = 0, stopped = 0 }
json.write_atomic(a.json, json.encode { run_id = a["run-id"], status = status, summary = summary, dut = { serial = a.serial } })
emit { type = "run_finished", status = status, exit_code = failed > 0 and 1 or 0, summary = summary,
  caused_failure = failed > 0 and ids[n] or nil, duration = 0.1 }
os.exit(failed > 0 and 1 or 0)
