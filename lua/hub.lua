-- hplua.hub: `hplua hub --upload URL` — a read-only page over the central database
-- (API 9, docs/factory.md): every station's last runs, yield per station and per test
-- for a chosen period, the latest failures. The HTTP server, its token and loopback
-- rules are the station's (hplua.http, serve.is_loopback); the page is web/hub.html.
local http = require "hplua.http"
local json = require "hplua.json"
local pq = require "hplua.pq"
local sys = require "hplua.sys"
local upload = require "hplua.upload"

local M = {}

local EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 4
local MAX_DAYS = 3660

M.USAGE = [[
usage: hplua hub --upload URL [OPTIONS]   a read-only page over the factory database

  --upload URL   postgresql://USER@HOST[:PORT]/DB (also HPLUA_UPLOAD; password from
                 PGPASSWORD or ~/.pgpass); the user needs SELECT on the hplua_* tables
  --port N       TCP port (default 8643; 0 picks a free port)
  --bind ADDR    listen address (default 127.0.0.1); any other needs a token
  --token T      every request needs this token (also HPLUA_TOKEN)
]]

function M.parse(args)
  local o = {}
  local i = 1
  local takes = { ["--upload"] = "upload", ["--port"] = "port", ["--bind"] = "bind", ["--token"] = "token" }
  while i <= #args do
    local a = args[i]
    local name, value = a:match("^(%-%-[%w-]+)=(.*)$")
    name = name or a
    if a == "-h" or a == "--help" then
      o.help = true
    elseif takes[name] then
      if value == nil then
        i = i + 1
        value = args[i]
        if value == nil then return nil, "option " .. name .. " needs a value" end
      end
      o[takes[name]] = value
    else
      return nil, "unknown " .. (a:sub(1, 1) == "-" and "option" or "argument") .. " '" .. a .. "' for hub"
    end
    i = i + 1
  end
  if o.help then return o end
  if o.port then
    local n = math.tointeger(tonumber(o.port))
    if not n or n < 0 or n > 65535 then return nil, "--port must be 0..65535, got '" .. o.port .. "'" end
    o.port = n
  end
  o.upload = o.upload or os.getenv("HPLUA_UPLOAD")
  if not o.upload or o.upload == "" then return nil, "hub needs --upload postgresql://USER@HOST[:PORT]/DB (or HPLUA_UPLOAD)" end
  if not upload.valid_url(o.upload) then
    return nil, "--upload needs a postgresql://USER@HOST[:PORT]/DB URL, got '" .. o.upload .. "'"
  end
  o.bind = o.bind or "127.0.0.1"
  o.port = o.port or 8643
  if not o.token then
    local env = os.getenv("HPLUA_TOKEN")
    if env and env ~= "" then o.token = env end
  end
  return o
end

---------------------------------------------------------------------------------------
-- Queries (parameters only; the period is a number of days)

local Q = {
  stations = [[
    SELECT station, count(*) AS runs,
      count(*) FILTER (WHERE status = 'passed') AS passed,
      count(*) FILTER (WHERE NOT retest) AS first_runs,
      count(*) FILTER (WHERE NOT retest AND status = 'passed') AS first_passed,
      max(started_at)::text AS last_run
    FROM hplua_runs WHERE started_at >= now() - $1::float8 * interval '1 day'
    GROUP BY station ORDER BY station]],
  last_runs = [[
    SELECT run_id, station, serial, slot, status, retest, caused_failure, duration, started_at::text AS started_at
    FROM (SELECT r.*, row_number() OVER (PARTITION BY station ORDER BY started_at DESC) AS k FROM hplua_runs r) x
    WHERE k <= 5 ORDER BY station, started_at DESC]],
  tests = [[
    SELECT t.test_id, count(*) AS runs, count(*) FILTER (WHERE t.status = 'passed') AS passed,
      count(*) FILTER (WHERE t.status = 'failed') AS failed
    FROM hplua_tests t JOIN hplua_runs r USING (run_id)
    WHERE r.started_at >= now() - $1::float8 * interval '1 day'
    GROUP BY t.test_id ORDER BY failed DESC, t.test_id LIMIT 50]],
  failures = [[
    SELECT r.run_id, r.station, r.serial, r.started_at::text AS started_at, t.test_id, t.error
    FROM hplua_tests t JOIN hplua_runs r USING (run_id)
    WHERE t.status = 'failed' AND r.started_at >= now() - $1::float8 * interval '1 day'
    ORDER BY r.started_at DESC, t.seq LIMIT 30]],
}

local Hub = {}
Hub.__index = Hub

function Hub:connection()
  if self.conn and self.conn:transaction_status() ~= "unknown" then return self.conn end
  if self.conn then self.conn:close() end
  local conn, err, code = pq.connect(self.url, { connect_timeout = 5, application_name = "hplua hub" })
  if not conn then return nil, upload.explain(self.url, err, code) end
  self.conn = conn
  return conn
end

local function ratio(n, d) return d > 0 and n / d or json.null end

function Hub:summary(days)
  local conn, err = self:connection()
  if not conn then return nil, err end
  local out = { days = days, database = upload.redact(self.url) }
  for _, name in ipairs { "stations", "last_runs", "tests", "failures" } do
    local rows, qerr, code
    if name == "last_runs" then rows, qerr, code = conn:exec(Q[name]) else rows, qerr, code = conn:exec(Q[name], days) end
    if not rows then
      if code == "42P01" then return nil, "no hplua tables in " .. upload.redact(self.url) .. " yet (no station has uploaded)" end
      if code == "closed" then conn:close(); self.conn = nil end
      return nil, upload.explain(self.url, qerr, code)
    end
    local list = json.array()
    for i, r in ipairs(rows) do list[i] = r end
    out[name] = list
  end
  for _, s in ipairs(out.stations) do
    s.yield = ratio(s.passed, s.runs)
    s.first_pass_yield = ratio(s.first_passed, s.first_runs)
  end
  for _, t in ipairs(out.tests) do t.yield = ratio(t.passed, t.runs) end
  return out
end

function Hub:handle(req)
  local get = req.method == "GET" or req.method == "HEAD"
  if req.path == "/api/hub" and get then
    local days = tonumber(req.query.days or "7")
    if not days or days <= 0 or days > MAX_DAYS then
      return 400, json.encode({ error = "days must be a number from 0 to " .. MAX_DAYS })
    end
    local s, err = self:summary(days)
    if not s then return 503, json.encode({ error = err }) end
    return 200, json.encode(s)
  end
  if not get then return 405, json.encode({ error = "the hub is read-only" }), "application/json", { Allow = "GET" } end
  return 404, json.encode({ error = "no such API call" })
end

function M.main(args)
  local o, err = M.parse(args)
  if not o then
    io.stderr:write("hplua hub: error: " .. err .. " (see hplua hub --help)\n")
    return EXIT_USAGE
  end
  if o.help then
    io.stdout:write(M.USAGE)
    return EXIT_OK
  end
  if not require("hplua.serve").is_loopback(o.bind) and not o.token then
    io.stderr:write("hplua hub: error: --bind " .. o.bind .. " is reachable from other machines: "
      .. "give --token T (or HPLUA_TOKEN) so every request must carry it\n")
    return EXIT_USAGE
  end
  local hub = setmetatable({ url = o.upload }, Hub)
  local server
  server, err = http.server { bind = o.bind, port = o.port, token = o.token, index = "/hub.html",
    handler = function(req) return hub:handle(req) end }
  if not server then
    io.stderr:write("hplua hub: error: " .. err .. "\n")
    return EXIT_FAILED
  end
  local host = o.bind:find(":", 1, true) and ("[" .. o.bind .. "]") or o.bind
  io.stdout:write(string.format("hplua hub: %s: http://%s:%d/\n", upload.redact(o.upload), host, server:port()))
  io.stdout:flush()
  local ok, info = sys.run_guarded(function()
    while not sys.interrupted() do
      local t = server:timeout()
      sys.wait_readable(server:fd(), t or -1)
      server:run()
    end
  end, nil, 0)
  server:close()
  if hub.conn then hub.conn:close() end
  if not ok and info.kind ~= "interrupt" then
    io.stderr:write("hplua hub: internal error: " .. tostring(info.message) .. "\n")
    return 3
  end
  io.stdout:write("hplua hub: stopped\n")
  return EXIT_OK
end

return M
