# Colours: auto means only on a terminal (here a pseudo-terminal from script(1)) and
# only when NO_COLOR is unset or empty; --color always/never override.
$ script -qec "hplua -q pass" /dev/null | grep -c "$(printf '\033')\[32m2 passed"
1
[0]

$ NO_COLOR=1 script -qec "hplua -q pass" /dev/null | grep -c "$(printf '\033')"
0
[1]

$ NO_COLOR= script -qec "hplua -q pass" /dev/null | grep -c "$(printf '\033')"
1
[0]

$ script -qec "hplua -q --color never pass" /dev/null | grep -c "$(printf '\033')"
0
[1]

$ hplua -q --color always pass | grep -c "$(printf '\033')\[32m2 passed"
1
[0]

$ hplua -q pass | grep -c "$(printf '\033')"
0
[1]
