"""Alerts for the output tests, raised by the real engine from a small rule file."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from output_support import RULES, exec_event

from coi_sentinel.rules import Alert, Engine, load_ruleset

@pytest.fixture
def make_alerts(tmp_path: Path) -> Callable[..., list[Alert]]:
    """make_alerts(n, severity="high") -> n alerts of rule shell_in_agent, pids 100...;
    ``rule`` renames the rule id (for rate-limit tests)."""

    def make(n: int, severity: str = "high", rule: str = "shell_in_agent") -> list[Alert]:
        path = tmp_path / f"{rule}-{severity}.yaml"
        path.write_text(RULES.format(severity=severity).replace("shell_in_agent", rule))
        alerts: list[Alert] = []
        engine = Engine(load_ruleset([path], replace_bundled=True), on_alert=alerts.append)
        engine.feed(exec_event(10, "/usr/bin/node", "node", "agent.js", ppid=1, ts=999_000_000))
        for i in range(n):
            engine.feed(exec_event(100 + i, "/bin/bash", "bash", "-c", f"echo {i}", ts=1_000_000_000 + i))
        assert len(alerts) == n
        return alerts

    return make
