"""Helpers for the rule tests, as fixtures: rule files in tmp_path (``rules``, ``rule_yaml``),
events built from the model (``ev``), an engine collecting alerts (``run``)."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

from coi_sentinel.events import model as m
from coi_sentinel.rules import Alert, Engine, RuleSet, check_ruleset, load_ruleset


def rule_yaml(rid: str, condition: str, events: str = "[exec]", *, output: str = "hit %proc.name",
              severity: str = "high", extra: str = "") -> str:
    """A complete, lint-clean rule item (extra: more YAML lines at rule level)."""
    text = f"""\
- rule: {rid}
  description: test rule {rid}
  severity: {severity}
  events: {events}
  condition: {condition}
  output: "{output}"
  tags: [T1059]
  false_positives: none
"""
    if extra:
        text += textwrap.indent(textwrap.dedent(extra).strip("\n"), "  ") + "\n"
    return text


@dataclass
class Rules:
    """Writes rule files into a directory and loads them without the bundled rules."""

    root: Path
    count: int = 0

    def write(self, text: str, name: str | None = None) -> Path:
        self.count += 1
        path = self.root / (name or f"r{self.count}.yaml")
        path.write_text(textwrap.dedent(text))
        return path

    def check(self, *texts: str, bundled: bool = False) -> RuleSet:
        paths = [self.write(t) for t in texts]
        return check_ruleset(paths, replace_bundled=not bundled)

    def load(self, *texts: str, bundled: bool = False) -> RuleSet:
        paths = [self.write(t) for t in texts]
        return load_ruleset(paths, replace_bundled=not bundled)

    def messages(self, *texts: str, level: str | None = None) -> list[str]:
        """Every diagnostic as 'file:line: message' with the file name only."""
        rs = self.check(*texts)
        return [f"{Path(d.source.path).name}:{d.source.line}: {d.message}" for d in rs.diagnostics
                if level is None or d.level == level]


@pytest.fixture(name="rule_yaml")
def rule_yaml_fixture() -> Callable[..., str]:
    return rule_yaml


@pytest.fixture
def rules(tmp_path: Path) -> Rules:
    return Rules(tmp_path)


def _family(daddr: str) -> str:
    return "unix" if daddr.startswith(("/", "@")) else "inet6" if ":" in daddr else "inet"


@dataclass
class Events:
    """Builds events with a shared header; ``ts`` rises by 1 ms per event unless given."""

    ts: int = 1_000_000_000
    container: str = "agent-1"
    scope_id: int = 42

    def hdr(self, pid: int, ppid: int, comm: str, ts: int | None, uid: int) -> dict:
        if ts is None:
            self.ts += 1_000_000
            ts = self.ts
        return dict(ts_ns=ts, pid=pid, tid=pid, ppid=ppid, uid=uid, gid=uid, comm=comm[:15],
                    cgroup_id=self.scope_id + 1, scope_id=self.scope_id, container=self.container)

    def fork(self, pid: int, child: int, *, ppid: int = 1, comm: str = "bash", ts: int | None = None,
             uid: int = 1000) -> m.ForkEvent:
        return m.ForkEvent(**self.hdr(pid, ppid, comm, ts, uid), child_pid=child, clone_flags=17)

    def exec(self, pid: int, filename: str, *argv: str, ppid: int = 1, errno: int = 0, flags: int = 0,
             comm: str | None = None, ts: int | None = None, uid: int = 1000,
             env: tuple[str, ...] = ()) -> m.ExecEvent:
        argv = argv or (filename.rsplit("/", 1)[-1],)
        comm = comm if comm is not None else filename.rsplit("/", 1)[-1]
        return m.ExecEvent(**self.hdr(pid, ppid, comm, ts, uid), filename=filename, argv=tuple(argv),
                           argc=len(argv), errno=errno, fd=-100, flags=flags, env=env)

    def exit(self, pid: int, *, ppid: int = 1, comm: str = "x", code: int = 0, ts: int | None = None) -> m.ExitEvent:
        return m.ExitEvent(**self.hdr(pid, ppid, comm, ts, 1000), exit_code=code, signal=0)

    def connect(self, pid: int, daddr: str, dport: int, *, family: str | None = None, fd: int = 3,
                errno: int = 0, ppid: int = 1, comm: str = "x", ts: int | None = None) -> m.ConnectEvent:
        family = family or _family(daddr)
        return m.ConnectEvent(**self.hdr(pid, ppid, comm, ts, 1000), fd=fd, family=family, daddr=daddr,
                              dport=dport, errno=errno)

    def dup(self, pid: int, oldfd: int, newfd: int, *, is_socket: bool = False, daddr: str = "",
            dport: int = 0, errno: int = 0, ppid: int = 1, comm: str = "x", ts: int | None = None,
            fd_kind: str = "", chan_id: int = 0, chan_end: str = "") -> m.DupEvent:
        family = _family(daddr) if is_socket and daddr else ""
        return m.DupEvent(**self.hdr(pid, ppid, comm, ts, 1000), oldfd=oldfd, newfd=newfd, errno=errno,
                          is_socket=is_socket, family=family, daddr=daddr, dport=dport,
                          fd_kind=fd_kind, chan_id=chan_id, chan_end=chan_end)

    def chan(self, pid: int, op: str, fd: int, kind: str, end: str, chan_id: int, *, fd2: int = -1,
             ppid: int = 1, comm: str = "x", ts: int | None = None) -> m.ChanEvent:
        return m.ChanEvent(**self.hdr(pid, ppid, comm, ts, 1000), op=op, fd=fd, fd2=fd2, kind=kind,
                           end=end, chan_id=chan_id, pty=-1, errno=0)

    def send(self, pid: int, daddr: str, dport: int, nbytes: int, *, ppid: int = 1, comm: str = "x",
             ts: int | None = None) -> m.NetSendEvent:
        family = "inet6" if ":" in daddr else "inet"
        return m.NetSendEvent(**self.hdr(pid, ppid, comm, ts, 1000), fd=3, bytes=nbytes, calls=1, family=family,
                              daddr=daddr, dport=dport, first_ts_ns=self.ts)

    def open(self, pid: int, path: str, *, kind: str = "sensitive", errno: int = 0, flags: int | None = None,
             mode: int = 0o644, ppid: int = 1, comm: str = "x", ts: int | None = None, uid: int = 1000
             ) -> m.FileOpenEvent:
        flags = flags if flags is not None else (0o1101 if kind == "write" else 0)
        return m.FileOpenEvent(**self.hdr(pid, ppid, comm, ts, uid), path=path, flags=flags, mode=mode,
                               fd=-1 if errno else 3, errno=errno, kind=kind, dirfd=-100)

    def write_summary(self, pid: int, path: str, nbytes: int, *, ppid: int = 1, comm: str = "x",
                      ts: int | None = None) -> m.FileWriteEvent:
        return m.FileWriteEvent(**self.hdr(pid, ppid, comm, ts, 1000), path=path, kind="write", opens=1,
                                writes=1, bytes=nbytes, failed=False, first_ts_ns=self.ts)

    def rename(self, pid: int, old: str, new: str, *, errno: int = 0, ppid: int = 1, comm: str = "x",
               ts: int | None = None) -> m.RenameEvent:
        return m.RenameEvent(**self.hdr(pid, ppid, comm, ts, 1000), oldpath=old, newpath=new, flags=0, errno=errno)

    def unlink(self, pid: int, path: str, *, ppid: int = 1, comm: str = "x", ts: int | None = None) -> m.UnlinkEvent:
        return m.UnlinkEvent(**self.hdr(pid, ppid, comm, ts, 1000), path=path, dirfd=-100, flags=0, errno=0)

    def chmod(self, pid: int, path: str, mode: int, *, errno: int = 0, ppid: int = 1, comm: str = "x",
              ts: int | None = None) -> m.ChmodEvent:
        return m.ChmodEvent(**self.hdr(pid, ppid, comm, ts, 1000), path=path, fd=-1, mode=mode, errno=errno)

    def priv(self, pid: int, op: str, arg0: int = 0, arg1: int = 0, detail: str = "", *, errno: int = 0,
             ppid: int = 1, comm: str = "x", ts: int | None = None, uid: int = 1000) -> m.PrivEvent:
        return m.PrivEvent(**self.hdr(pid, ppid, comm, ts, uid), op=op, arg0=arg0, arg1=arg1, detail=detail,
                           errno=errno)

    def link(self, pid: int, target: str, path: str, *, symlink: bool = True, errno: int = 0,
             ppid: int = 1, comm: str = "ln", ts: int | None = None) -> m.LinkEvent:
        return m.LinkEvent(**self.hdr(pid, ppid, comm, ts, 1000), target=target, path=path,
                           symlink=symlink, flags=0x10000 if symlink else 0, errno=errno)

    def utime(self, pid: int, path: str, mtime: int, *, backdated: bool = True, ppid: int = 1,
              comm: str = "touch", ts: int | None = None, uid: int = 1000) -> m.UtimeEvent:
        return m.UtimeEvent(**self.hdr(pid, ppid, comm, ts, uid), path=path, fd=-100, flags=0, atime=mtime,
                            mtime=mtime, backdated=backdated, errno=0)

    def uring(self, pid: int, op: str, opcode: int = 0, *, killed: bool = False, ppid: int = 1,
              comm: str = "x", ts: int | None = None, uid: int = 1000) -> m.UringEvent:
        return m.UringEvent(**self.hdr(pid, ppid, comm, ts, uid), op=op, opcode=opcode, user_data=0,
                            sqpoll=False, killed=killed)


@pytest.fixture
def ev() -> Events:
    return Events()


@dataclass
class Run:
    """An engine on a rule set, with its own process table, collecting alerts."""

    engine: Engine
    alerts: list[Alert] = field(default_factory=list)

    def feed(self, *events: m.Event) -> list[str]:
        """Feed events; returns the ids of the rules that fired for them, in order."""
        start = len(self.alerts)
        for e in events:
            self.engine.feed(e)
        return [a.rule for a in self.alerts[start:]]


@pytest.fixture
def run() -> Callable[..., Run]:
    def make(ruleset: RuleSet, **kwargs: object) -> Run:
        alerts: list[Alert] = []
        return Run(Engine(ruleset, on_alert=alerts.append, **kwargs), alerts)  # type: ignore[arg-type]
    return make
