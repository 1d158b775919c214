-- hplua.context: the state the runner shares with the test authors' API
-- (stdlib/hplua.lua). One table, reset for each run.
local sys = require "hplua.sys"

local M = {}

function M.reset()

-- hp.skip() raises an object with this metatable; the runner turns it into a skip.
M.skip_mt = { __tostring = function(s) return "skipped: " .. tostring(s.reason) end }
  M.collecting = nil   -- { module = mod } or { suite = scope } while a file loads
  M.current = nil      -- the running attempt: { test, messages, measurements, artifacts }
  M.errors = {}        -- collection errors: { message, file, line }
  M.fixtures = {}      -- name -> { fn, file, line, created, value, teardown, error }
  M.fixture_order = {} -- fixtures in order of creation
  M.run = { messages = {}, dut = {}, stand = {}, instruments = {}, errors = {} }
  M.on_message = nil   -- console hook: function(record, msg)
end
M.reset()

-- Location of the caller of an API function: the nearest frame outside the host.
M.caller = sys.caller

function M.collection_error(message, file, line)
  if not file then file, line = M.caller() end
  M.errors[#M.errors + 1] = { message = message, file = file, line = line }
end

-- Messages: on the running test, else on the run. A message with the key of an
-- earlier one replaces it in place.
function M.message(text, key)
  local list = M.current and M.current.messages or M.run.messages
  local msg = { time = sys.now(), text = tostring(text), key = key }
  if key ~= nil then
    for i, old in ipairs(list) do
      if old.key == key then
        list[i] = msg
        if M.on_message then M.on_message(M.current, msg) end
        return
      end
    end
  end
  list[#list + 1] = msg
  if M.on_message then M.on_message(M.current, msg) end
end

return M
