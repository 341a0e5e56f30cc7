"""The driven runs of the real agents (rules/tests/agents, recorded by
tests/incus/test_driven_agents.py) against the bundled rules: aider raises nothing; Claude
Code's known false positives stay exactly as recorded until the rules are fixed (then its case
moves to `expect: none`)."""

from __future__ import annotations

import pytest

from coi_sentinel.assets import asset_dir
from coi_sentinel.replay.cases import load_suite, run_suite
from coi_sentinel.rules import load_ruleset

pytestmark = pytest.mark.unit


def test_agent_traces_replay_as_recorded():
    suite = load_suite([asset_dir("rules") / "tests/agents"])
    report = run_suite(suite, load_ruleset(None))
    assert not report.diagnostics.errors, [str(d) for d in report.diagnostics]
    results = {c.case.name: c for c in report.cases}
    assert set(results) == {"agent_aider", "agent_claude_code"}
    assert all(c.ok for c in results.values()), {n: [str(p) for p in c.problems]
                                                 for n, c in results.items() if not c.ok}
    assert not results["agent_aider"].fired
    assert set(results["agent_claude_code"].fired) == {
        "reverse_shell_exec_socket_stdio", "exfil_env_dump_to_network"}
