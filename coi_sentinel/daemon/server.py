"""The daemon: the probes loaded once per host, every session's scope, the socket API.

Threads:

* the main thread runs the loop: poll the probes (the shared :class:`~coi_sentinel.monitor.Monitor`,
  nothing traced until a scope is registered); the :class:`~coi_sentinel.sentinel.Sentinel` hands
  each event to its scope's lane (audit log, engine, responder, outputs, in the sentinel's
  one order; the :class:`~.scope.Scope` listens), tick every scope (guardian heartbeats,
  freezer, drops), reload the rules when SIGHUP asked for it;
* one thread accepts connections, one thread per connection reads its requests. A request that
  changes the scopes takes :attr:`Daemon.lock`, which the loop holds while it polls and ticks,
  so the scopes never change under an event.

State on disk (``state_dir``, default ``/run/coi-sentinel/sentinel.d`` beside the socket): ``daemon.pid``, a lock,
and ``scopes/<name>.json`` for each registered scope (what its client asked for, whether it is
paused by a decision), so a restarted daemon re-adopts every running session: its cgroup goes
back into the kernel filter, its audit log continues its hash chain, a new guardian watches the
new daemon. A session that the dead daemon's guardian froze stays frozen until its owner
(``run`` or its keeper) reconnects and re-leases it; then it is thawed, unless a rule or the
user had paused it.

The connection that registers a scope holds its lease: when it closes without ``unregister``
(``run`` was killed), the scope is paused and shown as an orphan (``clean --orphans``).
"""

from __future__ import annotations

import fcntl
import grp
import json
import logging
import os
import signal
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__, records
from ..action import Action
from ..errors import ConfigError, SentinelError
from ..events import codec
from ..heap import settle
from ..records import MonitorRecord
from ..sentinel import Sentinel
from . import peers
from . import protocol as P
from .network import Policies
from .scope import Registration, Scope, ruleset_hash

log = logging.getLogger(__name__)

#: events queued for one slow subscriber before the oldest are dropped (and counted)
SUBSCRIBER_QUEUE = 20_000
#: how long a new daemon waits for a killed one's lock (its BPF teardown takes seconds)
LOCK_WAIT = 60.0
#: how often the loop reads the kernel's drop counters (seconds)
DROPS_EVERY = 0.1
#: how long a client may take to send one request line (seconds)
READ_TIMEOUT = 30.0
#: how often the loop looks for orphaned scopes whose container is gone (seconds)
ORPHAN_SWEEP = 1.0
#: a gap between two polls longer than this is logged and counted (the rings fill meanwhile)
SLOW_POLL_NS = 250_000_000


@dataclass(frozen=True, slots=True)
class DaemonOptions:
    socket: str = P.DEFAULT_SOCKET
    group: str | None = P.DEFAULT_GROUP
    rules: tuple[str, ...] = ()
    #: Sigma rule files or folders, converted and added (coi_sentinel.rules.sigma)
    sigma: tuple[str, ...] = ()
    no_bundled: bool = False
    #: pid, lock and registered scopes; default: beside the socket, ``<socket stem>.d``
    state_dir: str | None = None
    poll_ms: int = 5
    guard: bool = True
    #: outputs and metrics (coi_sentinel.outputs): --alerts-to URLs, --outputs-config, --metrics
    alerts_to: tuple[str, ...] = ()
    outputs_config: str | None = None
    metrics: str | None = None


@dataclass(slots=True)
class Subscriber:
    uid: int
    scopes: frozenset[str] | None
    what: frozenset[str]
    queue: deque = field(default_factory=lambda: deque(maxlen=SUBSCRIBER_QUEUE))
    wake: threading.Event = field(default_factory=threading.Event)
    dropped: int = 0
    closed: bool = False

    def wants(self, kind: str, scope: str) -> bool:
        return kind in self.what and (self.scopes is None or scope in self.scopes)

    def put(self, line: bytes) -> None:
        if len(self.queue) == self.queue.maxlen:
            self.dropped += 1
        self.queue.append(line)
        self.wake.set()


class Daemon:
    def __init__(self, options: DaemonOptions) -> None:
        self.options = options
        self.lock = threading.RLock()
        self.scopes: dict[str, Scope] = {}
        #: probes → stream → pipeline → each scope's lane (coi_sentinel.sentinel)
        self.sentinel = None
        self.subscribers: list[Subscriber] = []
        self.mon = None
        self.ruleset = None
        self.rules_hash = ""
        self.rules_loaded = 0.0
        self.started = time.time()
        self._stop = threading.Event()
        self._reload_asked = False
        self._listener: socket.socket | None = None
        self._lockfd = -1
        self._polled = threading.Condition()
        self._polled_ns = 0
        #: polls that came more than SLOW_POLL_NS after the previous one, and the longest gap
        self.slow_polls = 0
        self.max_poll_gap_ns = 0
        self.state_dir = Path(options.state_dir) if options.state_dir else P.state_dir_of(options.socket)
        self._chores = None
        self.sinks = None
        #: a guardian process kept ready for the next registration (supervision.guardian.Spares)
        self.spares = None
        #: network policies of sessions run without root (.network)
        self.policies = Policies(self.state_dir)
        self._local = threading.local()

    # ------------------------------------------------------------------ rules
    def _rule_paths(self, extra: list[Path] | None = None) -> list[Path]:
        from ..rules.diagnostics import Diagnostics
        from ..rules.loader import bundled_dir, rule_files

        diags = Diagnostics()
        paths = [] if self.options.no_bundled else rule_files([bundled_dir()], diags)
        paths += rule_files([Path(p) for p in self.options.rules], diags)
        for sigma in self.options.sigma:
            p = Path(sigma)
            paths += sorted(x for x in p.rglob("*.y*ml") if x.is_file()) if p.is_dir() else [p]
        paths += list(extra or [])
        return paths

    def _load_rules(self, extra: list[Path] | None = None):
        """(ruleset, hash) of the daemon's rules plus ``extra`` files; RuleSetInvalid on error."""
        from ..rules import load_ruleset

        paths = [Path(p) for p in self.options.rules] + list(extra or [])
        ruleset = load_ruleset(paths or None, replace_bundled=self.options.no_bundled,
                               sigma_paths=[Path(p) for p in self.options.sigma])
        return ruleset, ruleset_hash(self._rule_paths(extra))

    def _scope_rules_dir(self, name: str) -> Path:
        return self.state_dir / "scopes" / f"{name}.rules"

    def _write_scope_rules(self, reg: Registration) -> list[Path]:
        """A client's extra rule files, as it sent them, in a private directory."""
        d = self._scope_rules_dir(reg.name)
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
        for old in d.glob("*.yaml"):
            old.unlink()
        paths = []
        for i, item in enumerate(reg.rules):
            base = Path(item["path"]).name or "rules.yaml"
            if not base.endswith((".yaml", ".yml")):
                base += ".yaml"
            p = d / f"{i:03d}-{base}"
            p.write_text(item["text"])
            paths.append(p)
        return paths

    # ------------------------------------------------------------------ start / stop
    def start(self) -> None:
        from ..monitor import Monitor, MonitorOptions

        if os.geteuid() != 0:
            raise SentinelError("the daemon must run as root (it loads BPF programs)",
                                hint="sudo coi-sentinel daemon")
        self.state_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
        (self.state_dir / "scopes").mkdir(mode=0o700, exist_ok=True)
        self._take_lock()
        self.ruleset, self.rules_hash = self._load_rules()     # a bad rule file stops us here
        self.rules_loaded = time.time()
        if self.options.guard:
            from ..supervision.guardian import Spares

            self.spares = Spares(_state_dir() / "logs")
            self.spares.fill()              # ready long before the probes are
        self.mon = Monitor(MonitorOptions(kind="daemon", scoped_only=True, poll_ms=self.options.poll_ms,
                                          sensitive_prefixes=tuple(self.ruleset.sensitive_prefixes()),
                                          sensitive_suffixes=tuple(self.ruleset.sensitive_suffixes())))
        self.mon.start()
        try:
            self._open_sinks()
            self.sentinel = Sentinel(self.mon)
            self._readopt()
            self._listen()
            (self.state_dir / "daemon.pid").write_text(f"{os.getpid()}\n")
        except BaseException:
            self.mon.close()
            if self.spares is not None:
                self.spares.close()
            raise
        log.info("daemon %d listening on %s (%d rules, %d scopes re-adopted)", os.getpid(),
                 self.options.socket, len(self.ruleset.rules), len(self.scopes))

    def _open_sinks(self) -> None:
        """Outputs and metrics, started after any fork (the outputs' delivery process)."""
        from ..outputs.cli import AlertSinks

        o = self.options
        self.sinks = AlertSinks.open(o.alerts_to, o.outputs_config, "json", o.metrics)
        self.sinks.watch_monitor(self.mon)
        if self.sinks.metrics is not None:
            self.sinks.metrics.set_source("sessions", self._sessions_by_state)

    def _sessions_by_state(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for scope in list(self.scopes.values()):
            out[scope.state] = out.get(scope.state, 0) + 1
        return out

    def _take_lock(self) -> None:
        path = self.state_dir / "daemon.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        # a killed daemon holds the lock until the kernel has torn down its BPF programs (a
        # few seconds after SIGKILL): wait for that one (its socket refuses connections),
        # refuse a live one (it answers)
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                pid = _read_pid(self.state_dir / "daemon.pid")
                if _answers(self.options.socket) or time.monotonic() >= deadline:
                    os.close(fd)
                    raise SentinelError(f"another coi-sentinel daemon (pid {pid}) uses {self.state_dir}",
                                        hint="coi-sentinel status shows it") from None
                time.sleep(0.1)
        self._lockfd = fd

    def _listen(self) -> None:
        path = Path(self.options.socket)
        path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        st = path.parent.stat()
        if st.st_uid == 0 and st.st_mode & 0o011 != 0o011:
            os.chmod(path.parent, st.st_mode | 0o711)     # the group must reach the socket
        try:
            path.unlink()           # we hold the lock: a socket there is a dead daemon's
        except FileNotFoundError:
            pass
        gid = 0
        if self.options.group:
            try:
                gid = grp.getgrnam(self.options.group).gr_gid
            except KeyError:
                raise ConfigError(f"group {self.options.group!r} does not exist",
                                  hint="--group NAME, or create it with groupadd") from None
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        old = os.umask(0o177)
        try:
            s.bind(str(path))
        finally:
            os.umask(old)
        os.chown(path, 0, gid)
        os.chmod(path, 0o660)
        s.listen(64)
        self._listener = s
        threading.Thread(target=self._accept, name="accept", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        """The loop, until :meth:`stop` (SIGTERM, SIGINT)."""
        mon = self.mon
        drops_at, lost, swept_at = 0.0, {}, 0.0
        settle()                # what set-up built lives as long as the loop (coi_sentinel/heap.py)
        try:
            last = time.monotonic_ns()
            while not self._stop.is_set():
                began = time.monotonic_ns()
                self._note_gap(began - last)
                last = began
                with self.lock:
                    mon.poll()
                    now = time.monotonic()
                    if self.scopes and now - drops_at >= DROPS_EVERY:
                        drops_at = now      # one read of the per-scope drop map: not on every poll
                        lost = mon.probes.scope_drop_counts()
                    for scope in list(self.scopes.values()):
                        try:
                            scope.tick(now, lost.get(scope.scope_id, 0))
                        except SentinelError as err:
                            log.error("%s: %s", scope.name, err)
                    self.sinks.tick(_EveryAudit(self.scopes))
                    if now - swept_at >= ORPHAN_SWEEP:
                        swept_at = now
                        self._drop_gone_orphans()
                    if self._reload_asked:
                        self._reload_asked = False
                        try:
                            self.reload()
                        except SentinelError as err:
                            log.error("rules not reloaded (the old set stays): %s", err)
                with self._polled:
                    self._polled_ns = began
                    self._polled.notify_all()
        finally:
            self.close()

    def _note_gap(self, gap_ns: int) -> None:
        """The loop did not poll for ``gap_ns`` (held up by a request under the lock, or not
        scheduled): the kernel's rings filled meanwhile."""
        if gap_ns > self.max_poll_gap_ns:
            self.max_poll_gap_ns = gap_ns
        if gap_ns > SLOW_POLL_NS:
            self.slow_polls += 1
            log.warning("the loop did not read the kernel's rings for %d ms", gap_ns // 1_000_000)

    def close(self) -> None:
        """Stop listening, close every scope without ending it (its guardian freezes it when
        this process exits; a restarted daemon re-adopts it), detach the probes."""
        if self._listener is not None:
            try:
                self._listener.close()
            finally:
                self._listener = None
                try:
                    Path(self.options.socket).unlink()
                except OSError:
                    pass
        with self.lock:
            for scope in list(self.scopes.values()):
                try:
                    scope.close(self.mon.probes, clean=False)
                except SentinelError as err:
                    log.error("%s: %s", scope.name, err)
            self.scopes.clear()
            for sub in self.subscribers:
                sub.closed = True
                sub.wake.set()
            if self.sinks is not None:
                self.sinks.close()
                self.sinks = None
            if self.mon is not None:
                self.mon.close()
                self.mon = None
            if self.spares is not None:
                self.spares.close()
                self.spares = None
        try:
            (self.state_dir / "daemon.pid").unlink()
        except OSError:
            pass

    def ask_reload(self) -> None:
        """From the SIGHUP handler: the loop reloads after its current poll."""
        self._reload_asked = True

    # ------------------------------------------------------------------ events
    def _publish(self, kind: str, scope: Scope, data: Any) -> None:
        if kind == "action" and data.action in (Action.PAUSE, Action.RESUME, Action.KILL):
            self._persist(scope)
        subs = self.subscribers
        if not subs:
            return
        stream = {"event": "events", "alert": "alerts", "action": "actions"}[kind]
        line = None
        for sub in subs:
            if sub.wants(stream, scope.name) and (sub.uid == 0 or sub.uid == scope.reg.owner_uid):
                if line is None:        # events and records, each in its one codec
                    payload = codec.dumps(data) if kind == "event" else records.dumps(data)
                    line = b'{"stream":"' + kind.encode() + b'","scope":' + P.encode(scope.name)[:-1] + \
                        b',"data":' + payload + b"}\n"
                sub.put(line)

    # ------------------------------------------------------------------ side work
    def _chore(self, fn) -> None:
        """Run ``fn(incus_client)`` on the worker thread (Incus calls are too slow for the loop)."""
        if self._chores is None:
            import queue

            self._chores = queue.Queue()
            threading.Thread(target=self._run_chores, name="chores", daemon=True).start()
        self._chores.put(fn)

    def _run_chores(self) -> None:
        from ..host import incus

        client = None
        while True:
            fn = self._chores.get()
            if fn is None:
                return
            try:
                if client is None:
                    client = incus.connect()
                fn(client)
            except SentinelError as err:
                log.warning("%s", err)

    # ------------------------------------------------------------------ scopes
    def _persist(self, scope: Scope) -> None:
        path = self.state_dir / "scopes" / f"{scope.name}.json"
        tmp = path.with_suffix(".tmp")
        data = {"registration": scope.reg.to_dict(), "paused_by_decision": scope.paused_by_decision}
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
        os.replace(tmp, path)

    def _forget(self, name: str) -> None:
        for p in (self.state_dir / "scopes" / f"{name}.json",):
            try:
                p.unlink()
            except FileNotFoundError:
                pass
        d = self._scope_rules_dir(name)
        if d.is_dir():
            for f in d.iterdir():
                f.unlink()
            d.rmdir()

    def register(self, reg: Registration, *, adopting: bool = False) -> Scope:
        """Watch a new scope; returns once its cgroup is in the kernel filter and its guardian
        runs (the agent's first exec is seen, and nothing runs unwatched)."""
        from ..trace.format import make_header

        _check_cgroup(reg)
        extra = self._write_scope_rules(reg) if reg.rules else []
        ruleset, rhash = (self.ruleset, self.rules_hash) if not extra else self._load_rules(extra)
        with self.lock:
            if reg.name in self.scopes:
                raise P.DaemonError(f"{reg.name} is registered already", code=P.STATE)
            cid = self.mon.add_scope(Path(reg.cgroup), reg.name)
            self._sync_sensitive(extra=ruleset)
            scope = Scope(reg, scope_id=cid, table=self.mon.pipeline.table, ruleset=ruleset,
                          publish=self._publish, chore=self._chore, sinks=self.sinks)
            scope.rules_hash = rhash
            cov = self.mon.coverage.to_dict() if self.mon.coverage is not None else {}
            header = make_header("run", coverage=cov, session=reg.name, cgroup=reg.cgroup,
                                 daemon=os.getpid(), tool=reg.tool, network=reg.network)
            try:
                scope.open(self.mon.probes, header, guard=self.options.guard, state_dir=_state_dir(),
                           spares=self.spares)
            except BaseException:
                self.mon.remove_scope(cid)
                raise
            self.scopes[reg.name] = scope
            self.sentinel.add(scope.lane, cid)
            self._persist(scope)
            if adopting:
                scope.lane.write(MonitorRecord("re-adopted", by="daemon", detail={"daemon": os.getpid()}))
        return scope

    def unregister(self, name: str, uid: int) -> dict[str, Any]:
        with self.lock:
            scope = self._scope(name, uid)
            summary = scope.close(self.mon.probes, clean=True)
            self.scopes.pop(name, None)
            self.sentinel.remove(scope.scope_id)
            self._forget(name)
            self._sync_sensitive()
        summary["drops"] = self.mon.probes.drop_counts()
        self.policies.after_unregister(name, scope.cgroup)
        return summary

    def _drop_gone_orphans(self) -> None:
        """Under the lock: an orphan (its owner died) whose container is gone since (killed,
        deleted) has nothing left to watch: it is closed and forgotten, and the network policy
        the daemon made for it goes (on the chore thread), so nothing of it stays behind."""
        for scope in [s for s in self.scopes.values() if s.orphan and not s.cgroup.is_dir()]:
            try:
                scope.close(self.mon.probes, clean=True)
            except SentinelError as err:
                log.error("%s: %s", scope.name, err)
            self.scopes.pop(scope.name, None)
            self.sentinel.remove(scope.scope_id)
            self._forget(scope.name)
            self._sync_sensitive()
            log.info("%s: orphan whose container is gone: forgotten", scope.name)
            self._chore(lambda _client, name=scope.name, cgroup=scope.cgroup:
                        self.policies.after_unregister(name, cgroup))

    def _incus(self):
        """This connection thread's Incus client (made on first use)."""
        client = getattr(self._local, "incus", None)
        if client is None:
            from ..host import incus

            client = self._local.incus = incus.connect()
        return client

    def _check_peer_registration(self, reg: Registration, uid: int) -> None:
        """A peer that is not root registers only a session its own process owns, with the
        audit log where the daemon keeps that uid's (.peers)."""
        if uid == 0:
            return
        if reg.kind != "session":
            raise P.DaemonError("only root may register a scope that is not a session",
                                code=P.DENIED)
        peers.check_audit(uid, reg.name, reg.audit)
        peers.check_session(self._incus(), reg.name, uid)
        peers.audit_folder(uid)

    def _scope(self, name: Any, uid: int) -> Scope:
        scope = self.scopes.get(name) if isinstance(name, str) else None
        if scope is None:
            raise P.DaemonError(f"no registered session {name!r}", code=P.UNKNOWN_SCOPE)
        if uid != 0 and scope.reg.owner_uid != uid:
            raise P.DaemonError(f"{name} belongs to uid {scope.reg.owner_uid}", code=P.DENIED)
        return scope

    def _sync_sensitive(self, extra=None) -> None:
        """The probe's sensitive path sets: the union over every scope's rules."""
        prefixes = set(self.ruleset.sensitive_prefixes())
        suffixes = set(self.ruleset.sensitive_suffixes())
        for rs in [s.ruleset for s in self.scopes.values()] + ([extra] if extra is not None else []):
            prefixes.update(rs.sensitive_prefixes())
            suffixes.update(rs.sensitive_suffixes())
        self.mon.probes.set_sensitive(sorted(prefixes), sorted(suffixes))

    def _readopt(self) -> None:
        for path in sorted((self.state_dir / "scopes").glob("*.json")):
            try:
                data = json.loads(path.read_text())
                d = data["registration"]
                reg = Registration.from_dict(d, int(d.get("owner_uid", 0)))
            except (OSError, ValueError, KeyError, SentinelError) as err:
                log.error("%s: not re-adopted: %s", path, err)
                continue
            if not Path(reg.cgroup).is_dir():
                log.info("%s: its container is gone; forgotten", reg.name)
                self._forget(reg.name)
                continue
            try:
                scope = self.register(reg, adopting=True)
            except SentinelError as err:
                log.error("%s: not re-adopted: %s", reg.name, err)
                continue
            scope.paused_by_decision = bool(data.get("paused_by_decision"))
            scope.orphan = False
            log.warning("re-adopted %s (%s)", reg.name, scope.state)

    def reload(self) -> dict[str, Any]:
        """Lint and load the rules again; swap them into every scope at once. On any error the
        old set stays (RuleSetInvalid says path:line)."""
        with self.lock:
            ruleset, rhash = self._load_rules()
            per_scope = {}
            for scope in self.scopes.values():
                extra = sorted(self._scope_rules_dir(scope.name).glob("*.yaml")) if scope.reg.rules else []
                per_scope[scope.name] = (ruleset, rhash) if not extra else self._load_rules(extra)
            # everything loaded: swap
            self.ruleset, self.rules_hash, self.rules_loaded = ruleset, rhash, time.time()
            for scope in self.scopes.values():
                rs, h = per_scope[scope.name]
                scope.set_rules(rs)
                scope.rules_hash = h
                scope.lane.write(MonitorRecord("rules-reloaded", detail={"rules": len(rs.rules),
                                                                         "rules_hash": h}), sync=True)
            self._sync_sensitive()
        settle()                # the old rules were frozen with the rest: collected now
        log.warning("rules reloaded: %d rules, sha256 %s", len(ruleset.rules), rhash)
        return {"rules": len(ruleset.rules), "hash": rhash}

    # ------------------------------------------------------------------ status
    def status(self, uid: int) -> dict[str, Any]:
        with self.lock:
            probes = self.mon.probes
            cov = self.mon.coverage
            daemon = {"pid": os.getpid(), "version": __version__, "started": self.started,
                      "socket": self.options.socket,
                      "rules": {"count": len(self.ruleset.rules), "hash": self.rules_hash,
                                "loaded": self.rules_loaded},
                      "events": dict(self.mon.stream.stats.events) if self.mon.stream else {},
                      "drops": probes.drop_counts(), "ring_retries": probes.ring_retry_counts(),
                      "kills": probes.kill_counts(),
                      "aggregation_maps_full": probes.agg_full_counts(),
                      "coverage": {"attached": len(cov.attached), "missing": len(cov.missing)},
                      "subscribers": len(self.subscribers), "rss": _rss(),
                      "loop": {"slow_polls": self.slow_polls,
                               "max_gap_ms": round(self.max_poll_gap_ns / 1e6, 1)}}
            scopes = [s.to_status() for s in self.scopes.values()
                      if uid == 0 or s.reg.owner_uid == uid]
        return {"daemon": daemon, "scopes": scopes}

    def processes(self, scope: Scope) -> list[dict[str, Any]]:
        """The scope's live processes, with how many events each caused."""
        return [{"pid": p.pid, "ppid": p.ppid, "name": p.name, "exe": p.exe, "cmdline": p.cmdline,
                 "uid": p.uid, "events": scope.per_pid.get(p.pid, 0)}
                for p in self.mon.pipeline.table.processes()
                if p.scope_id == scope.scope_id and not p.exited]

    def settle(self, timeout: float = 2.0) -> bool:
        wanted = time.monotonic_ns()
        with self._polled:
            return self._polled.wait_for(lambda: self._polled_ns >= wanted or self._stop.is_set(),
                                         timeout) and self._polled_ns >= wanted

    # ------------------------------------------------------------------ connections
    def _accept(self) -> None:
        while not self._stop.is_set() and self._listener is not None:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True,
                             name="conn").start()

    def _serve(self, conn: socket.socket) -> None:
        uid = _peer_uid(conn)
        leased = _Lease()
        f = conn.makefile("rb")
        try:
            for line in f:
                if len(line) > P.MAX_LINE:
                    conn.sendall(P.encode(P.failure(None, P.DaemonError("request too long", code=P.USAGE))))
                    return
                try:
                    req = P.decode(line)
                except P.DaemonError as err:
                    conn.sendall(P.encode(P.failure(None, err)))
                    continue
                rid = req.get("id")
                if req.get("op") == "subscribe":
                    try:
                        sub = self._subscriber(req, uid)
                    except SentinelError as err:
                        conn.sendall(P.encode(P.failure(rid, err)))
                        continue
                    conn.sendall(P.encode(P.answer(rid, subscribed=True)))
                    self._stream(conn, sub)
                    return
                try:
                    reply = self._handle(req, uid, leased)
                except SentinelError as err:
                    reply = P.failure(rid, err)
                except Exception as err:  # noqa: BLE001 - one bad request must not kill the daemon
                    log.exception("request %r failed", req.get("op"))
                    reply = P.failure(rid, P.DaemonError(f"internal error: {err!r}"))
                conn.sendall(P.encode(reply))
        except OSError:
            pass
        finally:
            f.close()
            conn.close()
            self._lease_lost(leased)

    def _lease_lost(self, lease: "_Lease") -> None:
        """The connection that registered these scopes is gone without unregistering them."""
        if not lease or self._stop.is_set():
            return
        with self.lock:
            for name in lease:
                scope = self.scopes.get(name)
                if scope is None or scope.lease is not lease:
                    continue                # ended, or leased again by another connection
                scope.orphan = True
                scope.fail_closed("the session's owner (run or its keeper) went away without "
                                  "ending the session", by="daemon")
                scope.lane.write(MonitorRecord("orphaned"), sync=True)
                self._persist(scope)

    def _handle(self, req: dict[str, Any], uid: int, leased: "_Lease") -> dict[str, Any]:
        op, rid = req.get("op"), req.get("id")
        if op == "hello":
            return P.answer(rid, version=__version__, pid=os.getpid(), started=self.started, uid=uid)
        if op == "status":
            return P.answer(rid, **self.status(uid))
        if op == "register":
            name = req.get("name")
            with self.lock:
                existing = self.scopes.get(name) if isinstance(name, str) else None
                if existing is not None and req.get("adopt"):
                    scope = self._scope(name, uid)
                    scope.orphan = False
                    scope.lease = leased
                    leased.add(name)
                    if scope.state == "frozen" and not getattr(scope, "paused_by_decision", False):
                        scope.resume(by="daemon")       # its owner is back: watched again
                    self._persist(scope)
                    return P.answer(rid, scope_id=scope.scope_id, adopted=True)
            reg = Registration.from_dict(req, uid)
            self._check_peer_registration(reg, uid)
            scope = self.register(reg)
            scope.lease = leased
            leased.add(reg.name)
            return P.answer(rid, scope_id=scope.scope_id, adopted=False)
        if op == "started":
            with self.lock:
                scope = self._scope(req.get("name"), uid)
                scope.started()
                self._persist(scope)
                return P.answer(rid, state=scope.state)
        if op == "unregister":
            name = req.get("name")
            summary = self.unregister(name, uid)
            leased.discard(name)
            return P.answer(rid, **summary)
        if op == "reload":
            if uid != 0:
                raise P.DaemonError("only root may reload the rules", code=P.DENIED)
            return P.answer(rid, **self.reload())
        if op in ("pause", "resume", "kill"):
            with self.lock:
                scope = self._scope(req.get("name"), uid)
                who = f"uid {uid}"
                if op == "pause":
                    scope.pause(by="user", reason=f"paused by {who}")
                elif op == "resume":
                    scope.resume(by="user")
                else:
                    scope.kill(by="user", reason=f"killed by {who}")
                self._persist(scope)
                return P.answer(rid, state=scope.state)
        if op == "processes":
            with self.lock:
                scope = self._scope(req.get("name"), uid)
                return P.answer(rid, processes=self.processes(scope))
        if op == "network":
            return P.answer(rid, **self.policies.handle(req, uid, self._incus()))
        if op == "settle":
            scope = self._scope(req.get("name"), uid)
            ok = self.settle()
            return P.answer(rid, settled=ok, killed=scope.killed, alerts=scope.alerts)
        raise P.DaemonError(f"unknown op {op!r}", code=P.USAGE,
                            hint="one of: " + ", ".join(P.OPS))

    def _subscriber(self, req: dict[str, Any], uid: int) -> Subscriber:
        scopes = req.get("scopes")
        what = req.get("what") or ["alerts", "actions"]
        if scopes is not None and (not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes)):
            raise P.DaemonError("scopes must be a list of names or null", code=P.USAGE)
        if not isinstance(what, list) or any(w not in P.STREAMS for w in what):
            raise P.DaemonError(f"what must be a subset of {list(P.STREAMS)}", code=P.USAGE)
        with self.lock:
            for name in scopes or []:
                self._scope(name, uid)
            sub = Subscriber(uid, frozenset(scopes) if scopes is not None else None, frozenset(what))
            self.subscribers = self.subscribers + [sub]
        return sub

    def _stream(self, conn: socket.socket, sub: Subscriber) -> None:
        last_status = 0.0
        try:
            while not sub.closed and not self._stop.is_set():
                sub.wake.wait(0.5)
                sub.wake.clear()
                out = []
                while sub.queue:
                    out.append(sub.queue.popleft())
                if "status" in sub.what and time.monotonic() - last_status >= 1.0:
                    last_status = time.monotonic()
                    st = self.status(sub.uid)
                    if sub.scopes is not None:
                        st["scopes"] = [s for s in st["scopes"] if s["name"] in sub.scopes]
                    st["dropped_for_you"] = sub.dropped
                    out.append(P.encode({"stream": "status", "scope": None, "data": st}))
                if out:
                    conn.sendall(b"".join(out))
        except OSError:
            pass
        finally:
            with self.lock:
                self.subscribers = [s for s in self.subscribers if s is not sub]


class _EveryAudit:
    """What the outputs could not deliver goes on the record of every watched session."""

    def __init__(self, scopes: dict[str, Scope]) -> None:
        self.scopes = scopes

    def write_record(self, record: Any, **kw: Any) -> None:
        for scope in list(self.scopes.values()):
            if scope.audit is not None:
                scope.audit.write_record(record, **kw)


class _Lease(set):
    """The scope names one connection registered (its identity marks whose lease a scope is)."""

    __hash__ = object.__hash__

    def __eq__(self, other: object) -> bool:
        return self is other


def _check_cgroup(reg: Registration) -> None:
    """A session's scope is its container's cgroup2 directory, ``lxc.payload.<name>``."""
    from ..host import cgroups

    path = Path(reg.cgroup)
    if not path.is_absolute() or ".." in path.parts or not path.is_dir():
        raise P.DaemonError(f"{reg.cgroup} is not a cgroup directory", code=P.USAGE)
    if reg.kind == "session":
        try:
            want = cgroups.container_cgroup(reg.name)
        except SentinelError as err:
            raise P.DaemonError(f"{reg.name}: {err}", code=P.USAGE) from err
        if want.resolve() != path.resolve():
            raise P.DaemonError(f"{reg.cgroup} is not the cgroup of container {reg.name}", code=P.USAGE)


def _peer_uid(conn: socket.socket) -> int:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid


def _answers(path: str) -> bool:
    """A daemon answers ``hello`` on ``path`` (a killed one's socket refuses connections, or
    takes them into its backlog and never answers)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    s.settimeout(2)
    try:
        s.connect(path)
        s.sendall(P.encode({"op": "hello"}))
        return bool(s.recv(4096))
    except OSError:
        return False
    finally:
        s.close()


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _rss() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _state_dir() -> Path:
    from ..host import paths

    return paths.state_dir()


def serve(options: DaemonOptions, *, ready=None) -> None:
    """Run a daemon in this process until SIGTERM/SIGINT; SIGHUP reloads the rules."""
    d = Daemon(options)
    d.start()
    signal.signal(signal.SIGTERM, lambda *_: d.stop())
    signal.signal(signal.SIGINT, lambda *_: d.stop())
    signal.signal(signal.SIGHUP, lambda *_: d.ask_reload())
    if ready is not None:
        ready(d)
    d.run()
