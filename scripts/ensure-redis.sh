#!/usr/bin/env bash
# Make sure Redis answers at REDIS_URL; start a local redis-server if it is local and down.
set -euo pipefail
cd "$(dirname "$0")/.."
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/0}
ping() { .venv/bin/python -c "import redis,sys; redis.Redis.from_url(sys.argv[1], socket_timeout=2).ping()" "$REDIS_URL" 2>/dev/null; }
ping && { echo "Redis answers at $REDIS_URL"; exit 0; }

read -r host port < <(.venv/bin/python -c "from urllib.parse import urlparse; import sys; u=urlparse(sys.argv[1]); print(u.hostname or '127.0.0.1', u.port or 6379)" "$REDIS_URL")
case "$host" in
  127.*|localhost|::1) ;;
  *) echo "Redis at $REDIS_URL does not answer, and it is not on this machine: start it there." >&2; exit 1 ;;
esac
if ! command -v redis-server >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -q && apt-get install -y -q redis-server
  else
    echo "redis-server is not installed: sudo apt-get install redis-server" >&2; exit 1
  fi
fi
echo "Starting a local redis-server on port $port (no persistence: the database is the source of truth)"
redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --save "" --appendonly no
for _ in $(seq 50); do ping && exit 0; sleep 0.1; done
echo "redis-server did not answer at $REDIS_URL" >&2
exit 1
