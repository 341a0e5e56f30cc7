"""Replay and rule-test fixtures: the bundled corpus (rules/tests/traces/, recorded from real
runs by rules/tests/make_corpus.py), the bundled rules, and the CLI."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from coi_sentinel.cli.main import main
from coi_sentinel.replay.cases import bundled_cases_dir
from coi_sentinel.rules import bundled_dir, load_ruleset

CASES = bundled_cases_dir()


@dataclass
class Ran:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def coi(capsys):
    """Run `coi-sentinel ARGS` in-process through main(), the entry point: its exit code (a
    command's ctx.exit(n), 1 for a SentinelError, 2 for usage), stdout and stderr."""

    def run(*args: str) -> Ran:
        capsys.readouterr()
        with pytest.raises(SystemExit) as exc:
            main([str(a) for a in args])
        out, err = capsys.readouterr()
        return Ran(exc.value.code, out, err)

    return run


@pytest.fixture(scope="session")
def ruleset():
    return load_ruleset(None)


@pytest.fixture
def corpus_copy(tmp_path) -> Path:
    """A copy of the bundled cases and traces, to break."""
    dst = tmp_path / "cases"
    shutil.copytree(CASES, dst, ignore=shutil.ignore_patterns("helpers", "*.py"))
    return dst


@pytest.fixture
def rules_copy(tmp_path) -> Path:
    """A copy of the bundled rule files, to break."""
    dst = tmp_path / "rules"
    dst.mkdir()
    for path in bundled_dir().glob("*.yaml"):
        shutil.copy2(path, dst / path.name)
    return dst
