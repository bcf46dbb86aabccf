#!/usr/bin/env bash
# The browser tests drive Debian's Chromium: Playwright's own browser download does not work offline.
set -euo pipefail
# A CJK font too: the Chinese pages' screenshots (make screenshots) would show boxes without one.
[ -x /usr/bin/chromium ] && fc-list 2>/dev/null | grep -qi wqy && exit 0
if [ "$(id -u)" = 0 ]; then
  apt-get update -q && apt-get install -y -q chromium fonts-wqy-zenhei
else
  echo "Chromium is missing: sudo apt-get install chromium (needed by the browser tests)" >&2
  exit 1
fi
