#!/usr/bin/env bash
# Runs the Python package's tests (python/tests) with the venv tools/python_env.sh made:
# tools/python_tests.sh [VENV [pytest args...]]   (VENV default: .venv)
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${1:-$repo/.venv}
shift || true
if [ ! -x "$venv/bin/python" ]; then
  echo "python_tests.sh: no venv at $venv; make it with tools/python_env.sh $venv" >&2
  exit 2
fi
cd "$repo"
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider "$@" python/tests
