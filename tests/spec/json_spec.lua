local json = require "hplua.json"

describe("hplua.json", function()
  it("round-trips nested values", function()
    local v = { name = "x", list = { 1, 2.5, true }, nested = { ok = false } }
    assert.are.same(v, json.decode(json.encode(v)))
  end)

  it("encodes marked empty tables as arrays and json.null as null", function()
    assert.are.equal('{"a":[],"b":null}', json.encode({ a = json.array(), b = json.null }):gsub('"b":null,"a":%[%]', '"a":[],"b":null'))
  end)

  it("repairs invalid UTF-8 instead of emitting it", function()
    local s = json.encode("ok \255 \192\128 end")
    assert.are.equal('"ok \239\191\189 \239\191\189\239\191\189 end"', s)
  end)

  it("refuses functions and cycles with a message", function()
    assert.matches("cannot encode a function", select(2, json.encode({ f = print })))
    local t = {}
    t.self = t
    assert.matches("nested too deeply", select(2, json.encode(t)))
  end)

  it("names the line of a syntax error", function()
    local v, err = json.decode('{\n "a": 1,\n oops }')
    assert.is_nil(v)
    assert.matches("line 3", err)
  end)
end)
