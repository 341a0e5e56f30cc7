#!/usr/bin/env bash
# test.sh - the whole test suite: unit, bpf (root + kernel) and incus (live daemon) tiers,
# in parallel (pytest-xdist), then the rule fixtures. Run as root after scripts/setup.sh.
#   scripts/test.sh [PYTEST ARGS...]
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
PY="${COI_VENV:-$REPO/.venv}/bin/python"
[ -x "$PY" ] || { echo "test.sh: no venv at $PY: run scripts/setup.sh first" >&2; exit 1; }
"$PY" -m pytest -n "${COI_TEST_WORKERS:-2}" -m "unit or bpf or incus" "$@"
