"""A process table kept from the event stream alone: fork, exec and exit events (plus a /proc
snapshot of what was running before the watcher started). Short-lived processes are never
looked up in /proc after the fact.

The rule engine reads ancestry (``proc.pname``, ``proc.aname[n]``) and fd state
(``proc.stdin_is_socket``) from here; replay rebuilds the same table from a trace.

Pipes, fifos and ptys (chan events, dup events' ``fd_kind``) are kept per process like sockets,
with an index of who holds which end, so "a shell whose stdin or stdout is the other end of a
pipe, fifo or pty held by a process with a network socket" can be asked (:meth:`ProcessTable.
chan_peers`). close() is not seen: an fd number that comes back from a call making a new fd
(pipe, open, connect, accept, dup onto it) replaces what the table had on it, and ends at fds
past 2 are dropped at exec (what O_CLOEXEC does to most of them; the kernel's entries follow the
same rule).
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable

from . import model

log = logging.getLogger(__name__)

#: processes kept after their exit, so late events (file/net summaries) still resolve
EXITED_KEEP = 4096
MAX_PROCS = 65536
#: sockets kept per process after their fd number was reused
PAST_SOCKETS_KEEP = 8
#: processes a relay walk goes through (chan_reach): nc, cat, a pty wrapper
RELAY_HOPS = 3


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
    #: the exit event's time (0 while alive)
    exit_ns: int = 0
    #: fds 0-2 that are sockets: {fd: (family, daddr, dport)}
    stdio_sockets: dict[int, tuple[str, str, int]] = field(default_factory=dict)
    #: sockets this process connected or accepted: {fd: (family, daddr, dport)}
    sockets: dict[int, tuple[str, str, int]] = field(default_factory=dict)
    #: working directory as followed through chdir events ("" until known)
    cwd: str = ""
    #: sockets the process had on an fd number that has since been reused (it talked to them;
    #: proc.has_outbound_socket counts them), the last few
    past_sockets: tuple[tuple[str, str, int], ...] = ()
    #: pipe, fifo and pty ends: {fd: (kind, chan id, end)}
    chans: dict[int, tuple[str, int, str]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        exe = self.exe      # os.path.basename's result, without its three calls
        return exe[exe.rfind("/") + 1:] if exe else self.comm

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
        #: chan id -> pids holding one of its ends (live processes)
        self._holders: dict[int, set[int]] = {}

    def __len__(self) -> int:
        return len(self._procs)

    def processes(self) -> list[Process]:
        return list(self._procs.values())

    def get(self, pid: int) -> Process | None:
        return self._procs.get(pid)

    def _ensure(self, ev: model.Event) -> Process:
        p = self._procs.get(ev.pid)
        if p is None or ((p.exited or (p.scope_id and p.scope_id != ev.scope_id)) and _reused(p, ev)):
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
            self._exited.pop(p.pid, None)       # (the old one's place there is not this one's)
            self._live[p.scope_id] = self._live.get(p.scope_id, 0) + 1
        while len(self._procs) > self.max_procs:
            _, evicted = self._procs.popitem(last=False)
            if not evicted.exited:
                self._gone(evicted)
            self.evicted += 1

    def _gone(self, p: Process) -> None:
        for _kind, cid, _end in p.chans.values():
            self._unhold(cid, p.pid)
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
        cls = type(ev)
        if cls is _FORK:
            return self._fork(ev)       # type: ignore[arg-type]
        p = self._procs.get(ev.pid)
        if p is None or ((p.exited or (p.scope_id and p.scope_id != ev.scope_id)) and _reused(p, ev)):
            p = Process(pid=ev.pid, ppid=ev.ppid, comm=ev.comm, uid=ev.uid, start_ns=ev.ts_ns,
                        scope_id=ev.scope_id, container=ev.container)
            self._insert(p)
        else:
            if ev.ppid and not p.ppid:
                p.ppid = ev.ppid
            p.comm = ev.comm
        step = _STEPS.get(cls, _unknown)
        if step is None:                # only the comm
            return p
        if step is _unknown:
            step = _step_of(cls)
        step(self, p, ev)
        return p

    def _fork(self, ev: model.ForkEvent) -> Process:
        parent = self._ensure(ev)
        # every field, in their order: half the cost of the keywords (a fork bomb's trace is
        # mostly forks and exits)
        child = Process(ev.child_pid, ev.pid, parent.comm, parent.exe, parent.argv, ev.uid, ev.ts_ns,
                        ev.scope_id, ev.container, False, None, 0, dict(parent.stdio_sockets),
                        dict(parent.sockets), parent.cwd, parent.past_sockets, dict(parent.chans))
        self._insert(child)
        for _kind, cid, _end in child.chans.values():
            self._holders.setdefault(cid, set()).add(child.pid)
        return parent

    # one step per event class that changes more than the process's comm (apply() finds it
    # by the event's class: one dict lookup, not a chain of isinstance tests)
    def _exec(self, p: Process, ev: model.ExecEvent) -> None:
        if not ev.errno:
            p.exe = ev.filename
            p.argv = ev.argv
            p.uid = ev.uid
            for fd in [fd for fd in p.chans if fd > 2]:
                self._set_chan(p, fd, None)

    def _exit(self, p: Process, ev: model.ExitEvent) -> None:
        if not p.exited:
            self._gone(p)
        p.exited = True
        p.exit_code = ev.exit_code
        p.exit_ns = ev.ts_ns
        self._exited[ev.pid] = None
        while len(self._exited) > EXITED_KEEP:
            old, _ = self._exited.popitem(last=False)
            self._procs.pop(old, None)

    def _connect(self, p: Process, ev: model.ConnectEvent) -> None:
        if ev.errno in (0, 115):
            p.sockets[ev.fd] = (ev.family, ev.daddr, ev.dport)
            if ev.fd in p.chans:
                self._set_chan(p, ev.fd, None)

    def _accept(self, p: Process, ev: model.AcceptEvent) -> None:
        if not ev.errno and ev.fd >= 0:
            self._new_fd(p, ev.fd)
            p.sockets[ev.fd] = (ev.family, ev.daddr, ev.dport)

    def _chan(self, p: Process, ev: model.ChanEvent) -> None:
        if not ev.errno and ev.fd >= 0:
            self._new_fd(p, ev.fd)
            self._set_chan(p, ev.fd, (ev.kind, ev.chan_id, ev.end))
            if ev.op in ("pipe", "socketpair") and ev.fd2 >= 0:
                self._new_fd(p, ev.fd2)
                self._set_chan(p, ev.fd2, (ev.kind, ev.chan_id, "write" if ev.op == "pipe" else ev.end))

    def _file_open(self, p: Process, ev: model.FileOpenEvent) -> None:
        fd = ev.fd
        if fd >= 0 and (p.sockets or fd in p.chans):     # (else _new_fd has nothing to drop)
            # a fifo or pty opened with write intent is reported twice (chan, file_open)
            self._new_fd(p, fd, keep_opened=True)

    def _chdir(self, p: Process, ev: model.ChdirEvent) -> None:
        if not ev.errno and ev.path.startswith("/"):
            p.cwd = ev.path

    def _dup(self, p: Process, ev: model.DupEvent) -> None:
        if not ev.errno:
            sock = dup_socket(ev, p)
            chan = dup_chan(ev, p)
            if chan is not None or ev.newfd in p.chans:
                self._set_chan(p, ev.newfd, chan)
            if sock is not None:
                p.stdio_sockets[ev.newfd] = sock
                p.sockets[ev.newfd] = sock
            else:
                p.stdio_sockets.pop(ev.newfd, None)
                p.sockets.pop(ev.newfd, None)

    # ---- pipes, fifos, ptys
    def _new_fd(self, p: Process, fd: int, keep_opened: bool = False) -> None:
        """fd was just made anew: whatever the table had on that number was closed (with
        ``keep_opened``, except a fifo or pty end: the same open's chan event made it)."""
        if p.sockets:
            sock = p.sockets.pop(fd, None)
            if sock is not None:
                p.past_sockets = (p.past_sockets + (sock,))[-PAST_SOCKETS_KEEP:]
            p.stdio_sockets.pop(fd, None)
        if fd in p.chans and not (keep_opened and p.chans[fd][0] != "pipe"):
            self._set_chan(p, fd, None)

    def _set_chan(self, p: Process, fd: int, chan: tuple[str, int, str] | None) -> None:
        old = p.chans.pop(fd, None)
        if chan is not None:
            p.chans[fd] = chan
            if not p.exited:
                self._holders.setdefault(chan[1], set()).add(p.pid)
        if old is not None and all(c[1] != old[1] for c in p.chans.values()):
            self._unhold(old[1], p.pid)

    def _unhold(self, cid: int, pid: int) -> None:
        held = self._holders.get(cid)
        if held is not None:
            held.discard(pid)
            if not held:
                del self._holders[cid]

    def chan_peers(self, p: Process, fds: tuple[int, ...] | None, upstream: bool) -> list[Process]:
        """Live processes other than ``p`` at the other end of the pipes, fifos and ptys ``p``
        has on ``fds`` (on any fd when None): upstream, the ones that write what ``p`` reads
        on them; else the ones that read what ``p`` writes. A pty's master and slave each
        feed the other; a fifo opened O_RDWR is both ends."""
        out: list[Process] = []
        if not p.chans:
            return out
        ends = _FEEDERS if upstream else _READERS
        for fd, (_kind, cid, end) in p.chans.items():
            if (fds is not None and fd not in fds) or not cid:
                continue
            want = ends.get(end, ())
            if not want:
                continue
            for pid in self._holders.get(cid, ()):
                q = self._procs.get(pid)
                if q is None or q is p or q.exited or q in out:
                    continue
                if any(c[1] == cid and c[2] in want for c in q.chans.values()):
                    out.append(q)
        return out

    def chan_reach(self, p: Process, fd: int, upstream: bool, pred: Callable[[Process], bool],
                   hops: int = RELAY_HOPS) -> Process | None:
        """The first process, through at most ``hops`` processes, that feeds what ``p`` reads
        on ``fd`` (upstream) or reads what ``p`` writes on it, and satisfies ``pred``. Past the
        first process the walk follows every pipe, fifo and pty end of the process in the same
        direction (``cat f | sh``: sh's stdin is fed by cat, cat's fifo by nc)."""
        seen = {p.pid}
        frontier = [q for q in self.chan_peers(p, (fd,), upstream)]
        for _ in range(hops):
            nxt: list[Process] = []
            for q in frontier:
                if q.pid in seen:
                    continue
                seen.add(q.pid)
                if pred(q):
                    return q
                nxt.extend(self.chan_peers(q, None, upstream))
            if not nxt:
                break
            frontier = nxt
        return None

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


#: records the probes make of what a process did before it exited, sent at its exit or later
#: (kernel aggregates: write totals, repeated connects, bytes sent)
_SUMMARIES = (model.FileWriteEvent, model.ConnectRepeatEvent, model.NetSendEvent)


def _reused(p: Process, ev: model.Event) -> bool:
    """``ev`` comes from another process that got the pid of ``p``, which exited or belongs to
    another scope: a record, other than a summary, of what happened after the exit (records
    from the bulk ring may come after the exit's record, which has a ring of its own: their
    time tells), or one from another container (a session's processes may outlive its scope
    unseen, and no process moves from one container to another; a process read from /proc at
    start has no scope and is not judged so). Without this, a reused pid speaks with the dead
    process's name, command line and ancestry."""
    if isinstance(ev, _SUMMARIES):
        return False
    return ev.ts_ns > p.exit_ns if p.exited else True


_FORK = model.ForkEvent

#: event class -> the step of ProcessTable.apply for it, None for the classes whose step is only
#: the comm (one lookup for either)
_STEPS: dict[type, Callable[[ProcessTable, Process, model.Event], None] | None] = {
    model.ExecEvent: ProcessTable._exec, model.ExitEvent: ProcessTable._exit,
    model.ConnectEvent: ProcessTable._connect, model.AcceptEvent: ProcessTable._accept,
    model.ChanEvent: ProcessTable._chan, model.FileOpenEvent: ProcessTable._file_open,
    model.ChdirEvent: ProcessTable._chdir, model.DupEvent: ProcessTable._dup,
}
_STEPS.update({cls: None for cls in model.EVENT_CLASSES.values() if cls not in _STEPS})


def _unknown(_table: ProcessTable, _p: Process, _ev: model.Event) -> None:
    """The marker of a class not in _STEPS (a subclass of an event class)."""


def _step_of(cls: type) -> Callable[[ProcessTable, Process, model.Event], None]:
    """The step of a class not in _STEPS: its nearest base's (a subclass of an event class), or
    none (remembered as None)."""
    for base in cls.__mro__[1:]:
        if base in _STEPS:
            step = _STEPS[cls] = _STEPS[base]
            return step if step is not None else _no_step
    _STEPS[cls] = None
    return _no_step


def _no_step(_table: ProcessTable, _p: Process, _ev: model.Event) -> None:
    return None


#: end -> the ends that write what it reads
_FEEDERS = {"read": ("write", "rdwr"), "rdwr": ("write", "rdwr"), "master": ("slave",),
            "slave": ("master",)}
#: end -> the ends that read what it writes
_READERS = {"write": ("read", "rdwr"), "rdwr": ("read", "rdwr"), "master": ("slave",),
            "slave": ("master",)}
_CHAN_KINDS = ("pipe", "fifo", "pty", "socketpair")


def dup_socket(ev: model.DupEvent, p: Process) -> tuple[str, str, int] | None:
    """(family, daddr, dport) of the socket a dup copied, or None. The kernel's fd kind decides
    when the record has one: a pipe, fifo or pty is no socket whatever the table remembers on
    that fd number (it never sees close()); "other" leaves it to the table, which knows sockets
    inherited from further up than the parent. Records from before fd kinds (``fd_kind`` "")
    say nothing with is_socket false: the table decides."""
    kind = ev.fd_kind
    if kind == "socket" and ev.family:
        return ev.family, ev.daddr, ev.dport
    if kind in _CHAN_KINDS:
        return None
    sock = p.sockets.get(ev.oldfd) or p.stdio_sockets.get(ev.oldfd)
    if sock is None and ev.is_socket:
        sock = (ev.family, ev.daddr, ev.dport)
    return sock


def dup_chan(ev: model.DupEvent, p: Process) -> tuple[str, int, str] | None:
    """The pipe, fifo or pty end a dup copied, or None: the kernel's word when the record has
    fd kinds, else what the table has on oldfd."""
    if ev.fd_kind:
        return (ev.fd_kind, ev.chan_id, ev.chan_end) if ev.fd_kind in _CHAN_KINDS and ev.chan_id else None
    return p.chans.get(ev.oldfd)


def _read_or_empty(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""
