-- hplua.text: making test-supplied strings safe to show. Test names, messages and
-- error texts come from test code and instruments: on a terminal they must not be
-- able to move the cursor, recolour or retitle it; in XML they must not break the
-- file (XML 1.0 forbids most control characters and U+FFFE/U+FFFF).
local M = {}

local C0 = { ["\0"] = "\\0", ["\a"] = "\\a", ["\b"] = "\\b", ["\f"] = "\\f", ["\v"] = "\\v", ["\r"] = "\\r",
  ["\27"] = "\\x1b", ["\127"] = "\\x7f" }

local function control(c)
  return C0[c] or string.format("\\x%02x", c:byte())
end

-- A valid UTF-8 sequence: one ASCII byte, or a lead byte and its continuations,
-- without overlongs, surrogates or code points past U+10FFFF.
local UTF8 = {
  "^[\194-\223][\128-\191]",
  "^\224[\160-\191][\128-\191]", "^[\225-\236\238\239][\128-\191][\128-\191]", "^\237[\128-\159][\128-\191]",
  "^\240[\144-\191][\128-\191][\128-\191]", "^[\241-\243][\128-\191][\128-\191][\128-\191]",
  "^\244[\128-\143][\128-\191][\128-\191]",
}

-- Calls emit(piece, kind) for s in order: kind "text" (valid UTF-8 without
-- controls), "control" (one C0 byte but \t and \n, or DEL), "invalid" (one byte
-- that is not valid UTF-8), "c1" (a C1 control, U+0080..U+009F, as 2 bytes).
local SPECIAL = "[%z\1-\8\11-\31\127-\255]"

local function scan(s, emit)
  local i, n, start = 1, #s, 1
  local function flush(j)
    if j > start then emit(s:sub(start, j - 1), "text") end
  end
  while true do
    i = s:find(SPECIAL, i)
    if not i then break end
    local b = s:byte(i)
    if b < 0x80 then
      flush(i)
      emit(s:sub(i, i), "control")
      i = i + 1
      start = i
    else
      local len
      for _, p in ipairs(UTF8) do
        local m = s:match(p, i)
        if m then len = #m break end
      end
      if not len then
        flush(i)
        emit(s:sub(i, i), "invalid")
        i = i + 1
        start = i
      elseif b == 0xc2 and s:byte(i + 1) < 0xa0 then
        flush(i)
        emit(s:sub(i, i + 1), "c1")
        i = i + 2
        start = i
      else
        i = i + len
      end
    end
  end
  flush(n + 1)
end

-- For a terminal: C0 controls but tab and newline, DEL and C1 controls become
-- visible escapes (ESC is "\x1b", NUL "\0", CR "\r"); each byte that is not valid
-- UTF-8 becomes "\xNN". Text that needs none of this is returned as it is.
function M.escape_control(s)
  s = tostring(s)
  if not s:find(SPECIAL) then return s end
  local out = {}
  scan(s, function(piece, kind)
    if kind == "text" then
      out[#out + 1] = piece
    elseif kind == "control" then
      out[#out + 1] = control(piece)
    elseif kind == "c1" then
      out[#out + 1] = string.format("\\u{%x}", piece:byte(2))
    else
      out[#out + 1] = string.format("\\x%02x", piece:byte())
    end
  end)
  return table.concat(out)
end

local XML_SPECIAL = { ["<"] = "&lt;", [">"] = "&gt;", ["&"] = "&amp;", ['"'] = "&quot;", ["'"] = "&apos;",
  ["\r"] = "&#13;" }
local XML_ATTR = { ["<"] = "&lt;", [">"] = "&gt;", ["&"] = "&amp;", ['"'] = "&quot;", ["'"] = "&apos;",
  ["\r"] = "&#13;", ["\n"] = "&#10;", ["\t"] = "&#9;" }

-- XML 1.0 character data: invalid UTF-8 becomes U+FFFD (as in the JSON report),
-- the characters XML forbids (C0 controls but tab, LF and CR; U+FFFE, U+FFFF)
-- become visible escapes ("\x1b", "\0", "\u{fffe}"), specials are escaped. CR is
-- written as a character reference so that a parser does not fold it into LF.
local XML_PLAIN = "[%z\1-\31<>&\"'\127-\255]" -- text without any of these is written as it is

local function xml(s, map)
  s = tostring(s)
  if not s:find(XML_PLAIN) then return s end
  local out = {}
  scan(s, function(piece, kind)
    if kind == "text" then
      out[#out + 1] = piece:gsub("\239\191([\190\191])", function(b) return string.format("\\u{fff%x}", b:byte() - 0xb0) end)
    elseif kind == "control" then
      out[#out + 1] = piece == "\r" and piece or piece == "\127" and piece or control(piece)
    elseif kind == "c1" then
      out[#out + 1] = piece
    else
      out[#out + 1] = "\239\191\189"
    end
  end)
  return (table.concat(out):gsub("[<>&\"'\r\n\t]", map))
end

function M.xml_text(s) return xml(s, XML_SPECIAL) end

-- The same for an attribute value: also tab and newline as references, which a
-- parser would otherwise turn into spaces.
function M.xml_attr(s) return xml(s, XML_ATTR) end

-- TAP: a test description on one line, where "#" would start a directive.
function M.tap_description(s)
  return (M.escape_control(s):gsub("[\n#]", { ["\n"] = "\\n", ["#"] = "\\#" }))
end

-- A YAML double-quoted scalar for a TAP diagnostic block, on one line: controls,
-- quotes, backslashes, U+2028/U+2029 and U+FFFE/U+FFFF escaped, invalid UTF-8 as
-- \xNN. Perl's TAP::Parser cannot read a quoted scalar much past 32 KB, so the
-- text is cut at max bytes (default 16 KB) with a note of what was left out; the
-- JSON report keeps all of it.
M.YAML_MAX = 16 * 1024

function M.yaml_string(s, max)
  s = tostring(s)
  max = max or M.YAML_MAX
  local cut = 0
  if #s > max then
    local n = max
    while n > 0 and s:byte(n + 1) and s:byte(n + 1) >= 0x80 and s:byte(n + 1) < 0xc0 do n = n - 1 end
    cut = #s - n
    s = s:sub(1, n)
  end
  local out = {}
  scan(s, function(piece, kind)
    if kind == "text" then
      out[#out + 1] = piece:gsub('[\t\n"\\]', { ["\t"] = "\\t", ["\n"] = "\\n", ['"'] = '\\"', ["\\"] = "\\\\" })
        :gsub("\226\128([\168\169])", { ["\168"] = "\\L", ["\169"] = "\\P" })
        :gsub("\239\191([\190\191])", function(b) return string.format("\\uFFF%X", b:byte() - 0xb0) end)
    elseif kind == "c1" then
      out[#out + 1] = string.format("\\x%02x", piece:byte(2))
    else
      out[#out + 1] = string.format("\\x%02x", piece:byte())
    end
  end)
  if cut > 0 then out[#out + 1] = string.format(" ... (%d more bytes)", cut) end
  return '"' .. table.concat(out) .. '"'
end

return M
