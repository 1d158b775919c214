# Run control: dependencies, critical stops, attempts, -x, hooks and fixtures.
# A chain A -> B -> C where A fails: B and C are skipped naming A and B; module::* and
# module-level depends; a dependency deselected by -k.
$ hplua deps
hplua 0.1.0: 8 tests in 3 files
FAILED  1_chain::A (0.00s)
SKIPPED 1_chain::B: dependency 1_chain::A failed
SKIPPED 1_chain::C: dependency 1_chain::B skipped
PASSED  1_chain::D (0.00s)
PASSED  2_star::needs D (0.00s)
SKIPPED 2_star::needs all of the chain: dependency 1_chain::A failed
PASSED  3_ok::base (0.00s)
PASSED  3_ok::on base (0.00s)

FAILURES
--- 1_chain::A ---
deps/1_chain.lua:2: A is broken
traceback:
    deps/1_chain.lua:2: in function <deps/1_chain.lua:2>
4 passed, 1 failed, 3 skipped in 0.00s
[1]

# -k also selects what the selected tests depend on (marked); --no-deps does not, and
# a run whose every test was skipped for an unselected dependency says so (exit 5).
$ hplua -k needs deps
hplua 0.1.0: 6 tests in 2 files (2 deselected)
FAILED  1_chain::A (0.00s) (dependency)
SKIPPED 1_chain::B: dependency 1_chain::A failed (dependency)
SKIPPED 1_chain::C: dependency 1_chain::B skipped (dependency)
PASSED  1_chain::D (0.00s) (dependency)
PASSED  2_star::needs D (0.00s)
SKIPPED 2_star::needs all of the chain: dependency 1_chain::A failed

FAILURES
--- 1_chain::A ---
deps/1_chain.lua:2: A is broken
traceback:
    deps/1_chain.lua:2: in function <deps/1_chain.lua:2>
2 passed, 1 failed, 3 skipped in 0.00s
[1]

$ hplua --list -k "needs D" deps
1_chain::D  (dependency)
2_star::needs D
[0]

$ hplua --no-deps -k needs deps
hplua 0.1.0: 2 tests in 1 file (6 deselected)
SKIPPED 2_star::needs D: dependency 1_chain::D not selected
SKIPPED 2_star::needs all of the chain: dependency 1_chain::D not selected
every selected test was skipped: the tests they depend on were not selected (--no-deps); run without --no-deps to add them
0 passed, 0 failed, 2 skipped in 0.00s
[5]

# A critical failure skips every later test (counted on one line; -v lists them);
# fixtures are still torn down.
$ hplua critical
hplua 0.1.0: 4 tests in 2 files
power on
PASSED  1_power::uses power (0.00s)
FAILED  1_power::rail check (0.00s)
SKIPPED 2 tests: critical test 1_power::rail check failed
power off (fixture torn down)

FAILURES
--- 1_power::rail check ---
critical/1_power.lua:3: rail at 0 V
traceback:
    critical/1_power.lua:3: in function <critical/1_power.lua:3>
1 passed, 1 failed, 2 skipped in 0.00s
[1]

# attempts: passes on attempt 3 of 3 (a critical test that passes late does not stop
# the run); fails all 3 with its measurement named.
$ hplua attempts
hplua 0.1.0: 3 tests in 1 file
  attempt 1 of 3 failed: connector not seated
  attempt 2 of 3 failed: connector not seated
PASSED  1_flaky::passes on attempt 3 (0.00s, attempt 3 of 3)
  attempt 1 of 3 failed: measurement failed: contact = 10 mOhm out of limits ≤ 5 mOhm
  attempt 2 of 3 failed: measurement failed: contact = 20 mOhm out of limits ≤ 5 mOhm
FAILED  1_flaky::fails all 3 (0.00s, attempt 3 of 3)
    contact = 30 mOhm (≤ 5 mOhm) OUT OF LIMITS
PASSED  1_flaky::still runs (0.00s)

FAILURES
--- 1_flaky::fails all 3 ---
attempts/1_flaky.lua:9: measurement failed: contact = 30 mOhm out of limits ≤ 5 mOhm
2 passed, 1 failed, 0 skipped in 0.00s
[1]

# -x: the rest is skipped after the first failure; exit 1 as in pytest.
$ hplua -x fail
hplua 0.1.0: 4 tests in 1 file
PASSED  1_fail::passes (0.00s)
FAILED  1_fail::fails with error (0.00s)
SKIPPED 2 tests: stopped after the first failure (-x): 1_fail::fails with error

FAILURES
--- 1_fail::fails with error ---
fail/1_fail.lua:4: the supply is off
traceback:
    fail/1_fail.lua:4: in function <fail/1_fail.lua:3>
1 passed, 1 failed, 2 skipped in 0.00s
[1]

# Hooks: a failing before_each fails that test; a failing before_all fails every test of
# its scope; after_all runs anyway; fixture teardown in reverse order, a teardown error
# is reported on the run and fails it.
$ hplua hooks
hplua 0.1.0: 4 tests in 2 files
suite before_all
suite before_each uses fixtures
suite after_each uses fixtures
PASSED  1_each::uses fixtures (0.00s)
suite before_each setup fails
suite after_each setup fails
FAILED  1_each::setup fails (0.00s)
FAILED  2_all::one (0.00s)
FAILED  2_all::two (0.00s)
2_all after_all still runs
suite after_all
teardown second
teardown first

FAILURES
--- 1_each::setup fails ---
hooks/1_each.lua:3: before_each failed: cannot set up
traceback:
    hooks/1_each.lua:3: in function <hooks/1_each.lua:2>
--- 2_all::one ---
hooks/2_all.lua:2: before_all failed: the jig is open
traceback:
    hooks/2_all.lua:2: in function <hooks/2_all.lua:2>
--- 2_all::two ---
hooks/2_all.lua:2: before_all failed: the jig is open
traceback:
    hooks/2_all.lua:2: in function <hooks/2_all.lua:2>

ERRORS
hooks/suite.lua:7: teardown of fixture "second" failed: teardown exploded
1 passed, 3 failed, 0 skipped, 1 error in 0.00s
[1]

# Dependency problems are collection errors with the line of the declaration.
$ hplua dep_errors
ERROR: 5 collection errors
dep_errors/1_errors.lua:2: 1_errors::unknown depends on unknown test "ghost"
dep_errors/1_errors.lua:3: 1_errors::unknown module depends on unknown module "nowhere"
dep_errors/1_errors.lua:4: 1_errors::later depends on 1_errors::last, which runs later (dep_errors/1_errors.lua:8); dependencies must run first
dep_errors/1_errors.lua:5: dependency cycle: 1_errors::cycle a -> 1_errors::cycle b -> 1_errors::cycle a
dep_errors/1_errors.lua:7: 1_errors::self depends on itself (via "self")
collection failed: no test was run
[2]


# -v lists every test a critical failure skipped.
$ hplua -v critical | grep SKIPPED
SKIPPED 1_power::after: critical test 1_power::rail check failed
SKIPPED 2_more::later file: critical test 1_power::rail check failed
[0]

# Teardowns and hooks have deadlines too (their own timeout, else --timeout, else 60 s):
# a hung one is a run error, and the run ends.
$ hplua hung_teardown
hplua 0.1.0: 1 test in 1 file
PASSED  1_hang::uses the relay (N.NNs)

ERRORS
hung_teardown/1_hang.lua:7: after_all failed: timeout after 0.3 s
hung_teardown/1_hang.lua:4: teardown of fixture "relay" failed: timeout after 0.3 s
1 passed, 0 failed, 0 skipped, 2 errors in N.NNs
[1]
