"""The wheel carries the BPF sources, rules and session profiles, and finds them installed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]


def test_installed_wheel_finds_its_assets(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(wheels), str(ROOT)], check=True, capture_output=True)
    target = tmp_path / "site"
    whl = next(wheels.glob("coi_sentinel-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                    str(whl)], check=True, capture_output=True)
    code = ("import coi_sentinel, sys\n"
            "from coi_sentinel.assets import asset_dir\n"
            "from coi_sentinel.probes.loader import program_text\n"
            "from coi_sentinel.probes.hooks import FAMILIES\n"
            "assert coi_sentinel.__file__.startswith(sys.argv[1]), coi_sentinel.__file__\n"
            "assert str(asset_dir('bpf')).startswith(sys.argv[1])\n"
            "assert 'TRACEPOINT_PROBE' in program_text(asset_dir('bpf'), list(FAMILIES))\n"
            "from coi_sentinel.rules import load_ruleset\n"
            "assert len(load_ruleset(None).rules) > 10\n"
            "assert (asset_dir('rules') / 'compat' / 'falco.yaml').is_file()\n"
            "assert sorted(p.name for p in asset_dir('sessions').glob('*.yaml'))\n")
    res = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(target)!r}); " + code.replace("\n", "; ", 0),
                          str(target)], capture_output=True, text=True, cwd="/")
    # -I: no user site, no cwd: only the installed copy (plus the stdlib and system packages)
    assert res.returncode == 0, res.stderr
