#!/usr/bin/env bash
# GPU smoke check (bench/gpu_smoke.py): the default model on cuda, one batch, its time and its agreement with
# CPU float32. Skips cleanly (exit 0) on a machine without a CUDA device. Usage: scripts/gpu-smoke.sh [--batch 8]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
test -x "$PY" || { echo "gpu-smoke: run 'make install' first (no $PY)" >&2; exit 1; }
exec "$PY" bench/gpu_smoke.py "$@"
