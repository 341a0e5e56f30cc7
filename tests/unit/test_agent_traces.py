"""The driven runs of the real agents (recorded by tests/incus/test_driven_agents.py) against the
bundled rules: bundled cases (rules/tests/agents.yaml), every one of them silent."""

from __future__ import annotations

import pytest

from coi_sentinel.assets import asset_dir
from coi_sentinel.replay.cases import load_suite, run_suite
from coi_sentinel.rules import load_ruleset

pytestmark = pytest.mark.unit


def _results(path):
    suite = load_suite([path])
    report = run_suite(suite, load_ruleset(None))
    assert not report.diagnostics.errors, [str(d) for d in report.diagnostics]
    results = {c.case.name: c for c in report.cases}
    assert all(c.ok for c in results.values()), {n: [str(p) for p in c.problems]
                                                 for n, c in results.items() if not c.ok}
    return results


def test_bundled_agent_runs_raise_nothing():
    results = _results(asset_dir("rules") / "tests/agents.yaml")
    assert {"agent_aider", "agent_claude_code", "agent_claude_env_probe", "agent_codex",
            "agent_opencode"} <= set(results)
    assert {n: c.fired for n, c in results.items() if c.fired} == {}

