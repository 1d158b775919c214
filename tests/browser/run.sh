#!/bin/sh
# ctest entry of the panel's browser tests: run.sh HPLUA SCREENSHOT_DIR [SCRIPT]
# Skips (exit 77, shown by ctest as skipped, with the reason) only where Node.js or
# Chromium cannot run; installs playwright-core from the lock file when missing.
cd "$(dirname "$0")" || exit 1
command -v node >/dev/null 2>&1 || { echo "SKIP: node is not installed"; exit 77; }
chromium=${CHROMIUM:-/usr/bin/chromium}
[ -x "$chromium" ] || { echo "SKIP: no Chromium at $chromium"; exit 77; }
"$chromium" --headless --no-sandbox --disable-gpu --dump-dom about:blank >/dev/null 2>&1 ||
  { echo "SKIP: Chromium at $chromium cannot start here"; exit 77; }
if [ ! -d node_modules/playwright-core ]; then
  npm ci --no-audit --no-fund || { echo "npm ci failed"; exit 1; }
fi
exec node "${3:-panel.test.mjs}" "$1" "$2"
