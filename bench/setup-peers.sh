#!/usr/bin/env bash
# Create bench/.venv (separate from Conveyor's .venv) with every peer job system, the drivers,
# and Conveyor itself (editable), so one interpreter can drive the whole comparison.
#   bash bench/setup-peers.sh            # then: bench/.venv/bin/python bench/compare.py --quick
# PYTHON=/path/to/python3.11 overrides the interpreter (3.11+).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
PYTHON="${PYTHON:-python3}"
"$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11), "the bench needs Python 3.11+"'
if [ ! -x "$HERE/.venv/bin/python" ]; then
  "$PYTHON" -m venv "$HERE/.venv"
  "$HERE/.venv/bin/pip" install -q --upgrade pip
fi
"$HERE/.venv/bin/pip" install -q -r "$HERE/requirements-peers.txt"
"$HERE/.venv/bin/pip" install -q -e "$ROOT[all]"
"$HERE/.venv/bin/python" - <<'PY'
import importlib.metadata as md
for name in ("celery", "rq", "dramatiq", "arq", "huey", "taskiq", "taskiq-redis",
             "procrastinate", "pgqueuer", "psycopg", "redis", "conveyor"):
    print(f"{name}=={md.version(name)}")
PY
