# Limits from a file (JSON or Lua) for measurements that state none of their own;
# the call's own limits win; marginal passes and is shown; unused entries are named.
$ hplua --limits limits/revA.json limits/1_rails.lua
hplua 0.1.0: 5 tests in 1 file
PASSED  1_rails::from the file (N.NNs)
PASSED  1_rails::own limits win (N.NNs)
PASSED  1_rails::marginal passes (N.NNs)
    vref = 2.49 V (2.5 V ± 0.05, marginal below 2.495) MARGINAL
FAILED  1_rails::fails against the file (N.NNs)
    ibias = 12 mA (< 10 mA) OUT OF LIMITS
FAILED  1_rails::contradictory limits at the call (N.NNs)

FAILURES
--- 1_rails::fails against the file ---
limits/1_rails.lua:16: measurement failed: ibias = 12 mA out of limits < 10 mA
--- 1_rails::contradictory limits at the call ---
limits/1_rails.lua:20: hp.measure "x": contradictory limits: nothing is >= 3.4 and <= 3.2
traceback:
    limits/1_rails.lua:20: in function <limits/1_rails.lua:19>
warning: --limits limits/revA.json: entry 'unused' was not used by any measurement
3 passed, 2 failed, 0 skipped, 1 marginal in N.NNs
[1]

$ hplua -q --limits limits/revB.lua limits/1_rails.lua
FAILED  1_rails::contradictory limits at the call (N.NNs)

FAILURES
--- 1_rails::contradictory limits at the call ---
limits/1_rails.lua:20: hp.measure "x": contradictory limits: nothing is >= 3.4 and <= 3.2
traceback:
    limits/1_rails.lua:20: in function <limits/1_rails.lua:19>
4 passed, 1 failed, 0 skipped in N.NNs
[1]

# A bad limits file stops the run before anything runs, naming the file and the entry.
$ hplua --limits limits/bad_type.json limits/1_rails.lua
hplua: error: --limits limits/bad_type.json: entry 'vcc': min must be a number, got string (see hplua --help)
[4]

$ hplua --limits limits/bad_key.lua limits/1_rails.lua
hplua: error: --limits limits/bad_key.lua: entry 'vcc': unknown key 'minimum' (see hplua --help)
[4]

$ hplua --limits limits/bad_syntax.lua limits/1_rails.lua
hplua: error: --limits: limits/bad_syntax.lua:2: '}' expected (to close '{' at line 1) near <eof> (see hplua --help)
[4]

$ hplua --limits limits/none.json limits/1_rails.lua
hplua: error: --limits: limits/none.json: No such file or directory (see hplua --help)
[4]
