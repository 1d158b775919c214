-- hplua.history_cli: `hplua history` — the recorded runs, read (docs/history.md).
--   hplua history [list] [--serial S] [--status ST] [--limit N] [--json]
--   hplua history show RUN_ID [--json]
--   hplua history stats [--since DATE] [--json]
--   hplua history upload [--upload URL] [--quiet]
-- Every form takes --history FILE. Returns an exit status: 0 done, 1 no such run,
-- 4 usage error or a history that cannot be read; upload: 0 nothing left pending,
-- 1 the upload failed (the runs stay queued).
local history = require "hplua.history"
local json = require "hplua.json"
local format = require "hplua.format"

local M = {}

local USAGE = [==[
usage: hplua history [list] [--serial S] [--status ST] [--limit N] [--json]
       hplua history show RUN_ID [--json]
       hplua history stats [--since DATE] [--json]
       hplua history upload [--upload URL] [--quiet]

  list     recorded runs, newest first (default: the last 20)
  show     one run: its tests, measurements and errors; --json prints its JSON report
  stats    runs, first-pass yield, final yield and the tests that fail most
  upload   send the runs waiting for the factory database now; prints
           "uploaded N, pending M" (URL: --upload, else HPLUA_UPLOAD, else the last one used)

options:
  --history FILE   the history database (default: $HPLUA_HISTORY, else
                   $XDG_DATA_HOME/hplua/history.db, else ~/.local/share/hplua/history.db)
  --serial S       only runs of DUT serial S
  --status ST      only runs that ended ST: passed, failed, stopped, aborted or running
  --limit N        at most N runs (default 20)
  --since DATE     only runs started at or after DATE (YYYY-MM-DD [HH:MM[:SS]], local
                   time unless it ends in Z or an offset such as +02:00)
  --json           machine-readable output
  --upload URL     postgresql://USER@HOST[:PORT]/DB (password: PGPASSWORD or ~/.pgpass)
  --quiet          print nothing; a retry soon after a failure waits (backoff)
]==]

local OPTIONS = {
  list = { ["--serial"] = true, ["--status"] = true, ["--limit"] = true, ["--json"] = false, ["--history"] = true },
  show = { ["--json"] = false, ["--history"] = true },
  stats = { ["--since"] = true, ["--json"] = false, ["--history"] = true },
  upload = { ["--upload"] = true, ["--quiet"] = false, ["--history"] = true },
}
local STATUSES = { passed = true, failed = true, stopped = true, aborted = true, running = true }

local function usage_error(msg)
  io.stderr:write("hplua history: error: " .. msg .. " (see hplua history --help)\n")
  return 4
end

local function parse(args)
  local o = { cmd = nil, positional = {} }
  local i = 1
  local pending = {}
  while i <= #args do
    local a = args[i]
    local name, value = a:match("^(%-%-[%w-]+)=(.*)$")
    name = name or a
    if a == "-h" or a == "--help" then
      o.help = true
    elseif name:sub(1, 1) == "-" and #name > 1 then
      local takes
      for _, set in pairs(OPTIONS) do
        if set[name] ~= nil then takes = set[name] end
      end
      if takes == nil then return nil, "unknown option '" .. a .. "'" end
      if takes and value == nil then
        i = i + 1
        value = args[i]
        if value == nil then return nil, "option " .. name .. " needs a value" end
      elseif not takes and value ~= nil then
        return nil, "option " .. name .. " takes no value"
      end
      pending[#pending + 1] = name
      o[name:sub(3)] = takes and value or true
    elseif not o.cmd then
      o.cmd = a
    else
      o.positional[#o.positional + 1] = a
    end
    i = i + 1
  end
  if o.help then return o end
  o.cmd = o.cmd or "list"
  local allowed = OPTIONS[o.cmd]
  if not allowed then return nil, "unknown history command '" .. o.cmd .. "' (list, show, stats or upload)" end
  for _, name in ipairs(pending) do
    if allowed[name] == nil then return nil, "option " .. name .. " does not apply to 'history " .. o.cmd .. "'" end
  end
  if o.cmd == "show" then
    if #o.positional ~= 1 then return nil, "history show needs one RUN_ID" end
    o.run_id = o.positional[1]
  elseif #o.positional > 0 then
    return nil, "unexpected argument '" .. o.positional[1] .. "'"
  end
  if o.status and not STATUSES[o.status] then
    return nil, "--status must be passed, failed, stopped, aborted or running, got '" .. o.status .. "'"
  end
  if o.limit then
    local n = math.tointeger(tonumber(o.limit))
    if not n or n < 1 then return nil, "--limit needs a whole number of at least 1, got '" .. o.limit .. "'" end
    o.limit = n
  end
  if o.upload and not require("hplua.upload").valid_url(o.upload) then
    return nil, "--upload needs a postgresql://USER@HOST[:PORT]/DB URL, got '" .. o.upload .. "'"
  end
  if o.since and not history.valid_date(o.since) then
    return nil, "--since needs a date such as 2024-05-31 or 2024-05-31T08:00, got '" .. o.since .. "'"
  end
  return o
end

local function out(s) io.stdout:write(s) end

local function duration(d)
  if not d then return "-" end
  if d < 60 then return string.format("%.2fs", d) end
  return string.format("%dm%02ds", math.floor(d / 60), math.floor(d % 60))
end

-- "2024-05-31T08:00:01.123+02:00" -> "2024-05-31 08:00:01"
local function when(iso)
  if not iso then return "-" end
  return (iso:sub(1, 19):gsub("T", " "))
end

local function pct(y)
  if not y then return "-" end
  return string.format("%.1f%%", y * 100)
end

local function decode(s)
  if not s then return nil end
  return json.decode(s)
end

local function run_json(r)
  return { run_id = r.run_id, started_at = r.started_at, ended_at = r.ended_at or json.null, status = r.status,
    exit_code = r.exit_code or json.null, serial = r.serial or json.null, slot = r.slot or json.null,
    stand = decode(r.stand) or {}, retest = r.retest == 1, duration = r.duration or json.null,
    caused_failure = r.caused_failure or json.null,
    summary = { total = r.total or 0, passed = r.passed or 0, failed = r.failed or 0, skipped = r.skipped or 0,
      stopped = r.stopped or 0 },
    upload_pending = r.upload_pending == 1, hplua = r.hplua or json.null }
end

-- Plain columns: widths from the content.
local function table_text(header, rows)
  local w = {}
  for i, h in ipairs(header) do w[i] = #h end
  for _, r in ipairs(rows) do
    for i, c in ipairs(r) do w[i] = math.max(w[i], utf8.len(c) or #c) end
  end
  local lines = {}
  local function line(cells)
    local parts = {}
    for i, c in ipairs(cells) do
      parts[i] = i == #cells and c or (c .. string.rep(" ", w[i] - (utf8.len(c) or #c)))
    end
    lines[#lines + 1] = (table.concat(parts, "  "):gsub("%s+$", ""))
  end
  line(header)
  for _, r in ipairs(rows) do line(r) end
  return table.concat(lines, "\n") .. "\n"
end

local function cmd_list(store, o)
  local runs = store:list { serial = o.serial, status = o.status, limit = o.limit or 20 }
  if o.json then
    local list = json.array()
    for i, r in ipairs(runs) do list[i] = run_json(r) end
    out(json.encode(list, true) .. "\n")
    return 0
  end
  if #runs == 0 then
    out("no runs recorded" .. ((o.serial or o.status) and " that match" or "") .. " in " .. store.path .. "\n")
    return 0
  end
  local rows = {}
  for _, r in ipairs(runs) do
    local tests = r.total and string.format("%d/%d passed", r.passed or 0, r.total) or "-"
    rows[#rows + 1] = { r.run_id:sub(1, 8), when(r.started_at), r.status or "-",
      (r.serial or "-") .. (r.retest == 1 and " (retest)" or ""), r.slot and tostring(r.slot) or "-", tests,
      duration(r.duration), r.caused_failure or "" }
  end
  out(table_text({ "RUN", "STARTED", "STATUS", "SERIAL", "SLOT", "TESTS", "DURATION", "FIRST FAILURE" }, rows))
  local pending = store:count("SELECT count(*) AS n FROM runs WHERE upload_pending = 1")
  if pending > 0 then
    out(string.format("%d run%s waiting for upload\n", pending, pending == 1 and "" or "s"))
    local ok, st = pcall(function() return store:stmt("SELECT last_error FROM upload_state WHERE id = 1"):first() end)
    if ok and st and st.last_error then out("last upload attempt: " .. st.last_error .. "\n") end
  end
  return 0
end

local function cmd_show(store, o)
  local id, err = store:find(o.run_id)
  if not id then
    io.stderr:write("hplua history: " .. err .. "\n")
    return 1
  end
  if o.json then
    out(store:report_text(id))
    return 0
  end
  local r = store:run(id)
  local lines = {
    "run       " .. r.run_id,
    "status    " .. tostring(r.status) .. (r.exit_code and (" (exit " .. r.exit_code .. ")") or ""),
    "serial    " .. (r.serial or "-") .. (r.retest == 1 and " (retest)" or ""),
    "started   " .. when(r.started_at),
    "ended     " .. when(r.ended_at),
    "duration  " .. duration(r.duration),
  }
  if r.slot then lines[#lines + 1] = "slot      " .. r.slot end
  local stand = decode(r.stand)
  if type(stand) == "table" and next(stand) then
    local keys = {}
    for k in pairs(stand) do keys[#keys + 1] = tostring(k) end
    table.sort(keys)
    local parts = {}
    for _, k in ipairs(keys) do parts[#parts + 1] = k .. "=" .. tostring(stand[k]) end
    lines[#lines + 1] = "stand     " .. table.concat(parts, " ")
  end
  if r.caused_failure then lines[#lines + 1] = "failure   " .. r.caused_failure end
  out(table.concat(lines, "\n") .. "\n\n")
  local rows = {}
  for _, t in ipairs(r.tests) do
    rows[#rows + 1] = { t.status or "-", duration(t.duration), t.attempt and t.attempt > 1 and tostring(t.attempt) or "",
      t.test_id }
  end
  if #rows > 0 then
    out(table_text({ "STATUS", "DURATION", "ATTEMPTS", "TEST" }, rows))
  else
    out("no test recorded\n")
  end
  local details = {}
  for _, t in ipairs(r.tests) do
    local d = {}
    if t.error then
      d[#d + 1] = "    " .. (t.error_file and (t.error_file .. ":" .. (t.error_line or 0) .. ": ") or "") .. t.error
    end
    if t.skip_reason and t.status == "skipped" then d[#d + 1] = "    skipped: " .. t.skip_reason end
    for _, m in ipairs(t.measurements) do
      d[#d + 1] = "    " .. format.measurement({ name = m.name, value = m.value, unit = m.unit, min = m.min, max = m.max,
        expect = m.expect, passed = m.status ~= "failed" }) .. (m.status == "marginal" and " (marginal)" or "")
    end
    if #d > 0 then details[#details + 1] = "  " .. t.test_id .. "\n" .. table.concat(d, "\n") end
  end
  if #details > 0 then out("\n" .. table.concat(details, "\n") .. "\n") end
  if #r.errors > 0 then
    out("\nerrors:\n")
    for _, e in ipairs(r.errors) do
      out("  " .. (e.file and (e.file .. ":" .. (e.line or 0) .. ": ") or "") .. tostring(e.message) .. "\n")
    end
  end
  return 0
end

local function cmd_stats(store, o)
  local st = store:stats { since = o.since }
  if o.json then
    local failing = json.array()
    for i, f in ipairs(st.failing) do failing[i] = { test_id = f.test_id, failures = f.failures, share = f.share or json.null } end
    out(json.encode({ since = o.since or json.null, runs = st.runs, by_status = st.by_status, serials = st.serials,
      first_pass_yield = { passed = st.first_pass.passed, serials = st.serials, yield = st.first_pass.yield or json.null },
      final_yield = { passed = st.final.passed, serials = st.serials, yield = st.final.yield or json.null },
      failing_tests = failing, upload_pending = st.upload_pending }, true) .. "\n")
    return 0
  end
  local lines = { "history   " .. store.path .. (o.since and ("  (since " .. o.since .. ")") or "") }
  local parts = {}
  for _, s in ipairs { "passed", "failed", "stopped", "aborted", "running" } do
    if st.by_status[s] then parts[#parts + 1] = s .. " " .. st.by_status[s] end
  end
  lines[#lines + 1] = string.format("runs      %d%s", st.runs, #parts > 0 and ("  (" .. table.concat(parts, ", ") .. ")") or "")
  if st.serials > 0 then
    lines[#lines + 1] = string.format("serials   %d", st.serials)
    lines[#lines + 1] = string.format("first-pass yield  %s  (%d of %d serials passed their first run)",
      pct(st.first_pass.yield), st.first_pass.passed, st.serials)
    lines[#lines + 1] = string.format("final yield       %s  (%d of %d serials passed, retests included)",
      pct(st.final.yield), st.final.passed, st.serials)
  else
    lines[#lines + 1] = "serials   none recorded (yields need --serial)"
  end
  if st.upload_pending > 0 then lines[#lines + 1] = string.format("upload    %d run(s) waiting", st.upload_pending) end
  out(table.concat(lines, "\n") .. "\n")
  if #st.failing > 0 then
    local rows = {}
    for _, f in ipairs(st.failing) do rows[#rows + 1] = { tostring(f.failures), pct(f.share), f.test_id } end
    out("\ntests that fail most:\n" .. table_text({ "FAILURES", "OF RUNS", "TEST" }, rows))
  else
    out("\nno test failed\n")
  end
  return 0
end

-- `hplua history upload`: flush the outbox now.
local function cmd_upload(o)
  local upload = require "hplua.upload"
  local path, perr = history.location({ history = o.history })
  if not path then return usage_error(perr) end
  local store, serr, code = history.open(path, { read = true })
  if not store then
    if code == "ENOENT" then
      if not o.quiet then out("uploaded 0, pending 0\n") end
      return 0
    end
    if not o.quiet then io.stderr:write("hplua history: error: " .. serr .. "\n") end
    return 4
  end
  local url = o.upload
  if not url then
    local env = os.getenv("HPLUA_UPLOAD")
    if env and env ~= "" then url = env end
  end
  if not url then url = upload.state(store).target end
  if not url then
    store:close()
    return usage_error("no upload target: give --upload postgresql://USER@HOST[:PORT]/DB or set HPLUA_UPLOAD")
  end
  if not upload.valid_url(url) then
    store:close()
    return usage_error("HPLUA_UPLOAD needs a postgresql://USER@HOST[:PORT]/DB URL, got '" .. url .. "'")
  end
  local ok, res, uerr, _, partial = pcall(upload.run, store, { url = url, automatic = o.quiet })
  if not ok then
    uerr, res = tostring(res), nil
  end
  local counts = res or partial or { uploaded = 0, pending = upload.pending(store) }
  store:close()
  if not o.quiet then
    if not res then io.stderr:write("hplua history: " .. tostring(uerr) .. "; the runs stay queued\n") end
    out(string.format("uploaded %d, pending %d\n", counts.uploaded, counts.pending))
  end
  return res and 0 or 1
end

function M.main(args)
  -- the run's recorder (hplua.recorder), started by the run itself
  if args[1] == "_record" then return require("hplua.recorder").main({ table.unpack(args, 2) }) end
  local o, err = parse(args)
  if not o then return usage_error(err) end
  if o.help then
    out(USAGE)
    return 0
  end
  if o.cmd == "upload" then return cmd_upload(o) end
  local path, perr = history.location({ history = o.history })
  if not path then return usage_error(perr) end
  local store, serr, code = history.open(path, { read = true })
  if not store then
    if code == "ENOENT" then
      if o.cmd == "show" then
        io.stderr:write("hplua history: no run " .. o.run_id .. " (" .. serr .. ")\n")
        return 1
      end
      if o.cmd == "list" then
        out(o.json and "[]\n" or ("no runs recorded: " .. serr .. "\n"))
        return 0
      end
      store = assert(history.open(":memory:")) -- stats of nothing, in the same shapes
      store.path = path
    end
  end
  if not store then
    io.stderr:write("hplua history: error: " .. serr .. "\n")
    return 4
  end
  local ok, status = pcall(({ list = cmd_list, show = cmd_show, stats = cmd_stats })[o.cmd], store, o)
  store:close()
  if not ok then
    io.stderr:write("hplua history: error: " .. tostring(status) .. "\n")
    return 4
  end
  return status
end

return M
