-- hplua.slots: `hplua --slots N [PATH]` (API 10). A supervisor that runs the suite
-- once per slot, each in its own child hplua (--slot i, the i-th --serial, its
-- events and its lock/barrier channel on FIFOs: lua/slotrun.lua), so a slot's
-- crash, hang or SIGKILL never disturbs the others. It shows one live line per
-- slot (plain log lines when stdout is not a terminal), grants hp.lock and
-- hp.barrier (lua/coord.lua), then prints each slot's summary; the exit status is
-- the worst slot's. Ctrl-C stops every slot and leaves no process behind.
--
-- One loop, no busy polling: it waits in the event loop on one descriptor (an
-- epoll set of every slot's request FIFO, and of a second set holding the event
-- FIFOs), so a lock request is answered as it comes. Events only feed the console,
-- so they are read in batches: after a read the event set leaves the wait for
-- EVENTS_EVERY, and what the slots write meanwhile is read in one turn (a slot's
-- events cost the supervisor a wake per batch, not one per event).
local sys = require "hplua.sys"
local json = require "hplua.json"
local http = require "hplua.http"
local slotrun = require "hplua.slotrun"
local coord = require "hplua.coord"
local esc = require("hplua.text").escape_control

local M = {}

local EXIT_USAGE, EXIT_INTERRUPTED, EXIT_INTERNAL, EXIT_FAILED = 4, 2, 3, 1
local CHILD_POLL = 0.5  -- seconds between liveness checks of the children
local STOP_GRACE = 4    -- seconds an interrupted slot gets before SIGKILL (Ctrl-C ends all in 5 s)
local REDRAW = 0.1      -- seconds between redraws of the live lines
local EXIT_POLL = 0.02   -- seconds between looks at a child whose streams ended (it exits any moment now)
-- seconds between two reads of the slots' event FIFOs while they write: as often as the
-- live lines are redrawn, or the --events copy is read by others; less often for log
-- lines; with -q only to keep the FIFOs from filling (they hold 1 MiB, at least 64 KiB)
local EVENTS_EVERY = { live = REDRAW, copy = 0.1, log = 0.25, quiet = 0.5 }
local EVENTS_BUSY, EVENTS_BUSY_BYTES = 0.01, 16384 -- ... after a read of that many bytes from one

local SIGNALS = { [2] = "SIGINT", [6] = "SIGABRT", [9] = "SIGKILL", [11] = "SIGSEGV", [15] = "SIGTERM" }

-- How bad an exit status is: the worst slot's is the supervisor's.
local SEVERITY = { [0] = 0, [5] = 1, [1] = 2, [2] = 3, [3] = 4, [4] = 5 }

local function worse(a, b)
  return (SEVERITY[b] or 4) > (SEVERITY[a] or 4) and b or a
end
M.worse = worse

local function usage_error(msg)
  io.stderr:write("hplua: error: " .. msg .. " (see hplua --help)\n")
  return EXIT_USAGE
end

-- Options the supervisor sets per slot itself; the rest pass to every child as given.
local OWN = { ["--slots"] = true, ["--serial"] = true, ["--json"] = true, ["--junit"] = true, ["--events"] = true,
  ["--color"] = true, ["--run-id"] = true, ["--slot"] = true, ["--coord"] = true, ["--control"] = true }

-- The options of the command line every child gets (without the paths).
local function passed_options(argv)
  local takes_value = require("hplua.cli").TAKES_VALUE
  local out, i = {}, 1
  while i <= #argv do
    local a = argv[i]
    if a == "--" then break end
    local name, value = a:match("^(%-%-[%w-]+)=(.*)$")
    name = name or a
    local sep = takes_value[name] and value == nil -- the value is the next word
    if OWN[name] then
      if sep then i = i + 1 end
    elseif name:sub(1, 1) == "-" and #name > 1 then
      out[#out + 1] = a
      if sep then
        i = i + 1
        out[#out + 1] = argv[i]
      end
    end
    i = i + 1
  end
  return out
end
M.passed_options = passed_options

-- Report paths that several slots would share (API 10): a message, or nil.
-- Used by `hplua serve --slots N` too.
function M.report_problem(json_path, junit_path, n)
  if n <= 1 then return nil end
  for _, o in ipairs { { "--json", json_path }, { "--junit", junit_path } } do
    local p = o[2]
    if p and not (p:find("{slot}", 1, true) or p:find("{run_id}", 1, true)) then
      return string.format("%s %s with --slots %d: every slot would write the same file; put {slot} or {run_id} " ..
        "in the path (e.g. %s)", o[1], p, n, p:match("%.%w+$") and p:gsub("(%.%w+)$", "-{slot}%1") or (p .. "-{slot}"))
    end
  end
end

-- A usage problem of --slots before anything starts, or nil.
function M.check(opts)
  if opts.tap then return "--tap cannot be used with --slots (each slot has its own report: use --json or --junit)" end
  local problem = M.report_problem(opts.json, opts.junit, opts.slots)
  if problem then return problem end
  for _, p in ipairs(opts.paths) do
    local kind, err = sys.kind(p)
    if not kind then return err:find("No such file", 1, true) and ("path not found: " .. p) or err end
  end
end

-- ---------------------------------------------------------------- one slot

local function new_slot(i, serial)
  return { slot = i, serial = serial, state = "starting", total = 0, passed = 0, failed = 0, skipped = 0,
    stopped = 0, failures = {}, current = nil, status = nil, exit_code = nil }
end

-- Folds one event of the slot's stream into its line and summary.
local function fold(slot, ev)
  local t = ev.type
  if t == "run_started" then
    slot.state = "running"
    slot.total = ev.selected and #ev.selected or 0
    slot.serial = slot.serial or (ev.serial ~= json.null and ev.serial or nil)
  elseif t == "test_started" then
    slot.current = ev.test
  elseif t == "test_finished" then
    local st = ev.status
    if slot[st] then slot[st] = slot[st] + 1 end
    if st == "failed" or st == "stopped" then
      local e = ev.error
      slot.failures[#slot.failures + 1] = { test = ev.test, status = st,
        message = type(e) == "table" and e.message or nil }
    end
    if slot.current == ev.test then slot.current = nil end
    return "test"
  elseif t == "collection_error" then
    slot.failures[#slot.failures + 1] = { test = (ev.file or "?") .. ":" .. tostring(ev.line or 0),
      status = "error", message = ev.message }
  elseif t == "run_finished" then
    slot.finished = ev
    slot.status, slot.exit_code = ev.status, ev.exit_code
    slot.current = nil
  end
end

-- ---------------------------------------------------------------- the supervisor

local Sup = {}
Sup.__index = Sup

function Sup:label(slot)
  return string.format("slot %d%s", slot.slot, slot.serial and (" " .. esc(slot.serial)) or "")
end

function Sup:paint(code, s)
  if not self.color then return s end
  return "\27[" .. code .. "m" .. s .. "\27[0m"
end

local STATUS_COLOR = { passed = "32", failed = "31", stopped = "35", aborted = "35", skipped = "33" }

function Sup:live_line(slot)
  local counts = string.format("%d passed, %d failed", slot.passed, slot.failed)
  if slot.skipped > 0 then counts = counts .. ", " .. slot.skipped .. " skipped" end
  local what
  if slot.status then
    what = self:paint(STATUS_COLOR[slot.status] or "1", slot.status:upper())
  elseif slot.current then
    what = "running " .. esc(slot.current)
  else
    what = slot.state
  end
  local done = slot.passed + slot.failed + slot.skipped + slot.stopped
  local line = string.format("%-18s %3d/%-3d %s  %s", self:label(slot), done, slot.total, counts, what)
  return line
end

function Sup:log(s)
  io.stdout:write(s, "\n")
  io.stdout:flush()
end

-- The live lines: redrawn in place on a terminal.
function Sup:draw(force)
  if not self.live then return end
  local now = sys.clock()
  if not force and self.drawn_at and now - self.drawn_at < REDRAW then
    self.redraw_due = true
    return
  end
  self.drawn_at, self.redraw_due = now, false
  local out = {}
  if self.drawn then out[1] = string.format("\27[%dA", #self.slots) end
  for _, slot in ipairs(self.slots) do
    local line = self:live_line(slot)
    out[#out + 1] = "\r\27[2K" .. line:sub(1, self.width) .. "\n"
  end
  self.drawn = true
  io.stdout:write(table.concat(out))
  io.stdout:flush()
end

-- The event types the console folds; the rest pass through undecoded.
local FIELDS = { type = true, selected = true, serial = true, test = true, status = true, error = true, file = true,
  line = true, message = true, duration = true }
local FOLDED = { run_started = true, test_started = true, test_finished = true, collection_error = true,
  run_finished = true }

-- The members that end a test's events (keys are sorted, values without quotes or
-- backslashes match exactly what decoding gives): most events are read from these,
-- looked for in the line's last TAIL bytes only (a longer test id is decoded). Each
-- pattern is anchored where a plain search finds its first key: an unanchored one
-- would be tried at every byte of the tail.
local TYPE_TAIL = '^"type":"([%w_]+)","v":%d+}$'
local TEST_TAIL = '"test":"([^"\\]*)","time":"[^"]*","type":"test_%l+","v":%d+}$'
local STATUS_TAIL = '^"status":"(%l+)",' .. TEST_TAIL
TEST_TAIL = "^" .. TEST_TAIL
local TAIL = 400

-- pattern (anchored) matched where the plain text key starts, from init on; -> its captures
local function match_at(line, key, pattern, init)
  while true do
    local at = line:find(key, init, true)
    if not at then return nil end
    local a, b = line:match(pattern, at)
    if a then return a, b end
    init = at + 1
  end
end

-- The event as fold and the log need it, from the line's tail where that is enough
-- (a test's start; a passed or skipped test that is not logged), else decoded; nil
-- for an event the console does not fold. test_log: which finished tests get a log
-- line (with the duration): nil (none: a live or quiet console), "failures" or "all".
local function event_of(line, test_log)
  -- the event's own "type" is among its last members: look at the tail, not through a
  -- whole process_ended with its output
  local n = #line
  local kind = match_at(line, '"type":"', TYPE_TAIL, math.max(1, n - 60))
  if kind == "test_started" then
    local test = match_at(line, '"test":"', TEST_TAIL, math.max(1, n - TAIL))
    if test then return { type = kind, test = test } end
  elseif kind == "test_finished" then
    local status, test = match_at(line, '"status":"', STATUS_TAIL, math.max(1, n - TAIL))
    local logged = test_log == "all" or (test_log == "failures" and status ~= "passed")
    if (status == "passed" or status == "skipped") and not logged then
      return { type = kind, status = status, test = test }
    end
  elseif kind then
    if not FOLDED[kind] then return nil end
  else
    -- every "type" member of the last 160 bytes (nested ones too), else of the whole line
    local wanted, seen = false, false
    for _, from in ipairs { math.max(1, n - 160), 1 } do
      local at = line:find('"type":"', from, true)
      while at do
        local t = line:match('^"type":"([%w_]+)"', at)
        if t then seen, wanted = true, wanted or FOLDED[t] end
        at = line:find('"type":"', at + 1, true)
      end
      if seen or from == 1 then break end
    end
    if not wanted then return nil end
  end
  -- what fold and the log use: a test's record (messages, measurements, output) is left undecoded
  local ev = json.decode(line, not line:find('"type":"run_finished"', 1, true) and FIELDS or nil)
  if type(ev) ~= "table" or type(ev.type) ~= "string" then return nil end
  return ev
end
M.event_of = event_of

function Sup:on_event(slot, line)
  local ev = event_of(line, self.test_log)
  if not ev then return end
  local what = fold(slot, ev)
  if self.live then
    self.dirty = true
  elseif not self.quiet then
    if ev.type == "run_started" then
      self:log(string.format("%s: started, %d test%s", self:label(slot), slot.total, slot.total == 1 and "" or "s"))
    elseif what == "test" and (self.verbose or ev.status ~= "passed") then
      self:log(string.format("%s: %s %s (%.2f s)", self:label(slot), tostring(ev.status):upper(), esc(tostring(ev.test)),
        tonumber(ev.duration) or 0))
    end
  end
end

function Sup:start_slot(slot)
  local tag = string.format("%s/slot%d", self.dir, slot.slot)
  local ch, err = slotrun.open_channels(tag, { releases = true })
  if not ch then return nil, err end
  slot.ch, slot.log_path = ch, tag .. ".log"
  slot.run_id = require("hplua.events").uuid()
  local argv = { self.exe, "--slot", tostring(slot.slot), "--run-id", slot.run_id, "--events", ch.paths.events,
    "--coord", tag, "--color", "never" }
  local function add(...) for _, v in ipairs { ... } do argv[#argv + 1] = tostring(v) end end
  if slot.serial then add("--serial", slot.serial) end
  local history = require "hplua.history"
  local place = { run_id = slot.run_id, serial = slot.serial, slot = slot.slot, started_at = self.started_at }
  for _, key in ipairs { "json", "junit" } do
    if self.opts[key] then
      local path, perr = history.expand_placeholders(self.opts[key], place)
      if not path then return nil, "--" .. key .. ": " .. perr end
      slot[key] = path
      add("--" .. key, path)
    end
  end
  for _, a in ipairs(self.passed) do argv[#argv + 1] = a end
  add("--")
  for _, p in ipairs(self.opts.paths) do argv[#argv + 1] = p end
  slot.handle, err = slotrun.spawn("slot" .. slot.slot, argv, slot.log_path, { HPLUA_SLOT = tostring(slot.slot) })
  if not slot.handle then
    slotrun.close_channels(ch)
    return nil, err
  end
  slot.events = slotrun.lines(ch.events)
  slot.requests = slotrun.lines(ch.req)
  slot.releases = slotrun.lines(ch.rel)
  slot.watching = {}
  self:watch(slot, "events")
  self:watch(slot, "req")
  slot.t0 = sys.clock()
  self.n_running = self.n_running + 1
  self.coord:slot_started(slot.slot)
  return true
end

-- Where the slot's channel which ("events", "req" or "rel") is found by its fd, and
-- the set that waits on it (events have a set of their own, read in batches).
function Sup:index_of(which)
  if which == "events" then return self.by_events, self.evset end
  return which == "rel" and self.by_rel or self.by_fd, self.set
end

function Sup:watch(slot, which)
  if not slot.watching[which] then
    local fd = slot.ch[which]:fileno()
    local by, set = self:index_of(which)
    by[fd] = slot
    set:add(fd)
    slot.watching[which] = true
  end
end

function Sup:unwatch(slot, which)
  if slot.watching[which] then
    local fd = slot.ch[which]:fileno()
    local by, set = self:index_of(which)
    by[fd] = nil
    set:remove(fd)
    slot.watching[which] = false
  end
end

-- Reads the events the slot's child has written (and copies them to --events in one write).
function Sup:pump_events(slot, ended)
  local copy = self.events_fd and {}
  if slot.events:pump(function(line)
    if line:sub(1, 1) ~= "{" then return end
    if copy then copy[#copy + 1] = line end
    self:on_event(slot, line)
  end, ended) then
    self:unwatch(slot, "events")
  end
  if copy and #copy > 0 then
    copy[#copy + 1] = ""
    local ok, werr = sys.write(self.events_fd, table.concat(copy, "\n"))
    if not ok then
      -- a full disk, a reader gone: said once, no more written, and the run fails (the
      -- slots' own reports are theirs; the exit status is the supervisor's)
      io.stderr:write("hplua: error: --events " .. self.opts.events .. ": " .. tostring(werr) .. "\n")
      if self.events_owned then sys.close(self.events_fd) end
      self.events_fd, self.events_owned, self.events_failed = nil, false, true
    end
  end
  self:note_ending(slot)
end

-- A slot whose streams ended (or whose run finished) exits any moment now: it joins
-- the few the loop looks at every EXIT_POLL (the rest only every CHILD_POLL).
function Sup:note_ending(slot)
  if not slot.done and not self.ending[slot] and (slot.events.eof or slot.requests.eof or slot.finished) then
    self.ending[slot] = true
  end
end

-- A request line (lua/slotlink.lua) as a table: the plain ones read with patterns, the
-- rest (names with quotes or backslashes) decoded.
local function request_of(line)
  if line == '{"type":"release_all"}' then return { type = "release_all" } end
  local name = line:match('^{"name":"([^"\\]*)","type":"unlock"}$')
  if name then return { type = "unlock", name = name } end
  local id, test, kind
  id, name, test, kind = line:match('^{"id":(%d+),"name":"([^"\\]*)","test":"([^"\\]*)","type":"(%l+)"}$')
  if id then return { type = kind, id = math.tointeger(tonumber(id)), name = name, test = test } end
  return json.decode(line)
end
M.request_of = request_of

-- Hands every line of the slot's channel which ("req" or "rel") to coord; at the
-- channel's end, takes it out of the wait. ended: an empty read is the writer's end
-- (the channel was reported ready, or the child has ended).
local LINES_OF = { req = "requests", rel = "releases" }
function Sup:pump_coord(slot, which, ended)
  if slot[LINES_OF[which]]:pump(function(line)
    local msg = request_of(line)
    if type(msg) == "table" then self.coord:handle(slot.slot, msg) end
  end, ended) then
    self:unwatch(slot, which)
  end
end

-- Unlocks come on a channel of their own that is read only when they matter: before a
-- request is answered (the locks' true state: a stale holder would delay a grant or
-- make up a wait cycle), and, while another slot waits for a lock, as they come (the
-- holder's channel is in the wait). An uncontended lock then costs one wake, not two.
-- ready: the channel was reported ready (a slot that died holding a lock: its
-- channel leaves the wait).
function Sup:pump_releases(slot, ready) self:pump_coord(slot, "rel", ready) end

-- Reads the unlocks of every slot that holds a lock.
function Sup:drain_releases()
  for _, l in pairs(self.coord.locks) do
    local slot = l.holder and self.slots[l.holder]
    if slot and slot.releases and not slot.done and not slot.releases.eof then self:pump_releases(slot) end
  end
end

-- Puts the unlock channels of the holders that others wait for into the wait; the rest out.
function Sup:watch_releases()
  local want = {}
  for _, l in pairs(self.coord.locks) do
    if l.holder and #l.queue > 0 then want[l.holder] = true end
  end
  for _, slot in ipairs(self.slots) do
    local on = (want[slot.slot] and slot.releases and not slot.releases.eof and not slot.done) or false
    if slot.watching then
      if on then self:watch(slot, "rel") else self:unwatch(slot, "rel") end
    end
  end
end

-- Reads and answers the slot's lock/barrier requests.
function Sup:pump_requests(slot, ended)
  self:pump_coord(slot, "req", ended)
  self:note_ending(slot)
end

-- Reads all the slot's child has written: events, then lock/barrier requests.
function Sup:pump(slot, ended)
  self:pump_events(slot, ended)
  self:pump_requests(slot, ended)
end

-- Puts the event set into the wait (an event wakes the loop at once) or takes it out.
function Sup:watch_events(on)
  if self.events_watched == on then return end
  if on then self.set:add(self.evset:fileno()) else self.set:remove(self.evset:fileno()) end
  self.events_watched = on
end

-- The slot's process has ended: the rest of its lines, its verdict, its locks freed.
function Sup:finish(slot)
  local res = slot.handle:collect() or {}
  self:pump(slot, true)
  self.coord:slot_ended(slot.slot)
  self:unwatch(slot, "events")
  self:unwatch(slot, "req")
  self:unwatch(slot, "rel")
  self:watch_releases() -- what it held may have gone to another slot
  slot.done = true
  self.ending[slot] = nil
  self.n_running = self.n_running - 1
  slot.duration = sys.clock() - slot.t0
  if not slot.finished then
    -- killed, crashed or ended before its stream did: aborted, with what it finished
    local how, last
    if res.signal then
      how = "was killed by " .. (SIGNALS[res.signal] or ("signal " .. tostring(res.signal)))
    else
      how = "exited with status " .. tostring(res.exit_code)
      last = slotrun.tail_line(slot.log_path) -- its last words (an error before its stream began)
    end
    slot.status = "aborted"
    slot.abort_reason = "its process " .. how .. (last and (": " .. esc(last)) or "")
    local code = res.exit_code
    slot.exit_code = (not res.signal and code and code >= 1 and code <= 5) and code
      or (res.signal and EXIT_INTERRUPTED) or EXIT_INTERNAL
    if slot.current then slot.aborted_test = slot.current end
    self.lost = true
  end
  slotrun.close_channels(slot.ch)
  if self.live then
    self:draw(true)
  elseif not self.quiet then
    self:log(string.format("%s: %s%s", self:label(slot), slot.status:upper(),
      slot.abort_reason and (" (" .. slot.abort_reason .. ")") or ""))
  end
end

function Sup:running() return self.n_running end

-- Reads the slots whose FIFOs are ready; with check_alive, looks at every child.
-- Requests are answered at once; events are read when the event set woke the loop,
-- or while it is out of the wait, along with requests or every EVENTS_EVERY.
function Sup:tend(check_alive)
  local events_ready, requests, released = false, false, false
  local evset_fd = self.evset:fileno()
  for _, fd in ipairs(self.set:ready() or {}) do
    if fd == evset_fd then
      events_ready = true
    elseif self.by_rel[fd] then
      local slot = self.by_rel[fd]
      if not slot.done then self:pump_releases(slot, true) end
      released = true
    else
      local slot = self.by_fd[fd]
      if slot and not slot.done then
        -- the unlocks the holders wrote before (this slot's own among them): a stale
        -- holder would be granted its lock again ahead of those waiting for it
        self:drain_releases()
        -- (ready, so an empty read is the writer's end)
        self:pump_requests(slot, true)
        requests = true
        -- the child closes its request channel after its events: read them now
        if slot.requests.eof then self:pump_events(slot, true) end
      end
    end
  end
  if requests or released then self:watch_releases() end
  local now = sys.clock()
  if events_ready or (not self.events_watched and (requests or now >= self.events_due)) then
    local read, busy = false, false
    for _, fd in ipairs(self.evset:ready() or {}) do
      local slot = self.by_events[fd]
      if slot and not slot.done then
        self:pump_events(slot, true)
        read, busy = true, busy or (slot.events.got or 0) >= EVENTS_BUSY_BYTES
      end
    end
    -- something came: the next batch in EVENTS_EVERY (sooner for a slot that writes a lot,
    -- so that it never waits on a full pipe for long); nothing: the next event wakes the loop
    if read then self.events_due = now + (busy and EVENTS_BUSY or self.events_every) end
    self:watch_events(not read)
  end
  -- alive() is a turn of the engine (two system calls): every CHILD_POLL, and every
  -- EXIT_POLL for a child whose streams have ended
  if check_alive then
    for _, slot in ipairs(self.slots) do
      if slot.handle and not slot.done then self:look_at(slot, now) end
    end
  elseif next(self.ending) then
    for slot in pairs(self.ending) do
      if now >= (slot.exit_at or 0) then self:look_at(slot, now) end
    end
  end
  if self.dirty or self.redraw_due then
    self.dirty = false
    self:draw()
  end
end

-- Is the slot's child still alive? (An ending one is looked at again in EXIT_POLL.)
function Sup:look_at(slot, now)
  if not slot.handle:alive() then
    self:finish(slot)
  elseif self.ending[slot] then
    slot.exit_at = now + EXIT_POLL
  end
end

function Sup:next_timeout()
  local t = CHILD_POLL
  local now = sys.clock()
  for slot in pairs(self.ending) do t = math.min(t, math.max(0, (slot.exit_at or 0) - now)) end
  if self.redraw_due then t = math.min(t, REDRAW) end
  if not self.events_watched then t = math.min(t, math.max(0, self.events_due - now)) end
  return t
end

function Sup:loop()
  local last_check = sys.clock()
  while self:running() > 0 do
    sys.wait_readable(self.set:fileno(), self:next_timeout())
    local now = sys.clock()
    local check = now - last_check >= CHILD_POLL
    if check then last_check = now end
    self:tend(check)
    -- Ctrl-C/SIGTERM wake the wait (the event loop's self-pipe); no guard is needed
    if sys.interrupted() then
      self.interrupted = true
      return
    end
  end
end

-- Ctrl-C/SIGTERM: every slot stops as an interrupted run does; SIGKILL after the grace.
function Sup:stop_all()
  for _, slot in ipairs(self.slots) do
    if slot.handle and not slot.done and slot.handle:alive() then pcall(http.kill, slot.handle.pid, "INT") end
  end
  local deadline = sys.clock() + STOP_GRACE
  while self:running() > 0 and sys.clock() < deadline do
    sys.wait_readable(self.set:fileno(), 0.05)
    self:tend(true)
  end
  for _, slot in ipairs(self.slots) do
    if slot.handle and not slot.done then
      slot.handle:terminate(0.2)
      self:finish(slot)
    end
  end
end

function Sup:summary()
  local out = {}
  local worst = 0
  local counts = {}
  for _, slot in ipairs(self.slots) do
    local st = slot.status or "aborted"
    counts[st] = (counts[st] or 0) + 1
    worst = worse(worst, slot.exit_code or EXIT_INTERNAL)
    local line = string.format("%s: %s  %d passed, %d failed", self:label(slot),
      self:paint(STATUS_COLOR[st] or "1", st:upper()), slot.passed, slot.failed)
    if slot.skipped > 0 then line = line .. ", " .. slot.skipped .. " skipped" end
    if slot.stopped > 0 then line = line .. ", " .. slot.stopped .. " stopped" end
    line = line .. string.format(" of %d in %.2f s", slot.total, slot.duration or 0)
    if slot.json then -- an aborted slot has one only when its history gave it (after_loss)
      line = line .. (sys.stat(slot.json) and "  (report " .. slot.json .. ")" or "  (no report)")
    end
    out[#out + 1] = line
    if slot.abort_reason then
      out[#out + 1] = "    aborted: " .. slot.abort_reason
        .. (slot.aborted_test and ("; it was running " .. esc(slot.aborted_test)) or "")
    end
    for _, f in ipairs(slot.failures) do
      out[#out + 1] = string.format("    %s %s%s", f.status:upper(), esc(f.test),
        f.message and (": " .. esc((tostring(f.message):gsub("\n.*", "")))) or "")
    end
  end
  if self.events_failed then
    -- the slots' own verdicts stand in their reports; the run's copy of their events failed
    out[#out + 1] = "ERROR   --events " .. esc(self.opts.events) .. " could not be written: the run fails"
    worst = worse(worst, EXIT_FAILED)
  end
  local parts = {}
  for _, st in ipairs { "passed", "failed", "stopped", "aborted", "none", "error" } do
    if counts[st] then parts[#parts + 1] = counts[st] .. " " .. st end
  end
  for st, n in pairs(counts) do
    if not ({ passed = 1, failed = 1, stopped = 1, aborted = 1, none = 1, error = 1 })[st] then
      parts[#parts + 1] = n .. " " .. st
    end
  end
  out[#out + 1] = string.format("%d slot%s: %s (exit status %d)", #self.slots, #self.slots == 1 and "" or "s",
    table.concat(parts, ", "), worst)
  io.stdout:write(table.concat(out, "\n"), "\n")
  io.stdout:flush()
  return worst
end

-- A slot whose process died wrote no report: its history run (marked aborted
-- now) gives one, in the same format, with what it finished.
function Sup:after_loss()
  local history = require "hplua.history"
  local path = self.opts.no_history and false or history.location(self.opts)
  if not path then return end
  local ok, store = pcall(history.open, path, {})
  if not ok or not store then return end
  for _, slot in ipairs(self.slots) do
    if slot.status == "aborted" and slot.json then
      local text = store:report_text(slot.run_id)
      if text then
        local f = io.open(slot.json, "w")
        if f then
          f:write(text, "\n")
          f:close()
        end
      end
    end
  end
  store:close()
end

function M.main(opts)
  local problem = M.check(opts)
  if problem then return usage_error(problem) end
  -- the supervisor's heap is modules and a little state, its garbage short-lived lines
  -- and tables: a generational collector leaves the old objects alone, so their pages
  -- (shared copy-on-write with the run's forked watchdog) are not touched on every cycle
  collectgarbage("generational")
  local dir, err = http.private_dir("hplua-slots")
  if not dir then
    io.stderr:write("hplua: error: " .. err .. "\n")
    return EXIT_INTERNAL
  end
  local set, evset
  set, err = sys.fdset()
  if set then
    evset, err = sys.fdset()
    if not evset then set:close() end
  end
  if not evset then
    os.remove(dir)
    io.stderr:write("hplua: error: " .. err .. "\n")
    return EXIT_INTERNAL
  end
  local color = require("hplua.sink_console").use_color(opts.color)
  local sup = setmetatable({ opts = opts, dir = dir, set = set, evset = evset, by_events = {}, events_watched = false,
    events_due = 0, slots = {}, by_fd = {}, by_rel = {}, ending = {}, n_running = 0, exe = assert(sys.exepath()),
    passed = passed_options(opts.argv or {}), color = color, live = not opts.quiet and sys.isatty(1),
    quiet = opts.quiet, verbose = opts.verbose, started_at = sys.now(),
    width = math.max(20, (tonumber(os.getenv("COLUMNS")) or 80) - 1) }, Sup)
  sup.test_log = not sup.live and not sup.quiet and (sup.verbose and "all" or "failures") or nil
  sup.events_every = EVENTS_EVERY[(sup.live and "live") or (opts.events and "copy") or (sup.quiet and "quiet") or "log"]
  sup:watch_events(true)
  sup.coord = coord.new(function(slot_no, msg)
    local slot = sup.slots[slot_no]
    if slot and slot.ch and slot.ch.rep then slot.ch.rep:write(json.encode(msg) .. "\n") end
  end)
  if opts.events then
    local n = opts.events:match("^fd:(%d+)$")
    if n then
      sup.events_fd = tonumber(n)
    else
      sup.events_fd, err = sys.open(opts.events, "w")
      if not sup.events_fd then
        set:close()
        evset:close()
        os.remove(dir)
        return usage_error("--events: cannot open " .. err)
      end
      sup.events_owned = true
    end
  end
  for i = 1, opts.slots do sup.slots[i] = new_slot(i, opts.serials and opts.serials[i] or nil) end
  if not sup.live and not opts.quiet then
    sup:log(string.format("hplua: %d slots, suite %s", opts.slots, table.concat(opts.paths, " ")))
  end
  local failed_start
  for _, slot in ipairs(sup.slots) do
    local ok, serr = sup:start_slot(slot)
    if not ok then
      failed_start = serr
      break
    end
  end
  local ok, err_msg = true, nil
  if not failed_start then
    sup:draw(true)
    ok, err_msg = xpcall(sup.loop, debug.traceback, sup)
  end
  local code
  if failed_start or not ok or sup.interrupted then
    if failed_start then
      io.stderr:write("hplua: error: cannot start a slot: " .. failed_start .. "\n")
    elseif not ok then
      io.stderr:write("hplua: internal error: " .. tostring(err_msg) .. "\n")
    end
    sup:stop_all()
  end
  if sup.live then sup:draw(true) end
  if sup.lost then pcall(sup.after_loss, sup) end
  code = sup:summary()
  if failed_start or not ok then code = worse(code, EXIT_INTERNAL) end
  if sup.interrupted then code = worse(code, EXIT_INTERRUPTED) end
  if sup.events_owned then sys.close(sup.events_fd) end
  for _, slot in ipairs(sup.slots) do
    if slot.log_path then os.remove(slot.log_path) end
  end
  set:close()
  evset:close()
  os.remove(dir)
  return code
end

return M
