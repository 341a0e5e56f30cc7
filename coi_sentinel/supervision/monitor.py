"""The monitoring hook of a session: the one seam between the lifecycle and the supervision.

The packages are layered (docs/daemon.md, "Packages"): :mod:`coi_sentinel.host` is the floor
(the Incus client, cgroups and the freezer, a session's paused state, state paths, names,
process identity, status files) and imports neither of the two above it;
:mod:`coi_sentinel.sessions` is the Incus lifecycle (create, stage, run, attach, save, stop) and
:mod:`coi_sentinel.supervision` watches a running session (this hook, the daemon's client
:mod:`.daemon_monitor`, the :mod:`.guardian`, resuming a :mod:`.paused` session). The lifecycle
reaches the supervision only through this module (:class:`Monitor`, :func:`default_factory`);
the supervision never imports the lifecycle: what it needs of a session's config comes in as
:class:`MonitorSettings`. tests/unit/test_import_cycles.py checks all of it.

A session makes its monitor (the factory) and calls ``prepare()``, when the monitor has one,
in a thread while Incus starts the container (the daemon is met, files read, connections
opened: nothing that needs the container); it calls ``start(container_name, cgroup_path,
audit_path)`` right after the container starts and before the agent runs, and ``stop()`` when
the session ends, or start-up failed (also on a monitor that was only prepared).
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
    from ..records import AlertRecord
    from ..respond.settings import ResponseSettings

log = logging.getLogger(__name__)


class Monitor(Protocol):
    #: ``starting``: Incus is still starting the container (the monitor must not freeze it
    #: before ``started()``)
    def start(self, container_name: str, cgroup_path: Path, audit_path: Path, *,
              starting: bool = False) -> None: ...

    def stop(self) -> None: ...

    #: alerts raised so far, newest last (as written to the audit log)
    @property
    def alerts(self) -> list["AlertRecord"]: ...

    #: True when the monitor killed the session's agent, or a process of it (``run`` then
    #: exits with EXIT_KILLED)
    @property
    def killed(self) -> bool: ...

    # optional: ``prepare()`` before the container runs (see the module's doc); ``started()``
    # once Incus has started a container given to ``start`` while ``starting``; ``settle()``
    # returns once the monitor has read what happened until the call (``run`` asks before it
    # reads ``killed``)


MonitorFactory = Callable[[], Monitor]


class MonitorSettings(Protocol):
    """What a monitor needs of a session's config (``sessions.config.Config`` has it)."""

    monitoring: bool
    rules: tuple[str, ...]
    response: "ResponseSettings"
    tool: str
    network: str
    #: the session's own outputs (``[[outputs]]`` and ``run --alerts-to``), sent to the daemon
    outputs: tuple


class Unmonitored:
    """Used only when the user's own config says ``monitoring = false``: watches nothing."""

    alerts: list["AlertRecord"] = []
    killed = False

    def start(self, container_name: str, cgroup_path: Path, audit_path: Path, *,
              starting: bool = False) -> None:
        log.warning("session %s is NOT monitored (monitoring = false in your config)", container_name)

    def stop(self) -> None:
        return None


def default_factory(config: MonitorSettings, *, notify: Callable[[str], None] | None = None) -> MonitorFactory:
    """Monitors for sessions of ``config``: the host's daemon watches the container with the
    bundled rules plus ``config.rules``, answered as ``config.response`` says (see
    :mod:`coi_sentinel.respond.settings`), its alerts also sent to ``config.outputs``; ``notify``
    shows each action taken (one block of text). The rules are checked here, before any
    container exists, so a bad rule file stops ``run`` at once with its path:line (without
    extra rule files nothing is loaded here: the daemon has them)."""
    if not config.monitoring:
        return Unmonitored
    rule_paths = [Path(p) for p in config.rules]
    if rule_paths:              # the bundled rules are the daemon's, loaded once per host
        from ..rules import load_ruleset   # no bcc; not imported otherwise (a tenth of a second)

        load_ruleset(rule_paths)

    def make() -> Monitor:
        from .daemon_monitor import DaemonMonitor

        return DaemonMonitor(rule_paths, config.response, tool=config.tool, network=config.network,
                             notify=notify, outputs=config.outputs)

    return make
