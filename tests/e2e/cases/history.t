# The run history (API 7): runs recorded as they happen, read with `hplua history`
# and with the sqlite3 shell, as any consumer would.
$ hplua -q --history $CRAMTMP/h.db --serial SN-1 fail > /dev/null
[1]

$ hplua -q --history $CRAMTMP/h.db --serial SN-1 pass
2 passed, 0 failed, 1 skipped in 0.00s
[0]

$ hplua -q --history $CRAMTMP/h.db pass > /dev/null
[0]

$ hplua history --history $CRAMTMP/h.db
RUN       STARTED              STATUS  SERIAL         SLOT  TESTS       DURATION  FIRST FAILURE
[0-9a-f]+  [-0-9]+ [:0-9]+  passed  %-              %-     2/3 passed  N.NNs (re)
[0-9a-f]+  [-0-9]+ [:0-9]+  passed  SN%-1 %(retest%)  %-     2/3 passed  N.NNs (re)
[0-9a-f]+  [-0-9]+ [:0-9]+  failed  SN%-1           %-     1/4 passed  N.NNs     1_fail::fails with error (re)
[0]

$ HPLUA_HISTORY=$CRAMTMP/h.db hplua history list --serial SN-1 --status failed --json | grep -c '"run_id"'
1
[0]

$ hplua history --history $CRAMTMP/h.db stats
history   .*/h.db (re)
runs      3  (passed 2, failed 1)
serials   1
first-pass yield  0.0%  (0 of 1 serials passed their first run)
final yield       100.0%  (1 of 1 serials passed, retests included)

tests that fail most:
FAILURES  OF RUNS  TEST
1         33.3%    1_fail::fails with error
1         33.3%    1_fail::fails with expect
1         33.3%    1_fail::fails with hp.fail
[0]

$ hplua history --history $CRAMTMP/h.db stats --since 2000-01-01 --json | grep -A 4 '"first_pass_yield"'
  "first_pass_yield": {
    "passed": 0,
    "serials": 1,
    "yield": 0
  },
[0]

$ id=$(sqlite3 $CRAMTMP/h.db "SELECT run_id FROM runs WHERE status = 'failed'"); hplua history --history $CRAMTMP/h.db show $(echo $id | cut -c1-8) | sed -n '2,3p;9,20p'
status    failed (exit 1)
serial    SN-1
STATUS  DURATION  ATTEMPTS  TEST
passed  N.NNs               1_fail::passes
failed  N.NNs               1_fail::fails with error
failed  N.NNs               1_fail::fails with hp.fail
failed  N.NNs               1_fail::fails with expect

  1_fail::fails with error
    fail/1_fail.lua:4: the supply is off
  1_fail::fails with hp.fail
    fail/1_fail.lua:7: relay did not click
  1_fail::fails with expect
    fail/1_fail.lua:10: expected 3.3 to be within 0.1 of 5.0
[0]

# show --json prints the run's JSON report, as --json FILE would have written it.
$ hplua -q --history $CRAMTMP/h.db --json $CRAMTMP/r.json --run-id 11111111-2222-4333-8444-555555555555 pass > /dev/null; hplua history --history $CRAMTMP/h.db show 11111111 --json | cmp - $CRAMTMP/r.json && echo same
same
[0]

# The sqlite3 shell reads the tables of API 7.
$ sqlite3 $CRAMTMP/h.db "SELECT count(*), sum(retest) FROM runs; SELECT status, count(*) FROM tests GROUP BY status ORDER BY status; PRAGMA user_version; PRAGMA integrity_check"
4|1
failed|3
passed|7
skipped|3
2
ok
[0]

$ sqlite3 $CRAMTMP/h.db "SELECT t.test_id, t.error FROM runs r JOIN tests t USING (run_id) WHERE r.serial = 'SN-1' AND t.status = 'failed' ORDER BY t.seq"
1_fail::fails with error|the supply is off
1_fail::fails with hp.fail|relay did not click
1_fail::fails with expect|expected 3.3 to be within 0.1 of 5.0
[0]

# --no-history records nothing; a bad history stops the run before it starts.
$ hplua -q --no-history --history $CRAMTMP/h.db pass > /dev/null; sqlite3 $CRAMTMP/h.db "SELECT count(*) FROM runs"
4
[0]

$ hplua -q --history $CRAMTMP/missing/h.db pass
hplua: error: history .*/missing/h.db cannot be created: its folder .*/missing does not exist; create the folder, or choose another file with %-%-history FILE; or run with %-%-no%-history %(see hplua %-%-help%) (re)
[4]

$ printf 'not a database\n%.0s' $(seq 200) > $CRAMTMP/text.db; hplua -q --history $CRAMTMP/text.db pass
hplua: error: history .*/text.db is not a SQLite database; move it away, or choose another file with %-%-history FILE %(SQLITE_NOTADB: file is not a database%); or run with %-%-no%-history %(see hplua %-%-help%) (re)
[4]

$ HPLUA_HISTORY=$CRAMTMP/text.db hplua -q --no-history pass
2 passed, 0 failed, 1 skipped in 0.00s
[0]

# Usage errors: exit 4 with a clear message.
$ hplua history frobnicate
hplua history: error: unknown history command 'frobnicate' (list, show, stats or upload) (see hplua history --help)
[4]

$ hplua history list --limit 0
hplua history: error: --limit needs a whole number of at least 1, got '0' (see hplua history --help)
[4]

$ hplua history stats --since yesterday
hplua history: error: --since needs a date such as 2024-05-31 or 2024-05-31T08:00, got 'yesterday' (see hplua history --help)
[4]

$ hplua history show --serial X abc
hplua history: error: option --serial does not apply to 'history show' (see hplua history --help)
[4]

$ hplua history --history $CRAMTMP/h.db show 00000000
hplua history: no run 00000000 in .*/h.db (re)
[1]

$ hplua history --history $CRAMTMP/text.db
hplua history: error: history .*/text.db is not a SQLite database; move it away, or choose another file with %-%-history FILE %(SQLITE_NOTADB: file is not a database%) (re)
[4]

# --last-failed (--lf) re-runs what failed in the newest run of the same PATHs in the
# history, with the tests they depend on; with nothing failed (or no run yet) every test.
$ hplua --history $CRAMTMP/lf.db --lf deps | head -1
last failed: no previous run of deps recorded; running every test
[0]

$ hplua --history $CRAMTMP/lf.db --lf deps
last failed: re%-running 1 test%(s%) that failed in run [0-9a-f]+ %([-0-9]+ [:0-9]+%) (re)
hplua 0.1.0: 1 test in 1 file (7 deselected)
FAILED  1_chain::A (0.00s)

FAILURES
--- 1_chain::A ---
deps/1_chain.lua:2: A is broken
traceback:
    deps/1_chain.lua:2: in function <deps/1_chain.lua:2>
0 passed, 1 failed, 0 skipped in 0.00s
[1]

$ hplua -q --history $CRAMTMP/lf.db pass > /dev/null && hplua --history $CRAMTMP/lf.db --lf pass | head -2
last failed: no test failed in run [0-9a-f]+ %([-0-9]+ [:0-9]+%); running every test (re)
hplua 0.1.0: 3 tests in 1 file
[0]

# Without the history it reads the --json report it is about to replace.
$ hplua -q --no-history --json $CRAMTMP/lf.json fail > /dev/null; hplua -q --no-history --json $CRAMTMP/lf.json --lf -k hp.fail fail
FAILED  1_fail::fails with hp.fail (0.00s)

FAILURES
--- 1_fail::fails with hp.fail ---
fail/1_fail.lua:7: relay did not click
traceback:
    fail/1_fail.lua:7: in function <fail/1_fail.lua:6>
0 passed, 1 failed, 0 skipped in 0.00s
[1]

$ hplua --no-history --lf pass
hplua: error: --last-failed needs the history (it is off: --no-history) or a --json report to read (see hplua --help)
[4]
