-- hplua.spool: text appended piece by piece and read back in ranges, kept in an
-- unnamed temporary file (sys.tmpfile) so that a report of 100,000 tests does not
-- hold every record in the run's memory until the run ends. Without a temporary file
-- (no writable /tmp, or a write to it fails), and in the history's recorder (a
-- process of its own: new{memory = true}), the text is kept in memory.
-- Marks are byte offsets: copy(from, to, write) hands the text between two marks
-- to write in chunks of at most CHUNK bytes.
local math, table, error, setmetatable = math, table, error, setmetatable -- test code may replace globals
local sys = require "hplua.sys"

local M = {}

local CHUNK = 1 << 20
local BUFFER = 1 << 18 -- the temporary file's stdio buffer: one write(2) per 256 KiB

local Spool = {}
Spool.__index = Spool

-- opts.memory: kept in memory from the start (a process whose memory is its own,
-- the history's recorder: read back from a file, the text would be copied twice
-- more into fresh memory at the end, where the run waits for it).
function M.new(opts)
  local f = not (opts and opts.memory) and sys.tmpfile(BUFFER) or nil -- io.tmpfile, not inherited by children
  local s = setmetatable({ file = f, size = 0 }, Spool)
  if not f then s.pieces, s.ends = {}, {} end
  return s
end

-- From the file to memory: what the file holds so far becomes the first piece.
function Spool:to_memory()
  local f, text = self.file, ""
  self.file = nil
  if self.size > 0 then
    text = f:seek("set", 0) and f:read(self.size)
    if not text or #text ~= self.size then error("hplua.spool: cannot read back the temporary file", 0) end
  end
  f:close()
  self.pieces, self.ends = { text }, { self.size }
end

-- comma: a "," goes first (between a list's items), in the same call
function Spool:append(s, comma)
  local f = self.file
  if f then
    if comma then
      if f:write(",", s) then
        self.size = self.size + #s + 1
        return
      end
    elseif f:write(s) then
      self.size = self.size + #s
      return
    end
    self:to_memory() -- what the file took of this piece is past its size, and dropped
  end
  if comma then s = "," .. s end
  local n = #self.pieces + 1
  self.pieces[n] = s
  self.size = self.size + #s
  self.ends[n] = self.size
end

function Spool:mark()
  return self.size
end

-- Calls write(chunk) for the text between marks from and to; stops at the first
-- call that does not return true and returns what it returned (true when all went).
-- handle (optional): a report's atomic file (json.open_atomic), which takes the text
-- from the temporary file itself (handle:copy, in the kernel), not through strings.
function Spool:copy(from, to, write, handle)
  if self.file and not self.file:flush() then self:to_memory() end
  local f = self.file
  if f and handle then return handle:copy(f, from, to - from) end
  if f then
    local pos = from
    while pos < to do
      local n = math.min(CHUNK, to - pos)
      local s = f:seek("set", pos) and f:read(n)
      if not s or #s ~= n then error("hplua.spool: cannot read back the temporary file", 0) end
      local ok, err, code = write(s)
      if not ok then return ok, err, code end
      pos = pos + n
    end
    f:seek("end")
    return true
  end
  -- in memory: the first piece ending after from (binary search), then on
  local pieces, ends = self.pieces, self.ends
  local lo, hi = 1, #pieces
  while lo < hi do
    local mid = (lo + hi) // 2
    if ends[mid] > from then hi = mid else lo = mid + 1 end
  end
  local i = lo
  while i <= #pieces and from < to do
    local p = pieces[i]
    local start = ends[i] - #p
    local a, b = from - start + 1, math.min(#p, to - start)
    local ok, err, code = write((a == 1 and b == #p) and p or p:sub(a, b))
    if not ok then return ok, err, code end
    from = start + b
    i = i + 1
  end
  return true
end

-- The text between two marks as one string.
function Spool:read(from, to)
  local parts = {}
  self:copy(from, to, function(s)
    parts[#parts + 1] = s
    return true
  end)
  return table.concat(parts)
end

function Spool:close()
  if self.file then self.file:close() end
  self.file, self.pieces, self.ends = nil, nil, nil
end

return M
