#!/bin/sh
# Runs the agent tests: tests/agent/run.sh [pytest args]
# Creates .venv (python3 -m venv) with jsonschema and pytest when absent; builds the
# debug binary (cargo build) unless KUBECERT_BIN names the binary to test.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
venv="$root/.venv"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import jsonschema, pytest' 2>/dev/null; then
    "$venv/bin/python" -m pip install --quiet jsonschema pytest
fi
if [ -z "${KUBECERT_BIN:-}" ]; then
    (cd "$root" && cargo build --quiet)
fi
cd "$root"
exec "$venv/bin/python" -m pytest tests/agent "$@"
