-- A throw-away PostgreSQL server for the factory tests: Debian's postgresql binaries,
-- initdb into a private folder, listening on 127.0.0.1 at a private port and a
-- private socket folder, run as the postgres user when we are root. Every query the
-- tests check with goes through psql (not hplua's own binding).
local hp = require "hplua"
local sys = require "hplua.sys"

local M = { PASSWORD = "factory-secret" }

local function sh_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- The folder of Debian's server binaries (the newest version), or nil.
function M.bindir()
  local best
  for _, v in ipairs(sys.listdir("/usr/lib/postgresql") or {}) do
    local dir = "/usr/lib/postgresql/" .. v .. "/bin"
    if sys.kind(dir .. "/initdb") == "file" and sys.kind(dir .. "/pg_ctl") == "file"
      and (not best or tonumber(v) > tonumber(best:match("/(%d+)/bin$"))) then
      best = dir
    end
  end
  return best
end

local counter = 0
local function run(argv, opts)
  counter = counter + 1
  opts = opts or {}
  local p = hp.process.start("pg-" .. counter, argv, { env = opts.env, stdin = opts.stdin, timeout = opts.timeout or 60 })
  local r = p:wait()
  if opts.check ~= false and r.exit_code ~= 0 then
    error(string.format("%s failed (%s): %s%s", table.concat(argv, " "), tostring(r.exit_code or r.signal), r.stdout, r.stderr), 2)
  end
  return r
end

local Server = {}
Server.__index = Server

local function uid()
  local f = assert(io.open("/proc/self/status"))
  local s = f:read("a")
  f:close()
  return tonumber(s:match("\nUid:%s*(%d+)"))
end
local as_root = uid() == 0

function Server:as_owner(argv)
  if not as_root then return argv end
  local out = { "runuser", "-u", "postgres", "--" }
  for _, a in ipairs(argv) do out[#out + 1] = a end
  return out
end

function Server:pg_ctl(...)
  local argv = { self.bin .. "/pg_ctl", "-D", self.data, "-w", "-t", "60" }
  for _, a in ipairs { ... } do argv[#argv + 1] = a end
  return run(self:as_owner(argv), { check = false })
end

function Server:start()
  local r = self:pg_ctl("-l", self.dir .. "/log", "-o",
    string.format("-p %d -k %s -c listen_addresses=127.0.0.1", self.port, self.dir), "start")
  if r.exit_code ~= 0 then return nil, r.stdout .. r.stderr end
  return true
end

-- mode: "fast" (clean) or "immediate" (as a crash: no checkpoint, clients cut off)
function Server:stop(mode)
  return self:pg_ctl("-m", mode or "fast", "stop")
end

function Server:restart()
  self:stop("fast")
  assert(self:start())
end

-- The postmaster's PID (first line of postmaster.pid), or nil.
function Server:pid()
  local f = io.open(self.data .. "/postmaster.pid")
  if not f then return nil end
  local pid = f:read("l")
  f:close()
  return tonumber(pid)
end

function Server:url(user, db, extra)
  return string.format("postgresql://%s@127.0.0.1:%d/%s%s", user or "postgres", self.port, db or "postgres", extra or "")
end

-- psql as the superuser over TCP; returns the output (unaligned, tuples only).
function Server:psql(sql, db)
  local r = run({ "psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", tostring(self.port),
    "-U", "postgres", "-d", db or "postgres", "-c", sql }, { env = { PGPASSWORD = M.PASSWORD } })
  return (r.stdout:gsub("\n$", ""))
end

function Server:count(sql, db)
  return math.tointeger(tonumber(self:psql(sql, db)))
end

function Server:createdb(name)
  self:psql("CREATE DATABASE " .. name)
  return name
end

function Server:destroy()
  if self:pid() then self:stop("immediate") end
  os.execute("rm -rf " .. sh_quote(self.dir))
end

-- Starts a new cluster; returns the server or raises.
function M.start()
  local bin = assert(M.bindir(), "no PostgreSQL server binaries in /usr/lib/postgresql/*/bin")
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -m 0755 " .. sh_quote(dir)))
  local s = setmetatable({ bin = bin, dir = dir, data = dir .. "/data" }, Server)
  local pwfile = dir .. "/pw"
  local f = assert(io.open(pwfile, "w"))
  f:write(M.PASSWORD, "\n")
  f:close()
  if as_root then assert(os.execute("chown -R postgres: " .. sh_quote(dir))) end
  run(s:as_owner { bin .. "/initdb", "-D", s.data, "-U", "postgres", "--pwfile", pwfile, "-A", "scram-sha-256",
    "--auth-local", "trust", "-E", "UTF8", "--no-sync", "--no-instructions" })
  -- throw-away data: no fsync; small enough for a CI machine
  f = assert(io.open(s.data .. "/postgresql.auto.conf", "a"))
  f:write("fsync = off\nfull_page_writes = off\n# off on purpose: the uploader must turn it on for its own commits\nsynchronous_commit = off\nshared_buffers = 32MB\n",
    "max_connections = 40\nmax_wal_size = 1GB\n")
  f:close()
  local seed = sys.getpid() * 7919 + math.floor(sys.clock() * 1000)
  for attempt = 1, 8 do
    s.port = 20000 + (seed + attempt * 4099) % 30000
    local ok, err = s:start()
    if ok then return s end
    if attempt == 8 then error("cannot start PostgreSQL: " .. tostring(err)) end
  end
end

return M
