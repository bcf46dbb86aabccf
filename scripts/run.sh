#!/usr/bin/env bash
# `make run`: database, demo data, the default model, Redis, then one worker and the web server.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
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

.venv/bin/celery -A edgeportal worker -P solo -n "worker1@%h" --beat -s .cache/celerybeat-schedule \
  --loglevel=INFO &
worker=$!
trap 'kill $worker 2>/dev/null; wait $worker 2>/dev/null' EXIT

cat <<MSG

  EdgePortal runs at http://127.0.0.1:$PORT/
$(echo "$demo" | sed 's/^/  /')

  Try the API:  curl -X POST http://127.0.0.1:$PORT/api/jobs -H "Authorization: Bearer $(echo "$demo" | tail -n 1)" \\
                  -H 'Content-Type: application/json' -d '{"prompt": "Write a notice: line A restarts in 10 minutes."}'

MSG
$PY manage.py runserver "127.0.0.1:$PORT" --noreload
