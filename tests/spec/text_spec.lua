local text = require "hplua.text"

describe("text.escape_control (console output of test-supplied strings)", function()
  local esc = text.escape_control

  it("leaves ordinary text, tabs, newlines and UTF-8 alone", function()
    assert.are.equal("plain text", esc("plain text"))
    assert.are.equal("a\tb\nc", esc("a\tb\nc"))
    assert.are.equal("café ✓ \u{1F600}", esc("café ✓ \u{1F600}"))
    assert.are.equal("42", esc(42))
  end)

  it("makes terminal escapes and other controls visible", function()
    assert.are.equal("\\x1b[31mred\\x1b[0m", esc("\27[31mred\27[0m"))
    assert.are.equal("\\x1b]0;title\\a", esc("\27]0;title\7"))
    assert.are.equal("a\\0b", esc("a\0b"))
    assert.are.equal("over\\rwrite", esc("over\rwrite"))
    assert.are.equal("\\b\\f\\v\\x01\\x1f\\x7f", esc("\8\12\11\1\31\127"))
    assert.are.equal("csi \\u{9b}31m", esc("csi \194\15531m")) -- C1 control, UTF-8 encoded
  end)

  it("shows each byte of invalid UTF-8 as \\xNN", function()
    assert.are.equal("bad \\xff\\xfe end", esc("bad \255\254 end"))
    assert.are.equal("\\xc0\\xaf", esc("\192\175")) -- overlong "/"
    assert.are.equal("\\xed\\xa0\\x80", esc("\237\160\128")) -- a surrogate
    assert.are.equal("cut \\xe2\\x9c", esc("cut \226\156"))
  end)
end)

describe("text.xml_text and text.xml_attr (JUnit)", function()
  it("escapes the specials", function()
    assert.are.equal("&lt;a b=&quot;1&quot;&gt; &amp; &apos;", text.xml_text("<a b=\"1\"> & '"))
    assert.are.equal("]]&gt;", text.xml_text("]]>"))
  end)

  it("writes the characters XML 1.0 forbids as visible escapes", function()
    assert.are.equal("\\0 \\x1b[0m \\x01", text.xml_text("\0 \27[0m \1"))
    assert.are.equal("\\u{fffe}\\u{ffff}", text.xml_text("\u{FFFE}\u{FFFF}"))
    assert.are.equal("bad \u{FFFD}\u{FFFD}", text.xml_text("bad \255\254"))
  end)

  it("keeps tab, newline and CR through a parser", function()
    assert.are.equal("a\tb\nc&#13;", text.xml_text("a\tb\nc\r"))
    assert.are.equal("a&#9;b&#10;c&#13;", text.xml_attr("a\tb\nc\r"))
  end)
end)

describe("text.tap_description and text.yaml_string (TAP)", function()
  it("keeps a description on one line without directives", function()
    assert.are.equal("x \\# SKIP\\nnot ok 2 \\x1b", text.tap_description("x # SKIP\nnot ok 2 \27"))
  end)

  it("writes one-line YAML scalars, cut at a UTF-8 boundary", function()
    assert.are.equal('"a\\x00b \\"q\\" \\\\ \\t\\n \\L\\P \\uFFFE \\xff"', text.yaml_string("a\0b \"q\" \\ \t\n \u{2028}\u{2029} \u{FFFE} \255"))
    assert.are.equal('"\u{E9}\u{E9} ... (3 more bytes)"', text.yaml_string("\u{E9}\u{E9}\u{E9}x", 5))
  end)
end)
