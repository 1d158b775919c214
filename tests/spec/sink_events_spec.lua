-- The events file's sink (lua/sink_events.lua): an event that JSON cannot hold whole
-- (a function among a test's artifacts, put there by code that went round
-- hp.artifact's check) still reaches the file with its test, status and error.
local sink_events = require "hplua.sink_events"
local json = require "hplua.json"

describe("events file: an event JSON cannot hold whole", function()
  it("keeps the test, its status and error; says what it left out, in the member's JSON type", function()
    local path = os.tmpname()
    local sink = assert(sink_events.open(path))
    sink:test_finished({ v = 1, seq = 3, run_id = "r", type = "test_finished", time = "2026-01-01T00:00:00.000+00:00",
      test = "m::t", status = "failed", attempt = 1, error = { message = "boom" },
      artifacts = { f = function() end }, messages = json.array({ { text = "hi", extra = coroutine.create(print) } }),
      handle = io.stdout })
    sink:close()
    local f = assert(io.open(path))
    local line = f:read("l")
    f:close()
    os.remove(path)
    local ev = assert(json.decode(line))
    assert.are.equal("m::t", ev.test)
    assert.are.equal("failed", ev.status)
    assert.are.equal("boom", ev.error.message)
    assert.are.equal(3, ev.seq)
    assert.are.equal("table", type(ev.artifacts))
    assert.truthy(ev.artifacts.error:find("not encodable", 1, true))
    assert.are.same({}, ev.messages)
    assert.are.equal("not encodable: a userdata", ev.handle)
  end)
end)
