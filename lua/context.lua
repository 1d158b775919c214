-- hplua.context: what the test authors' API (stdlib/) needs of the running run:
-- the file being collected, the attempt running now, fixtures, and the bus that
-- carries everything recorded to the outputs. The run itself (lua/runner.lua)
-- owns its plan, results and run information.
local json = require "hplua.json"

local M = {}

-- hp.skip() raises an object with this metatable; the runner turns it into a skip.
M.skip_mt = { __tostring = function(s) return "skipped: " .. tostring(s.reason) end }

function M.reset()
  M.collecting = nil   -- { module = mod } or { suite = scope } while a file loads
  M.current = nil      -- the running attempt: { test, attempt, measurements, artifacts }
  M.errors = {}        -- collection errors: { message, file, line }
  M.fixtures = {}      -- name -> { fn, file, line, created, value, teardown, error }
  M.fixture_order = {} -- fixtures in order of creation
  M.bus = nil          -- the run's event bus (nil outside a test run: hplua -e)
  M.dialogs = nil      -- the dialog answer providers, in order (hplua.dialog)
  M.run = { id = nil, slot = nil, serial = nil, args = {} } -- hp.run
  M.run_messages = nil -- { messages, keyed }: messages recorded outside a test
  M.run_info = { dut = {}, stand = {}, instruments = {} } -- what hp.set_* recorded
  M.slotlink = nil     -- a slot's lock/barrier channel (hplua.slotlink), under a supervisor
  M.assertion = nil    -- text of the last failed hp.expect (its error kind is assertion)
end
M.reset()

-- Location of the caller of an API function: the nearest frame outside the host.
M.caller = require("hplua.sys").caller

-- An event goes to every output or to none: a stop that comes while the bus hands it
-- round waits for the end of it (sys.atomic).
local atomic = require("hplua.sys").atomic

local function emit(kind, ev)
  local bus = M.bus
  if bus then return atomic(bus.emit, bus, kind, ev) end
end
M.emit = emit

function M.collection_error(message, file, line)
  if not file then file, line = M.caller() end
  M.errors[#M.errors + 1] = { message = message, file = file, line = line }
end

-- A message on the running test, else on the run. A keyed message replaces the
-- earlier one of the same key in place (O(1): the holder indexes its keys). Event and
-- record are one step (sys.atomic): a timeout that comes meanwhile stops the test
-- after it, so the events file and the report both have the message or neither does.
local message

function M.message(text, key)
  return atomic(message, tostring(text), key)
end

function message(text, key)
  local cur = M.current
  local ev = emit("message", { test = cur and cur.test.id or json.null, attempt = cur and cur.attempt or nil,
    text = text, key = key })
  local holder = cur or M.run_messages
  if not (holder and ev) then return end
  local msg = { time = ev.time, text = text, key = key }
  local list = holder.messages
  if key ~= nil then
    local i = holder.keyed[key]
    if i then
      list[i] = msg
      return
    end
    holder.keyed[key] = #list + 1
  end
  list[#list + 1] = msg
end

return M
