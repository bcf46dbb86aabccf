#!/usr/bin/env bash
# The alert tests (tests/monitoring/test_alerts.py) check docs/prometheus/alerts.yml and /metrics with promtool,
# which comes with Debian's prometheus package. Only the tool is wanted: the Prometheus server the package also
# installs must not start, now or at the next boot. Without root or password-less sudo this only warns, and
# the tests skip with their reason.
set -euo pipefail
command -v promtool >/dev/null && exit 0
if [ "$(id -u)" = 0 ]; then
  as_root=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  as_root=(sudo -n)
else
  echo "promtool is missing: the alert tests will be skipped (sudo apt-get install prometheus)" >&2
  exit 0
fi

# policy-rc.d answering 101 tells the package's scripts (invoke-rc.d, deb-systemd-invoke) not to start the
# service. Docker images ship one already; ours is removed afterwards, someone else's is left alone.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  "${as_root[@]}" sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy"
  trap '"${as_root[@]}" rm -f "$policy"' EXIT
fi
if ! { "${as_root[@]}" apt-get update -q && "${as_root[@]}" apt-get install -y -q --no-install-recommends prometheus; }; then
  echo "prometheus (promtool) could not be installed (offline?): the alert tests will be skipped" >&2
  exit 0
fi
# The package enables the service for the next boot: disable it (and stop it, should it run).
if [ -d /run/systemd/system ]; then
  "${as_root[@]}" systemctl disable --now prometheus.service >/dev/null 2>&1 || true
elif command -v update-rc.d >/dev/null; then
  "${as_root[@]}" update-rc.d prometheus disable >/dev/null 2>&1 || true
fi
promtool --version | head -n 1
