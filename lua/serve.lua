-- hplua.serve: the station (`hplua serve`, API section 8). A long-running
-- supervisor: the operator panel over HTTP (hplua.http, libmicrohttpd in this
-- thread), and each run in a child hplua started with the process engine, so a
-- crash, hang or memory blow-up of test code never takes the station down.
--
-- Child <-> station: two FIFOs in a private 0700 folder. The child writes its
-- event stream (API 6, NDJSON) to the first (--events) and reads dialog answers
-- from the second (--control). The station adds the slot, keeps the current and
-- the previous run's events per slot (for late and reconnecting panels) and
-- forwards every event to every panel as Server-Sent Events.
--
-- One loop, no busy polling: it waits in host_wait on one epoll fd holding the
-- HTTP server and the event FIFOs, so child output, timeouts and Ctrl-C keep
-- being handled by the event loop while the station waits.
local http = require "hplua.http"
local sys = require "hplua.sys"
local json = require "hplua.json"
local station_config = require "hplua.station_config"
local slotrun = require "hplua.slotrun"
local coord = require "hplua.coord"

local M = {}

local EXIT_USAGE, EXIT_OK, EXIT_FAILED = 4, 0, 1
local MAX_SERIAL = 128
local KEEPALIVE = 15        -- seconds between SSE comments to idle panels
local CHILD_POLL = 1        -- seconds between liveness checks of a run child
local HOLD = 0.005          -- seconds a run's events gather between reads while they flow
local BATCH = 64 * 1024     -- bytes of events read at most per turn (each panel's queue gets a copy)
local RUNS_KEPT = 1000      -- finished runs kept in memory (--no-history) and most listed
local DEFAULT_PATTERN = "[%w_%-%.:/#]+"

M.USAGE = [[
usage: hplua serve [OPTIONS] [PATH]   the operator panel and station loop for the suite at PATH

PATH is a suite folder (default ./tests), or a station folder holding station.lua
(the station's settings, as with --config) and the suite.

station options:
  --config FILE         settings: a Lua file returning a table (options override it)
  --port N              TCP port of the panel (default 8642; 0 picks a free port)
  --bind ADDR           listen address (default 127.0.0.1); any other needs a token
  --token T             every request needs this token (also HPLUA_TOKEN)
  --stop-grace S        seconds a stopped run gets before it is killed (default 5)
  --serial-pattern P    Lua pattern a whole serial must match
  --suite-name NAME     the suite's name shown in the panel
run options (applied to every run):
  --timeout S, --max-memory MB, -k TEXT, --arg KEY=VALUE, --limits FILE,
  --upload URL, --history FILE, --no-history, --slots N,
  --json PATTERN, --junit PATTERN   (placeholders {slot} {serial} {run_id} {date})
]]

-- ---------------------------------------------------------------- options

local VALUE_OPTS = {
  ["--config"] = "config", ["--port"] = "port", ["--bind"] = "bind", ["--token"] = "token",
  ["--stop-grace"] = "stop_grace", ["--serial-pattern"] = "serial_pattern", ["--suite-name"] = "suite_name",
  ["--timeout"] = "timeout", ["--max-memory"] = "max_memory", ["-k"] = "keywords", ["--arg"] = "args",
  ["--limits"] = "limits", ["--upload"] = "upload", ["--history"] = "history", ["--slots"] = "slots",
  ["--json"] = "json", ["--junit"] = "junit",
}

local function number_opt(name, value, integer, min)
  local n = tonumber(value)
  if not n or (integer and math.type(n) ~= "integer") or n < min or n ~= n then
    return nil, string.format("%s needs %s, got '%s'", name,
      integer and ("an integer of at least " .. min) or "a positive number", tostring(value))
  end
  return n
end

-- parse(args) -> opts | nil, message. Only what the command line gave is set.
function M.parse(args)
  local o, paths = {}, {}
  local i = 1
  while i <= #args do
    local a = args[i]
    local name, value = a:match("^(%-%-[%w-]+)=(.*)$")
    name = name or a
    if a == "--" then
      for j = i + 1, #args do paths[#paths + 1] = args[j] end
      break
    elseif a == "-h" or a == "--help" then
      o.help = true
    elseif a == "--no-history" then
      o.history = false
    elseif VALUE_OPTS[name] then
      if value == nil then
        i = i + 1
        value = args[i]
        if value == nil then return nil, "option " .. name .. " needs a value" end
      end
      local key = VALUE_OPTS[name]
      if key == "port" then
        local n, err = number_opt(name, value, true, 0)
        if not n or n > 65535 then return nil, err or "--port must be 0..65535" end
        o.port = n
      elseif key == "slots" then
        local n, err = number_opt(name, value, true, 1)
        if not n then return nil, err end
        o.slots = n
      elseif key == "timeout" or key == "max_memory" or key == "stop_grace" then
        local n, err = number_opt(name, value, false, 0)
        if not n or n <= 0 then return nil, err or (name .. " needs a positive number") end
        o[key] = n
      elseif key == "keywords" then
        o.keywords = o.keywords or {}
        o.keywords[#o.keywords + 1] = value
      elseif key == "args" then
        local k, v = value:match("^([^=]+)=(.*)$")
        if not k then return nil, "--arg needs KEY=VALUE, got '" .. value .. "'" end
        o.args = o.args or {}
        o.args[k] = v
      elseif key == "serial_pattern" then
        local ok = pcall(string.find, "", value)
        if not ok then return nil, "--serial-pattern: not a valid Lua pattern: " .. value end
        o[key] = value
      else
        o[key] = value
      end
    elseif name:sub(1, 1) == "-" and #name > 1 then
      return nil, "unknown option '" .. a .. "' for serve"
    else
      paths[#paths + 1] = a
    end
    i = i + 1
  end
  if #paths > 1 then return nil, "serve takes one PATH, got " .. #paths end
  o.path = paths[1]
  return o
end

-- Settings: config file (explicit, or PATH/station.lua) under command-line options.
local function settings(cli)
  local cfg_path = cli.config
  local dir_path
  if not cfg_path and cli.path and sys.kind(cli.path) == "dir" and sys.kind(cli.path .. "/station.lua") == "file" then
    cfg_path, dir_path = cli.path .. "/station.lua", cli.path
  end
  local s = {}
  if cfg_path then
    local cfg, err = station_config.load(cfg_path)
    if not cfg then return nil, err end
    s = cfg
    if dir_path and not s.path then s.path = dir_path .. "/tests" end
  end
  for k, v in pairs(cli) do
    if k ~= "config" and not (k == "path" and dir_path) then
      if k == "args" and s.args then
        for ak, av in pairs(v) do s.args[ak] = av end
      else
        s[k] = v
      end
    end
  end
  s.path = s.path or "tests"
  s.port = s.port or 8642
  s.bind = s.bind or "127.0.0.1"
  s.slots = s.slots or 1
  s.stop_grace = s.stop_grace or 5
  s.serial_pattern = s.serial_pattern or DEFAULT_PATTERN
  if not s.upload then
    local env = os.getenv("HPLUA_UPLOAD")
    if env and env ~= "" then s.upload = env end
  end
  if not s.token then
    local env = os.getenv("HPLUA_TOKEN")
    if env and env ~= "" then s.token = env end
  end
  return s
end

-- Only the default loopback addresses go without a token; anything else (even
-- another 127.x address, which a port forward could expose) needs one.
local function is_loopback(addr)
  return addr == "127.0.0.1" or addr == "::1"
end

-- ---------------------------------------------------------------- helpers

local function uuid()
  local b = { http.random(16):byte(1, 16) }
  b[7] = (b[7] & 0x0f) | 0x40
  b[9] = (b[9] & 0x3f) | 0x80
  return string.format("%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", table.unpack(b))
end

local function full_match(s, pat)
  if pat:sub(1, 1) ~= "^" then pat = "^" .. pat end
  if not (pat:sub(-1) == "$" and pat:sub(-2, -2) ~= "%") then pat = pat .. "$" end
  return s:find(pat) ~= nil
end

local JS_CLASS = { d = "0-9", a = "A-Za-z", l = "a-z", u = "A-Z", w = "A-Za-z0-9", x = "0-9A-Fa-f",
  s = " \\t\\n\\r\\f\\v" }

-- The serial pattern as a JavaScript regular expression for the panel's own check,
-- or nil when it uses what has no equivalent (the station's check decides then).
function M.js_pattern(pat)
  if pat:sub(1, 1) == "^" then pat = pat:sub(2) end
  if pat:sub(-1) == "$" and pat:sub(-2, -2) ~= "%" then pat = pat:sub(1, -2) end
  local out, i, n, in_set = {}, 1, #pat, false
  while i <= n do
    local c = pat:sub(i, i)
    if c == "%" then
      local d = pat:sub(i + 1, i + 1)
      i = i + 2
      local cls = JS_CLASS[d:lower()]
      if cls then
        if d ~= d:lower() then
          if in_set then return nil end
          out[#out + 1] = "[^" .. cls .. "]"
        else
          out[#out + 1] = in_set and cls or ("[" .. cls .. "]")
        end
      elseif d == "" or d:match("%w") then
        return nil
      else
        out[#out + 1] = "\\" .. d
      end
    elseif in_set then
      if c == "]" then in_set = false end
      out[#out + 1] = (c == "\\" or c == "[") and ("\\" .. c) or c
      i = i + 1
    elseif c == "[" then
      in_set = true
      out[#out + 1] = "["
      i = i + 1
      if pat:sub(i, i) == "^" then out[#out + 1] = "^"; i = i + 1 end
      if pat:sub(i, i) == "]" then out[#out + 1] = "\\]"; i = i + 1 end
    elseif c == "-" and #out > 0 then
      out[#out + 1] = "*?"
      i = i + 1
    elseif c:match("[%*%+%?%.%(%)]") then
      out[#out + 1] = c
      i = i + 1
    elseif c:match("[%^%${}|\\/%-]") then
      out[#out + 1] = "\\" .. c
      i = i + 1
    else
      out[#out + 1] = c
      i = i + 1
    end
  end
  if in_set then return nil end
  return "^(?:" .. table.concat(out) .. ")$"
end

local function read_file(path, max)
  local f = io.open(path, "rb")
  if not f then return nil end
  local data = f:read(max or "a")
  f:close()
  return data
end

local function expand(pattern, slot, serial, run_id)
  local date = os.date("!%Y%m%dT%H%M%SZ")
  return (pattern:gsub("{(%w+)}", function(k)
    if k == "slot" then return tostring(slot) end
    if k == "serial" then return (serial:gsub("[^%w_%-%.]", "_")) end
    if k == "run_id" then return run_id end
    if k == "date" then return date end
  end))
end

local function encode(v)
  local s = json.encode(v)
  return s
end

local function reply(status, body)
  return status, encode(body)
end

-- ---------------------------------------------------------------- run history
-- The recent runs, retest marks and first-pass yield come from the SQLite history
-- the runs themselves write (lua/history.lua, API 7: DbHistory), so a restarted
-- station shows the runs before it. With --no-history they live in memory for the
-- station's lifetime (History). Both answer seen, add, list, get and stats.

local History = {}
History.__index = History

function History.new() return setmetatable({ runs = {}, by_id = {}, serials = {} }, History) end

-- Is serial a retest (seen in an earlier run)?
function History:seen(serial) return self.serials[serial] ~= nil end

function History:add(run)
  local first = self.serials[run.serial]
  if first == nil then self.serials[run.serial] = run.status == "passed" end
  table.insert(self.runs, 1, run)
  self.by_id[run.run_id] = run
  if #self.runs > RUNS_KEPT then
    local old = table.remove(self.runs)
    self.by_id[old.run_id] = nil
  end
end

function History:list(serial, limit)
  local out = json.array({})
  for _, r in ipairs(self.runs) do
    if #out >= limit then break end
    if not serial or r.serial == serial then
      out[#out + 1] = { run_id = r.run_id, serial = r.serial, slot = r.slot, status = r.status,
        exit_code = r.exit_code, started_at = r.started_at, ended_at = r.ended_at, duration = r.duration,
        retest = r.retest, summary = r.summary, caused_failure = r.caused_failure, message = r.message }
    end
  end
  return out
end

function History:get(run_id)
  local r = self.by_id[run_id]
  return r and r.report
end

-- Runs, and first-pass yield: the share of serials whose first run passed.
function History:stats()
  local serials, first_pass = 0, 0
  for _, passed in pairs(self.serials) do
    serials = serials + 1
    if passed then first_pass = first_pass + 1 end
  end
  local passed = 0
  for _, r in ipairs(self.runs) do
    if r.status == "passed" then passed = passed + 1 end
  end
  return { runs = #self.runs, passed = passed, serials = serials, first_pass = first_pass,
    first_pass_yield = serials > 0 and first_pass / serials or json.null }
end

local STATS_TTL = 5 -- seconds the yield is cached (other processes may add runs meanwhile)

local DbHistory = {}
DbHistory.__index = DbHistory

-- path: the history file the runs write. extra: the station's own record of runs
-- the file lacks (a run whose process ended before it could record itself).
function DbHistory.new(path)
  return setmetatable({ path = path, extra = History.new(), stats_until = -math.huge }, DbHistory)
end

-- fn(store) on a connection opened for this call only: the station holds none
-- between requests, so a run's own connection stays the last to close (and to
-- checkpoint the log), as without a station. Opening also marks the runs of dead
-- processes aborted. -> fn's results, or nil when the file cannot be read (none
-- before the first run; any other problem is told on stderr, once per message).
function DbHistory:with(fn)
  if not sys.kind(self.path) then return nil end -- no run recorded yet (its folder may not exist either)
  local store, err, code = require("hplua.history").open(self.path, { read = true })
  if store then
    local ok, a, b = pcall(fn, store)
    store:close()
    if ok then return a, b end
    err, code = tostring(a), "error"
  end
  if code ~= "ENOENT" and err ~= self.told then
    self.told = err
    io.stderr:write("hplua serve: history: " .. tostring(err) .. "\n")
  end
  return nil
end

-- The first row of a query, or nil (st:first gives false for none).
local function first_row(store, sql, ...)
  return store:stmt(sql):first(...) or nil
end

function DbHistory:seen(serial)
  if self.extra:seen(serial) then return true end
  return self:with(function(store)
    return first_row(store, "SELECT 1 AS seen FROM runs WHERE serial = ? LIMIT 1", serial) ~= nil
  end) or false
end

-- A run has ended: the file has it (written by the run), else the station keeps it.
function DbHistory:add(run)
  self.stats_until = -math.huge
  local known = self:with(function(store)
    return first_row(store, "SELECT 1 AS known FROM runs WHERE run_id = ?", run.run_id) ~= nil
  end)
  if not known then self.extra:add(run) end
end

local function sql_value(v)
  if v == nil or v == json.null then return nil end
  return v
end

-- One row of Store:list in the shape of GET /api/runs (that of History:list).
local function run_entry(store, r)
  local msg
  if sql_value(r.caused_failure) then
    local t = first_row(store, "SELECT error FROM tests WHERE run_id = ? AND test_id = ? ORDER BY seq DESC LIMIT 1",
      r.run_id, r.caused_failure)
    msg = t and sql_value(t.error)
  end
  if not msg and r.status ~= "passed" then
    local e = first_row(store, "SELECT message FROM errors WHERE run_id = ? ORDER BY seq LIMIT 1", r.run_id)
    msg = e and sql_value(e.message)
  end
  return { run_id = r.run_id, serial = sql_value(r.serial), slot = sql_value(r.slot), status = r.status,
    exit_code = sql_value(r.exit_code), started_at = sql_value(r.started_at), ended_at = sql_value(r.ended_at),
    duration = sql_value(r.duration), retest = r.retest == 1 or r.retest == true,
    summary = { total = r.total or 0, passed = r.passed or 0, failed = r.failed or 0, skipped = r.skipped or 0,
      stopped = r.stopped or 0 },
    caused_failure = sql_value(r.caused_failure), message = msg }
end

-- Ended runs, newest first (a run still going is the live slot, not a recent run).
function DbHistory:list(serial, limit)
  local out = self:with(function(store)
    local rows = json.array({})
    for i, r in ipairs(store:list { serial = serial, limit = limit, ended = true }) do rows[i] = run_entry(store, r) end
    return rows
  end) or json.array({})
  if #self.extra.runs > 0 then
    for _, r in ipairs(self.extra:list(serial, limit)) do out[#out + 1] = r end
    table.sort(out, function(a, b) return (a.started_at or "") > (b.started_at or "") end)
    for i = #out, limit + 1, -1 do out[i] = nil end
  end
  return out
end

function DbHistory:get(run_id)
  return self:with(function(store) return store:report_text(run_id) end) or self.extra:get(run_id)
end

-- Runs, and first-pass yield: the share of serials whose first run passed.
function DbHistory:stats()
  if sys.clock() < self.stats_until then return self.stats_cache end
  local st = self:with(function(store) return store:stats({}) end)
  local out
  if st then
    local fp = st.first_pass
    out = { runs = st.runs - (st.by_status.running or 0), passed = st.by_status.passed or 0, serials = st.serials,
      first_pass = fp.passed, first_pass_yield = fp.yield or json.null }
  else
    out = self.extra:stats()
  end
  self.stats_cache, self.stats_until = out, sys.clock() + STATS_TTL
  return out
end

-- ---------------------------------------------------------------- factory upload (API 9)
-- The runs upload from their own children; the station retries what is pending every
-- UPLOAD_EVERY seconds (and at start: a station killed with runs pending), each time
-- in a detached `hplua history upload --quiet`, never in this loop.

local UPLOAD_EVERY = 30

local Uploads = {}
Uploads.__index = Uploads

function Uploads.new(s)
  if not s.upload or s.history == false then return nil end
  local path = require("hplua.history").location({ history = s.history or nil })
  if not path then return nil end
  return setmetatable({ url = s.upload, path = path, next_try = 0 }, Uploads)
end

-- Runs waiting for upload (json.null when the history cannot be read yet).
function Uploads:pending()
  if not self.db then
    self.db = require("hplua.sqlite").open(self.path, "r")
    if not self.db then return json.null end
  end
  local ok, row = pcall(function()
    return self.db:prepare("SELECT count(*) AS n FROM runs WHERE upload_pending = 1"):first()
  end)
  if not ok or not row then
    self.db:close()
    self.db = nil
    return json.null
  end
  return row.n
end

function Uploads:tick()
  if sys.clock() < self.next_try then return end
  self.next_try = sys.clock() + UPLOAD_EVERY
  local n = self:pending()
  if n ~= json.null and n > 0 then
    local started, wait = require("hplua.upload").start_background(self.path, self.url)
    if not started and wait then self.next_try = sys.clock() + math.min(math.max(wait, 0.5), UPLOAD_EVERY) end
  end
end

function Uploads:close()
  if self.db then self.db:close() end
end

-- ---------------------------------------------------------------- the station

local Station = {}
Station.__index = Station

local function new_slot(n)
  return { slot = n, state = "idle", tests = json.array({}), by_test = {}, frames = {}, prev_frames = {},
    dialogs = {}, dialog_order = {}, runs = 0 }
end

function Station.new(s)
  local path = s.history ~= false and require("hplua.history").location({ history = s.history or nil })
  local st = setmetatable({ s = s, slots = {}, history = path and DbHistory.new(path) or History.new(), exe = assert(sys.exepath()),
    last_keepalive = sys.clock(), started = sys.now() }, Station)
  for i = 1, s.slots do st.slots[i] = new_slot(i) end
  -- hp.lock and hp.barrier across the slots (lua/coord.lua): replies on each run's .rep FIFO
  st.coord = coord.new(function(slot_no, msg)
    local run = st.slots[slot_no] and st.slots[slot_no].run
    if run and run.ch.rep then run.ch.rep:write(encode(msg) .. "\n") end
  end)
  st.js_pattern = M.js_pattern(s.serial_pattern)
  st.uploads = Uploads.new(s)
  st.hostname = (read_file("/proc/sys/kernel/hostname") or "station"):gsub("%s+$", "")
  local name = s.path:gsub("/+$", "")
  if name:match("/tests$") then name = name:sub(1, -7) end
  st.suite_name = s.suite_name or name:match("([^/]+)$") or name
  return st
end

function Station:check_serial(serial)
  if serial == nil or serial == "" then return nil, "serial is missing" end
  if type(serial) ~= "string" then return nil, "serial must be a string" end
  if #serial > MAX_SERIAL then return nil, "serial is longer than " .. MAX_SERIAL .. " characters" end
  if serial:find("%c") or not utf8.len(serial) then return nil, "serial contains control characters or bad UTF-8" end
  if not full_match(serial, self.s.serial_pattern) then
    return nil, string.format("serial %q does not match the pattern %s", serial, self.s.serial_pattern)
  end
  return true
end

-- The argv of a run's child (the real hplua, or HPLUA_SERVE_CHILD, a fake child
-- script for the station's own tests, run with --exec).
function Station:child_argv(slot, run)
  local s = self.s
  local argv = { self.exe }
  local fake = os.getenv("HPLUA_SERVE_CHILD")
  if fake and fake ~= "" then argv[#argv + 1] = "--exec"; argv[#argv + 1] = fake end
  local function add(...) for _, v in ipairs { ... } do argv[#argv + 1] = tostring(v) end end
  add("--events", run.events_path, "--control", run.control_path, "--run-id", run.run_id, "--serial", run.serial,
    "--slot", slot.slot, "--json", run.json_path, "--color", "never", "--coord", run.tag)
  if s.junit then add("--junit", expand(s.junit, slot.slot, run.serial, run.run_id)) end
  if s.timeout then add("--timeout", s.timeout) end
  if s.max_memory then add("--max-memory", s.max_memory) end
  for _, k in ipairs(s.keywords or {}) do add("-k", k) end
  if s.args then
    local keys = {}
    for k in pairs(s.args) do keys[#keys + 1] = k end
    table.sort(keys)
    for _, k in ipairs(keys) do add("--arg", k .. "=" .. tostring(s.args[k])) end
  end
  if s.limits then add("--limits", s.limits) end
  if s.history == false then add("--no-history") elseif s.history then add("--history", s.history) end
  add("--", s.path)
  return argv
end

function Station:start(slot_no, serial)
  local slot = self.slots[slot_no]
  if slot.state == "running" then return nil, 409, "slot " .. slot_no .. " is busy" end
  local ok, why = self:check_serial(serial)
  if not ok then return nil, 400, why end
  slot.runs = slot.runs + 1
  local tag = string.format("%s/slot%d-%d", self.dir, slot_no, slot.runs)
  local run = { run_id = uuid(), serial = serial, tag = tag, log_path = tag .. ".log", buf = "", seq = 0,
    started_at = sys.now(), t0 = sys.clock() }
  run.json_path = self.s.json and expand(self.s.json, slot_no, serial, run.run_id) or (tag .. ".json")
  local ch, err = slotrun.open_channels(tag, { control = true })
  if not ch then return nil, 500, err end
  run.ch, run.events, run.control = ch, ch.events, ch.control
  run.events_path, run.control_path = ch.paths.events, ch.paths.control
  local argv = self:child_argv(slot, run)
  -- The child's console goes to a log file (kept for the last run), not into memory.
  local handle
  handle, err = slotrun.spawn(string.format("station-slot%d-run%d", slot_no, slot.runs), argv, run.log_path,
    { HPLUA_SLOT = tostring(slot_no), HPLUA_UPLOAD = self.s.upload or false }) -- no password in argv
  if not handle then
    slotrun.close_channels(ch)
    return nil, 500, err
  end
  run.handle = handle
  self.server:watch(run.events:fileno())
  run.watching = true
  run.requests = slotrun.lines(ch.req)
  self.server:watch(ch.req:fileno())
  run.watching_req = true
  self.coord:slot_started(slot_no)
  -- the previous run's events stay for panels that join late; older ones go
  slot.prev_frames, slot.frames = slot.frames, {}
  self.version = (self.version or 0) + 1
  slot.prev_run_id = slot.run_id
  slot.run = run
  slot.state, slot.run_id, slot.serial, slot.status = "running", run.run_id, serial, json.null
  slot.current_test, slot.tests, slot.by_test = json.null, json.array({}), {}
  slot.dialogs, slot.dialog_order = {}, {}
  slot.retest = self.history:seen(serial)
  slot.verdict = nil
  return run.run_id
end

function Station:stop(slot)
  local run = slot.run
  if slot.state ~= "running" or not run or run.stop_at then return end
  run.stop_at = sys.clock() + self.s.stop_grace
  run.stopped = true
  http.kill(run.handle.pid, "TERM")
end

-- ---- events from a child

local function test_entry(slot, id)
  local t = slot.by_test[id]
  if not t then
    t = { id = id, name = id:match("::(.*)$") or id, status = "queued", duration = json.null, message = json.null }
    slot.by_test[id] = t
    slot.tests[#slot.tests + 1] = t
  end
  return t
end

-- Updates the slot's summary state from one event (the panel folds the full stream
-- itself). The test events come as their few members (fold_test), the rest decoded.
local function fold_test(slot, kind, test, name, status, duration, err, skip, text)
  if type(test) ~= "string" then return end
  if kind == "test_started" then
    local e = test_entry(slot, test)
    e.status, e.message, e.duration = "running", json.null, json.null
    if name then e.name = name end
    slot.current_test = test
  elseif kind == "message" then
    test_entry(slot, test).message = text
  elseif kind == "test_finished" then
    local e = test_entry(slot, test)
    e.status, e.duration = status, duration
    if type(err) == "table" and err.message then
      e.message = err.message
    elseif skip then
      e.message = skip
    end
    if slot.current_test == test then slot.current_test = json.null end
  end
end

function Station:fold(slot, ev)
  local t = ev.type
  if t == "run_started" then
    for _, id in ipairs(ev.selected or {}) do test_entry(slot, id) end
  elseif t == "test_started" or t == "message" or t == "test_finished" then
    fold_test(slot, t, ev.test, ev.name, ev.status, ev.duration, ev.error, ev.skip_reason, ev.text)
  elseif t == "dialog_requested" then
    if not slot.dialogs[ev.id] then slot.dialog_order[#slot.dialog_order + 1] = ev.id end
    slot.dialogs[ev.id] = ev
  elseif t == "dialog_answered" then
    slot.dialogs[ev.id] = nil
  elseif t == "run_finished" then
    slot.verdict = ev
    slot.status = ev.status
  end
end

-- Adds one event line to the slot's stream under its id (seq; the next one if it has
-- none), with the slot's number in it. -> false for an id already sent.
function Station:frame(slot, line, seq, has_slot, out)
  local run = slot.run
  if math.type(seq) ~= "integer" then seq = run.seq + 1 end
  if seq <= run.seq then return false end -- never resend an id twice
  run.seq = seq
  if not has_slot then line = '{"slot":' .. slot.slot .. "," .. line:sub(2) end
  local frame = "id: " .. slot.slot .. ":" .. seq .. "\ndata: " .. line .. "\n\n"
  slot.frames[#slot.frames + 1] = { seq = seq, frame = frame }
  self.version = (self.version or 0) + 1
  out[#out + 1] = frame
  return true
end

-- Adds one event (a table) from the station itself, or decoded from the child's line.
-- release: the child's own end, held until its exit status agreed with it.
function Station:emit(slot, line, ev, out, release)
  if type(ev) ~= "table" or type(ev.type) ~= "string" then return end
  if line and ev.type == "run_finished" and not release then
    -- The child's end waits for the child's exit (Station:finish): the exit status is
    -- the verdict, and a panel must never show a PASS that it will take back.
    slot.run.held_end = { line = line, ev = ev }
    return
  end
  local had_slot = ev.slot ~= nil
  if math.type(ev.seq) ~= "integer" then ev.seq = slot.run.seq + 1 end
  if not had_slot then ev.slot = slot.slot end
  if not line then line, had_slot = encode(ev), true end
  if not self:frame(slot, line, ev.seq, had_slot, out) then return end
  if ev.type == "run_finished" then slot.run.finished_event = ev end
  if ev.type == "run_started" then slot.run.started_event = ev end
  self:fold(slot, ev)
end

-- The events the station folds from a few members; the others it folds decode whole
-- (a run's start and end, dialogs), and the rest (measurements, output, processes) it
-- only passes on.
local FROM_MEMBERS = { test_started = true, message = true, test_finished = true, measurement = true, info = true,
  process_started = true, process_ended = true }

-- Adds one event line from the child: most are read for a few members, not decoded.
-- A line with a carriage return (JSON white space, which hplua never writes) is
-- dropped: an EventSource reader would take it for the end of the frame's line.
function Station:emit_line(slot, line, out)
  if line:find("\r", 1, true) then return end
  local ok, seq, kind, sl, test, name, status, duration, err, skip, text = json.members(line, "seq", "type",
    "slot", "test", "name", "status", "duration", "error", "skip_reason", "text")
  if not ok or type(kind) ~= "string" then return end
  if not FROM_MEMBERS[kind] then
    local ev = json.decode(line)
    if ev then self:emit(slot, line, ev, out) end
    return
  end
  if self:frame(slot, line, seq, sl ~= nil, out) then
    fold_test(slot, kind, test, name, status, duration, err, skip, text)
  end
end

-- Lock and barrier requests from the slot's run (lua/coord.lua answers them).
function Station:pump_requests(slot)
  local run = slot.run
  if not (run and run.requests) or run.requests.eof then return end
  local eof = run.requests:pump(function(line)
    local msg = json.decode(line)
    if msg then self.coord:handle(slot.slot, msg) end
  end, run.exited)
  if eof and run.watching_req then
    self.server:watch(run.ch.req:fileno(), true)
    run.watching_req = false
  end
end

-- Reads the child's events and sends them on. While events flow, the station reads
-- them at most every HOLD seconds (the FIFO is off the wait set meanwhile): a run
-- writes a few events per test, and one read, one broadcast and one write per
-- panel for each would cost the station, the panels and the browsers far more CPU
-- than the run itself. now: read whatever there is at once (the run has ended).
function Station:pump(slot, now)
  local run = slot.run
  if not run or not run.events then return end
  self:pump_requests(slot)
  if run.hold_until then
    if not now and sys.clock() < run.hold_until then return end
    run.hold_until = nil
    if not run.eof and not run.watching then
      self.server:watch(run.events:fileno())
      run.watching = true
    end
  end
  local out = {}
  local got = 0
  while true do
    local data, _, code = run.events:read()
    if not data then
      if code ~= "EAGAIN" then run.eof = true end
      break
    end
    if data == "" then
      -- no writer: the child closed the stream (or has not opened it yet)
      if run.got_data or run.exited then run.eof = true end
      break
    end
    run.got_data = true
    run.buf = run.buf .. data
    local pos = 1
    while true do
      local nl = run.buf:find("\n", pos, true)
      if not nl then break end
      local line = run.buf:sub(pos, nl - 1)
      pos = nl + 1
      if line:byte(1) == 123 then self:emit_line(slot, line, out) end -- "{"
    end
    run.buf = run.buf:sub(pos)
    got = got + #data
    if #data < 65536 or (got >= BATCH and not now) then break end
  end
  if #out > 0 then self.server:broadcast(table.concat(out)) end
  if run.eof and run.watching then
    self.server:watch(run.events:fileno(), true)
    run.watching = false
  elseif #out > 0 and not now and not run.eof then
    -- a full batch: more is waiting in the pipe, read on after the panels' turn
    run.hold_until = sys.clock() + (got >= BATCH and 0 or HOLD)
    if run.watching then
      self.server:watch(run.events:fileno(), true)
      run.watching = false
    end
  end
end

-- Ends the slot's stream from the station: a run_error saying why (msg, of kind), then a
-- run_finished with fin's status, exit code, summary and failing test.
function Station:end_stream(slot, out, kind, msg, fin)
  local run = slot.run
  self:emit(slot, nil, { v = 1, time = sys.now(), run_id = run.run_id, type = "run_error", source = "station",
    message = msg, kind = kind }, out)
  fin.v, fin.time, fin.run_id, fin.type, fin.source = 1, sys.now(), run.run_id, "run_finished", "station"
  fin.duration, fin.message = sys.clock() - run.t0, msg
  self:emit(slot, nil, fin, out)
end

-- The child has ended: close the stream (with the station's own events when the
-- child could not), record the run, free the channel.
function Station:finish(slot)
  local run = slot.run
  run.exited = true
  self:pump(slot, true)
  local res = run.handle:collect() or {}
  local out = {}
  local held = run.held_end
  run.held_end = nil
  local fin0 = run.finished_event or (held and held.ev)
  if not fin0 then
    -- The child died without ending its stream (killed, crashed, or failed before
    -- starting it): the station ends it, so every panel sees a verdict.
    local status = run.stopped and "stopped" or "failed"
    local how = res.signal and ("was killed by signal " .. res.signal) or ("exited with status " .. tostring(res.exit_code))
    local msg = run.stopped and "stopped by the operator" or ("the run's process " .. how)
    local last = slotrun.tail_line(run.log_path)
    if not run.stopped and last then msg = msg .. ": " .. last end
    if not run.started_event then
      self:emit(slot, nil, { v = 1, time = sys.now(), run_id = run.run_id, type = "run_started", source = "station",
        serial = run.serial, selected = json.array({}), paths = json.array({ self.s.path }) }, out)
    end
    local summary = { total = #slot.tests, passed = 0, failed = 0, skipped = 0, stopped = 0 }
    for _, t in ipairs(slot.tests) do
      if t.status == "running" then t.status = "stopped" end
      if summary[t.status] then summary[t.status] = summary[t.status] + 1 end
    end
    self:end_stream(slot, out, run.stopped and "stopped" or "crash", msg, { status = status,
      exit_code = run.stopped and 2 or 3, summary = summary,
      caused_failure = slot.current_test ~= json.null and slot.current_test or json.null })
  elseif math.type(res.exit_code) ~= "integer" then
    -- Killed by a signal after its stream's end (which test code may have forged): no
    -- exit status agrees with that end, so it is never sent; the station ends the stream.
    local code = run.stopped and 2 or 3
    local how = res.signal and ("was killed by signal " .. res.signal) or "ended without an exit status"
    self:end_stream(slot, out, run.stopped and "stopped" or "crash", string.format("the run's process %s after its "
      .. "events said %s (exit status %s)", how, tostring(fin0.status), tostring(fin0.exit_code)),
      { status = run.stopped and "stopped" or "failed", exit_code = code, summary = fin0.summary,
        caused_failure = json.null })
  elseif fin0.exit_code ~= res.exit_code then
    -- The stream's end does not say what the process's exit status says (test code can
    -- write to the stream: a forged end, or one whose id took the real end's place).
    -- The exit status is the run's verdict, as every other output's: the station ends
    -- the stream with it, and the panels never see the other.
    local code = res.exit_code
    self:end_stream(slot, out, "error", string.format("the run's process exited with status %d, not %s as its events said",
      code, tostring(fin0.exit_code)), { status = code == 0 and "passed" or code == 2 and "stopped" or "failed",
      exit_code = code, summary = fin0.summary, caused_failure = json.null })
  elseif held then
    self:emit(slot, held.line, held.ev, out, true)
    if not run.finished_event then
      -- its id was taken (test code wrote an event with an id far ahead): the verdict
      -- stands, and the station sends it under the next id
      local ev = held.ev
      self:end_stream(slot, out, "error", string.format("the run's end came under an id already sent (%s)",
        tostring(ev.seq)), { status = ev.status, exit_code = ev.exit_code, summary = ev.summary,
        caused_failure = ev.caused_failure })
    end
  end
  if #out > 0 then self.server:broadcast(table.concat(out)) end
  if run.watching then self.server:watch(run.events:fileno(), true) end
  if run.watching_req then self.server:watch(run.ch.req:fileno(), true) end
  self.coord:slot_ended(slot.slot) -- its locks and barrier places go with it
  slotrun.close_channels(run.ch)
  local fin = run.finished_event
  local report_text = read_file(run.json_path)
  if not (report_text and report_text:match("^%s*{")) then
    local report = { run_id = run.run_id, status = fin.status, exit_code = fin.exit_code, summary = fin.summary,
      caused_failure = fin.caused_failure, started_at = run.started_at, ended_at = sys.now(),
      duration = fin.duration, dut = { serial = run.serial }, note = "the run ended without writing its report",
      tests = slot.tests }
    report_text = encode(report)
  end
  if not self.s.json then os.remove(run.json_path) end
  local caused_msg
  if fin.caused_failure and slot.by_test[fin.caused_failure] then
    caused_msg = slot.by_test[fin.caused_failure].message
  end
  self.history:add({ run_id = run.run_id, serial = run.serial, slot = slot.slot, status = fin.status,
    exit_code = fin.exit_code, started_at = run.started_at, ended_at = sys.now(), duration = sys.clock() - run.t0,
    retest = slot.retest, summary = fin.summary, caused_failure = fin.caused_failure,
    message = caused_msg or fin.message, report = report_text })
  -- keep the last run's console log only
  if slot.last_log then os.remove(slot.last_log) end
  slot.last_log = run.log_path
  slot.state = "finished"
  slot.status = fin.status
  slot.current_test = json.null
  slot.dialogs, slot.dialog_order = {}, {}
  slot.run = nil
  io.stdout:write(string.format("hplua serve: slot %d: run %s serial %s: %s\n", slot.slot, run.run_id, run.serial,
    fin.status))
  io.stdout:flush()
  collectgarbage() -- a run's garbage goes now, between runs, not during the next one
  self.reap_until = sys.clock() + 5 -- the run's orphans (its watchdog) end just after it
end

-- One look at every running child: events, exit, stop deadline.
function Station:tend()
  local keep = {}
  for _, slot in ipairs(self.slots) do
    if slot.run then keep[slot.run.handle.pid] = true end
  end
  http.reap(keep)
  for _, slot in ipairs(self.slots) do
    local run = slot.run
    if run then
      self:pump(slot)
      if not run.handle:alive() then
        self:finish(slot)
      elseif run.stop_at and sys.clock() >= run.stop_at then
        run.stop_at = nil
        run.handle:terminate(0.5) -- still alive after the grace: SIGKILL
        self:finish(slot)
      end
    end
  end
end

-- ---- HTTP API

function Station:state()
  local slots = json.array({})
  for i, slot in ipairs(self.slots) do
    slots[i] = { slot = slot.slot, state = slot.state, run_id = slot.run_id or json.null,
      serial = slot.serial or json.null, status = slot.status or json.null,
      current_test = slot.current_test or json.null, tests = slot.tests, retest = slot.retest or false,
      pid = slot.run and slot.run.handle.pid or json.null,
      pending_dialogs = #self:dialogs(slot) }
  end
  local stand = self.s.stand or {}
  return { station = stand.name or self.hostname, suite = self.suite_name,
    stand = stand, slots = slots, serial_pattern = self.s.serial_pattern, serial_regex = self.js_pattern or json.null,
    stats = self.history:stats(), uploads_pending = self.uploads and self.uploads:pending() or json.null, started_at = self.started, hplua = sys.version }
end

function Station:dialogs(only)
  local out = json.array({})
  for _, slot in ipairs(self.slots) do
    if not only or only == slot then
      for _, id in ipairs(slot.dialog_order) do
        local d = slot.dialogs[id]
        if d then
          out[#out + 1] = { slot = slot.slot, run_id = d.run_id, test = d.test, id = d.id, kind = d.kind or "confirm",
            title = d.title, text = d.text, choices = d.choices, min = d.min, max = d.max,
            image = d.image and ("/api/dialogs/" .. d.id .. "/image?slot=" .. slot.slot) or nil }
        end
      end
    end
  end
  return out
end

local function check_answer(d, v)
  local kind = d.kind or "confirm"
  if v == nil then return nil, "value is missing" end
  if kind == "confirm" or kind == "image" then
    if type(v) ~= "boolean" then return nil, "a confirm dialog takes true or false" end
  elseif kind == "text" then
    if type(v) ~= "string" then return nil, "a text dialog takes a string" end
    if #v > 4096 then return nil, "text longer than 4096 bytes" end
  elseif kind == "number" then
    if type(v) ~= "number" or v ~= v or v == math.huge or v == -math.huge then
      return nil, "a number dialog takes a finite number"
    end
    if d.min and v < d.min then return nil, "at least " .. d.min .. " is needed" end
    if d.max and v > d.max then return nil, "at most " .. d.max .. " is allowed" end
  elseif kind == "choice" then
    local ok = false
    for _, c in ipairs(d.choices or {}) do ok = ok or c == v end
    if not ok then return nil, "the value must be one of the choices" end
  elseif kind == "multi" then
    if type(v) ~= "table" or (next(v) ~= nil and #v == 0) then return nil, "a multi dialog takes a list of choices" end
    local seen = {}
    for _, x in ipairs(v) do
      local ok = false
      for _, c in ipairs(d.choices or {}) do ok = ok or c == x end
      if not ok then return nil, "every value must be one of the choices" end
      if seen[x] then return nil, "a choice is given twice" end
      seen[x] = true
    end
  else
    return nil, "unknown dialog kind " .. tostring(kind)
  end
  return true
end

function Station:find_dialog(id, slot_no)
  for _, slot in ipairs(self.slots) do
    if (not slot_no or slot.slot == slot_no) and slot.dialogs[id] and slot.run then return slot, slot.dialogs[id] end
  end
end

function Station:answer(id, body)
  local slot, d = self:find_dialog(id, body.slot)
  if not slot then return reply(404, { error = "no pending dialog " .. id }) end
  local ok, why = check_answer(d, body.value)
  if not ok then return reply(400, { error = why }) end
  local value = body.value
  if d.kind == "multi" then value = json.array(value) end
  local line = encode({ type = "dialog_answer", id = id, value = value }) .. "\n"
  local n, err = slot.run.control:write(line)
  if n ~= #line then return reply(503, { error = "the run does not take answers: " .. tostring(err) }) end
  slot.dialogs[id] = nil -- answered; the child confirms with dialog_answered
  return reply(200, { ok = true, id = id, value = value })
end

local IMAGE_TYPES = { png = "image/png", jpg = "image/jpeg", jpeg = "image/jpeg", gif = "image/gif",
  webp = "image/webp", bmp = "image/bmp", svg = "image/svg+xml" }

-- The image of a pending image dialog: the one file a dialog names, nothing else.
function Station:dialog_image(id, slot_no)
  local slot, d = self:find_dialog(id, slot_no)
  if not slot or type(d.image) ~= "string" then return reply(404, { error = "no pending image dialog " .. id }) end
  local path = d.image
  if path:sub(1, 1) ~= "/" then path = self.s.path .. "/" .. path end
  local ext = (path:match("%.(%w+)$") or ""):lower()
  local ctype = IMAGE_TYPES[ext]
  if not ctype then return reply(415, { error = "not an image file type: " .. ext }) end
  local data = read_file(path, 32 * 1024 * 1024)
  if not data then return reply(404, { error = "image file not found" }) end
  return 200, data, ctype, { ["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'" }
end

-- Event-stream replay: without Last-Event-ID every slot's previous and current run;
-- with "S:N", slot S from after seq N (the others in full; the panel drops repeats).
function Station:replay(last_id)
  -- panels joining together share one replay string (the C side borrows it)
  local key = last_id or ""
  local cache = self.replay_cache
  if cache and cache.key == key and cache.version == self.version then return cache.text end
  local text = self:build_replay(last_id)
  self.replay_cache = { key = key, version = self.version, text = text }
  return text
end

function Station:build_replay(last_id)
  local ls, ln = (last_id or ""):match("^(%d+):(%d+)$")
  ls, ln = tonumber(ls), tonumber(ln)
  local parts = { "retry: 1000\n\n" }
  for _, slot in ipairs(self.slots) do
    local function add(frames, after)
      for _, f in ipairs(frames) do
        if not after or f.seq > after then parts[#parts + 1] = f.frame end
      end
    end
    if ls == slot.slot then
      local cur_max = #slot.frames > 0 and slot.frames[#slot.frames].seq or 0
      if ln > cur_max then
        add(slot.prev_frames, ln) -- the client was still on the previous run
        add(slot.frames)
      else
        add(slot.frames, ln)
      end
    else
      add(slot.prev_frames)
      add(slot.frames)
    end
  end
  return table.concat(parts)
end

local function decode_body(req)
  local body = req.body or ""
  if body:find("^%s*$") then return {} end
  if http.json_depth(body, 64) > 16 then return nil, "JSON nested too deeply" end
  local v, err = json.decode(body)
  if v == nil then return nil, "malformed JSON: " .. tostring(err) end
  if type(v) ~= "table" or getmetatable(v) then return nil, "a JSON object is needed" end
  return v
end

local function slot_arg(st, v)
  if v == nil then return nil end
  if math.type(v) ~= "integer" or not st.slots[v] then return false end
  return v
end

function Station:handle(req)
  local m, p = req.method, req.path
  local get = m == "GET" or m == "HEAD"
  if p == "/api/state" and get then
    return reply(200, self:state())
  elseif p == "/api/events" and get then
    return "stream", self:replay(req.last_event_id or req.query.last_event_id)
  elseif p == "/api/dialogs" and get then
    return reply(200, self:dialogs())
  elseif p == "/api/runs" and get then
    local limit = tonumber(req.query.limit or "50")
    if not limit or limit < 1 or math.type(limit) ~= "integer" then return reply(400, { error = "limit must be a positive integer" }) end
    local serial = req.query.serial
    if serial == "" then serial = nil end
    return reply(200, self.history:list(serial, math.min(limit, RUNS_KEPT)))
  elseif p:match("^/api/runs/[^/]+$") and get then
    local report = self.history:get(p:match("^/api/runs/([^/]+)$"))
    if not report then return reply(404, { error = "no such run" }) end
    return 200, report
  elseif p:match("^/api/dialogs/[^/]+/image$") and get then
    return self:dialog_image(p:match("^/api/dialogs/([^/]+)/image$"), tonumber(req.query.slot))
  end
  if m ~= "POST" then
    if p == "/api/start" or p == "/api/stop" or p:match("^/api/dialogs/[^/]+$") then
      return 405, encode({ error = "use POST" }), "application/json", { Allow = "POST" }
    end
    return reply(404, { error = "no such API call" })
  end
  local body, err = decode_body(req)
  if not body then return reply(400, { error = err }) end
  if p == "/api/start" then
    local slot_no = slot_arg(self, body.slot)
    if slot_no == false then return reply(400, { error = "no such slot" }) end
    if slot_no == nil then
      -- the first idle slot (slot 1 with one slot)
      for _, slot in ipairs(self.slots) do
        if slot.state ~= "running" then slot_no = slot.slot; break end
      end
      if not slot_no then
        local ok, why = self:check_serial(body.serial)
        if not ok then return reply(400, { error = why }) end
        return reply(409, { error = "every slot is busy" })
      end
    end
    local run_id, code, why = self:start(slot_no, body.serial)
    if not run_id then return reply(code, { error = why }) end
    return reply(202, { run_id = run_id, slot = slot_no })
  elseif p == "/api/stop" then
    local slot_no = slot_arg(self, body.slot)
    if slot_no == false then return reply(400, { error = "no such slot" }) end
    local stopped = json.array({})
    for _, slot in ipairs(self.slots) do
      if (not slot_no or slot.slot == slot_no) and slot.state == "running" then
        self:stop(slot)
        stopped[#stopped + 1] = slot.slot
      end
    end
    return reply(202, { stopping = stopped })
  elseif p:match("^/api/dialogs/[^/]+$") then
    if body.slot ~= nil and not slot_arg(self, body.slot) then return reply(400, { error = "no such slot" }) end
    return self:answer(p:match("^/api/dialogs/([^/]+)$"), body)
  end
  return reply(404, { error = "no such API call" })
end

-- ---- the loop

function Station:next_timeout()
  local t = self.server:timeout()
  local clients = self.server:clients()
  if clients > 0 then
    local k = self.last_keepalive + KEEPALIVE - sys.clock()
    t = t and math.min(t, k) or k
  end
  for _, slot in ipairs(self.slots) do
    if slot.run then
      -- the stream has ended: the child exits any moment now
      local poll = (slot.run.eof or slot.run.held_end or slot.run.finished_event) and 0.02 or CHILD_POLL
      t = t and math.min(t, poll) or poll
      if slot.run.hold_until then t = math.min(t, slot.run.hold_until - sys.clock()) end
      if slot.run.stop_at then t = math.min(t, slot.run.stop_at - sys.clock()) end
    end
  end
  if self.reap_until then
    if sys.clock() < self.reap_until then
      t = t and math.min(t, 0.1) or 0.1
    else
      self.reap_until = nil
    end
  end
  if self.uploads then
    local u = self.uploads.next_try - sys.clock()
    t = t and math.min(t, u) or u
  end
  if t and t < 0 then t = 0 end
  return t or -1
end

function Station:loop()
  while not self.quit do
    sys.wait_readable(self.server:fd(), self:next_timeout())
    self.server:run()
    self:tend()
    if self.uploads then self.uploads:tick() end
    if self.server:clients() > 0 and sys.clock() - self.last_keepalive >= KEEPALIVE then
      self.server:broadcast(": keepalive\n\n")
      self.last_keepalive = sys.clock()
    end
    self.server:run()
    if sys.interrupted() then break end
  end
end

-- Stops every run, waits for the children (their reports are written), closes.
function Station:shutdown()
  for _, slot in ipairs(self.slots) do self:stop(slot) end
  local deadline = sys.clock() + self.s.stop_grace
  for _, slot in ipairs(self.slots) do
    local run = slot.run
    if run then
      run.handle:wait(math.max(0, deadline - sys.clock()))
      if run.handle:alive() then run.handle:terminate(0.5) end
      self:finish(slot)
    end
  end
  self.server:run()
  self.server:close()
  for _, slot in ipairs(self.slots) do
    if slot.last_log then os.remove(slot.last_log) end
  end
  os.remove(self.dir)
  if self.uploads then self.uploads:close() end
end

function M.main(args)
  local cli, err = M.parse(args)
  if not cli then
    io.stderr:write("hplua serve: error: " .. err .. " (see hplua serve --help)\n")
    return EXIT_USAGE
  end
  if cli.help then
    io.stdout:write(M.USAGE)
    return EXIT_OK
  end
  -- the station's heap is modules, the runs' replays and a little state; its garbage
  -- is each event's short-lived strings and tables: a generational collector frees
  -- those young, without letting the heap grow to twice what it keeps
  collectgarbage("generational")
  local s
  s, err = settings(cli)
  if not s then
    io.stderr:write("hplua serve: error: " .. err .. "\n")
    return EXIT_USAGE
  end
  local problem = require("hplua.slots").report_problem(s.json, s.junit, s.slots)
  if problem then
    io.stderr:write("hplua serve: error: " .. problem .. "\n")
    return EXIT_USAGE
  end
  local kind = sys.kind(s.path)
  if not kind then
    io.stderr:write("hplua serve: error: path not found: " .. s.path .. "\n")
    return EXIT_USAGE
  end
  if s.upload and not require("hplua.upload").valid_url(s.upload) then
    io.stderr:write("hplua serve: error: --upload needs a postgresql://USER@HOST[:PORT]/DB URL, got '" .. s.upload .. "'\n")
    return EXIT_USAGE
  end
  if not is_loopback(s.bind) and not s.token then
    io.stderr:write("hplua serve: error: --bind " .. s.bind .. " is reachable from other machines: "
      .. "give --token T (or HPLUA_TOKEN) so every request must carry it\n")
    return EXIT_USAGE
  end
  local st = Station.new(s)
  local dir
  dir, err = http.private_dir("hplua-station")
  if not dir then
    io.stderr:write("hplua serve: error: " .. err .. "\n")
    return EXIT_FAILED
  end
  st.dir = dir
  local server
  -- HPLUA_SERVE_SSE_LIMIT: bytes a panel may fall behind before it is dropped (tests)
  server, err = http.server { bind = s.bind, port = s.port, token = s.token,
    sse_limit = math.tointeger(tonumber(os.getenv("HPLUA_SERVE_SSE_LIMIT") or "")) or 4 * 1024 * 1024,
    handler = function(req) return st:handle(req) end }
  if not server then
    os.remove(dir)
    io.stderr:write("hplua serve: error: " .. err .. "\n")
    return EXIT_FAILED
  end
  st.server = server
  local host = s.bind:find(":", 1, true) and ("[" .. s.bind .. "]") or s.bind
  io.stdout:write(string.format("hplua serve: station %q, suite %s: http://%s:%d/\n", st:state().station,
    s.path, host, server:port()))
  io.stdout:flush()
  local ok, info = sys.run_guarded(function() st:loop() end, nil, 0)
  if not ok and info.kind ~= "interrupt" then
    io.stderr:write("hplua serve: internal error: " .. tostring(info.message) .. "\n" .. (info.traceback or ""))
  end
  st:shutdown()
  io.stdout:write("hplua serve: station stopped\n")
  if ok or info.kind == "interrupt" then return EXIT_OK end
  return 3
end

M.Station = Station
M.is_loopback = is_loopback -- the hub (lua/hub.lua) keeps the same rule
M.History = History
M.DbHistory = DbHistory
return M
