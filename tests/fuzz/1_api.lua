-- API fuzz: every hp.* function called with random argument types and values
-- (seeded), inside one host. The host must never crash or abort, only raise Lua
-- errors. HPLUA_FUZZ_SEED, HPLUA_FUZZ_CALLS and HPLUA_FUZZ_SECONDS tune it.
local hp = require "hplua"
local json = require "hplua.json"

local seed = tonumber(os.getenv("HPLUA_FUZZ_SEED") or "20261127")
local calls = tonumber(os.getenv("HPLUA_FUZZ_CALLS") or "100000")
local budget = tonumber(os.getenv("HPLUA_FUZZ_SECONDS") or "120")

hp.test("random calls of the whole API", function()
  math.randomseed(seed)
  local function pick(list) return list[math.random(#list)] end
  local handle = hp.process.start("fuzz-base", { "true" })
  handle:wait(5)
  local co = coroutine.create(function() end)
  local cyclic = {}
  cyclic.self = cyclic
  local scalars = { nil, true, false, 0, -1, 1, 2.5, -0.0, 1e308, -1e308, 0 / 0, math.huge, -math.huge,
    math.maxinteger, math.mininteger, "", "x", "true", "\0\255\1", string.rep("y", 5000), "fuzz-base",
    print, co, io.stdout, json.null, handle, cyclic, {}, { 1, 2, 3 }, { name = "n", value = 1 } }
  local names = {}
  for i = 1, 40 do names[i] = "p" .. i end
  local small = { 0, 0.001, 0.01, -1, "0.01", nil, true }
  local commands = { { "true" }, { "false" }, "exit 3", "echo out; echo err >&2", { "no-such-command-fuzz" },
    { "/etc" }, {}, { "true", 5 }, { {} }, 42, "", { "sh", "-c", "printf partial" } }
  local option_keys = { "env", "cwd", "stdin", "timeout", "on_line", "stderr", "depends", "critical", "attempts",
    "skip", "name", "value", "unit", "min", "max", "expect", "id", "title", "text", "kind", "choices", "bogus" }
  local function random_value(depth)
    local r = math.random(10)
    if r <= 5 or depth > 2 then return scalars[math.random(#scalars + 1)] end -- sometimes nil
    if r == 6 then return pick(small) end
    if r == 7 then return pick(names) end
    if r == 8 then return function(...) if math.random(3) == 1 then error("callback fails") end end end
    local t = {}
    for _ = 1, math.random(0, 4) do
      local k = math.random(3) == 1 and math.random(3) or pick(option_keys)
      t[k] = random_value(depth + 1)
    end
    return t
  end
  local function opts()
    local t = {}
    for _ = 1, math.random(0, 3) do
      local k = pick(option_keys)
      t[k] = (k == "timeout" and pick(small)) or (k == "cwd" and pick { "/", "/no/such", 5 })
        or (k == "stderr" and pick { "pipe", "stdout", "x" }) or random_value(1)
    end
    return t
  end
  -- A finished name can be started again, and every start is a real process
  -- (slow where process creation is, as under ASan): a name already started
  -- comes back only now and then, so the calls stay many.
  local spawned = {}
  local function start_name(n)
    if n == nil then n = pick(names) end
    if type(n) ~= "string" and type(n) ~= "number" then return n end
    if spawned[tostring(n)] and math.random(50) > 1 then return pick { "", {}, true } end
    spawned[tostring(n)] = true
    return n
  end
  local function some_names() return pick { nil, pick(names), { pick(names), pick(names) }, { 5 }, "fuzz-base", 0.01 } end

  -- a TCP stream to the device simulator (tests/c/streamdev.c) and a port where
  -- nobody listens; stream calls never wait (timeout 0 or a bad one), hosts are never looked up
  local function streamdev(name)
    local ready
    local p = hp.process.start(name, { assert(os.getenv("STREAMDEV")), "--tcp" },
      { on_line = function(l) ready = ready or l:match("^READY (%d+)") end })
    while not ready do hp.sleep(0.01) end
    return p, tonumber(ready)
  end
  local dev, port = streamdev("fuzz-dev")
  local gone, closed_port = streamdev("fuzz-gone")
  gone:terminate(1)
  local stream = assert(hp.tcp.connect("127.0.0.1", port, { timeout = 5, max_line = 4096 }))
  local no_wait = { 0, -1, "0", {}, -0.0 }
  local stream_calls = {
    function() return stream:write(random_value(0), pick(no_wait)) end,
    function() return stream:read(random_value(0), pick(no_wait)) end,
    function() return stream:read_line(pick(no_wait)) end,
    function() return stream:read_until(random_value(0), pick(no_wait)) end,
    function() return stream:drain(pick(no_wait)) end,
    function() return stream:discard(random_value(0)) end,
  }

  -- each target builds its own arguments: argument types are random, but the
  -- values that could block (sleeps, waits) or run arbitrary commands are drawn
  -- from safe pools
  local targets = {
    function() return hp.test(random_value(0), random_value(0), random_value(0)) end,
    function() return hp.module(random_value(0)) end,
    function() return hp.before_all(random_value(0)) end,
    function() return hp.after_each(random_value(0)) end,
    function() return hp.fixture(random_value(0), random_value(0)) end,
    function() return hp.use(random_value(0)) end,
    function() return hp.fail(random_value(0)) end,
    function() return hp.skip(random_value(0)) end,
    function() return hp.set_message(random_value(0), random_value(0)) end,
    function() return hp.sleep(pick(small)) end,
    function() return hp.clock(random_value(0)) end,
    function() return hp.now(random_value(0)) end,
    function() return hp.measure(random_value(0)) end,
    function() return hp.measure { name = random_value(0), value = random_value(0), min = random_value(0),
      max = random_value(0), expect = random_value(0), unit = random_value(0) } end,
    function() return hp.set_dut(random_value(0)) end,
    function() return hp.set_stand(random_value(0)) end,
    function() return hp.set_instrument(random_value(0)) end,
    function() return hp.artifact(random_value(0), random_value(0)) end,
    function() return hp.dialog(random_value(0)) end,
    function() return hp.dialog { id = pick(names), kind = pick { "confirm", "number", "choice", "text", 7 },
      choices = random_value(1) } end,
    function() return hp.expect(random_value(0))[pick { "to_equal", "to_be", "to_be_near", "to_match",
      "to_contain", "to_be_truthy", "to_be_a", "to_be_greater_than", "to_fail", "to_be_nil" }](random_value(0), random_value(0)) end,
    function() return hp.expect(random_value(0)).never.to_equal(random_value(0)) end,
    function() return hp.process.start(start_name(random_value(0) or false), pick(commands), random_value(0)) end,
    function() return hp.process.start(start_name(), pick(commands), opts()) end,
    function() return hp.process.lua(start_name(), pick { "print(1)", "error('x')", 5, "os.exit(2)" }, opts()) end,
    function() return hp.process.collect(random_value(0)) end,
    function() return hp.process.wait(some_names(), pick(small)) end,
    function() return hp.process.alive(random_value(0)) end,
    function() return hp.process.names(random_value(0)) end,
    function() return hp.process.results(random_value(0)) end,
    function() return hp.process.terminate(pick { pick(names), random_value(0) }, pick(small)) end,
    function() return hp.process.terminate_all(pick(small)) end,
    function() return handle:collect(random_value(0)) end,
    function() return handle:wait(pick(small)) end,
    function() return handle.alive(random_value(0)) end,
    function() return handle.terminate(random_value(0), pick(small)) end,
    function() return tostring(handle), handle.name, handle.pid, handle[random_value(0) or 1] end,
    function() return hp.serial.open(pick { "/dev/null", "/nonexistent/tty", random_value(0) }, random_value(0)) end,
    function() return hp.serial.open("/dev/null", { baud = random_value(1), data_bits = random_value(1), parity = random_value(1),
      stop_bits = random_value(1), flow = random_value(1), timeout = pick(small), max_line = random_value(1) }) end,
    function() return hp.tcp.connect(pick { "127.0.0.1", 5, {}, nil }, pick { closed_port, random_value(0) },
      pick { { timeout = pick(small) }, random_value(0) }) end,
    function() return pick(stream_calls)() end,
    function() return getmetatable(stream).__index[pick { "read", "read_line", "discard", "close" }](random_value(0), 0) end,
    function() return tostring(stream), stream[random_value(0) or 1] end,
    function() return json.encode(random_value(0), random_value(0)) end,
    function() return json.decode(pick { "{", "[1,2]", '{"a":', "null", "\0", string.rep("[", 300) }) end,
  }

  local started, n, raised = hp.clock(), 0, 0
  while n < calls and hp.clock() - started < budget do
    n = n + 1
    local ok = pcall(pick(targets))
    if not ok then raised = raised + 1 end
  end
  stream:close()
  dev:terminate(0.1)
  hp.process.terminate_all(0.1)
  -- the fuzz records random measurements; only the absence of a crash is judged here
  require("hplua.context").current.measurements = {}
  io.write(string.format("fuzz: %d calls, %d raised errors, seed %d, %.1f s\n", n, raised, seed, hp.clock() - started))
  hp.expect(n).to_be_greater_than(0)
end)
