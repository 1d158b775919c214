# Files in natural order across files and folders, suite.lua first, _ and . names
# skipped, helpers required from beside the tests, tests in declaration order.
$ hplua order
load suite.lua
load 1_a.lua
load 2_b.lua
load 10_c.lua
load sub/suite.lua
load sub/_helper.lua (required)
load sub/3_x.lua
load sub/deeper/1_y.lua
hplua 0.1.0: 8 tests in 5 files
before_all (root suite)
PASSED  1_a::second declared first (0.00s)
PASSED  1_a::first declared second (0.00s)
PASSED  2_b::second declared first (0.00s)
PASSED  2_b::first declared second (0.00s)
PASSED  10_c::second declared first (0.00s)
PASSED  10_c::first declared second (0.00s)
before_all (sub)
PASSED  sub/3_x::uses helper (0.00s)
PASSED  sub/deeper/1_y::deep (0.00s)
after_all (sub)
after_all (root suite)
8 passed, 0 failed, 0 skipped in 0.00s
[0]

# --list prints the selected ids in run order and runs nothing.
$ hplua --list order | grep -v '^load'
1_a::second declared first
1_a::first declared second
2_b::second declared first
2_b::first declared second
10_c::second declared first
10_c::first declared second
sub/3_x::uses helper
sub/deeper/1_y::deep
[0]

# -k selects by substring of the id; repeated -k means any of them.
$ hplua --list -k sub/ -k 2_b::first order | grep -v '^load'
2_b::first declared second
sub/3_x::uses helper
sub/deeper/1_y::deep
[0]

# A single test: -k with its whole id.
$ hplua -q -k "10_c::first declared second" order | grep -v '^load'
before_all (root suite)
after_all (root suite)
1 passed, 0 failed, 0 skipped in 0.00s
[0]

# A single file as PATH: its suite.lua is loaded first; ids are relative to the file.
$ hplua order/2_b.lua
load suite.lua
load 2_b.lua
hplua 0.1.0: 2 tests in 1 file
before_all (root suite)
PASSED  2_b::second declared first (0.00s)
PASSED  2_b::first declared second (0.00s)
after_all (root suite)
2 passed, 0 failed, 0 skipped in 0.00s
[0]
