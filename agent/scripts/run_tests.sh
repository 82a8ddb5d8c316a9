#!/usr/bin/env bash
# Run the agent's test suite: create or refresh agent/.venv, then pytest.
#
# The venv is (re)installed only when requirements*.txt, constraints.txt or the Python version
# changed (a sha256 stamp inside the venv). Needs python3 >= 3.11 with venv + pip, and PyPI for the
# first install only; the tests themselves never use the network.
#
#   agent/scripts/run_tests.sh              # whole suite
#   agent/scripts/run_tests.sh -k vectors   # any pytest arguments
#   PYTHON=python3.11 agent/scripts/run_tests.sh
#
# Exit code: pytest's.
set -euo pipefail

agent_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$agent_dir"

python="${PYTHON:-python3}"
if ! "$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
    echo "run_tests.sh: $python is missing or older than Python 3.11" >&2
    exit 2
fi

venv="$agent_dir/.venv"
stamp="$venv/.duecall-requirements.sha256"
want="$( { "$python" -c 'import sys; print(sys.version)'; cat requirements.txt requirements-dev.txt constraints.txt; } | sha256sum | cut -d' ' -f1)"

if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
    rm -rf "$venv"
    "$python" -m venv "$venv"
fi

if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
    echo "run_tests.sh: installing the agent's requirements into $venv" >&2
    rm -f "$stamp"
    "$venv/bin/python" -m pip install --disable-pip-version-check --quiet \
        -r requirements-dev.txt -c constraints.txt
    echo "$want" > "$stamp"
fi

exec "$venv/bin/python" -m pytest "$@"
