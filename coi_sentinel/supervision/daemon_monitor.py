"""A session's monitor as a client of the host's daemon.

``prepare`` (called while Incus starts the container) meets the daemon (starting one when none
runs, and saying so) and opens the lease connection; ``start`` registers the container's cgroup
on it and returns once the daemon answered: by then the cgroup is in the kernel
filter, the session's audit log is open and a guardian watches the daemon. The registering
connection is the session's lease: this object keeps it open until ``stop``; if this process
dies, the daemon pauses the session as an orphan. If the daemon dies, the guardian freezes the
session; this object reconnects to the next daemon (which re-adopts the scope) and renews the
lease, and the daemon thaws it.

A second connection follows the scope's alerts and actions, for ``alerts``, ``killed`` and the
notices ``run`` shows.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any, Callable

from .. import records
from ..action import KILLS, Action
from ..daemon import protocol as P
from ..daemon.client import DaemonClient, ensure_daemon
from ..audit.notices import block as notice_block
from ..errors import MonitorError, RecordError
from ..records import ActionRecord, AlertRecord
from ..respond.settings import ResponseSettings

log = logging.getLogger(__name__)

#: how often a lost lease is retried while the daemon is away (seconds)
RECONNECT_EVERY = 0.1


class DaemonMonitor:
    def __init__(self, rule_paths: list[Path] | None = None, settings: ResponseSettings | None = None, *,
                 tool: str | None = None, network: str | None = None,
                 notify: Callable[[str], None] | None = None, socket: str | None = None,
                 outputs: tuple[Any, ...] = ()) -> None:
        self.rule_paths = list(rule_paths or [])
        #: the session's own outputs (OutputSpec): the daemon sends its alerts there too
        self.outputs = tuple(outputs)
        self.settings = settings or ResponseSettings()
        self.tool = tool
        self.network = network
        self.notify = notify
        self.socket = socket
        self.alerts: list[AlertRecord] = []
        self.actions: list[ActionRecord] = []
        self.killed = False
        self.summary: dict | None = None
        self._name = ""
        self._request: dict[str, Any] = {}
        self._rules: list[dict[str, str]] = []
        self._lease: DaemonClient | None = None
        self._stream: DaemonClient | None = None
        self._items = None
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- start
    def prepare(self) -> None:
        """Before the container runs (the session calls it while Incus starts it): a daemon
        answers (one is started when none does, and that is said), the extra rule files are
        read and the lease connection is open, so that :meth:`start` only registers."""
        try:
            ensure_daemon(self.socket, say=self._say)
            self._rules = self._rule_texts()
            self._lease = DaemonClient.connect(self.socket)
        except P.DaemonError as err:
            self._close_sockets()
            raise MonitorError(f"cannot monitor the session: {err}", hint=err.hint) from err

    def start(self, container_name: str, cgroup_path: Path, audit_path: Path, *,
              starting: bool = False) -> None:
        if self._lease is None:
            self.prepare()
        self._name = container_name
        try:
            self._request = {"name": container_name, "cgroup": str(cgroup_path),
                             "audit": str(audit_path), "tool": self.tool, "network": self.network,
                             "response": self.settings.to_dict(), "rules": self._rules,
                             "outputs": [spec.to_json() for spec in self.outputs]}
            self._lease.request("register", starting=starting, **self._request)
            self._lease.sock.settimeout(None)       # held open, silent, for the session's life
            self._stream = DaemonClient.connect(self.socket)
            self._items = self._stream.subscribe([container_name], ("alerts", "actions"))
        except P.DaemonError as err:
            self._close_sockets()
            raise MonitorError(f"cannot monitor {container_name}: {err}", hint=err.hint) from err
        for target, name in ((self._hold_lease, "lease"), (self._follow, "follow")):
            t = threading.Thread(target=target, name=f"{name}-{container_name}", daemon=True)
            t.start()
            self._threads.append(t)

    def started(self) -> None:
        """Incus has started the container: the daemon applies the pauses it held meanwhile
        (a freeze during the start would stop LXC halfway). Without an answer the daemon
        applies them by itself a little later."""
        try:
            with DaemonClient.connect(self.socket, timeout=10) as c:
                c.request("started", name=self._name)
        except P.DaemonError as err:
            log.warning("%s: the daemon was not told the container started: %s", self._name, err)

    def _rule_texts(self) -> list[dict[str, str]]:
        if not self.rule_paths:
            # the usual case, on the path to the agent's first instruction: importing the
            # rule loader (yaml, the compiler) would cost a fifth of a second for nothing
            return []
        from ..rules.diagnostics import Diagnostics
        from ..rules.loader import rule_files

        files = rule_files(self.rule_paths, Diagnostics())
        return [{"path": str(p), "text": p.read_text()} for p in files]

    # ---------------------------------------------------------------- the lease
    def _hold_lease(self) -> None:
        """Block on the lease connection; when the daemon goes away, wait for the next one and
        renew the lease (``register`` with ``adopt``)."""
        while not self._stopping.is_set():
            lease = self._lease
            try:
                data = lease.sock.recv(4096) if lease is not None else b""
            except OSError:
                data = b""
            if data or self._stopping.is_set():
                continue
            log.warning("%s: the daemon went away; waiting for the next one", self._name)
            self._say(f"coi-sentinel: the daemon watching {self._name} went away: the session is "
                      "frozen until a daemon takes it over")
            while not self._stopping.is_set():
                time.sleep(RECONNECT_EVERY)
                try:
                    new = DaemonClient.connect(self.socket, timeout=10)
                    new.request("register", adopt=True, **self._request)
                    new.sock.settimeout(None)
                except P.DaemonError:
                    continue
                with self._lock:
                    old, self._lease = self._lease, new
                if old is not None:
                    old.close()
                self._say(f"coi-sentinel: a new daemon watches {self._name}; the session runs again")
                break

    def _follow(self) -> None:
        """The scope's alerts and actions, for ``alerts``, ``killed`` and the notices."""
        while not self._stopping.is_set():
            try:
                if self._items is None:
                    raise P.DaemonUnavailable(str(self.socket), "not connected")
                for item in self._items:
                    if item.get("stream") in ("alert", "action"):
                        rec = records.from_dict(item["data"])      # the one codec
                        if isinstance(rec, AlertRecord):
                            self.alerts.append(rec)
                        elif isinstance(rec, ActionRecord):
                            self._acted(rec)
            except (P.DaemonError, OSError, ValueError, RecordError):
                pass
            if self._stopping.is_set():
                return
            self._items = None
            time.sleep(RECONNECT_EVERY)
            try:
                self._stream = DaemonClient.connect(self.socket, timeout=10)
                self._items = self._stream.subscribe([self._name], ("alerts", "actions"))
            except P.DaemonError:
                self._stream = None

    def _acted(self, rec: ActionRecord) -> None:
        self.actions.append(rec)
        if rec.done and rec.action in KILLS:
            self.killed = True
        if rec.action is not Action.ALERT:
            self._say(notice_block(rec))

    def _say(self, text: str) -> None:
        try:
            (self.notify or log.warning)(text)
        except Exception as err:  # noqa: BLE001 - the terminal went away: the record is in the audit log
            log.debug("notice not shown: %s", err)

    # ---------------------------------------------------------------- queries
    def settle(self, timeout: float = 2.0) -> bool:
        """Wait until the daemon has read what happened until this call (an agent's last
        events, a kill among them)."""
        try:
            with DaemonClient.connect(self.socket, timeout=timeout + 1) as c:
                r = c.request("settle", name=self._name)
        except P.DaemonError:
            return False
        if r.get("killed"):
            self.killed = True
        deadline = time.monotonic() + 0.5      # the follower sees the action lines shortly
        while r.get("alerts", 0) > len(self.alerts) and time.monotonic() < deadline:
            time.sleep(0.01)
        return bool(r.get("settled"))

    # ---------------------------------------------------------------- stop
    def stop(self) -> None:
        if not self._name:                  # prepared at most: nothing registered
            self._close_sockets()
            return
        if self._stopping.is_set():
            return
        self.settle()
        try:
            with DaemonClient.connect(self.socket, timeout=30) as c:
                self.summary = c.request("unregister", name=self._name)
            if self.summary.get("killed"):
                self.killed = True
        except P.DaemonError as err:
            log.error("%s: could not end the daemon's watch: %s", self._name, err)
        finally:
            self._stopping.set()
            self._close_sockets()
            for t in self._threads:
                t.join(timeout=2)

    def _close_sockets(self) -> None:
        lease, stream, self._lease, self._stream = self._lease, self._stream, None, None
        for c in (lease, stream):
            if c is not None:
                try:
                    c.sock.shutdown(2)
                except OSError:
                    pass
                c.close()
