-- hplua.outfile: a report file written so that every output agrees with the exit
-- status: prepare writes the text to a synced temporary beside the target (before
-- the run's final event), commit renames it into place (at run_finished), abort
-- drops it. Shared by the JSON and JUnit writers (Run:prepare_outputs drives it).
local json = require "hplua.json"

local M = {}

-- Writes text to a synced temporary for target.path; true or nil, message.
function M.prepare(target, text)
  return M.prepare_stream(target, function(write) return write(text) end)
end

-- The same, for text produced in pieces: produce(write, handle) calls write(piece)
-- for each (or has handle copy them from a spool's file: hplua.spool) and returns
-- true, or what a failed write returned.
function M.prepare_stream(target, produce)
  M.abort(target)
  local h, err = json.open_atomic(target.path)
  local ok = h ~= nil
  if ok then
    local pok, pres, perr = pcall(produce, function(piece) return h:write(piece) end, h)
    if pok then ok, err = pres, perr else ok, err = nil, tostring(pres) end
  end
  if ok then ok, err = h:sync() end
  if not ok then
    if h then h:abort() end
    return nil, err
  end
  target.handle = h
  return true
end

function M.abort(target)
  if target.handle then target.handle:abort() end
  target.handle = nil
end

-- Renames the prepared temporary into place; a failure is the run's output error.
function M.commit(target, run)
  local h = target.handle
  target.handle = nil
  if h then
    local ok, err = h:commit()
    if not ok then run:output_error(target.option .. ": " .. err) end
  end
end

return M
