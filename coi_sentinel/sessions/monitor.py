"""The monitoring hook of a session.

A session calls ``start(container_name, cgroup_path, audit_path)`` right after its container
starts and before the agent runs, and ``stop()`` when the session ends (or start-up fails).
``start`` must not return before the container's cgroup is in the kernel filter (the agent's
first exec has to be seen) and before whatever keeps the session from running unwatched when
the monitor dies is in place (:mod:`.guardian`). A monitor that cannot start raises
:class:`~coi_sentinel.errors.MonitorError` and the session does not run.

:class:`ProbeMonitor` (the BPF probes, an audit log) lives in :mod:`.probe_monitor`, imported
only when used, so this module and the session layer need no bcc.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Protocol

if TYPE_CHECKING:
    from .config import Config

log = logging.getLogger(__name__)


class Monitor(Protocol):
    def start(self, container_name: str, cgroup_path: Path, audit_path: Path) -> None: ...

    def stop(self) -> None: ...

    #: alerts raised so far, newest last (one dict each, as written to the audit log)
    @property
    def alerts(self) -> list[dict]: ...

    #: True when the monitor killed the session's agent, or a process of it (``run`` then
    #: exits with EXIT_KILLED)
    @property
    def killed(self) -> bool: ...

    # optional: ``settle()`` returns once the monitor has read what happened until the call
    # (``run`` asks before it reads ``killed``)


MonitorFactory = Callable[[], Monitor]


class Unmonitored:
    """Used only when the user's own config says ``monitoring = false``: watches nothing."""

    alerts: list[dict] = []
    killed = False

    def start(self, container_name: str, cgroup_path: Path, audit_path: Path) -> None:
        log.warning("session %s is NOT monitored (monitoring = false in your config)", container_name)

    def stop(self) -> None:
        return None


def default_factory(config: "Config", *, notify: Callable[[str], None] | None = None) -> MonitorFactory:
    """Monitors for sessions of ``config``: the bundled rules plus ``config.rules``, answered as
    ``config.response`` says (see :mod:`.response`); ``notify`` shows each action taken (one
    block of text). The rules are loaded here, before any container exists, so a bad rule file
    stops ``run`` at once."""
    if not config.monitoring:
        return Unmonitored
    from ..rules import load_ruleset   # no bcc

    ruleset = load_ruleset([Path(p) for p in config.rules] or None)

    def make() -> Monitor:
        from .probe_monitor import ProbeMonitor   # bcc is imported only here

        return ProbeMonitor(ruleset, config.response, tool=config.tool, network=config.network,
                            notify=notify)

    return make
