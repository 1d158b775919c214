# Exit statuses 0-5, pytest's numbers.
$ hplua -q pass
2 passed, 0 failed, 1 skipped in 0.00s
[0]

$ hplua -q fail > /dev/null
[1]

$ hplua collect_errors > /dev/null
[2]

# 3: an internal error (here: the runner's own sources cannot be found).
$ HPLUA_SRC=/nonexistent hplua pass >/dev/null 2>$CRAMTMP/exit3.txt; s=$?; head -n 1 $CRAMTMP/exit3.txt; exit $s
hplua: internal error: HPLUA_SRC: cannot open /nonexistent/lua/cli.lua
[3]

$ hplua --no-such-option pass
hplua: error: unknown option '--no-such-option' (see hplua --help)
[4]

$ hplua does/not/exist
hplua: error: path not found: does/not/exist (see hplua --help)
[4]

# A folder taken as an option's value: said so, not just "path not found: tests".
$ hplua --json pass
hplua: error: 'pass' was taken as the value of --json, and the default PATH tests does not exist (hplua --json FILE pass) (see hplua --help)
[4]

$ hplua --timeout
hplua: error: option --timeout needs a value (see hplua --help)
[4]

$ hplua -k nothing-matches none
no tests selected (1 deselected by -k)
[5]

$ hplua empty
no tests collected
[5]

$ hplua --version
hplua 0.1.0 (Lua 5.4)
[0]

$ hplua --help | head -n 1
usage: hplua [OPTIONS] [PATH ...]     run the test suite(s); PATH defaults to ./tests
[0]

# With no PATH, ./tests is run.
$ cd pass/.. && mkdir -p $CRAMTMP/default/tests && cp pass/1_ok.lua $CRAMTMP/default/tests/ && cd $CRAMTMP/default && hplua -q
2 passed, 0 failed, 1 skipped in 0.00s
[0]
