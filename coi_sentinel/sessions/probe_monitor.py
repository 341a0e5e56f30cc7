"""The session monitor built on the probes: the container's cgroup in the kernel filter, the
rules engine on its events, a responder acting on the container, an audit log, a guardian.

``start`` returns only once

* the probes are attached and the container's cgroup id is in the BPF scope map (the ancestor
  id of ``lxc.payload.<name>``, so sub-cgroups the container makes do not escape), with the
  in-kernel kill policy of the session's ``[response]`` settings on that scope (exec from a
  memfd, connect to a cloud metadata address or a C2 port: SIGKILL from the probe);
* the audit log is open (the trace format with a hash chain, mode 0600, every event);
* the guardian runs (:mod:`.guardian`): if this process dies, the container is frozen.

Then a thread of the owning process (``run``, or the keeper) polls the probes. Events go to the
audit log and the rules engine; an alert goes to the responder (:mod:`coi_sentinel.respond`),
whose one target is the container: ``pause`` freezes its cgroup2 directory, ``kill`` kills every
process in it (``cgroup.kill``; Incus then sees the container stop), ``kill-process`` kills the
offending process tree inside it only, ``block`` adds the destination to the session's nftables
deny set. The action is taken before the alert is written (the audit log's fsync is not on the
way to the freeze); the alert, then the action record with its latency, follow.

Fail closed: the session is paused, and the reason recorded, when the kernel lost more events
than ``max_drops`` since the session last ran unpaused, when the audit log cannot be written,
when the monitor's own loop fails, and when the monitor stops while the container still runs.

The loop also notices what happens to the container from outside: a thaw by
``coi-sentinel resume-session`` (recorded as a ``resume`` action; the responder forgets what it
did, so the same rule pauses again), a freeze it did not make (the guardian's, for a stall).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from pathlib import Path
from typing import Any, Callable

from ..errors import AuditError, MonitorError, ResponseError, SentinelError
from ..events.model import kernel_kill_reason
from ..respond import freezer
from .notices import block as notice_block
from .response import DropWatch, ResponseSettings

log = logging.getLogger(__name__)

#: how often the loop compares the container's freezer with what it believes (seconds)
FREEZE_CHECK = 0.1


class ProbeMonitor:
    def __init__(self, ruleset=None, settings: ResponseSettings | None = None, *,
                 tool: str | None = None, network: str | None = None,
                 notify: Callable[[str], None] | None = None, poll_ms: int = 10,
                 guard: bool = True) -> None:
        self.ruleset = ruleset
        self.settings = settings or ResponseSettings()
        self.tool = tool
        self.network = network
        self.notify = notify
        self.poll_ms = poll_ms
        self.guard = guard
        #: alerts raised so far (dicts as in the audit log); actions taken (action records)
        self.alerts: list[dict] = []
        self.actions: list[dict] = []
        self.killed = False
        self.summary: dict | None = None
        self._mon = None
        self._audit = None
        self._engine = None
        self._responder = None
        self._target = None
        self._guardian = None
        self._firewall = None
        self._drops = DropWatch(self.settings.max_drops)
        self._chores: queue.Queue | None = None
        self._chore_thread: threading.Thread | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        #: start time (monotonic ns) of the loop's last complete poll, for settle()
        self._polled = threading.Condition()
        self._polled_ns = 0
        self._error: BaseException | None = None
        self._name = ""
        self._cgroup = Path("/")
        self._scope = 0

    @property
    def paused(self) -> bool:
        return self._target is not None and self._target.state == "paused"

    # ---------------------------------------------------------------- start
    def start(self, container_name: str, cgroup_path: Path, audit_path: Path) -> None:
        from ..audit.log import AuditLog
        from ..monitor import Monitor, MonitorOptions
        from ..probes.cgroups import cgroup_id
        from ..respond.responder import Responder, Target
        from ..rules import Engine, SessionInfo, load_ruleset
        from ..trace.format import make_header
        from . import paths
        from .guardian import Guardian

        self._name, self._cgroup = container_name, Path(cgroup_path)
        try:
            ruleset = self.ruleset if self.ruleset is not None else load_ruleset(None)
        except SentinelError as err:
            raise MonitorError(f"the rules of {container_name}: {err}") from err
        mon = Monitor(MonitorOptions(containers=(container_name,), poll_ms=self.poll_ms, kind="session",
                                     sensitive_prefixes=tuple(ruleset.sensitive_prefixes()),
                                     sensitive_suffixes=tuple(ruleset.sensitive_suffixes())))
        try:
            mon.start()
        except SentinelError as err:
            raise MonitorError(f"cannot monitor {container_name}: {err}", hint=err.hint) from err
        audit = None
        try:
            self._scope = scope = cgroup_id(cgroup_path)
            kill_policy = self.settings.kernel_policy()
            mon.probes.set_kill_policy(scope, **kill_policy)
            cov = mon.coverage.to_dict() if mon.coverage is not None else {}
            audit = AuditLog(audit_path, make_header("run", coverage=cov, session=container_name,
                                                     cgroup=str(cgroup_path)), events="all")
            responder = Responder(self.settings.policy(), mon.pipeline.table)
            self._target = Target(container_name, self._cgroup,
                                  block=self._block if self.network not in (None, "none") else None)
            responder.add_target(self._target)
            info = SessionInfo(id=container_name, tool=self.tool, network=self.network)
            engine = Engine(ruleset, on_alert=self._on_alert, table=mon.pipeline.table,
                            sessions=lambda _ev: info)
            self._mon, self._audit, self._engine, self._responder = mon, audit, engine, responder

            def rules(event, process) -> None:
                if event.scope_id == scope:
                    engine(event, process)

            mon.pipeline.add_sink(self._record)       # before the engine: context precedes alerts
            mon.pipeline.add_sink(rules)
            audit.write_record({"record": "monitor", "event": "start", "rules": len(ruleset.rules),
                                "response": self.settings.to_dict(),
                                "kill_in_kernel": {"memfd_exec": kill_policy["memfd_exec"],
                                                   "networks": len(kill_policy["blocked"]),
                                                   "ports": kill_policy["blocked_ports"]}})
            self._drops.reset(sum(mon.probes.drop_counts().values()))
            if self.guard:
                self._guardian = Guardian.spawn(container_name, self._cgroup, Path(audit_path),
                                                stall_seconds=self.settings.stall_seconds,
                                                log_dir=paths.state_dir() / "logs")
        except BaseException as err:
            self._mon = self._audit = None
            try:
                if audit is not None:
                    audit.close()
            finally:
                mon.close()
            if isinstance(err, SentinelError) and not isinstance(err, MonitorError):
                raise MonitorError(f"cannot monitor {container_name}: {err}", hint=err.hint) from err
            raise
        self._thread = threading.Thread(target=self._loop, name=f"monitor-{container_name}",
                                        daemon=True)
        self._thread.start()

    # ---------------------------------------------------------------- events and alerts
    def _record(self, event, process=None) -> None:
        """Every event of the container into the audit log; kernel kills become actions."""
        if event.scope_id != self._scope:
            return
        try:
            self._audit(event, process)
        except AuditError as err:
            self._fail_closed(f"the audit log cannot be written: {err}")
        if getattr(event, "killed", False):
            self._kernel_kill(event, process)

    def _kernel_kill(self, event, process) -> None:
        self.killed = True
        reason = kernel_kill_reason(event)
        rec = {"record": "action", "action": "kill-process", "by": "kernel", "ok": True,
               "container": self._name, "pid": event.pid,
               "process": {"name": process.name, "exe": process.exe, "cmdline": process.cmdline}
               if process is not None else {"name": event.comm},
               "reason": reason, "output": f"killed in the kernel: {reason}",
               "event_ts_ns": event.ts_ns}
        self._acted(rec)

    def _on_alert(self, alert) -> None:
        d = alert.to_dict()
        self.alerts.append(d)
        self._check_freezer()               # a resume not noticed yet must not skip this pause
        rec = self._responder(alert)        # act first: the audit log's fsync comes after
        try:
            self._audit.write_alert(d, scope_id=alert.scope_id)
        except AuditError as err:
            self._fail_closed(f"the audit log cannot be written: {err}")
        if rec is not None:
            if rec.get("ok") and not rec.get("skipped") and rec["action"] in ("kill", "kill-process"):
                self.killed = True
            self._acted(rec)

    def _acted(self, rec: dict[str, Any]) -> None:
        """An action was taken: on the record, on the terminal, and (a pause) in Incus."""
        self.actions.append(rec)
        try:
            self._audit.write_action(rec)
        except AuditError as err:
            log.error("%s: action not written to the audit log: %s", self._name, err)
            if rec.get("action") != "pause":
                self._fail_closed(f"the audit log cannot be written: {err}")
        self._say(notice_block(rec))
        if rec.get("action") == "pause" and rec.get("ok") and not rec.get("skipped"):
            info = {"by": rec.get("by"), "rule": rec.get("rule"), "at": time.time(),
                    "reason": rec.get("output") or rec.get("reason")}
            self._chore(lambda client: _mark(client, self._name, info))

    def _say(self, text: str) -> None:
        try:
            (self.notify or log.warning)(text)
        except Exception as err:  # the terminal went away: the record is in the audit log
            log.debug("notice not shown: %s", err)

    def _block(self, address: str, port: int) -> None:
        if self._firewall is None:
            from ..network import Firewall

            self._firewall = Firewall()
        self._firewall.block(self._name, address, port)

    def _fail_closed(self, reason: str) -> None:
        """Pause the session because the monitor cannot vouch for it any more."""
        target = self._target
        if target is None or target.state in ("paused", "killed"):
            return
        if not self._cgroup.is_dir():
            log.info("%s: not paused (%s): the container is gone", self._name, reason)
            return
        rec: dict[str, Any] = {"record": "action", "action": "pause", "by": "monitor",
                               "container": self._name, "reason": reason, "target": str(self._cgroup)}
        try:
            rec.update(ok=True, freeze_ns=freezer.set_frozen(self._cgroup, True))
            target.state = "paused"
        except ResponseError as err:
            rec.update(ok=False, error=str(err))
        log.error("%s: %s: %s", self._name, "paused" if rec["ok"] else "PAUSE FAILED", reason)
        self._acted(rec)

    def _check_freezer(self) -> None:
        """Compare the container's freezer with what the responder believes."""
        target = self._target
        if target is None or target.state == "killed":
            return
        frozen = freezer.is_frozen(self._cgroup)
        if target.state == "paused" and not frozen:
            self._responder.resumed(self._name)
            self._drops.reset(sum(self._mon.probes.drop_counts().values()))
            self._acted({"record": "action", "action": "resume", "by": "user", "ok": True,
                         "container": self._name})
        elif target.state == "running" and frozen:
            target.state = "paused"
            self._acted({"record": "action", "action": "pause", "by": "outside", "ok": True,
                         "container": self._name, "noticed": True,
                         "reason": "the container was frozen from outside the monitor's loop (the "
                                   "guardian freezes it when the loop stalls; see user.coi.paused)"})

    # ---------------------------------------------------------------- the loop
    def _loop(self) -> None:
        mon, audit = self._mon, self._audit
        last_freeze_check = last_second = 0.0
        try:
            while not self._stop.is_set():
                began = time.monotonic_ns()
                mon.poll()
                with self._polled:
                    self._polled_ns = began
                    self._polled.notify_all()
                try:
                    audit.tick()
                except AuditError as err:
                    self._fail_closed(f"the audit log cannot be written: {err}")
                now = time.monotonic()
                if self._guardian is not None and not self._guardian.beat():
                    self._replace_guardian("its pipe broke")
                if now - last_freeze_check >= FREEZE_CHECK:
                    last_freeze_check = now
                    self._check_freezer()
                if now - last_second >= 1.0:
                    last_second = now
                    self._check_drops()
                    if self._guardian is not None and not self._guardian.alive():
                        self._replace_guardian(f"it exited ({self._guardian.proc.returncode})")
        except BaseException as err:  # fail closed; reported in stop() and the log
            self._error = err
            log.error("monitor of %s stopped reading: %r", self._name, err)
            self._fail_closed(f"the monitor failed: {err!r}")
        finally:
            with self._polled:
                self._polled.notify_all()

    def _check_drops(self) -> None:
        counts = self._mon.probes.drop_counts()
        lost = self._drops.over(sum(counts.values()))
        if lost is not None and self._target is not None and self._target.state == "running":
            try:
                self._audit.write_record({"record": "drops", "counts": counts})
            except AuditError:
                pass
            self._fail_closed(f"the kernel lost {lost} events of this session (max_drops = "
                              f"{self._drops.limit}): the monitor cannot vouch for what the agent did")

    def _replace_guardian(self, why: str) -> None:
        from . import paths
        from .guardian import Guardian

        old, self._guardian = self._guardian, None
        old.abandon()
        if not self._cgroup.is_dir():
            return                  # the container is gone (its guardian then exits): nothing to guard
        log.error("%s: the guardian (pid %s) is gone: %s; starting another", self._name, old.pid, why)
        try:
            self._guardian = Guardian.spawn(self._name, self._cgroup, self._audit.path,
                                            stall_seconds=self.settings.stall_seconds,
                                            log_dir=paths.state_dir() / "logs")
        except SentinelError as err:
            self._fail_closed(f"the guardian died and no other could start: {err}")
            return
        try:
            self._audit.write_record({"record": "monitor", "event": "guardian-restarted",
                                      "reason": why, "pid": self._guardian.pid}, sync=True)
        except AuditError:
            pass

    def settle(self, timeout: float = 2.0) -> bool:
        """Wait until the loop has drained the ring buffers after this call (so an agent's last
        events, a kill among them, are counted). False on timeout or a stopped loop."""
        wanted = time.monotonic_ns()
        with self._polled:
            return self._polled.wait_for(
                lambda: self._polled_ns >= wanted or self._stop.is_set() or self._error is not None,
                timeout) and self._polled_ns >= wanted

    # ---------------------------------------------------------------- side work off the loop
    def _chore(self, fn: Callable[[Any], None]) -> None:
        """Run ``fn(incus_client)`` on a worker thread (Incus calls are too slow for the loop)."""
        if self._chores is None:
            self._chores = queue.Queue()
            self._chore_thread = threading.Thread(target=self._run_chores, name=f"chores-{self._name}",
                                                  daemon=True)
            self._chore_thread.start()
        self._chores.put(fn)

    def _run_chores(self) -> None:
        from . import incus

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
                log.warning("%s: %s", self._name, err)

    # ---------------------------------------------------------------- stop
    def stop(self) -> None:
        if self._mon is None:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        mon, audit = self._mon, self._audit
        try:
            self._check_freezer()           # a resume, just before the end, goes on the record
            if _populated(self._cgroup) and not freezer.is_frozen(self._cgroup):
                self._fail_closed("the monitor stopped while the container still runs")
            if self._guardian is not None:
                self._guardian.stop()
                self._guardian = None
            if mon.stream is not None and self._error is None:
                mon.stream.drain()
                self.summary = mon.summary()
                drops = self.summary.get("drops") or {}
                if drops:
                    audit.write_record({"record": "drops", "counts": drops})
            if self._error is not None:
                audit.write_record({"record": "monitor", "event": "error", "error": str(self._error)})
            audit.write_record({"record": "monitor", "event": "stop", "alerts": len(self.alerts),
                                "actions": [a["action"] for a in self.actions],
                                "kills_in_kernel": mon.probes.kill_counts()})
        finally:
            self._mon = self._audit = None
            try:
                audit.close()
            finally:
                try:
                    mon.close()
                finally:
                    if self._chores is not None:
                        self._chores.put(None)
                        self._chore_thread.join(timeout=10)


def _mark(client, name: str, info: dict) -> None:
    from . import paused

    paused.mark(client, name, info)


def _populated(cgroup: Path) -> bool:
    try:
        return bool((cgroup / "cgroup.procs").read_text().strip())
    except OSError:
        return False
