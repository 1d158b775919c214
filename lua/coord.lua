-- hplua.coord: the supervisor's side of hp.lock and hp.barrier (API 10), shared by
-- `hplua --slots N` (lua/slots.lua) and `hplua serve --slots N` (lua/serve.lua).
-- Plain bookkeeping, no I/O: requests come in with handle(slot, msg) (the slot's
-- side is lua/slotlink.lua) and replies go out through the send(slot, msg)
-- function given to new().
--
-- Locks are granted first come, first served (a FIFO queue per lock). A slot that
-- ends or dies releases what it held and leaves every queue and barrier. A barrier
-- opens when every running slot has reached it. A wait that would close a cycle
-- (slot 1 holds A and waits for B, slot 2 holds B and asks for A; or a slot holding
-- a lock at a barrier that a waiter for that lock never reaches) is refused at once,
-- naming the cycle: the waiting test fails instead of the station hanging.
local M = {}

local Coord = {}
Coord.__index = Coord

function M.new(send)
  return setmetatable({
    send = send,
    running = {},  -- slot -> true while its run's process lives
    locks = {},    -- name -> { holder = slot, queue = { { slot, id }, ... } }
    barriers = {}, -- name -> { arrived = { [slot] = id }, n = count }
    waiting = {},  -- slot -> { kind = "lock"|"barrier", name, id }
  }, Coord)
end

function Coord:slot_started(slot)
  self.running[slot] = true
end

-- The slot's process has ended (however): its locks, waits and arrivals go.
function Coord:slot_ended(slot)
  self.running[slot] = nil
  self:release_all(slot)
end

-- The slots that slot waits for now (empty when it does not wait).
function Coord:waits_for(slot)
  local w = self.waiting[slot]
  if not w then return {} end
  if w.kind == "lock" then
    local l = self.locks[w.name]
    return { l and l.holder }
  end
  local b = self.barriers[w.name]
  local out = {}
  for s in pairs(self.running) do
    if not (b and b.arrived[s]) then out[#out + 1] = s end
  end
  table.sort(out)
  return out
end

function Coord:describe_wait(slot)
  local w = self.waiting[slot]
  if w.kind == "lock" then
    return string.format("slot %d waits for lock '%s' held by slot %d", slot, w.name, self.locks[w.name].holder)
  end
  return string.format("slot %d waits at barrier '%s'", slot, w.name)
end

-- A cycle of waits through slot (which has just started waiting): a list of slots
-- from slot back to slot, or nil.
function Coord:find_cycle(slot)
  local path, on_path, done = {}, {}, {}
  local function visit(s)
    path[#path + 1] = s
    on_path[s] = true
    for _, t in ipairs(self:waits_for(s)) do
      if t == slot then
        path[#path + 1] = t
        return true
      end
      if not on_path[t] and not done[t] and self.waiting[t] and visit(t) then return true end
    end
    path[#path] = nil
    on_path[s] = nil
    done[s] = true
    return false
  end
  if visit(slot) then return path end
end

function Coord:cycle_message(cycle)
  local parts = {}
  for i = 1, #cycle - 1 do
    local s, nxt = cycle[i], cycle[i + 1]
    local text = self:describe_wait(s)
    if self.waiting[s].kind == "barrier" then text = text .. string.format(" that slot %d has not reached", nxt) end
    parts[#parts + 1] = text
  end
  return "wait cycle between slots: " .. table.concat(parts, ", ") .. " (no slot could ever go on)"
end

-- Starts a wait; refuses it when it would close a cycle. Returns true when it waits.
function Coord:begin_wait(slot, w)
  self.waiting[slot] = w
  local cycle = self:find_cycle(slot)
  if not cycle then return true end
  local message = self:cycle_message(cycle)
  self.waiting[slot] = nil
  self.send(slot, { type = "refused", id = w.id, message = message })
  return false
end

function Coord:grant(slot, name, id)
  local l = self.locks[name]
  l.holder = slot
  self.waiting[slot] = nil
  self.send(slot, { type = "granted", id = id, name = name })
end

function Coord:lock(slot, name, id)
  local l = self.locks[name]
  if not l then
    l = { queue = {} }
    self.locks[name] = l
  end
  if l.holder == nil then return self:grant(slot, name, id) end
  if l.holder == slot then -- the slot's own side counts nesting; this is a stale hold
    return self.send(slot, { type = "granted", id = id, name = name })
  end
  if self:begin_wait(slot, { kind = "lock", name = name, id = id }) then
    l.queue[#l.queue + 1] = { slot = slot, id = id }
  end
end

function Coord:unlock(slot, name)
  local l = self.locks[name]
  if not l or l.holder ~= slot then return end
  l.holder = nil
  local nxt = table.remove(l.queue, 1)
  if nxt then
    self:grant(nxt.slot, name, nxt.id)
  else
    self.locks[name] = nil
  end
end

function Coord:barrier(slot, name, id)
  local b = self.barriers[name]
  if not b then
    b = { arrived = {}, n = 0 }
    self.barriers[name] = b
  end
  if not b.arrived[slot] then b.n = b.n + 1 end
  b.arrived[slot] = id
  if self:open_barrier(name) then return end
  if not self:begin_wait(slot, { kind = "barrier", name = name, id = id }) then
    b.arrived[slot] = nil
    b.n = b.n - 1
  end
end

-- Opens barrier name when every running slot has reached it; true when it opened.
function Coord:open_barrier(name)
  local b = self.barriers[name]
  if not b or b.n == 0 then return false end
  for s in pairs(self.running) do
    if not b.arrived[s] then return false end
  end
  self.barriers[name] = nil
  local slots = {}
  for s in pairs(b.arrived) do slots[#slots + 1] = s end
  table.sort(slots)
  for _, s in ipairs(slots) do
    self.waiting[s] = nil
    self.send(s, { type = "passed", id = b.arrived[s], name = name, count = #slots })
  end
  return true
end

-- Everything slot holds or waits for is given back (a test cut off, a slot ended).
function Coord:release_all(slot)
  self.waiting[slot] = nil
  local names = {}
  for name in pairs(self.locks) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    local l = self.locks[name]
    for i = #l.queue, 1, -1 do
      if l.queue[i].slot == slot then table.remove(l.queue, i) end
    end
    if l.holder == slot then self:unlock(slot, name) end
  end
  local bnames = {}
  for name, b in pairs(self.barriers) do
    if b.arrived[slot] then
      b.arrived[slot] = nil
      b.n = b.n - 1
    end
    bnames[#bnames + 1] = name
  end
  table.sort(bnames)
  -- one slot fewer to wait for: a barrier may open now
  for _, name in ipairs(bnames) do self:open_barrier(name) end
end

-- One request line from slot's channel (a decoded JSON object).
function Coord:handle(slot, msg)
  if type(msg) ~= "table" then return end
  local t, name, id = msg.type, msg.name, msg.id
  if t == "release_all" then return self:release_all(slot) end
  if type(name) ~= "string" then return end
  if t == "unlock" then return self:unlock(slot, name) end
  if math.type(id) ~= "integer" then return end
  if t == "lock" then
    self:lock(slot, name, id)
  elseif t == "barrier" then
    self:barrier(slot, name, id)
  end
end

-- Who holds what, who waits (for a status line or a test).
function Coord:state()
  local out = { locks = {}, waiting = {} }
  for name, l in pairs(self.locks) do
    local q = {}
    for i, e in ipairs(l.queue) do q[i] = e.slot end
    out.locks[name] = { holder = l.holder, queue = q }
  end
  for s, w in pairs(self.waiting) do out.waiting[s] = { kind = w.kind, name = w.name } end
  return out
end

return M
