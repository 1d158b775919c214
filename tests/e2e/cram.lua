-- Golden transcripts of real command lines (run with `hplua --exec cram.lua FILE.t`).
--
--   # comment
--   $ command run by /bin/sh in tests/fixtures, stdout and stderr together
--   expected output line
--   a line ending in " (re)" is a Lua pattern for the whole line
--   [N]            the exit status; ends the block
--
-- $CRAMTMP is a fresh folder for the transcript's scratch files.
-- Before comparing, durations such as "0.01s" become "N.NNs".
local file = assert(arg[1], "usage: cram.lua FILE.t")
local fixtures = assert(os.getenv("HPLUA_FIXTURES"), "HPLUA_FIXTURES not set")

local function normalize(line)
  return (line:gsub("%d+%.%d%ds", "N.NNs"))
end

local cases, current = {}, nil
local n = 0
for line in io.lines(file) do
  n = n + 1
  if line:match("^%$ ") then
    current = { cmd = line:sub(3), expected = {}, line = n }
    cases[#cases + 1] = current
  elseif line:match("^%[%d+%]$") then
    assert(current, file .. ":" .. n .. ": exit status without a command")
    current.status = tonumber(line:match("%d+"))
    current = nil
  elseif current then
    current.expected[#current.expected + 1] = line
  elseif not (line:match("^#") or line == "") then
    error(file .. ":" .. n .. ": text outside a command block")
  end
end

local cramtmp = os.tmpname()
os.remove(cramtmp)
assert(os.execute("mkdir -p '" .. cramtmp .. "'"))

local failed = 0
for _, c in ipairs(cases) do
  assert(c.status, file .. ":" .. c.line .. ": command block without [N]")
  local p = io.popen("export CRAMTMP='" .. cramtmp .. "'; cd '" .. fixtures .. "' && (" .. c.cmd .. ") 2>&1 </dev/null; echo \"[$?]\"")
  local out = p:read("a")
  p:close()
  local actual = {}
  for l in out:gmatch("([^\n]*)\n") do actual[#actual + 1] = normalize(l) end
  local status = tonumber(table.remove(actual):match("%d+"))
  local ok = status == c.status and #actual == #c.expected
  for i = 1, math.max(#actual, #c.expected) do
    local e, a = c.expected[i], actual[i]
    if e and a then
      local pat = e:match("^(.*) %(re%)$")
      if pat then
        if not a:match("^" .. pat .. "$") then ok = false end
      elseif normalize(e) ~= a then
        ok = false
      end
    end
  end
  if ok then
    io.write("ok   $ ", c.cmd, "\n")
  else
    failed = failed + 1
    io.write("FAIL $ ", c.cmd, "  (", file, ":", c.line, ")\n")
    io.write("  expected (exit ", c.status, "):\n")
    for _, l in ipairs(c.expected) do io.write("    |", l, "\n") end
    io.write("  actual (exit ", tostring(status), "):\n")
    for _, l in ipairs(actual) do io.write("    |", l, "\n") end
  end
end
os.execute("rm -rf '" .. cramtmp .. "'")
io.write(string.format("%d passed, %d failed\n", #cases - failed, failed))
if failed > 0 then error(failed .. " transcript(s) differ", 0) end
