#!/bin/sh
# The factory tests need a real PostgreSQL server (Debian's postgresql package). Without
# its binaries the test is reported SKIPPED (exit 77, ctest's SKIP_RETURN_CODE), never passed.
# usage: run.sh HPLUA TESTDIR
hplua=$1 dir=$2
found=
for d in /usr/lib/postgresql/*/bin; do
  [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && found=$d
done
if [ -z "$found" ] || ! command -v psql >/dev/null 2>&1; then
  echo "SKIPPED: no PostgreSQL server binaries (apt-get install postgresql)"
  exit 77
fi
if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
  echo "SKIPPED: running as root without a postgres user to run the server as"
  exit 77
fi
exec "$hplua" -v "$dir"
