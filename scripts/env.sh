# Sourced by the scripts: environment shared by every process they start.
export DJANGO_SETTINGS_MODULE=recsite.settings
export DGLBACKEND=pytorch
# Idle BLAS threads spin on small machines and slow single queries (shared/PITFALLS.md 13).
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
export PYTHONUNBUFFERED=1
PY=.venv/bin/python

free_port() {
  "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_for_milvus() {  # uri, seconds
  "$PY" - "$1" "$2" <<'PYEOF'
import sys, time
from pymilvus import MilvusClient
uri, deadline = sys.argv[1], time.monotonic() + float(sys.argv[2])
while True:
    try:
        MilvusClient(uri=uri, timeout=2).get_server_version()
        break
    except Exception as error:
        if time.monotonic() > deadline:
            sys.exit(f"milvus-lite server at {uri} did not answer: {error}")
        time.sleep(0.3)
PYEOF
}
