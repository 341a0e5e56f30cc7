#!/usr/bin/env bash
# test.sh - the whole test suite: unit, bpf (root + kernel) and incus (live daemon) tiers in
# parallel (pytest-xdist), then every bundled rule against the recorded trace corpus.
# Run as root after scripts/setup.sh.   scripts/test.sh [PYTEST ARGS...]
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
VENV="${COI_VENV:-$REPO/.venv}"
[ -x "$VENV/bin/python" ] || { echo "test.sh: no venv at $VENV: run scripts/setup.sh first" >&2; exit 1; }
"$VENV/bin/python" -m pytest -n "${COI_TEST_WORKERS:-2}" -m "unit or bpf or incus" "$@"
"$VENV/bin/coi-sentinel" rules test --strict
