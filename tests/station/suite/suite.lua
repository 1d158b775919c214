-- The station tests' suite: what a run does depends on the DUT serial.
--   DIALOG-<kind>-x  asks one dialog of that kind     SLOW-x   a test waits 30 s
--   CRASH-x          the run's process is killed      FAIL-x   a measurement fails
--   N<count>-x       <count> quick tests (benchmarks)  ALL-x    every dialog kind
--   STEPS<count>-x   <count> tests of 0.1 s each
local hp = require "hplua"
hp.set_stand { name = "station tests" }
