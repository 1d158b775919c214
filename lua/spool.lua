-- hplua.spool: text appended piece by piece and read back in ranges, kept in an
-- unnamed temporary file (sys.tmpfile) so that a report of 100,000 tests does not
-- hold every record in the run's memory until the run ends. Without a temporary file
-- (no writable /tmp, or a write to it fails: a full disk, a file size limit), and in
-- the history's recorder (a process of its own: new{memory = true}), the text is
-- kept in memory, all of it.
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
-- With a file: flushed is how much of it is known to be in the file (a flush said
-- so); the pieces after that are kept in pending[1..held] (references, not copies)
-- until the next flush, since a write that fails leaves the stdio buffer in no known
-- state. The list is reused: what it held past held is left for the next pieces.
function M.new(opts)
  local f = not (opts and opts.memory) and sys.tmpfile(BUFFER) or nil -- io.tmpfile, not inherited by children
  local s = setmetatable({ file = f, size = 0, flushed = 0, pending = {}, held = 0 }, Spool)
  if not f then s.pieces, s.ends = {}, {} end
  return s
end

-- From the file to memory (a write or flush failed: a full disk, a file size limit):
-- what the file is known to hold, read from its descriptor, and then what was
-- pending become the first pieces. Nothing appended is lost.
function Spool:to_memory()
  local f, text = self.file, ""
  self.file = nil
  if self.flushed > 0 then
    text = sys.pread(f, 0, self.flushed)
    if not text or #text ~= self.flushed then error("hplua.spool: cannot read back the temporary file", 0) end
  end
  pcall(f.close, f) -- its buffer cannot be written either
  local rest = table.concat(self.pending, "", 1, self.held)
  self.pending, self.held = nil, 0
  if rest == "" then
    self.pieces, self.ends = { text }, { self.flushed }
  else
    self.pieces, self.ends = { text, rest }, { self.flushed, self.flushed + #rest }
  end
end

-- Flushes the file; -> true, or false once the spool has moved to memory.
function Spool:flush()
  if self.file:flush() then
    self.flushed, self.held = self.size, 0
    return true
  end
  self:to_memory()
  return false
end

-- comma: a "," goes first (between a list's items), in the same call
function Spool:append(s, comma)
  local f = self.file
  if f then
    local pending, held, size, ok = self.pending, self.held, self.size, nil
    if comma then
      held = held + 1
      pending[held] = ","
      size = size + 1
      ok = f:write(",", s)
    else
      ok = f:write(s)
    end
    held = held + 1
    pending[held] = s
    size = size + #s
    self.held, self.size = held, size
    if not ok then
      self:to_memory()
    elseif size - self.flushed >= BUFFER then
      self:flush() -- what the buffer held is known to be in the file now
    end
    return
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
  if self.file then self:flush() end
  local f = self.file
  if f and handle then return handle:copy(f, from, to - from) end
  if f then
    local pos = from
    while pos < to do
      local n = math.min(CHUNK, to - pos)
      local s = sys.pread(f, pos, n)
      if not s or #s ~= n then error("hplua.spool: cannot read back the temporary file", 0) end
      local ok, err, code = write(s)
      if not ok then return ok, err, code end
      pos = pos + n
    end
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
