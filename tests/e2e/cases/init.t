# hplua init writes a starter suite that runs green at once, and never overwrites.
$ cd $CRAMTMP && hplua init starter
wrote a starter suite in starter/ (9 files); run it with:
  hplua --limits starter/limits.json --answers starter/answers.json starter
or as a station with an operator panel (settings in starter/station.lua):
  hplua serve starter
[0]

# station.lua at the top of a suite is the station's settings, not a test file, and
# `hplua serve` reads it as it is written.
$ cd $CRAMTMP && hplua --list starter | grep -c station
0
[1]

$ cd $CRAMTMP && hplua -e 'local c = assert(require("hplua.station_config").load("starter/station.lua")); print(c.path, c.limits, c.stand.name)'
starter/.	starter/limits.json	starter
[0]

$ cd $CRAMTMP && hplua --limits starter/limits.json --answers starter/answers.json starter
hplua 0.1.0: 6 tests in 2 files
PASSED  01_power::supply is on (N.NNs)
PASSED  01_power::rail 3v3 (N.NNs)
PASSED  01_power::rail 5v (N.NNs)
PASSED  01_power::rail 1v8 (N.NNs)
PASSED  02_firmware::flash (N.NNs)
PASSED  02_firmware::LED check (N.NNs)
6 passed, 0 failed, 0 skipped in N.NNs
[0]

$ cd $CRAMTMP && hplua init starter
hplua: error: init: starter/suite.lua exists; nothing was written
[4]

$ hplua init a b
usage: hplua init [DIR]   (writes a starter suite into DIR, default: tests)
[4]
