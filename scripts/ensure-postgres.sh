#!/usr/bin/env bash
# CI runs the suite on PostgreSQL too: start the local cluster if it is installed but down.
set -euo pipefail
pg_isready -q -h 127.0.0.1 -p 5432 && exit 0
if ! command -v pg_ctlcluster >/dev/null; then
  apt-get update -q && apt-get install -y -q postgresql
fi
version=$(ls /etc/postgresql | sort -V | tail -n 1)
pg_ctlcluster --skip-systemctl-redirect "$version" main start
for _ in $(seq 50); do pg_isready -q -h 127.0.0.1 -p 5432 && exit 0; sleep 0.2; done
echo "PostgreSQL did not start on 127.0.0.1:5432" >&2
exit 1
