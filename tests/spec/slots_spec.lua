-- The slots supervisor's cheap reading of its children's lines (lua/slots.lua): what
-- it reads from a line without decoding must be what decoding gives.
local slots = require "hplua.slots"
local json = require "hplua.json"

local function finished(test, status, extra)
  local ev = { v = 1, seq = 8, run_id = "r", slot = 2, serial = "SN-1", type = "test_finished", test = test,
    status = status, duration = 0.25, time = "2026-01-01T00:00:00.000+00:00", attempt = 1, attempts = 1,
    error = status == "failed" and { message = "boom" } or json.null,
    measurements = { { name = "v", status = "passed", value = 3.3 } }, messages = { { text = '"type":"x"' } } }
  for k, v in pairs(extra or {}) do ev[k] = v end
  return json.encode(ev)
end

describe("slots: event lines", function()
  it("reads a test's start and a passed test from the line's tail, as decoding does", function()
    local started = json.encode({ v = 1, seq = 2, type = "test_started", test = "1_wait::step 1", slot = 1,
      time = "2026-01-01T00:00:00.000+00:00", name = "step 1" })
    assert.are.same({ type = "test_started", test = "1_wait::step 1" }, slots.event_of(started))
    assert.are.same({ type = "test_finished", status = "passed", test = "a::b" },
      slots.event_of(finished("a::b", "passed")))
    assert.are.same({ type = "test_finished", status = "skipped", test = "a::b" },
      slots.event_of(finished("a::b", "skipped")))
  end)

  it("decodes what the tail cannot give: a failure's message, a logged duration, escaped names", function()
    local ev = slots.event_of(finished("a::b", "failed"))
    assert.are.equal("boom", ev.error.message)
    assert.are.equal("failed", ev.status)
    ev = slots.event_of(finished("a::b", "passed"), "all")
    assert.are.equal(0.25, ev.duration)
    ev = slots.event_of(finished('a::say "hi" \\ there', "passed"))
    assert.are.equal('a::say "hi" \\ there', ev.test)
    ev = slots.event_of(finished("a::" .. string.rep("x", 600), "passed"))
    assert.are.equal("a::" .. string.rep("x", 600), ev.test)
  end)

  it("skips the events the console does not fold, wherever their type is", function()
    assert.is_nil(slots.event_of(json.encode({ v = 1, type = "message", text = '"type":"test_started","v":1}' })))
    assert.is_nil(slots.event_of(json.encode({ v = 1, type = "measurement", value = 3.3, name = "v" })))
    local ev = slots.event_of(json.encode({ v = 1, type = "run_finished", status = "passed", exit_code = 0,
      warnings = {} }))
    assert.are.equal("run_finished", ev.type)
    assert.are.equal(0, ev.exit_code)
  end)
end)

describe("slots: request lines", function()
  it("reads every request slotlink writes as decoding does, escaped names included", function()
    for _, msg in ipairs {
      { type = "lock", id = 3, name = "dmm", test = "1_wait::step 1" },
      { type = "barrier", id = 12, name = "chamber", test = "a::b" },
      { type = "unlock", name = "dmm" },
      { type = "release_all" },
      { type = "lock", id = 4, name = 'the "dmm"', test = "a\\b" },
      { type = "unlock", name = "a\\b" },
    } do
      local got = slots.request_of(json.encode(msg))
      assert.are.same(json.decode(json.encode(msg)), got)
      assert.are.same(msg, got)
      if msg.id then assert.are.equal(math.type(msg.id), math.type(got.id)) end
    end
  end)
end)
