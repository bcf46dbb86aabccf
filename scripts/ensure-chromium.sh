#!/usr/bin/env bash
# The browser tests drive Debian's Chromium: Playwright's own browser download does not work offline.
# A CJK font too, where we may install one: the Chinese pages' screenshots (make screenshots) show boxes
# without it; the tests themselves pass either way.
set -euo pipefail
has_font() { fc-list 2>/dev/null | grep -qi wqy; }
[ -x /usr/bin/chromium ] && has_font && exit 0
if [ "$(id -u)" = 0 ]; then
  apt-get update -q && apt-get install -y -q chromium fonts-wqy-zenhei
elif [ -x /usr/bin/chromium ]; then
  echo "No CJK font: Chinese screenshots will show boxes (sudo apt-get install fonts-wqy-zenhei)" >&2
else
  echo "Chromium is missing: sudo apt-get install chromium (needed by the browser tests)" >&2
  exit 1
fi
