local cli = require "hplua.cli"

describe("command line", function()
  it("defaults PATH to tests", function()
    local o = assert(cli.parse {})
    assert.are.same({ "tests" }, o.paths)
  end)

  it("collects repeated -k and both option forms", function()
    local o = assert(cli.parse { "-k", "a", "--timeout=2.5", "-k", "b", "--color", "never", "x" })
    assert.are.same({ "a", "b" }, o.keywords)
    assert.are.equal(2.5, o.timeout)
    assert.are.equal("never", o.color)
    assert.are.same({ "x" }, o.paths)
  end)

  it("rejects unknown options, missing values and bad numbers", function()
    assert.matches("unknown option '%-%-frobnicate'", select(2, cli.parse { "--frobnicate" }))
    assert.matches("needs a value", select(2, cli.parse { "-k" }))
    assert.matches("positive number", select(2, cli.parse { "--timeout", "soon" }))
    assert.matches("auto, always or never", select(2, cli.parse { "--color", "pink" }))
  end)

  it("passes everything after -e CODE to the script", function()
    local o = assert(cli.parse { "-e", "print(...)", "-k", "x" })
    assert.are.same({ kind = "-e", value = "print(...)", args = { "-k", "x" } }, o.script)
  end)
end)
