"""Alerts for the output tests, raised by the real engine from a small rule file."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from coi_sentinel.events import model as m
from coi_sentinel.rules import Alert, Engine, load_ruleset

RULES = """\
- rule: shell_in_agent
  description: a shell under an agent
  severity: {severity}
  events: [exec]
  condition: proc.name in (bash, sh)
  output: "shell %proc.name (%proc.cmdline) under %proc.pname pid=%proc.pid args=%proc.args"
  tags: [T1059, shell]
  false_positives: none
"""


def exec_event(pid: int, filename: str, *argv: str, ppid: int = 10, ts: int = 1_000_000_000) -> m.ExecEvent:
    comm = filename.rsplit("/", 1)[-1]
    return m.ExecEvent(ts_ns=ts, pid=pid, tid=pid, ppid=ppid, uid=1000, gid=1000, comm=comm,
                       cgroup_id=43, scope_id=42, container="agent-1", filename=filename,
                       argv=tuple(argv) or (comm,), argc=len(argv) or 1, errno=0, fd=-100, flags=0)


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
