"""What a session did, read from its audit log: the model the report renderers draw.

:func:`build` reads a log's files (leniently: a damaged line is counted, ``verify`` judges
damage) and folds every event and record into a :class:`SessionReport`:

* a summary: agent, workspace, network mode, duration, verdict, and the audit chain's status
  from :func:`coi_sentinel.audit.verify.verify`;
* the alerts in time order, with their severity rank;
* the process tree, from fork, exec and exit events (and the processes alerts and actions name,
  so a log written with ``events="context"`` still has a tree), alerting processes marked;
* network destinations with connects and bytes sent; files written, grouped by directory;
  secrets (sensitive opens) read and by which process; actions with their latencies; drops.

Nothing here renders: :mod:`.html` and :mod:`.markdown` do.
"""

from __future__ import annotations

import os
import posixpath
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ..audit import severity as sev
from ..severity import Severity
from ..audit.verify import verify
from ..errors import RecordError
from ..events import model as m
from ..records import ActionRecord
from ..trace.format import parse_iso_time
from ..trace.reader import TraceReader

#: severity ranks (coi_sentinel.audit.severity) -> the label the report shows, highest first
SEVERITY_LABELS = tuple((int(s), s.label) for s in sorted(Severity, reverse=True))
_LABEL = dict(SEVERITY_LABELS)


def severity_label(value: Any) -> str:
    return _LABEL[sev.rank(value)]


@dataclass(slots=True)
class Proc:
    """One process (one pid lifetime). ``node`` is unique in the report; ``pid`` may repeat
    when the kernel reused it."""

    node: int
    pid: int
    ppid: int
    comm: str = ""
    exe: str = ""
    cmdline: str = ""
    execs: int = 0
    start_ns: int | None = None
    exit_code: int | None = None
    signal: int = 0
    events: int = 0
    #: rule ids of the alerts this process raised (in order, repeats kept once)
    alerts: list[str] = field(default_factory=list)
    max_rank: int = -1
    #: actions that hit it: "kill-process", "kill (kernel)", ...
    actions: list[str] = field(default_factory=list)
    children: list[int] = field(default_factory=list)
    parent: int | None = None

    @property
    def name(self) -> str:
        if self.cmdline:
            first = self.cmdline.split(" ", 1)[0]
            return posixpath.basename(first) or first
        return posixpath.basename(self.exe) if self.exe else self.comm

    @property
    def exited(self) -> str:
        if self.signal:
            return f"signal {self.signal}"
        if self.exit_code is not None:
            return f"exit {self.exit_code}"
        return ""


@dataclass(slots=True)
class AlertRow:
    time: str
    offset_s: float | None
    rule: str
    severity: str
    rank: int
    output: str
    pid: int | None
    process: str
    ancestry: list[str]
    source: str
    at: str                     # file:line


@dataclass(slots=True)
class ActionRow:
    time: str
    offset_s: float | None
    action: str
    by: str
    rule: str
    ok: bool
    latency_ms: float | None
    target: str
    detail: str
    at: str


@dataclass(slots=True)
class Destination:
    family: str
    address: str
    port: int
    connects: int = 0
    failed: int = 0
    bytes_sent: int = 0
    send_calls: int = 0
    killed: int = 0
    #: "name(pid)" -> events, in the order first seen
    processes: dict[str, int] = field(default_factory=dict)

    @property
    def label(self) -> str:
        if self.family == "unix":
            return f"unix:{self.address}"
        host = f"[{self.address}]" if self.family == "inet6" else self.address
        return f"{host}:{self.port}"


@dataclass(slots=True)
class FileRow:
    path: str
    opens: int = 0
    writes: int = 0
    bytes: int = 0
    failed: int = 0
    ops: list[str] = field(default_factory=list)      # "renamed from x", "deleted", "chmod 0755"
    #: "name(pid)" -> events, in the order first seen
    processes: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class SecretRead:
    path: str
    pid: int
    process: str
    cmdline: str
    ok: bool
    time: str
    count: int = 1


@dataclass(slots=True)
class ChainStatus:
    ok: bool
    lines: int
    files: int
    problems: list[str]
    notes: list[str]
    heads: dict[str, str]
    #: the last file has no footer: still being written, or its writer stopped
    open: bool = False

    @property
    def text(self) -> str:
        if not self.ok:
            return f"BROKEN: {self.problems[0]}" + (f" (+{len(self.problems) - 1} more)"
                                                    if len(self.problems) > 1 else "")
        still = " (no footer: still being written, or its writer stopped)" if self.open else ""
        return f"intact: {self.lines} lines in {self.files} file{'s' * (self.files != 1)}{still}"


@dataclass(slots=True)
class Summary:
    session: str
    agent: str
    workspace: str
    network: str
    source: str
    hostname: str
    kernel: str
    start_time: str
    end_time: str
    duration_s: float | None
    events: int
    events_by_type: dict[str, int]
    alerts_by_severity: dict[str, int]
    actions: int
    verdict: str
    verdict_level: str          # clean, alerts, stopped, broken
    chain: ChainStatus
    files: list[str]
    skipped: dict[str, int]


@dataclass(slots=True)
class SessionReport:
    summary: Summary
    alerts: list[AlertRow]
    actions: list[ActionRow]
    procs: dict[int, Proc]
    roots: list[int]
    destinations: list[Destination]
    files_by_dir: dict[str, list[FileRow]]
    secrets: list[SecretRead]
    drops: list[str]

    def alerting_procs(self) -> list[Proc]:
        return [p for p in self.procs.values() if p.alerts]

    def to_dict(self) -> dict[str, Any]:
        procs = [{**asdict(p), "name": p.name} for p in self.procs.values()]
        return {"summary": asdict(self.summary), "alerts": [asdict(a) for a in self.alerts],
                "actions": [asdict(a) for a in self.actions], "processes": procs,
                "roots": self.roots,
                "destinations": [{**asdict(d), "label": d.label} for d in self.destinations],
                "files": {d: [asdict(f) for f in rows] for d, rows in self.files_by_dir.items()},
                "secrets": [asdict(s) for s in self.secrets], "drops": self.drops}


# ------------------------------------------------------------------------------ building
class _Builder:
    def __init__(self) -> None:
        self.header: dict[str, Any] = {}
        self.start_ns: int | None = None     # CLOCK_MONOTONIC of header start_time
        self.start_wall: float | None = None
        self.first_ns: int | None = None
        self.last_ns: int | None = None
        self.end_time = ""
        self.last_time = ""
        self.procs: dict[int, Proc] = {}
        self.by_pid: dict[int, int] = {}      # pid -> node of its current lifetime
        self.alerts: list[AlertRow] = []
        self.actions: list[ActionRow] = []
        self.dests: dict[tuple[str, str, int], Destination] = {}
        self.files: dict[str, FileRow] = {}
        self.secrets: dict[tuple[str, int], SecretRead] = {}
        self.drops: list[str] = []
        self.events = 0
        self.by_type: Counter[str] = Counter()
        self.monitor_start: dict[str, Any] = {}
        self.tool = ""
        self.skipped: Counter[str] = Counter()

    # -- time
    def wall(self, ts_ns: int | None) -> str:
        if ts_ns is None or self.start_ns is None or self.start_wall is None:
            return ""
        t = self.start_wall + (ts_ns - self.start_ns) / 1e9
        return _iso(t)

    def offset(self, ts_ns: int | None) -> float | None:
        base = self.start_ns if self.start_ns is not None else self.first_ns
        if ts_ns is None or base is None:
            return None
        return max(0.0, (ts_ns - base) / 1e9)

    # -- processes
    def proc(self, pid: int, ppid: int = 0, comm: str = "") -> Proc:
        node = self.by_pid.get(pid)
        if node is not None:
            p = self.procs[node]
            if not p.comm and comm:
                p.comm = comm
            if not p.ppid and ppid:
                p.ppid = ppid
            return p
        node = len(self.procs) + 1
        p = Proc(node=node, pid=pid, ppid=ppid, comm=comm)
        self.procs[node] = p
        self.by_pid[pid] = node
        return p

    def named(self, pid: int | None) -> str:
        if pid is None:
            return ""
        node = self.by_pid.get(pid)
        if node is None:
            return str(pid)
        return f"{self.procs[node].name}({pid})"

    def event(self, ev: m.Event) -> None:
        self.events += 1
        self.by_type[ev.type.label] += 1
        if self.first_ns is None:
            self.first_ns = ev.ts_ns
        self.last_ns = ev.ts_ns if self.last_ns is None else max(self.last_ns, ev.ts_ns)
        p = self.proc(ev.pid, ev.ppid, ev.comm)
        p.events += 1
        if p.start_ns is None:
            p.start_ns = ev.ts_ns
        if isinstance(ev, m.ForkEvent):
            old = self.by_pid.get(ev.child_pid)
            if old is not None and (self.procs[old].exit_code is not None or self.procs[old].signal):
                del self.by_pid[ev.child_pid]        # a reused pid: a new lifetime
            child = self.proc(ev.child_pid, ev.pid, p.comm)
            if child.start_ns is None:
                child.start_ns = ev.ts_ns
            if not child.cmdline:
                child.cmdline, child.exe = p.cmdline, p.exe
        elif isinstance(ev, m.ExecEvent):
            if ev.errno == 0:
                p.execs += 1
                p.exe = ev.filename
                p.cmdline = " ".join(ev.argv) or ev.filename
                p.comm = ev.comm
        elif isinstance(ev, m.ExitEvent):
            p.exit_code, p.signal = ev.exit_code, ev.signal
        elif isinstance(ev, (m.ConnectEvent, m.ConnectRepeatEvent)):
            d = self.dest(ev.family, ev.daddr, ev.dport, p)
            n = ev.count if isinstance(ev, m.ConnectRepeatEvent) else 1
            d.connects += n
            if ev.errno not in (0, 115):        # EINPROGRESS: a non-blocking connect, started
                d.failed += n
            if getattr(ev, "killed", False):
                d.killed += 1
        elif isinstance(ev, m.NetSendEvent):
            d = self.dest(ev.family, ev.daddr, ev.dport, p)
            d.bytes_sent += ev.bytes
            d.send_calls += ev.calls
        elif isinstance(ev, m.FileOpenEvent):
            if ev.kind == "sensitive":
                key = (ev.path, p.node)
                s = self.secrets.get(key)
                if s is None:
                    self.secrets[key] = SecretRead(ev.path, ev.pid, p.name, p.cmdline, ev.errno == 0,
                                                   self.wall(ev.ts_ns))
                else:
                    s.count += 1
                    s.ok = s.ok or ev.errno == 0
            else:
                f = self.file(ev.path, p)
                f.opens += 1
                f.failed += ev.errno != 0
        elif isinstance(ev, m.FileWriteEvent):
            if ev.kind == "sensitive":
                return
            f = self.file(ev.path, p)
            f.opens += ev.opens
            f.writes += ev.writes
            f.bytes += ev.bytes
            f.failed += ev.opens if ev.failed else 0
        elif isinstance(ev, m.RenameEvent):
            if ev.errno == 0:
                self.file(ev.newpath, p).ops.append(f"renamed from {ev.oldpath}")
        elif isinstance(ev, m.UnlinkEvent):
            if ev.errno == 0:
                self.file(ev.path, p).ops.append("deleted")
        elif isinstance(ev, m.ChmodEvent):
            if ev.errno == 0 and ev.path:
                self.file(ev.path, p).ops.append(f"chmod {ev.mode:04o}")

    def dest(self, family: str, addr: str, port: int, p: Proc) -> Destination:
        key = (family, addr, port if family != "unix" else 0)
        d = self.dests.get(key)
        if d is None:
            d = self.dests[key] = Destination(family, addr, key[2])
        who = f"{p.name}({p.pid})"
        d.processes[who] = d.processes.get(who, 0) + 1
        return d

    def file(self, path: str, p: Proc) -> FileRow:
        f = self.files.get(path)
        if f is None:
            f = self.files[path] = FileRow(path)
        who = f"{p.name}({p.pid})"
        f.processes[who] = f.processes.get(who, 0) + 1
        return f

    # -- records
    def record(self, rec: dict[str, Any], at: str) -> None:
        kind = rec.get("record")
        t = rec.get("time")
        if isinstance(t, str):
            self.last_time = t
        if kind == "alert":
            self.alert(rec, at)
        elif kind == "action":
            try:
                action = ActionRecord.from_dict(rec)       # the one codec
            except RecordError:
                self.drops.append(f"unreadable action record ({at})")
                return
            self.action(action, at)
        elif kind == "drops":
            self.drop(rec)
        elif kind == "monitor":
            if rec.get("event") == "start" and not self.monitor_start:
                self.monitor_start = rec
            elif rec.get("event") in ("error", "write_error"):
                self.drops.append(f"monitor {rec.get('event')}: "
                                  + ", ".join(f"{k}={v}" for k, v in rec.items()
                                              if k not in ("record", "event", "time")))
        elif kind == "footer":
            if isinstance(rec.get("end_time"), str):
                self.end_time = rec["end_time"]
            if rec.get("end_ns"):
                self.last_ns = max(self.last_ns or 0, int(rec["end_ns"]))
            if rec.get("lost"):
                self.drops.append(f"{rec['lost']} lines lost by the log writer ({at})")

    def alert(self, rec: dict[str, Any], at: str) -> None:
        ts = rec.get("ts_ns") if isinstance(rec.get("ts_ns"), int) else None
        proc = rec.get("process") if isinstance(rec.get("process"), dict) else {}
        ancestry = [a for a in rec.get("ancestry") or () if isinstance(a, dict)]
        session = rec.get("session") if isinstance(rec.get("session"), dict) else {}
        if session.get("tool") and not self.tool:
            self.tool = str(session["tool"])
        # ancestry first (oldest first), so the acting process hangs under its parents
        for anc in reversed(ancestry):
            self._learn(anc)
        p = self._learn(proc) if proc.get("pid") else None
        rank = sev.rank(sev.of_alert(rec))
        rule = str(rec.get("rule", rec.get("rule_id", "?")))
        if p is not None:
            _add_once(p.alerts, rule)
            p.max_rank = max(p.max_rank, rank)
        self.alerts.append(AlertRow(
            time=self.wall(ts) or str(rec.get("time", "")), offset_s=self.offset(ts), rule=rule,
            severity=_LABEL[rank], rank=rank, output=str(rec.get("output", rec.get("message", ""))),
            pid=proc.get("pid"), process=_proc_text(proc),
            ancestry=[_proc_text(a) for a in ancestry], source=str(rec.get("source", "")), at=at))

    def _learn(self, info: dict[str, Any]) -> Proc | None:
        """A process an alert or action names: into the table, with what it says of it."""
        pid = info.get("pid")
        if not isinstance(pid, int):
            return None
        p = self.proc(pid, int(info.get("ppid") or 0), str(info.get("name") or ""))
        if not p.cmdline and info.get("cmdline"):
            p.cmdline = str(info["cmdline"])
        if not p.exe and info.get("exe"):
            p.exe = str(info["exe"])
        return p

    def action(self, rec: ActionRecord, at: str) -> None:
        ts = _int_or_none(rec.ts_ns)
        act = rec.action.value
        by = rec.by
        pids = [pid for pid in rec.killed_pids or () if isinstance(pid, int)]
        pid = _int_or_none(rec.pid)
        if pid is not None:
            self._learn({"pid": pid, **(rec.process or {})})
        for target in ([pid] if pid is not None else []) + pids:
            node = self.by_pid.get(target)
            if node is not None:
                _add_once(self.procs[node].actions, act + (" (kernel)" if by == "kernel" else ""))
        detail = []
        if rec.skipped:
            detail.append(f"skipped: {rec.skipped}")
        if rec.error:
            detail.append(f"error: {rec.error}")
        if pids:
            detail.append(f"killed pids {', '.join(map(str, pids))}")
        if rec.blocked:
            detail.append(f"blocked {rec.blocked}")
        for took, what in ((rec.freeze_ns, "freeze"), (rec.kill_ns, "kill")):
            if isinstance(took, int) and took:
                detail.append(f"{what} took {took / 1e6:.2f} ms")
        reason = rec.reason or (rec.output if not rec.rule else None)
        if reason:
            detail.append(str(reason))
        target = self.named(pid) if pid is not None else str(rec.container or "")
        lat = rec.latency_ns
        self.actions.append(ActionRow(
            time=self.wall(ts) or str(rec.time or ""), offset_s=self.offset(ts), action=act, by=by,
            rule=str(rec.rule or ""), ok=rec.ok,
            latency_ms=lat / 1e6 if isinstance(lat, (int, float)) else None, target=target,
            detail="; ".join(detail), at=at))

    def drop(self, rec: dict[str, Any]) -> None:
        src = rec.get("source", "kernel")
        counts = rec.get("counts")
        if isinstance(counts, dict) and counts:
            total = sum(v for v in counts.values() if isinstance(v, int))
            parts = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
            self.drops.append(f"{src}: {total} events lost ({parts})")
        elif rec.get("lost"):
            self.drops.append(f"{src}: {rec['lost']} lines lost"
                              + (f" ({rec['reason']})" if rec.get("reason") else ""))

    def header_seen(self, header: dict[str, Any]) -> None:
        if not self.header:
            self.header = header
            start_time = header.get("start_time")
            if isinstance(start_time, str) and isinstance(header.get("start_ns"), int):
                try:
                    self.start_wall = parse_iso_time(start_time)
                    self.start_ns = header["start_ns"]
                except ValueError:
                    pass
        drops = header.get("drops")
        if isinstance(drops, dict) and drops:
            self.drop({"source": "kernel (header)", "counts": drops})

    # -- the result
    def tree(self) -> list[int]:
        """Link children to parents (by the parent's lifetime current at the child's start)."""
        by_pid: dict[int, list[Proc]] = {}
        for p in self.procs.values():
            by_pid.setdefault(p.pid, []).append(p)
        roots = []
        for p in self.procs.values():
            parent = _lifetime(by_pid.get(p.ppid, ()), p.start_ns) if p.ppid and p.ppid != p.pid else None
            if parent is None or _is_descendant(self.procs, parent.node, p.node):
                roots.append(p.node)
                continue
            p.parent = parent.node
            parent.children.append(p.node)
        for p in self.procs.values():
            p.children.sort(key=lambda n: (self.procs[n].start_ns or 0, n))
        return sorted(roots, key=lambda n: (self.procs[n].start_ns or 0, n))


def _lifetime(candidates: Iterable[Proc], at_ns: int | None) -> Proc | None:
    best = None
    for c in candidates:
        if best is None or (at_ns is not None and c.start_ns is not None and c.start_ns <= at_ns):
            best = c
    return best


def _is_descendant(procs: dict[int, Proc], node: int, of: int) -> bool:
    seen = set()
    while node is not None and node not in seen:
        if node == of:
            return True
        seen.add(node)
        node = procs[node].parent
    return False


def _add_once(items: list[str], item: str) -> None:
    if item not in items:
        items.append(item)


def _proc_text(proc: dict[str, Any]) -> str:
    if not proc:
        return ""
    cmd = proc.get("cmdline") or proc.get("exe") or proc.get("name") or ""
    return f"{proc.get('pid', '?')} {cmd}".strip()


def _iso(t: float) -> str:
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


def _verdict(alerts: list[AlertRow], actions: list[ActionRow], chain: ChainStatus) -> tuple[str, str]:
    parts = []
    if not chain.ok:
        parts.append("the audit log is damaged")
    done = [a for a in actions if a.ok and not a.detail.startswith("skipped")]
    stops = [a for a in done if a.action in ("kill", "kill-process", "pause")]
    if stops:
        what = Counter(a.action for a in stops)
        parts.append("stopped: " + ", ".join(f"{n}× {k}" for k, n in sorted(what.items())))
    failed = [a for a in actions if not a.ok]
    if failed:
        parts.append(f"{len(failed)} action(s) FAILED")
    if alerts:
        counts = Counter(a.severity for a in alerts)
        parts.append(", ".join(f"{counts[label]} {label}" for _r, label in SEVERITY_LABELS
                               if counts[label]) + f" alert{'s' * (len(alerts) != 1)}")
    else:
        parts.append("no alerts")
    level = ("broken" if not chain.ok else "stopped" if stops or failed else
             "alerts" if alerts else "clean")
    return "; ".join(parts), level


def build(paths: Iterable[str | os.PathLike[str]], facts: dict[str, Any] | None = None) -> SessionReport:
    """The report of the audit log made of ``paths`` (a log's files; order does not matter:
    they are read in chain order). ``facts`` (``tool``, ``network``, ``workspace``) are what the
    caller knows of the session (``run`` does), over what the log's header says."""
    paths = [os.fspath(p) for p in paths]
    report = verify(paths)
    ordered = report.ordered_paths()
    chain = ChainStatus(ok=report.ok, lines=report.lines, files=len(report.files),
                        problems=[str(p) for p in report.problems],
                        notes=[str(n) for n in report.notes], heads=dict(report.heads),
                        open=any(n.kind == "open" for n in report.notes))
    b = _Builder()
    for path in ordered:
        with TraceReader(path, lenient=True) as trace:
            b.header_seen(trace.header)
            name = Path(path).name
            for lineno, item in trace:
                if isinstance(item, m.Event):
                    b.event(item)
                elif item.get("record") == "header":
                    b.header_seen(item)
                else:
                    b.record(item, f"{name}:{lineno}")
            b.skipped.update(trace.skipped)
    roots = b.tree()
    h = {**b.header, **{k: v for k, v in (facts or {}).items() if v}}
    start_time = str(h.get("start_time", ""))
    end_time = b.end_time or b.last_time or b.wall(b.last_ns)
    duration = None
    try:
        if start_time and end_time:
            duration = max(0.0, parse_iso_time(end_time) - parse_iso_time(start_time))
    except ValueError:
        duration = None
    if duration is None and b.first_ns is not None and b.last_ns is not None:
        duration = (b.last_ns - b.first_ns) / 1e9
    b.alerts.sort(key=lambda a: (a.offset_s if a.offset_s is not None else float("inf"), a.time))
    counts = Counter(a.severity for a in b.alerts)
    verdict, level = _verdict(b.alerts, b.actions, chain)
    files_by_dir: dict[str, list[FileRow]] = {}
    for path in sorted(b.files):
        files_by_dir.setdefault(posixpath.dirname(path) or ".", []).append(b.files[path])
    summary = Summary(
        session=str(h.get("session") or h.get("scope") or Path(ordered[0]).name.split(".")[0]),
        agent=str(h.get("tool") or b.tool or b.monitor_start.get("tool") or "?"),
        workspace=str(h.get("workspace") or b.monitor_start.get("workspace") or "?"),
        network=str(h.get("network") or b.monitor_start.get("network") or "?"),
        source=str(h.get("source", "")), hostname=str(h.get("hostname", "")),
        kernel=str(h.get("kernel", "")), start_time=start_time, end_time=end_time,
        duration_s=duration, events=b.events, events_by_type=dict(b.by_type.most_common()),
        alerts_by_severity={label: counts[label] for _r, label in SEVERITY_LABELS if counts[label]},
        actions=len(b.actions), verdict=verdict, verdict_level=level, chain=chain,
        files=ordered, skipped=dict(b.skipped))
    dests = sorted(b.dests.values(), key=lambda d: (-d.bytes_sent, -d.connects, d.label))
    secrets = sorted(b.secrets.values(), key=lambda s: (s.time, s.path))
    return SessionReport(summary=summary, alerts=b.alerts, actions=b.actions, procs=b.procs,
                         roots=roots, destinations=dests, files_by_dir=files_by_dir,
                         secrets=secrets, drops=b.drops)


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, s = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {s:02d} s"


def format_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
