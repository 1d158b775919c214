-- hplua.recorder: the run history written by a process of its own. SQLite's commit
-- per test (locks, log writes) costs more than a trivial test does, so the run does
-- not commit: its history output (Forward, a subscriber) packs each event into a
-- binary frame (hplua.json lines:pack) and writes it down a pipe, at once for every
-- finished test. The recorder (`hplua history _record FILE`, a child in a session of
-- its own that the end-of-run sweep spares and the run's watchdog does not know:
-- sys.helper) reads the frames, builds the JSON report and feeds the
-- history sink, and commits what each read brought. A SIGKILL of the run loses
-- nothing the run wrote: the recorder reads to the end of the pipe, commits, and
-- marks the run aborted. The recorder is the run's owner in the runs table (its
-- PID), so a run is "running" as long as it is being recorded.
--
-- The run waits for the recorder's last word when the run finishes: "ok", or why
-- records could not be written (the run then fails, as an unwritable --json does).
local json = require "hplua.json"
local sys = require "hplua.sys"

local M = {}

---------------------------------------------------------------------------------------
-- The run's side

local Forward = {}
Forward.__index = Forward

-- Written down the pipe at once; the rest (messages, processes) wait for the next of
-- these, or for 64 KiB. The history and the report read only these kinds (a test's
-- messages and measurements come with its test_finished).
local SEND_NOW = { run_started = true, test_finished = true, collection_error = true, run_error = true, info = true }
local SEND_SIZE = 65536
local WAIT_LIMIT = 120 -- seconds the run waits for the recorder's last word

-- Starts the recorder of the history at path, early: its start-up goes on beside the
-- run's own (it opens the database when the first event comes); -> the subscriber |
-- nil, message. opts.upload: mark the run for upload (API 9). Then attach the run's
-- open store (or abandon it when the store cannot be opened).
function M.spawn(path, opts)
  -- this very binary (the frames are of its build): its path, or when its file was
  -- deleted or replaced meanwhile, /proc/self/exe (not under valgrind, whose own
  -- binary that is: valgrind answers readlink with the program's path)
  local exe = sys.exepath()
  if not exe or exe:find(" %(deleted%)$") then exe = "/proc/self/exe" end
  local argv = { exe, "history", "_record", path }
  if opts and opts.upload then argv[#argv + 1] = "--upload" end
  local pid, to, from = sys.helper(argv)
  if not pid then return nil, "cannot start the history recorder: " .. tostring(to) end
  return setmetatable({ pid = pid, to = to, from = from, buf = json.lines(), path = path }, Forward)
end

-- The run's start is committed through store (the run's open history), before any
-- test runs; the recorder then takes the run over. opts.on_error(message).
function Forward:attach(store, opts)
  -- this connection stays open (the log and its index stay while the recorder opens
  -- its own) and closes without a checkpoint: the recorder's commits do that
  store.db:keep_log_on_close()
  -- the recorder is the run's owner from the first record on: a run whose process was
  -- killed stays "running" (nobody else marks it aborted) until the recorder has
  -- written what came and marked it aborted itself
  self.first = store:sink { upload = opts.upload, on_error = opts.on_error, owner = self.pid }
end

-- The recorder is not needed (the history could not be opened): it ends unheard.
function Forward:abandon()
  for _, k in ipairs { "to", "from" } do
    if self[k] then sys.close(self[k]) end
    self[k] = nil
  end
  sys.helper_done(self.pid)
  self.result = { true }
end

function Forward:send()
  if not self.to or self.buf:size() == 0 then return end
  local ok, err = self.buf:drain(self.to)
  if not ok and not self.lost then self.lost = "the history recorder is gone (" .. tostring(err) .. ")" end
end

function Forward:event(ev)
  if not self.to then return end
  local buf = self.buf
  if not buf:pack(ev) then
    -- what cannot be packed (a function in run data) goes as far as the history needs it
    buf:pack({ v = 1, seq = ev.seq, run_id = ev.run_id, type = ev.type, time = ev.time, test = ev.test,
      status = ev.status, attempt = ev.attempt, duration = ev.duration })
  end
  if SEND_NOW[ev.type] or buf:size() >= SEND_SIZE then self:send() end
end

for _, kind in ipairs { "collection_error", "process_ended", "info", "test_finished", "run_error" } do
  Forward[kind] = Forward.event
end

function Forward:run_started(ev)
  self.first:run_started(ev)
  self:event(ev)
end

function Forward:message(ev)
  if ev.test == nil or ev.test == json.null then self:event(ev) end
end

-- Ends the pipe and waits for the recorder's last word; -> true | nil, why.
function Forward:finish()
  if self.result then return table.unpack(self.result) end
  self:send()
  if self.to then sys.close(self.to) end
  self.to = nil
  local said, deadline = {}, sys.clock() + WAIT_LIMIT
  while self.from do
    local ready = sys.wait_readable(self.from, math.max(0, deadline - sys.clock()))
    if not ready then
      said, self.lost = {}, self.lost or ("the history recorder did not finish within " .. WAIT_LIMIT .. " s")
      break
    end
    local data, _, code = sys.read(self.from, 4096)
    if not data or data == "" then
      if code == "EAGAIN" then goto again end
      break
    end
    said[#said + 1] = data
    ::again::
  end
  if self.from then sys.close(self.from) end
  self.from = nil
  sys.helper_done(self.pid, self.lost ~= nil) -- one that did not finish is swept at the run's end
  if self.first then self.first:close() end -- the run's own connection (its start), no longer needed
  local text = table.concat(said):gsub("%s+$", "")
  if text == "ok" and not self.lost then
    self.result = { true }
  elseif text ~= "" and text ~= "ok" then
    self.result = { nil, text } -- the recorder's words name the history file
  else
    self.result = { nil, string.format("history %s: %s", self.path, self.lost or "the history recorder ended without a word") }
  end
  return table.unpack(self.result)
end

function Forward:run_finished(ev, run)
  self:event(ev)
  local ok, err = self:finish()
  if not ok then
    if run and run.output_error then run:output_error(err) else io.stderr:write("hplua: error: " .. err .. "\n") end
  end
end

function Forward:close()
  if self.to or self.from then self:finish() end
end

---------------------------------------------------------------------------------------
-- The recorder's side: `hplua history _record FILE [--upload]`, stdin the frames,
-- stdout its last word.

local READ_SIZE = 1 << 20
local COMMIT_EVERY = 0.010 -- seconds
local GATHER, GATHER_WAIT = 16384, 0.002
local CHECKPOINT_AT = 4 << 20 -- bytes of write-ahead log

-- The bytes of write-ahead log not yet in the database (0 when that cannot be read).
-- Only before this process opens the database (see M.main).
-- The log's file is reused, never shrunk, so its size says nothing; the WAL index
-- (the -shm file, its layout documented in SQLite's walformat.html) holds, in the
-- writer's byte order, the page size (u16 at 14), the frames in the log (mxFrame,
-- u32 at 16) and those already copied into the database (nBackfill, u32 at 96).
function M.log_behind(path)
  local f = io.open(path .. "-shm", "rb")
  if not f then return 0 end
  local head = f:read(100)
  f:close()
  if not head or #head < 100 then return 0 end
  local size = string.unpack("=I2", head, 15)
  local frames, backfilled = string.unpack("=I4", head, 17), string.unpack("=I4", head, 97)
  if size == 1 then size = 65536 end -- 65536 does not fit in 16 bits
  return frames > backfilled and (frames - backfilled) * size or 0
end

function M.main(args)
  collectgarbage("generational") -- its garbage is each event's, short-lived
  local path, upload = args[1], args[2] == "--upload"
  local function say(text)
    sys.write(1, text .. "\n")
    return text == "ok" and 0 or 1
  end
  if not path then return say("_record needs the history file") end
  -- started before the run opened the history: the database is opened when the first
  -- frames come (the run has made it by then); none at all: the run did not start
  local first = sys.read(0, READ_SIZE)
  if not first or first == "" then return 0 end
  -- read before the database is opened: closing a descriptor of the -shm file drops
  -- every lock this process holds on it (POSIX), SQLite's among them, and another
  -- opener would then take the WAL index for unused and rebuild it under SQLite's
  -- mapping of it (the recorder died of SIGBUS when it next touched it)
  local behind = M.log_behind(path)
  local history = require "hplua.history"
  local store, err = history.open(path)
  if not store then return say(err) end
  local sink = store:sink { upload = upload, on_error = function(msg) io.stderr:write("hplua: " .. msg .. "\n") end }
  -- the run committed its start, naming this process its owner (Forward:attach)
  sink.batch = true
  -- what earlier runs left in the write-ahead log goes into the database now, beside
  -- the run, not at its end: once the log has grown past CHECKPOINT_AT (a checkpoint
  -- per run, with its three syncs, took a short run's recorder longer than its records)
  if behind >= CHECKPOINT_AT then store.db:exec("PRAGMA wal_checkpoint(PASSIVE)") end
  -- the report's records in memory: this process's own, and read back from a
  -- temporary file they would be copied into fresh memory twice more at the end
  local report = require("hplua.sink_report").new { memory = true }
  local failure
  local run = {
    report_text = function() return report:report_text() end,
    output_error = function(_, message) failure = failure or message end,
  }
  local function dispatch(ev)
    local kind = ev.type
    local f = report[kind]
    if f then f(report, ev, run) end
    f = sink[kind]
    if f then f(sink, ev, run) end
  end
  local buf, pos = "", 1
  local last_commit = sys.clock()
  local data = first
  while data and data ~= "" do
    -- a run of short tests writes a frame each: let them gather rather than wake for each
    if #data < GATHER then sys.sleep(GATHER_WAIT) end
    buf = (pos > 1 and buf:sub(pos) or buf) .. data
    pos = 1
    while true do
      local ok, ev, nextpos = pcall(json.unpack, buf, pos)
      if not ok then
        failure = failure or ("the run's records are damaged: " .. tostring(ev))
        buf, pos = "", 1
        break
      end
      if ev == nil then break end
      pos = nextpos
      local dok, derr = pcall(dispatch, ev)
      if not dok then failure = failure or ("recording " .. tostring(ev.type) .. " failed: " .. tostring(derr)) end
      if sink.finished then break end
    end
    -- the end of the run, not of the pipe: a run's last resort (a forked copy of it,
    -- host/monitor.h) ends the run while the stuck original still holds the pipe
    if sink.finished then break end
    -- a commit costs more than a trivial test: what comes within COMMIT_EVERY of the
    -- last commit waits for the next, unless the pipe falls quiet first
    if #sink.pending > 0 then
      local wait = COMMIT_EVERY - (sys.clock() - last_commit)
      if wait <= 0 or not sys.wait_readable(0, wait) then
        sink:commit()
        last_commit = sys.clock()
      end
    end
    data = sys.read(0, READ_SIZE)
  end
  if not sink.finished then
    -- the run ended without its last event (SIGKILL): keep what came, and mark it
    if #sink.pending > 0 then sink:commit(true) end
    if sink.run_id and #sink.pending == 0 then store:abort_runs({ sink.run_id }) end
  end
  pcall(report.close, report)
  -- the run waits for the last word, so no checkpoint at close: the log is moved into
  -- the database by a later run's recorder, while its run goes on (M.main's start)
  store.db:keep_log_on_close()
  store:close()
  if not sink.finished then return 0 end
  return say(failure or sink.failed or "ok")
end

return M
