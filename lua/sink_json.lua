-- hplua.sink_json: writes the JSON run report (built by hplua.sink_report) to the
-- --json file. Before the run's final event, the report is written to a temporary
-- beside the target and synced (prepare); at run_finished it is renamed into place
-- (commit), so every output agrees with the exit status (a report that cannot be
-- written fails the run: lua/runner.lua, Run:prepare_outputs).
local json = require "hplua.json"

local M = {}

local Writer = {}
Writer.__index = Writer

function M.new(path)
  return setmetatable({ path = path, option = "--json" }, Writer)
end

-- Writes the report for the final record ev to a synced temporary; nil, message on failure.
function Writer:prepare(ev, run)
  self:abort()
  local text = run.report:render(ev)
  local h, err = json.open_atomic(self.path)
  local ok = h ~= nil
  if ok then ok, err = h:write(text) end
  if ok then ok, err = h:sync() end
  if not ok then
    if h then h:abort() end
    return nil, err
  end
  self.handle = h
  return true
end

function Writer:abort()
  if self.handle then self.handle:abort() end
  self.handle = nil
end

function Writer:run_finished(_, run)
  local h = self.handle
  self.handle = nil
  if h then
    local ok, err = h:commit()
    if not ok then run:output_error(self.option .. ": " .. err) end
  end
end

return M
