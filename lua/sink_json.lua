-- hplua.sink_json: writes the JSON run report (built by hplua.sink_report) to the
-- --json file. Before the run's final event, the report is written to a temporary
-- beside the target and synced (prepare); at run_finished it is renamed into place
-- (commit), so every output agrees with the exit status (a report that cannot be
-- written fails the run: lua/runner.lua, Run:prepare_outputs).
local outfile = require "hplua.outfile"

local M = {}

local Writer = {}
Writer.__index = Writer

function M.new(path)
  return setmetatable({ path = path, option = "--json" }, Writer)
end

-- The report for the final record ev, to a synced temporary; nil, message on failure.
function Writer:prepare(ev, run)
  return outfile.prepare_stream(self, function(write, handle) return run.report:stream(ev, write, handle) end)
end
function Writer:abort() outfile.abort(self) end
function Writer:run_finished(_, run) outfile.commit(self, run) end

return M
