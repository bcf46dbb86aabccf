#!/usr/bin/env bash
# `make run` (and `make dev`, which passes --dev): database, demo data on the first run, the default model,
# Redis, then one worker, the exits worker, beat and the web server under a supervisor (edgeportal/supervisor.py)
# that restarts any that exits, with backoff and a log line, and stops them all cleanly on Ctrl-C or SIGTERM.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
mkdir -p .cache
# Web and worker share their Prometheus numbers through files here: set before either starts, emptied
# at each start (files of the previous run's processes would be added to this run's).
export PROMETHEUS_MULTIPROC_DIR=${PROMETHEUS_MULTIPROC_DIR:-$PWD/.cache/prometheus}
mkdir -p "$PROMETHEUS_MULTIPROC_DIR" && rm -f "$PROMETHEUS_MULTIPROC_DIR"/*.db

scripts/ensure-redis.sh
$PY manage.py migrate --noinput -v0
$PY manage.py collectstatic --noinput -v0
$PY manage.py prepare_model          # converts the GGUF once (about 20 s), then loads from .cache in seconds
demo=$($PY manage.py load_demo_data)
token='$TOKEN'
case "$demo" in *"shown once"*) token=$(echo "$demo" | tail -n 1) ;; esac

url_host=$HOST; case "$HOST" in 0.0.0.0|::) url_host=127.0.0.1 ;; esac
cat <<MSG

  EdgePortal runs at http://$url_host:$PORT/ ($([ "${1:-}" = --dev ] && echo "development server, DEBUG=${DEBUG:-}" || echo "gunicorn"))
$(echo "$demo" | sed 's/^/  /')

  Try the API:  curl -X POST http://$url_host:$PORT/api/jobs -H "Authorization: Bearer $token" \\
                  -H 'Content-Type: application/json' -d '{"prompt": "Write a notice: line A restarts in 10 minutes."}'

MSG
exec $PY -m edgeportal.serving --host "$HOST" --port "$PORT" "$@"
