local hp = require "hplua"

-- Whatever the tests leave running is terminated when the run ends.
hp.fixture("processes", function()
  return hp.process, function()
    local left = hp.process.terminate_all(1)
    for name in pairs(left) do hp.set_message("terminated " .. name) end
  end
end)
