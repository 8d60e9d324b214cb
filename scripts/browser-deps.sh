#!/usr/bin/env bash
# Chromium for the browser tests (tests/leaderboard/browser), from Debian's packages.
# Idempotent: does nothing when /usr/bin/chromium is there. Playwright's own browser download
# is never used: the tests start this Chromium through Playwright's executable_path.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  echo "browser-deps: $(/usr/bin/chromium --version 2>/dev/null || echo chromium) present"
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
if ! $SUDO apt-get install -y --no-install-recommends chromium; then
  $SUDO apt-get update
  $SUDO apt-get install -y --no-install-recommends chromium
fi
/usr/bin/chromium --version
