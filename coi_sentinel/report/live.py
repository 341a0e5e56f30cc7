"""The live picture `coi-sentinel top` draws: the daemon's status documents (docs/daemon.md)
turned into rates, plus what only the host can tell (a container's CPU and memory from its
cgroup).

:class:`Tracker` takes one ``status`` answer after another and yields a :class:`Frame`: per
scope its state, events per second by type (from the difference of the counters between two
answers), alerts by severity, actions, drops, CPU (``cpu.stat`` usage) and memory
(``memory.current``); for the daemon its events per second, drops, kills, rules and size.
:func:`busiest` ranks a scope's processes (the ``processes`` op) by events per second.
:class:`DaemonSource` is the daemon end: requests on one connection, alerts and actions
streamed on another by a thread. Nothing here draws: :mod:`.tui` and :func:`frame_text` do.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from .. import records
from ..audit import severity as sev
from ..severity import Severity
from ..errors import RecordError, SentinelError
from ..records import AlertRecord, Record

log = logging.getLogger(__name__)

#: severities in the order `top` shows them
SEVERITIES = ("critical", "high", "medium", "low", "info")
STATES = ("running", "frozen", "orphan", "killed", "gone", "starting")


def severity_label(value: Any) -> str:
    return Severity(sev.rank(value)).label


@dataclass(slots=True)
class CgroupUsage:
    cpu_usec: int | None
    memory: int | None


def _mounts(kind: str, option: str | None = None, mounts: str = "/proc/self/mounts") -> list[Path]:
    out = []
    try:
        with open(mounts) as f:
            for line in f:
                parts = line.split()
                if len(parts) > 3 and parts[2] == kind and (option is None or option in parts[3].split(",")):
                    out.append(Path(parts[1]))
    except OSError:
        pass
    return out


def _v1_memory(cgroup2_dir: Path) -> int | None:
    """On a hybrid host (cgroup2 without the memory controller) the same cgroup's usage in the
    v1 memory hierarchy (``memory.usage_in_bytes``)."""
    for root in _mounts("cgroup2"):
        try:
            rel = cgroup2_dir.relative_to(root)
        except ValueError:
            continue
        for mem_root in _mounts("cgroup", "memory"):
            try:
                return int((mem_root / rel / "memory.usage_in_bytes").read_text().strip())
            except (OSError, ValueError):
                continue
    return None


def cgroup_usage(path: str | Path) -> CgroupUsage:
    """CPU time used (``cpu.stat`` usage_usec) and memory (``memory.current``; on a hybrid
    host the v1 memory controller's usage of the same cgroup) of a cgroup2 directory; None for
    what cannot be read (no controller, the cgroup is gone)."""
    p = Path(path)
    cpu = mem = None
    try:
        for line in (p / "cpu.stat").read_text().splitlines():
            key, _sp, value = line.partition(" ")
            if key == "usage_usec":
                cpu = int(value)
                break
    except (OSError, ValueError):
        pass
    try:
        mem = int((p / "memory.current").read_text().strip())
    except FileNotFoundError:
        mem = _v1_memory(p) if p.is_dir() else None
    except (OSError, ValueError):
        pass
    return CgroupUsage(cpu, mem)


@dataclass(slots=True)
class ScopeRow:
    name: str
    kind: str
    state: str
    tool: str
    network: str
    events: int
    rate: float                                  # events/s, every type
    rates: dict[str, float]                      # events/s by type, busiest first
    alerts: dict[str, int]                       # by severity label
    actions: int
    drops: int | None                            # None: the daemon does not count per scope
    cpu: float | None                            # percent of one CPU
    memory: int | None                           # bytes
    cgroup: str
    audit: str
    last_alerts: list[AlertRecord]

    @property
    def alert_total(self) -> int:
        return sum(self.alerts.values())


@dataclass(slots=True)
class DaemonRow:
    pid: int | None
    rules: int | None
    rules_hash: str
    rate: float
    rates: dict[str, float]
    events: int
    drops: int
    kills: int
    rss: int | None
    subscribers: int | None
    coverage: str


@dataclass(slots=True)
class Frame:
    """One refresh: the daemon, its scopes, and when."""

    at: float
    interval: float | None
    daemon: DaemonRow
    scopes: list[ScopeRow]

    def to_dict(self) -> dict[str, Any]:
        return {"at": self.at, "interval": self.interval, "daemon": asdict(self.daemon),
                "scopes": [{**asdict(s), "last_alerts": [a.to_dict() for a in s.last_alerts],
                            "alert_total": s.alert_total} for s in self.scopes]}


def _num(value: Any) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return int(value)
    if isinstance(value, dict):
        return sum(_num(v) for v in value.values())
    return 0


def _counts(value: Any) -> dict[str, int]:
    return {str(k): _num(v) for k, v in value.items()} if isinstance(value, dict) else {}


def _rates(now: dict[str, int], before: dict[str, int] | None, dt: float | None) -> dict[str, float]:
    if before is None or not dt or dt <= 0:
        return {}
    out = {k: max(0, v - before.get(k, 0)) / dt for k, v in now.items()}
    return dict(sorted(((k, r) for k, r in out.items() if r > 0), key=lambda kv: -kv[1]))


@dataclass(slots=True)
class _Prev:
    t: float
    events: dict[str, int]
    cpu: int | None = None


@dataclass
class Tracker:
    """Status documents in, frames with rates out. Keeps only the previous sample per scope."""

    read_cgroup: Callable[[str], CgroupUsage] = cgroup_usage
    _prev: dict[str, _Prev] = field(default_factory=dict)
    _prev_daemon: _Prev | None = None
    _prev_t: float | None = None

    def update(self, status: dict[str, Any], now: float | None = None) -> Frame:
        now = time.monotonic() if now is None else now
        d = status.get("daemon") if isinstance(status.get("daemon"), dict) else {}
        events = _counts(d.get("events"))
        prev = self._prev_daemon
        dt = now - prev.t if prev is not None else None
        rates = _rates(events, prev.events if prev else None, dt)
        rules = d.get("rules") if isinstance(d.get("rules"), dict) else {}
        cov = d.get("coverage") if isinstance(d.get("coverage"), dict) else {}
        daemon = DaemonRow(
            pid=d.get("pid"), rules=rules.get("count"), rules_hash=str(rules.get("hash") or "")[:12],
            rate=sum(rates.values()), rates=rates, events=sum(events.values()),
            drops=_num(d.get("drops")), kills=_num(d.get("kills")), rss=d.get("rss"),
            subscribers=d.get("subscribers"),
            coverage=f"{cov.get('attached', '?')} hooks" + (f", {cov['missing']} missing"
                                                           if cov.get("missing") else ""))
        self._prev_daemon = _Prev(now, events)
        rows = []
        seen = set()
        for s in status.get("scopes") or ():
            if not isinstance(s, dict) or not s.get("name"):
                continue
            name = str(s["name"])
            seen.add(name)
            ev = _counts(s.get("events"))
            p = self._prev.get(name)
            sdt = now - p.t if p is not None else None
            srates = _rates(ev, p.events if p else None, sdt)
            cgroup = str(s.get("cgroup") or "")
            use = self.read_cgroup(cgroup) if cgroup else CgroupUsage(None, None)
            cpu = None
            if use.cpu_usec is not None and p is not None and p.cpu is not None and sdt:
                cpu = max(0.0, (use.cpu_usec - p.cpu) / 1e6 / sdt * 100)
            self._prev[name] = _Prev(now, ev, use.cpu_usec)
            alerts: dict[str, int] = {}
            for k, v in _counts(s.get("alerts")).items():
                label = severity_label(k)
                alerts[label] = alerts.get(label, 0) + v
            rows.append(ScopeRow(
                name=name, kind=str(s.get("kind") or "session"), state=str(s.get("state") or "?"),
                tool=str(s.get("tool") or ""), network=str(s.get("network") or ""),
                events=sum(ev.values()), rate=sum(srates.values()), rates=srates,
                alerts={k: alerts[k] for k in SEVERITIES if alerts.get(k)},
                actions=_num(s.get("actions")),
                drops=_num(s.get("drops")) if "drops" in s else None, cpu=cpu,
                memory=use.memory, cgroup=cgroup, audit=str(s.get("audit") or ""),
                last_alerts=_alert_records(s.get("last_alerts"))))
        for gone in set(self._prev) - seen:
            del self._prev[gone]
        interval = now - self._prev_t if self._prev_t is not None else None
        self._prev_t = now
        return Frame(at=time.time(), interval=interval, daemon=daemon, scopes=rows)


@dataclass(slots=True)
class ProcRow:
    pid: int
    ppid: int
    name: str
    cmdline: str
    events: int
    rate: float
    alerts: int


@dataclass
class Busiest:
    """A scope's processes (the ``processes`` op) ranked by events per second."""

    _prev: dict[tuple[str, int], tuple[float, int]] = field(default_factory=dict)

    def update(self, scope: str, processes: list[dict[str, Any]], now: float | None = None) -> list[ProcRow]:
        now = time.monotonic() if now is None else now
        rows = []
        for p in processes:
            if not isinstance(p, dict) or not isinstance(p.get("pid"), int):
                continue
            events = _num(p.get("events"))
            before = self._prev.get((scope, p["pid"]))
            rate = 0.0
            if before is not None and now > before[0]:
                rate = max(0, events - before[1]) / (now - before[0])
            self._prev[(scope, p["pid"])] = (now, events)
            rows.append(ProcRow(pid=p["pid"], ppid=int(p.get("ppid") or 0),
                                name=str(p.get("name") or ""), cmdline=str(p.get("cmdline") or ""),
                                events=events, rate=rate, alerts=_num(p.get("alerts"))))
        rows.sort(key=lambda r: (-r.rate, -r.events, r.pid))
        return rows


# ------------------------------------------------------------------------------ text
def fmt_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "K", "M", "G"):
        if n < 1024 or unit == "G":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}" if n < 10 else f"{n:.0f}{unit}"
        n /= 1024
    return str(n)


def fmt_rate(r: float) -> str:
    return f"{r / 1000:.1f}k" if r >= 10_000 else f"{r:.0f}" if r >= 10 else f"{r:.1f}"


def alerts_cell(alerts: dict[str, int]) -> str:
    """``2C 1H 3M`` (critical, high, medium; low and info together as L)."""
    low = alerts.get("low", 0) + alerts.get("info", 0)
    parts = [f"{alerts[k]}{k[0].upper()}" for k in ("critical", "high", "medium") if alerts.get(k)]
    if low:
        parts.append(f"{low}L")
    return " ".join(parts) or "-"


SCOPE_HEADER = f"{'SESSION':<20} {'STATE':<8} {'TOOL':<7} {'EV/S':>6} {'ALERTS':<11} {'ACT':>3} {'DROP':>4} {'CPU%':>5} {'MEM':>6}"


def scope_line(s: ScopeRow) -> str:
    cpu = f"{s.cpu:.0f}" if s.cpu is not None else "-"
    return (f"{s.name[:20]:<20} {s.state[:8]:<8} {s.tool[:7]:<7} {fmt_rate(s.rate):>6} "
            f"{alerts_cell(s.alerts)[:11]:<11} {s.actions:>3} {'-' if s.drops is None else s.drops:>4} {cpu:>5} "
            f"{fmt_bytes(s.memory):>6}")


def alert_line(scope: str, a: AlertRecord, width: int = 80, received: float | None = None) -> str:
    t = a.time[11:19]
    if not t and received is not None:
        t = time.strftime("%H:%M:%S", time.localtime(received))
    text = f"{t:<8} {a.severity.label[:4].upper():<4} {scope[:16]:<16} {a.rule}: {a.output}"
    return " ".join(text.split())[:width]


def _alert_records(items: Any) -> list[AlertRecord]:
    """The daemon's ``last_alerts``, read with the one codec (one that does not read is left
    out)."""
    out = []
    for d in items or ():
        if isinstance(d, dict):
            try:
                out.append(AlertRecord.from_dict(d))
            except RecordError:
                continue
    return out


def frame_text(frame: Frame, width: int = 80) -> str:
    """A frame as plain text within ``width`` columns (``top --once``)."""
    d = frame.daemon
    lines = [(f"coi-sentinel daemon {d.pid} · {d.rules} rules · {len(frame.scopes)} scope(s) · "
              f"{fmt_rate(d.rate)} ev/s · drops {d.drops} · kills {d.kills}")[:width]]
    rates = " ".join(f"{k} {fmt_rate(v)}/s" for k, v in list(d.rates.items())[:6]) or "idle"
    lines.append(f"host: {rates} · daemon rss {fmt_bytes(d.rss)}"[:width])
    lines.append(SCOPE_HEADER[:width])
    lines += [scope_line(s)[:width] for s in frame.scopes]
    recent = [(s.name, a) for s in frame.scopes for a in s.last_alerts]
    if recent:
        lines.append("LAST ALERTS")
        lines += [alert_line(n, a, width) for n, a in recent[-8:]]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------ the daemon
class DaemonSource:
    """The daemon, for `top`: ``status``, ``processes``, ``pause``/``resume``/``kill`` on one
    connection; alerts and actions pushed by a subscription on another, read by a thread into
    :attr:`feed` (newest last) and announced through ``on_item``."""

    def __init__(self, socket_path: str | None = None, *, feed_size: int = 200) -> None:
        try:
            from ..daemon.client import DaemonClient
        except ImportError as err:
            raise SentinelError(f"this coi-sentinel has no daemon client ({err})") from err

        self._client_cls = DaemonClient
        self.socket_path = socket_path
        self.client = DaemonClient.connect(socket_path)
        self.feed: deque[tuple[str, str, Record]] = deque(maxlen=feed_size)
        self.on_item: Callable[[str, str, Record], None] | None = None
        self._sub = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.error: str | None = None

    def _request(self, op: str, **fields: Any) -> dict[str, Any]:
        """One request; a daemon that went away (restarted) is connected to again, once."""
        from ..daemon.protocol import DaemonUnavailable

        with self._lock:
            try:
                return self.client.request(op, **fields)
            except DaemonUnavailable:
                self.client.close()
                self.client = self._client_cls.connect(self.socket_path)
                if self._thread is not None and not self._thread.is_alive():
                    self.follow()
                return self.client.request(op, **fields)

    def status(self) -> dict[str, Any]:
        return self._request("status")

    def processes(self, name: str) -> list[dict[str, Any]]:
        return list(self._request("processes", name=name).get("processes") or [])

    def control(self, op: str, name: str) -> str:
        if op not in ("pause", "resume", "kill"):
            raise ValueError(op)
        return str(self._request(op, name=name).get("state", "?"))

    def follow(self) -> None:
        """Start streaming alerts and actions (a daemon thread; ends with the connection)."""
        if self._sub is not None:
            self._sub.close()
        self._sub = self._client_cls.connect(self.socket_path, timeout=None)
        items = self._sub.subscribe(None, ("alerts", "actions"))
        self._thread = threading.Thread(target=self._read, args=(items,), name="top-follow",
                                        daemon=True)
        self._thread.start()

    def _read(self, items) -> None:
        try:
            for item in items:
                stream, scope = str(item.get("stream", "")), str(item.get("scope", ""))
                try:
                    rec = records.from_dict(item.get("data"))       # the one codec
                except RecordError as err:
                    log.debug("a %s from the daemon not read: %s", stream, err)
                    continue
                self.feed.append((stream, scope, rec))
                if self.on_item is not None:
                    self.on_item(stream, scope, rec)
        except RuntimeError as err:         # the view has ended while an item came
            log.debug("subscription dropped: %s", err)
        except (SentinelError, OSError, ValueError) as err:
            self.error = str(err)
            log.debug("subscription ended: %s", err)

    def close(self) -> None:
        for c in (self._sub, self.client):
            if c is not None:
                try:
                    c.sock.shutdown(socket.SHUT_RDWR)     # wakes the reader thread
                except OSError:
                    pass
                try:
                    c.close()
                except OSError:
                    pass
        if self._thread is not None:
            self._thread.join(timeout=2)
