# All collection errors at once, in the order of files and lines, each with file:line;
# nothing runs; exit 2.
$ hplua collect_errors
ERROR: 7 collection errors
collect_errors/1_syntax.lua:4: unexpected symbol near '='
collect_errors/2_duplicate.lua:4: duplicate test name "same" (first declared at collect_errors/2_duplicate.lua:2)
collect_errors/3_options.lua:2: hp.test "x": attempts must be a whole number, got string
collect_errors/3_options.lua:3: hp.test "y": timeout must be a positive number of seconds, got -1
collect_errors/3_options.lua:4: hp.test "z": unknown option 'retries'
collect_errors/3_options.lua:5: 3_options::w depends on unknown test "nobody"
collect_errors/4_load.lua:4: error while loading: attempt to index a nil value (local 'cfg')
collection failed: no test was run
[2]

# A failing test records the message and the file:line in the test file (or the
# helper that raised), with a traceback of the author's frames only.
$ hplua runtime_error
hplua 0.1.0: 4 tests in 1 file
FAILED  1_nested::error in a helper (0.00s)
FAILED  1_nested::assert in the test (0.00s)
FAILED  1_nested::a table as error (0.00s)
FAILED  1_nested::runtime type error (0.00s)

FAILURES
--- 1_nested::error in a helper ---
runtime_error/_helpers.lua:4: supply at 0 V
traceback:
    runtime_error/_helpers.lua:4: in field 'check_supply'
    runtime_error/1_nested.lua:5: in function <runtime_error/1_nested.lua:4>
--- 1_nested::assert in the test ---
runtime_error/1_nested.lua:10: rail 5v missing
traceback:
    runtime_error/1_nested.lua:10: in function <runtime_error/1_nested.lua:8>
--- 1_nested::a table as error ---
runtime_error/1_nested.lua:14: (error object is a table value)
traceback:
    runtime_error/1_nested.lua:14: in function <runtime_error/1_nested.lua:13>
--- 1_nested::runtime type error ---
runtime_error/1_nested.lua:19: attempt to index a nil value (local 'x')
traceback:
    runtime_error/1_nested.lua:19: in function <runtime_error/1_nested.lua:17>
0 passed, 4 failed, 0 skipped in 0.00s
[1]

$ hplua fail
hplua 0.1.0: 4 tests in 1 file
PASSED  1_fail::passes (0.00s)
FAILED  1_fail::fails with error (0.00s)
FAILED  1_fail::fails with hp.fail (0.00s)
FAILED  1_fail::fails with expect (0.00s)

FAILURES
--- 1_fail::fails with error ---
fail/1_fail.lua:4: the supply is off
traceback:
    fail/1_fail.lua:4: in function <fail/1_fail.lua:3>
--- 1_fail::fails with hp.fail ---
fail/1_fail.lua:7: relay did not click
traceback:
    fail/1_fail.lua:7: in function <fail/1_fail.lua:6>
--- 1_fail::fails with expect ---
fail/1_fail.lua:10: expected 3.3 to be within 0.1 of 5.0
traceback:
    fail/1_fail.lua:10: in function <fail/1_fail.lua:9>
1 passed, 3 failed, 0 skipped in 0.00s
[1]

# A failed check on a long string shows where it first differs, with context; the
# report keeps both full values (error.expected, error.actual).
$ hplua longdiff
hplua 0.1.0: 1 test in 1 file
FAILED  1_log::long stdout (N.NNs)

FAILURES
--- 1_log::long stdout ---
longdiff/1_log.lua:7: expected strings to be equal; they differ at line 23, column 30 (50 vs 50 lines, 2140 vs 2141 bytes):
    line 22:   "line 22 of the firmware log: all fine here"
  - expected: "line 23 of the firmware log: all fine here"
  + actual:   "line 23 of the firmware log: CRC error here"
traceback:
    longdiff/1_log.lua:7: in function <longdiff/1_log.lua:2>
0 passed, 1 failed, 0 skipped in N.NNs
[1]
