local expect = require "hplua.expect"

describe("hp.expect", function()
  it("passes on equal deep tables", function()
    expect({ a = { 1, 2 } }).to_equal { a = { 1, 2 } }
    expect(3).never.to_equal(4)
  end)

  it("names expected, actual and the path of the first difference", function()
    local ok, err = pcall(expect({ v = { 1, 2 } }).to_equal, { v = { 1, 3 } })
    assert.is_false(ok)
    assert.matches('expected 3, got 2 at %["v"%]%[1?2%]', err)
  end)

  it("checks closeness, patterns, containment and failures", function()
    expect(3.30).to_be_near(3.3, 0.01)
    assert.has_error(function() expect(3.5).to_be_near(3.3, 0.01) end)
    expect("SN-0042").to_match("^SN%-%d+$")
    expect({ 1, 2, 3 }).to_contain(2)
    expect(function() error("boom") end).to_fail("boom")
    assert.has_error(function() expect(function() end).to_fail() end)
  end)

  it("says its note (the second argument) after a failure, and only then", function()
    local ok, err = pcall(expect(1, "run 3: exit 2").to_equal, 2)
    assert.is_false(ok)
    assert.matches("expected 2, got 1\nrun 3: exit 2$", err)
    ok, err = pcall(expect(1, "why").never.to_be, 1)
    assert.matches("expected not 1 to be 1\nwhy$", err)
    ok, err = pcall(expect(1).to_equal, 2)
    assert.matches("expected 2, got 1$", err)
    expect(1, "not said").to_equal(1)
    -- the failure is placed at the check, as without a note
    local line, _, at = debug.getinfo(1, "l").currentline, pcall(function() expect(1, "n").to_equal(2) end)
    assert.matches(":" .. line .. ": expected 2, got 1\nn$", at)
    line, _, at = debug.getinfo(1, "l").currentline, pcall(function() expect(1, "n").never.to_be(1) end)
    assert.matches(":" .. line .. ": expected not 1 to be 1\nn$", at)
  end)
end)
