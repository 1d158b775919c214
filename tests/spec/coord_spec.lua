-- The supervisor's side of hp.lock and hp.barrier (lua/coord.lua), without processes.
local coord = require "hplua.coord"
local slots = require "hplua.slots"

local function station(n)
  local sent = {}
  local c = coord.new(function(slot, msg) sent[#sent + 1] = { slot = slot, type = msg.type, id = msg.id,
    message = msg.message, count = msg.count } end)
  for i = 1, n do c:slot_started(i) end
  local function take()
    local out = sent
    sent = {}
    return out
  end
  return c, take
end

describe("slot locks", function()
  it("grants at once when free, queues first come first served, hands over on unlock", function()
    local c, take = station(3)
    c:handle(1, { type = "lock", id = 1, name = "dmm" })
    assert.are.same({ { slot = 1, type = "granted", id = 1 } }, take())
    c:handle(3, { type = "lock", id = 7, name = "dmm" })
    c:handle(2, { type = "lock", id = 4, name = "dmm" })
    assert.are.same({}, take())
    c:handle(1, { type = "unlock", name = "dmm" })
    assert.are.same({ { slot = 3, type = "granted", id = 7 } }, take())
    c:handle(3, { type = "unlock", name = "dmm" })
    assert.are.same({ { slot = 2, type = "granted", id = 4 } }, take())
    c:handle(2, { type = "unlock", name = "dmm" })
    assert.is_nil(c:state().locks.dmm)
  end)

  it("releases what a slot held and leaves its queue places when it ends", function()
    local c, take = station(3)
    c:handle(1, { type = "lock", id = 1, name = "a" })
    c:handle(2, { type = "lock", id = 1, name = "a" })
    c:handle(3, { type = "lock", id = 1, name = "a" })
    take()
    c:slot_ended(2) -- a waiter dies: out of the queue
    c:slot_ended(1) -- the holder dies: the next waiter gets it
    assert.are.same({ { slot = 3, type = "granted", id = 1 } }, take())
  end)

  it("release_all after a cut-off test frees held locks and pending waits", function()
    local c, take = station(2)
    c:handle(1, { type = "lock", id = 1, name = "a" })
    c:handle(2, { type = "lock", id = 2, name = "a" })
    take()
    c:handle(2, { type = "release_all" })
    c:handle(1, { type = "release_all" })
    assert.are.same({}, take())
    assert.is_nil(c:state().locks.a)
  end)

  it("refuses the wait that closes a cycle, naming it; the other slot goes on", function()
    local c, take = station(2)
    c:handle(1, { type = "lock", id = 1, name = "A" })
    c:handle(2, { type = "lock", id = 1, name = "B" })
    c:handle(1, { type = "lock", id = 2, name = "B" })
    take()
    c:handle(2, { type = "lock", id = 2, name = "A" })
    local out = take()
    assert.are.equal(1, #out)
    assert.are.equal("refused", out[1].type)
    assert.are.equal(2, out[1].slot)
    assert.matches("slot 2 waits for lock 'A' held by slot 1, slot 1 waits for lock 'B' held by slot 2", out[1].message)
    c:handle(2, { type = "unlock", name = "B" }) -- slot 2's test fails and unwinds
    assert.are.same({ { slot = 1, type = "granted", id = 2 } }, take())
  end)

  it("finds a cycle of three", function()
    local c, take = station(3)
    for i, name in ipairs { "A", "B", "C" } do c:handle(i, { type = "lock", id = 1, name = name }) end
    c:handle(1, { type = "lock", id = 2, name = "B" })
    c:handle(2, { type = "lock", id = 2, name = "C" })
    take()
    c:handle(3, { type = "lock", id = 2, name = "A" })
    local out = take()
    assert.are.equal("refused", out[1].type)
    assert.matches("slot 3 waits for lock 'A' held by slot 1, slot 1 waits for lock 'B' held by slot 2, " ..
      "slot 2 waits for lock 'C' held by slot 3", out[1].message)
  end)
end)

describe("slot barriers", function()
  it("opens when every running slot has arrived, and counts them", function()
    local c, take = station(3)
    c:handle(1, { type = "barrier", id = 1, name = "b" })
    c:handle(3, { type = "barrier", id = 5, name = "b" })
    assert.are.same({}, take())
    c:handle(2, { type = "barrier", id = 2, name = "b" })
    assert.are.same({ { slot = 1, type = "passed", id = 1, count = 3 }, { slot = 2, type = "passed", id = 2, count = 3 },
      { slot = 3, type = "passed", id = 5, count = 3 } }, take())
  end)

  it("a slot that ends no longer counts", function()
    local c, take = station(3)
    c:handle(1, { type = "barrier", id = 1, name = "b" })
    c:handle(2, { type = "barrier", id = 1, name = "b" })
    c:slot_ended(3)
    assert.are.same(2, #take())
  end)

  it("refuses a barrier wait while holding a lock another slot waits for", function()
    local c, take = station(2)
    c:handle(1, { type = "lock", id = 1, name = "L" })
    c:handle(2, { type = "lock", id = 1, name = "L" })
    take()
    c:handle(1, { type = "barrier", id = 2, name = "b" })
    local out = take()
    assert.are.equal("refused", out[1].type)
    assert.matches("slot 1 waits at barrier 'b' that slot 2 has not reached, slot 2 waits for lock 'L' held by slot 1",
      out[1].message)
  end)
end)

describe("--slots on the command line", function()
  it("passes the run options to every slot and keeps its own", function()
    local argv = { "--slots", "4", "-k", "x", "--serial", "A", "--json=r-{slot}.json", "--timeout", "3", "-x",
      "--arg", "k=v", "suite", "--color", "never", "--", "other" }
    assert.are.same({ "-k", "x", "--timeout", "3", "-x", "--arg", "k=v" }, slots.passed_options(argv))
  end)

  it("orders exit statuses by how bad they are", function()
    assert.are.equal(1, slots.worse(0, 1))
    assert.are.equal(2, slots.worse(2, 1))
    assert.are.equal(1, slots.worse(5, 1))
    assert.are.equal(3, slots.worse(3, 2))
  end)
end)
