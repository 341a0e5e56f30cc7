"""A process table kept from the event stream alone: fork, exec and exit events (plus a /proc
snapshot of what was running before the watcher started). Short-lived processes are never
looked up in /proc after the fact.

The rule engine reads ancestry (``proc.pname``, ``proc.aname[n]``) and fd state
(``proc.stdin_is_socket``) from here; replay rebuilds the same table from a trace.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from dataclasses import dataclass, field

from . import model

log = logging.getLogger(__name__)

#: processes kept after their exit, so late events (file/net summaries) still resolve
EXITED_KEEP = 4096
MAX_PROCS = 65536


@dataclass(slots=True)
class Process:
    pid: int
    ppid: int = 0
    comm: str = ""
    exe: str = ""
    argv: tuple[str, ...] = ()
    uid: int = -1
    start_ns: int = 0
    scope_id: int = 0
    container: str = ""
    exited: bool = False
    exit_code: int | None = None
    #: fds 0-2 that are sockets: {fd: (family, daddr, dport)}
    stdio_sockets: dict[int, tuple[str, str, int]] = field(default_factory=dict)
    #: sockets this process connected: {fd: (family, daddr, dport)}
    sockets: dict[int, tuple[str, str, int]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return os.path.basename(self.exe) if self.exe else self.comm

    @property
    def cmdline(self) -> str:
        return " ".join(self.argv) if self.argv else self.comm


class ProcessTable:
    """pid -> :class:`Process`, updated by :meth:`apply` for every event, in stream order."""

    def __init__(self, max_procs: int = MAX_PROCS) -> None:
        self._procs: OrderedDict[int, Process] = OrderedDict()
        self._exited: OrderedDict[int, None] = OrderedDict()
        self.max_procs = max_procs
        self.evicted = 0
        #: scope id -> processes of the table alive in it (for the fork bomb rule: a build forks
        #: as fast as a bomb, but its processes exit)
        self._live: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._procs)

    def processes(self) -> list[Process]:
        return list(self._procs.values())

    def get(self, pid: int) -> Process | None:
        return self._procs.get(pid)

    def _ensure(self, ev: model.Event) -> Process:
        p = self._procs.get(ev.pid)
        if p is None:
            p = Process(pid=ev.pid, ppid=ev.ppid, comm=ev.comm, uid=ev.uid, start_ns=ev.ts_ns,
                        scope_id=ev.scope_id, container=ev.container)
            self._insert(p)
        elif ev.ppid and not p.ppid:
            p.ppid = ev.ppid
        return p

    def _insert(self, p: Process) -> None:
        old = self._procs.get(p.pid)
        if old is not None and not old.exited:      # pid reused before its exit was seen
            self._gone(old)
        self._procs[p.pid] = p
        if not p.exited:
            self._live[p.scope_id] = self._live.get(p.scope_id, 0) + 1
        while len(self._procs) > self.max_procs:
            _, evicted = self._procs.popitem(last=False)
            if not evicted.exited:
                self._gone(evicted)
            self.evicted += 1

    def _gone(self, p: Process) -> None:
        left = self._live.get(p.scope_id, 0) - 1
        if left > 0:
            self._live[p.scope_id] = left
        else:
            self._live.pop(p.scope_id, None)

    def live(self, scope_id: int) -> int:
        """How many processes of the scope (container) are alive, as far as the events tell:
        forked or seen acting, and not exited."""
        return self._live.get(scope_id, 0)

    def apply(self, ev: model.Event) -> Process:
        """Update the table with one event; returns the acting process."""
        if isinstance(ev, model.ForkEvent):
            parent = self._ensure(ev)
            child = Process(pid=ev.child_pid, ppid=ev.pid, comm=parent.comm, exe=parent.exe,
                            argv=parent.argv, uid=ev.uid, start_ns=ev.ts_ns, scope_id=ev.scope_id,
                            container=ev.container, stdio_sockets=dict(parent.stdio_sockets),
                            sockets=dict(parent.sockets))
            self._exited.pop(ev.child_pid, None)
            self._insert(child)
            return parent
        p = self._ensure(ev)
        p.comm = ev.comm
        if isinstance(ev, model.ExecEvent):
            if not ev.errno:
                p.exe = ev.filename
                p.argv = ev.argv
                p.uid = ev.uid
        elif isinstance(ev, model.ExitEvent):
            if not p.exited:
                self._gone(p)
            p.exited = True
            p.exit_code = ev.exit_code
            self._exited[ev.pid] = None
            while len(self._exited) > EXITED_KEEP:
                old, _ = self._exited.popitem(last=False)
                self._procs.pop(old, None)
        elif isinstance(ev, model.ConnectEvent):
            if ev.errno in (0, 115):
                p.sockets[ev.fd] = (ev.family, ev.daddr, ev.dport)
        elif isinstance(ev, model.DupEvent):
            if not ev.errno:
                sock = p.sockets.get(ev.oldfd) or p.stdio_sockets.get(ev.oldfd)
                if ev.is_socket and sock is None:
                    sock = (ev.family, ev.daddr, ev.dport)
                if sock is not None:
                    p.stdio_sockets[ev.newfd] = sock
                    p.sockets[ev.newfd] = sock
                else:
                    p.stdio_sockets.pop(ev.newfd, None)
                    p.sockets.pop(ev.newfd, None)
        return p

    def ancestors(self, pid: int, limit: int = 16) -> list[Process]:
        """Parent first, up to ``limit`` generations (stops at an unknown pid or a loop)."""
        out: list[Process] = []
        seen = {pid}
        p = self._procs.get(pid)
        while p is not None and p.ppid and len(out) < limit:
            if p.ppid in seen:
                break
            seen.add(p.ppid)
            p = self._procs.get(p.ppid)
            if p is None:
                break
            out.append(p)
        return out

    def seed_from_proc(self, proc_root: str = "/proc", pids: set[int] | None = None) -> int:
        """Add the processes already running (only at start-up). Returns how many were added."""
        added = 0
        try:
            names = os.listdir(proc_root)
        except OSError as err:
            log.warning("cannot list %s: %s", proc_root, err)
            return 0
        for name in names:
            if not name.isdigit():
                continue
            pid = int(name)
            if pids is not None and pid not in pids:
                continue
            try:
                with open(f"{proc_root}/{pid}/stat", "rb") as f:
                    stat = f.read()
            except OSError:
                continue  # gone meanwhile
            cmd = _read_or_empty(f"{proc_root}/{pid}/cmdline")
            try:
                exe = os.readlink(f"{proc_root}/{pid}/exe")
            except OSError:
                exe = ""  # kernel thread, or not ours to read
            rp = stat.rfind(b")")
            comm = stat[stat.find(b"(") + 1:rp].decode("utf-8", "replace")
            ppid = int(stat[rp + 2:].split()[1])
            argv = tuple(a.decode("utf-8", "surrogateescape") for a in cmd.rstrip(b"\0").split(b"\0") if a)
            if pid not in self._procs:
                self._insert(Process(pid=pid, ppid=ppid, comm=comm, exe=exe, argv=argv))
                added += 1
        return added


def _read_or_empty(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""
