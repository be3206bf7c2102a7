#!/usr/bin/env bash
# Run the whole service on this machine (`make run`): web form + API, detect worker, recognize
# worker and Flower under honcho, plus a local redis-server when none answers at OCR_REDIS_URL.
# Ctrl-C (or SIGTERM) stops everything this script started.
#
# Environment (all optional): OCR_REDIS_URL (redis://localhost:6379/0), OCR_WEB_PORT (8000),
# OCR_FLOWER_PORT (5555), FLOWER_BASIC_AUTH (user:password), OCR_MODELS (real|noop), any other
# OCR_* variable (docs/service.md), VENV (.venv), OCR_SKIP_INSTALL=1 to skip `make install`.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV=${VENV:-.venv}

if [ "${OCR_SKIP_INSTALL:-0}" != "1" ]; then
  make --no-print-directory install VENV="$VENV"
fi
if [ -x "$VENV/bin/python" ]; then
  export PATH="$ROOT/$VENV/bin:$PATH"
fi

export OCR_REDIS_URL=${OCR_REDIS_URL:-redis://localhost:6379/0}
export OCR_WEB_PORT=${OCR_WEB_PORT:-8000}
export OCR_FLOWER_PORT=${OCR_FLOWER_PORT:-5555}
export PYTHONUNBUFFERED=1

redis_answers() {
  python - "$OCR_REDIS_URL" <<'PY' >/dev/null 2>&1
import sys, redis
redis.Redis.from_url(sys.argv[1], socket_connect_timeout=1, socket_timeout=1).ping()
PY
}

REDIS_PID=""
HONCHO_PID=""
cleanup() {
  trap - INT TERM EXIT
  if [ -n "$HONCHO_PID" ] && kill -0 "$HONCHO_PID" 2>/dev/null; then
    kill -TERM "$HONCHO_PID" 2>/dev/null || true   # honcho stops its processes
    wait "$HONCHO_PID" 2>/dev/null || true
  fi
  if [ -n "$REDIS_PID" ] && kill -0 "$REDIS_PID" 2>/dev/null; then
    echo "stopping the redis-server started by run.sh (pid $REDIS_PID)"
    kill -TERM "$REDIS_PID" 2>/dev/null || true
    wait "$REDIS_PID" 2>/dev/null || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if redis_answers; then
  echo "using the Redis that answers at $OCR_REDIS_URL"
else
  read -r HOST PORT < <(python - "$OCR_REDIS_URL" <<'PY'
import sys
from urllib.parse import urlsplit
u = urlsplit(sys.argv[1])
print(u.hostname or "localhost", u.port or 6379)
PY
)
  case "$HOST" in
    localhost|127.0.0.1|::1) ;;
    *) echo "no Redis answers at $OCR_REDIS_URL and it is not local; start it first" >&2; exit 1 ;;
  esac
  command -v redis-server >/dev/null || { echo "redis-server is not installed (make system-deps)" >&2; exit 1; }
  mkdir -p .run/redis
  echo "starting redis-server on $HOST:$PORT (data in .run/redis)"
  redis-server --bind "$HOST" --port "$PORT" --dir "$ROOT/.run/redis" --appendonly yes \
    --appendfsync everysec --maxmemory-policy noeviction --save "" >.run/redis/redis.log 2>&1 &
  REDIS_PID=$!
  for _ in $(seq 50); do redis_answers && break; sleep 0.1; done
  redis_answers || { echo "redis-server did not start; see .run/redis/redis.log" >&2; exit 1; }
fi

if [ "${OCR_MODELS:-real}" = "real" ]; then
  # load the models once here: a bad OCR_* setting fails now, with its message, and the ONNX
  # exports are made once (OCR_CACHE_DIR) instead of by every worker process at its first task
  ocr-pipeline models --load | tail -n 2
fi

echo "upload form:  http://127.0.0.1:${OCR_WEB_PORT}/"
echo "Flower:       http://127.0.0.1:${OCR_FLOWER_PORT}/${FLOWER_BASIC_AUTH:+  (basic auth from FLOWER_BASIC_AUTH)}"
echo "Ctrl-C stops everything."
honcho start -f Procfile &
HONCHO_PID=$!
wait "$HONCHO_PID"
