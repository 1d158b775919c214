-- hplua.sink_json: writes the JSON run report (built by hplua.sink_report) to the
-- --json file, atomically, when the run finishes.
local json = require "hplua.json"

local M = {}

local Writer = {}
Writer.__index = Writer

function M.new(path)
  return setmetatable({ path = path }, Writer)
end

function Writer:run_finished(_, run)
  local ok, err = json.write_atomic(self.path, run:report_text())
  if not ok then run:output_error(err) end
end

return M
