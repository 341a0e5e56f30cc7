"""The monitoring hook of a session.

A session calls ``start(container_name, cgroup_path, audit_path)`` right after its container
starts and before the agent runs, and ``stop()`` when the session ends (or start-up fails).
``start`` must not return before the container's cgroup is in the kernel filter (the agent's
first exec has to be seen) and before whatever keeps the session from running unwatched when
the monitor dies is in place (:mod:`.guardian`). A monitor that cannot start raises
:class:`~coi_sentinel.errors.MonitorError` and the session does not run.

:class:`~.daemon_monitor.DaemonMonitor` registers the container with the host's daemon
(:mod:`coi_sentinel.daemon`), which watches it; the session layer needs no bcc.
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
    """Monitors for sessions of ``config``: the host's daemon watches the container with the
    bundled rules plus ``config.rules``, answered as ``config.response`` says (see
    :mod:`.response`); ``notify`` shows each action taken (one block of text). The rules are
    checked here, before any container exists, so a bad rule file stops ``run`` at once with
    its path:line (without extra rule files nothing is loaded here: the daemon has them)."""
    if not config.monitoring:
        return Unmonitored
    from ..rules import load_ruleset   # no bcc

    rule_paths = [Path(p) for p in config.rules]
    if rule_paths:              # the bundled rules are the daemon's, loaded once per host
        load_ruleset(rule_paths)

    def make() -> Monitor:
        from .daemon_monitor import DaemonMonitor

        return DaemonMonitor(rule_paths, config.response, tool=config.tool, network=config.network,
                             notify=notify)

    return make
