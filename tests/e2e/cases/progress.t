# On a terminal the running test's latest message is one line redrawn in place
# (carriage return, erase line); elsewhere messages are log lines with -v only.
$ script -qec "hplua --color never progress" /dev/null | tr '\r\033' 'RE' | grep -o 'RE\[K[^R]*' | head -n 3
RE[K1_flash::flash: flashing 0%
RE[K1_flash::flash: flashing 25%
RE[K1_flash::flash: flashing 50%
[0]

$ script -qec "hplua --color never progress" /dev/null | tr -d '\r' | grep -a PASSED | sed 's/.*\[K//'
PASSED  1_flash::flash (N.NNs)
[0]

$ hplua progress
hplua 0.1.0: 1 test in 1 file
PASSED  1_flash::flash (N.NNs)
1 passed, 0 failed, 0 skipped in N.NNs
[0]

$ hplua -v progress | head -n 4
hplua 0.1.0: 1 test in 1 file
1_flash::flash
    flashing 0%
    flashing 25%
[0]
