#!/usr/bin/env bash
# The orchestrator's unit tests under the orchestrator's own install (`pip install .[test]`,
# no torch, no model stack): checks on every change that the daemons and their CLI run
# without what only the models need. The tests import the working tree (pythonpath = .).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${ORCHESTRATOR_VENV:-.venv-orchestrator}
PYTHON=${PYTHON:-python3}
if [ ! -x "$VENV/bin/python" ]; then
    echo "==> creating $VENV (the orchestrator alone)"
    "$PYTHON" -m venv "$VENV"
fi
if [ ! -f "$VENV/.vigil-installed" ] || [ setup.cfg -nt "$VENV/.vigil-installed" ]; then
    "$VENV/bin/python" -m pip install -q --upgrade pip setuptools wheel
    "$VENV/bin/python" -m pip install -q ".[test]"
    touch "$VENV/.vigil-installed"
fi
if "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    echo "the orchestrator's install pulled in torch: see setup.cfg install_requires" >&2
    exit 1
fi
"$VENV/bin/python" -m pytest -m "not integration" tests/orchestrator tests/test_import_rules.py "$@"
