"""The guardian of a session: when its monitor dies or stops reading, the session is paused.

A session's monitor lives in the process that owns the session (``run -- CMD``, or the keeper
of an interactive session). If that process is killed (SIGKILL, the OOM killer, a crash in
bcc), nothing watches the agent any more, and the BPF maps die with it. So before the agent
runs, the monitor starts a guardian: a small process of its own
(``python -m coi_sentinel.supervision.guardian``, in its own session so Ctrl-C and a closed
terminal do not reach it), which holds

* the read end of a pipe whose only write end the monitor keeps: the monitor's loop writes
  ``h`` (heartbeat) at least every :data:`BEAT_INTERVAL` seconds, and ``s`` when it stops
  cleanly. The kernel closes the write end when the owner dies, however it dies: end of file
  without ``s`` means the monitor died;
* a pidfd of the owner (readable when it exits, even if the pipe leaked to another process);
* an open ``cgroup.freeze`` of the container's cgroup2 directory.

It freezes the container (one ``write(2)``, about a millisecond) when

* the owner exits, or the pipe ends, without a clean stop: then it appends an ``action``
  record (``"by": "guardian"``) to the session's audit log, whose writer is gone, continuing
  its hash chain, and writes the reason into the container's ``user.coi.paused``; it removes
  the dead monitor's ``coi-sentinel status`` file (the death is on record); then it exits;
* no heartbeat came for ``stall_seconds`` (the monitor's loop is stuck, or its process is
  stopped): the reason goes to ``user.coi.paused`` and the guardian's log (the audit log still
  has a live writer, which records the pause when it runs again); it keeps guarding, and
  freezes again if the session is resumed while the monitor is still silent.

It exits quietly after a clean stop, or when the container's cgroup is gone (nothing left to
guard). Its log is ``~/.local/state/coi-sentinel/logs/guardian-<container>.log``, removed by a
clean stop when empty. The monitor starts a new guardian if this one dies.

:class:`GuardState` is the decision logic, free of I/O (unit-tested); :class:`Guardian` is the
monitor's handle; :func:`main` is the process.
"""

from __future__ import annotations

import argparse
import errno
import fcntl
import json
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..host.owner import start_time

log = logging.getLogger(__name__)

#: the monitor writes a heartbeat at least this often (seconds)
BEAT_INTERVAL = 0.25
#: how long the monitor waits for a new guardian to say it is ready (seconds)
READY_TIMEOUT = 15.0
#: after the pipe ended, how long the guardian waits for the owner to exit before it decides
#: that the owner lives on (and leaves the audit log to it)
OWNER_EXIT_WAIT = 10.0
BEAT, STOP = b"h", b"s"


# ---------------------------------------------------------------- decisions (pure)
@dataclass(slots=True)
class Decision:
    freeze: bool
    reason: str = ""
    exit: bool = False
    #: the owner is known to be dead: the guardian may write the audit log
    owner_dead: bool = False
    #: what follows the reason's first clause (the time since the last heartbeat)
    detail: str = ""


def died(owner: int) -> str:
    return f"the monitor's process (pid {owner}) died without stopping the monitor"


@dataclass(slots=True)
class GuardState:
    stall_ns: int
    last_beat_ns: int
    owner: int
    stopping: bool = False
    stalled: bool = False

    def feed(self, data: bytes, now_ns: int) -> Decision | None:
        """Bytes from the pipe (``b""`` is its end)."""
        if not data:
            return self.owner_gone(now_ns, exited=False)
        if STOP in data:
            self.stopping = True
        if BEAT in data:
            self.last_beat_ns = now_ns
            self.stalled = False
        return None

    def owner_gone(self, now_ns: int, *, exited: bool = True) -> Decision:
        if self.stopping:
            return Decision(freeze=False, exit=True)
        detail = f"last heartbeat {(now_ns - self.last_beat_ns) / 1e9:.1f} s before"
        if exited:
            why = died(self.owner)
        else:   # the pipe ends as a killed process exits; _act then waits for its pidfd
            why = (f"the monitor's process (pid {self.owner}) closed its pipe without stopping "
                   "the monitor")
        return Decision(freeze=True, exit=True, owner_dead=exited, reason=f"{why}; {detail}",
                        detail=detail)

    def tick(self, now_ns: int, frozen: bool) -> Decision | None:
        """Called at least every :data:`BEAT_INTERVAL`: a silent monitor gets the session frozen
        (again, when it was resumed while the monitor is still silent)."""
        if self.stopping:
            return None
        silent = now_ns - self.last_beat_ns
        if silent > self.stall_ns and not frozen:
            first = not self.stalled
            self.stalled = True
            what = "no heartbeat" if first else "still no heartbeat"
            return Decision(freeze=True, reason=f"the monitor stopped reading: {what} for "
                                                f"{silent / 1e9:.1f} s (stall_seconds = "
                                                f"{self.stall_ns / 1e9:g})")
        return None


# ---------------------------------------------------------------- the monitor's handle
class Guardian:
    """Started by the monitor; :meth:`beat` from its loop, :meth:`stop` at a clean end."""

    def __init__(self, proc: subprocess.Popen, fd: int, log_path: Path) -> None:
        self.proc = proc
        self._fd = fd
        self.log_path = log_path
        self._last = 0.0

    def _close(self) -> None:
        fd, self._fd = self._fd, -1
        os.close(fd)

    @classmethod
    def spawn(cls, name: str, cgroup: Path, audit: Path, *, stall_seconds: float,
              log_dir: Path, spares: "Spares | None" = None) -> "Guardian":
        """A guardian for the container ``name``, holding its ``cgroup.freeze`` once this
        returns. From ``spares`` when given (a process started ahead of need: no interpreter
        start-up on the session's path), else started now."""
        standby = spares.take() if spares is not None else Standby.start(log_dir)
        return standby.assign(name, cgroup, audit, stall_seconds=stall_seconds, log_dir=log_dir)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self._fd >= 0 and self.proc.poll() is None

    def beat(self, *, force: bool = False) -> bool:
        """A heartbeat, at most every BEAT_INTERVAL / 2; False when the guardian is gone."""
        now = time.monotonic()
        if not force and now - self._last < BEAT_INTERVAL / 2:
            return True
        self._last = now
        try:
            os.write(self._fd, BEAT)
        except BlockingIOError:
            return True                     # it is behind on reading; it is still there
        except OSError:                     # EPIPE: it died
            return False
        return True

    def stop(self, timeout: float = 5.0) -> None:
        """Tell it the monitor stops cleanly, and wait for it to exit."""
        if self._fd < 0:
            return
        try:
            os.write(self._fd, STOP)
        except OSError:
            pass
        self._close()
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._drop_empty_log()

    def abandon(self) -> None:
        """Forget a guardian that died (its replacement takes over; one whose container is
        gone, and whose cgroup went with it, exits on its own and has none)."""
        if self._fd >= 0:
            self._close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._drop_empty_log()

    def _drop_empty_log(self) -> None:
        """A guardian that had nothing to say leaves no log (a replacement appends to the same
        path, and makes it again)."""
        try:
            if self.log_path.stat().st_size == 0:
                self.log_path.unlink()
        except OSError:
            pass


def _above_every_fd(fd: int) -> int:
    """Move ``fd`` above every descriptor open now (the probes' among them); returns it.

    A process killed with SIGKILL releases its files from its exit path, the last opened
    (highest) first on Linux 6.18, and each attached probe takes milliseconds to release (an
    RCU grace period per program): a guardian's pipe below them would end seconds after its
    owner died, one above them ends at once. Measured: ~40 ms against ~4 s."""
    highest = max(int(n) for n in os.listdir("/proc/self/fd"))
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, highest + 1)
    os.close(fd)
    return moved


class Standby:
    """A guardian process started before its session exists: the interpreter is loaded and it
    waits on its pipe for the session to guard (one JSON line), then opens that cgroup and says
    ``ready`` again. It exits quietly if its owner dies or its pipe closes before that."""

    def __init__(self, proc: subprocess.Popen, fd: int) -> None:
        self.proc, self._fd = proc, fd

    @classmethod
    def start(cls, log_dir: Path) -> "Standby":
        from ..errors import MonitorError

        r, w = os.pipe()                    # not inherited by anything else (O_CLOEXEC)
        log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        package_root = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [package_root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])}
        argv = [sys.executable, "-m", "coi_sentinel.supervision.guardian", "--standby",
                "--owner", str(os.getpid())]
        try:
            proc = subprocess.Popen(argv, stdin=r, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                    start_new_session=True, env=env, cwd="/")
        except OSError as err:
            os.close(w)
            raise MonitorError(f"cannot start a guardian: {err.strerror}") from err
        finally:
            os.close(r)
        standby = cls(proc, w)
        if standby._answer() != b"ready":
            standby.discard()
            raise MonitorError("a guardian did not start")
        return standby

    def _answer(self) -> bytes:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], READY_TIMEOUT)
        return (self.proc.stdout.readline() if ready else b"").strip()

    def alive(self) -> bool:
        return self._fd >= 0 and self.proc.poll() is None

    def assign(self, name: str, cgroup: Path, audit: Path, *, stall_seconds: float,
               log_dir: Path) -> Guardian:
        """Hand it the session; returns once it holds the cgroup's ``cgroup.freeze``."""
        from ..errors import MonitorError

        log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        log_path = log_dir / f"guardian-{name}.log"
        with open(log_path, "ab"):
            os.chmod(log_path, 0o600)
        task = {"name": name, "cgroup": str(cgroup), "audit": str(audit), "stall": stall_seconds,
                "log": str(log_path)}
        try:
            os.write(self._fd, json.dumps(task).encode() + b"\n")
            answer = self._answer()
        except OSError:
            answer = b""
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        if answer != b"ready":
            self.discard()
            raise MonitorError(f"the guardian of {name} did not start (see {log_path})")
        fd, self._fd = self._fd, -1
        fd = _above_every_fd(fd)            # probes loaded since it started lie below it now
        os.set_blocking(fd, False)
        g = Guardian(self.proc, fd, log_path)
        g.beat(force=True)
        return g

    def discard(self) -> None:
        """Close its pipe (it exits without guarding anything) and reap it."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None and not self.proc.stdout.closed:
            self.proc.stdout.close()


class Spares:
    """One standby guardian kept ready for the next session (the daemon's): taking it starts
    its successor in the background, so a registration never waits for an interpreter."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self._lock = threading.Lock()
        self._spare: Standby | None = None
        self._filling: threading.Thread | None = None
        self._closed = False

    def fill(self) -> None:
        """Start the next spare in the background (no-op when one is there or coming)."""
        with self._lock:
            if self._closed or (self._filling is not None and self._filling.is_alive()):
                return
            if self._spare is not None and self._spare.alive():
                return
            self._filling = threading.Thread(target=self._make, name="guardian-spare", daemon=True)
            self._filling.start()

    def _make(self) -> None:
        from ..errors import SentinelError

        try:
            standby = Standby.start(self.log_dir)
        except SentinelError as err:
            log.warning("no spare guardian: %s", err)
            return
        with self._lock:
            if self._closed:
                standby.discard()
                return
            old, self._spare = self._spare, standby
        if old is not None:
            old.discard()

    def take(self) -> Standby:
        with self._lock:
            filling = self._filling
        if filling is not None:
            filling.join(READY_TIMEOUT)
        with self._lock:
            spare, self._spare = self._spare, None
        if spare is None or not spare.alive():
            if spare is not None:
                spare.discard()
            spare = Standby.start(self.log_dir)
        self.fill()
        return spare

    def close(self) -> None:
        with self._lock:
            self._closed = True
            spare, self._spare = self._spare, None
            filling = self._filling
        if filling is not None:
            filling.join(READY_TIMEOUT)
        if spare is not None:
            spare.discard()
        with self._lock:
            spare, self._spare = self._spare, None
        if spare is not None:
            spare.discard()


# ---------------------------------------------------------------- the process
def _log(text: str) -> None:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    os.write(2, f"{stamp} guardian[{os.getpid()}]: {text}\n".encode())


class _Cgroup:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.dir_fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self.freeze_fd = os.open("cgroup.freeze", os.O_WRONLY | os.O_CLOEXEC, dir_fd=self.dir_fd)

    def exists(self) -> bool:
        try:
            os.stat("cgroup.procs", dir_fd=self.dir_fd)
            return True
        except OSError:
            return False

    def frozen(self) -> bool:
        try:
            fd = os.open("cgroup.freeze", os.O_RDONLY | os.O_CLOEXEC, dir_fd=self.dir_fd)
        except OSError:
            return False
        try:
            return os.read(fd, 8).strip() == b"1"
        finally:
            os.close(fd)

    def freeze(self) -> int:
        """Freeze; ns until the write returned (the kernel freezes every task at once)."""
        t0 = time.monotonic_ns()
        os.pwrite(self.freeze_fd, b"1", 0)
        return time.monotonic_ns() - t0


def _record_in_incus(args, decision: Decision) -> None:
    from ..errors import SentinelError
    from ..host import incus, pause_state

    try:
        pause_state.mark(incus.connect(), args.name, {"by": "guardian", "reason": decision.reason,
                                                 "at": time.time()})
    except SentinelError as err:  # Incus down: the freeze stands, the reason is in this log
        _log(f"could not record the pause in Incus: {err}")


def _record_in_audit(args, decision: Decision, freeze_ns: int, frozen_at_ns: int) -> None:
    """Only once the monitor's process is gone: the log must not have two writers."""
    from ..action import Action
    from ..records import ActionRecord

    rec = ActionRecord(Action.PAUSE, "guardian", True, container=args.name, reason=decision.reason,
                       target=str(args.cgroup), freeze_ns=freeze_ns, ts_ns=frozen_at_ns)
    from ..audit.log import AuditLog
    from ..errors import SentinelError
    from ..trace.format import make_header

    try:
        log = AuditLog(args.audit, make_header("guardian", session=args.name), events="none")
        try:
            log.write_action(rec)
        finally:
            log.close()
        _log(f"recorded in {args.audit}")
    except (SentinelError, OSError) as err:  # the freeze stands; the reason is logged here
        _log(f"could not write the audit log {args.audit}: {err}")


def _withdraw_status(args) -> None:
    """The dead monitor's `coi-sentinel status` file: its death is on record now (audit log,
    user.coi.paused, the FROZEN session in `list`)."""
    from ..host import status

    path = status.status_path(args.owner)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if data.get("kind") == "session" and args.name in (data.get("scope") or []):
        try:
            path.unlink()
        except OSError as err:
            _log(f"could not remove {path}: {err.strerror}")


def _act(args, cg: _Cgroup, decision: Decision, pidfd: int = -1) -> None:
    """Freeze at once and say why in Incus; when the monitor's process is gone, in its audit
    log too. When the pipe ended first, wait for the process to exit (one that loaded BPF
    programs takes seconds to) before deciding whether the audit log may be written."""
    try:
        took = cg.freeze()
    except OSError as err:
        if err.errno in (errno.ENOENT, errno.ENODEV) or not cg.exists():
            _log(f"the container is gone; nothing to freeze ({decision.reason})")
            return
        _log(f"FREEZE FAILED ({err.strerror}): {decision.reason}")
        return
    frozen_at = time.monotonic_ns()
    _log(f"froze {args.name} in {took / 1e6:.2f} ms: {decision.reason}")
    _record_in_incus(args, decision)
    if decision.exit and not decision.owner_dead and pidfd >= 0:
        try:
            decision.owner_dead = bool(select.select([pidfd], [], [], OWNER_EXIT_WAIT)[0])
        except OSError:
            decision.owner_dead = False
        if decision.owner_dead:
            decision.reason = f"{died(args.owner)}; {decision.detail}"
    if decision.owner_dead:
        _record_in_audit(args, decision, took, frozen_at)
        _withdraw_status(args)
    elif decision.exit:
        _log(f"pid {args.owner} still runs: the audit log is left to it")


def _wait_for_task(args) -> bool:
    """A standby guardian's wait for its session: False when the owner closed the pipe first
    (it died, or discarded this one: nothing to guard). Fills ``args`` and sends stderr to the
    session's guardian log. (The pipe ends when the owner dies: no pidfd is needed yet.)"""
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(0, 4096)
        if not chunk:
            return False
        data += chunk
    task = json.loads(data)
    args.name, args.cgroup, args.audit = task["name"], task["cgroup"], task["audit"]
    args.stall = float(task["stall"])
    fd = os.open(task["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    os.dup2(fd, 2)
    os.close(fd)
    return True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="coi_sentinel.supervision.guardian",
                                description="Started by Standby.start: says ready, then waits on "
                                            "stdin for the session to guard (one JSON line).")
    p.add_argument("--standby", action="store_true", required=True)
    p.add_argument("--owner", type=int, required=True)
    args = p.parse_args(argv)
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)
    os.write(1, b"ready\n")
    if not _wait_for_task(args):
        return 0
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s guardian: %(name)s: %(message)s")
    now = time.monotonic_ns()
    state = GuardState(stall_ns=int(args.stall * 1e9), last_beat_ns=now, owner=args.owner)
    try:
        cg = _Cgroup(Path(args.cgroup))
    except OSError as err:
        _log(f"cannot open {args.cgroup}: {err.strerror}")
        return 1
    pidfd = -1
    try:
        pidfd = os.pidfd_open(args.owner)
    except OSError:
        pass
    if pidfd < 0 or start_time(args.owner) is None or os.getppid() != args.owner:
        _act(args, cg, state.owner_gone(now))           # the owner died while we started
        return 0
    os.set_blocking(0, False)
    os.write(1, b"ready\n")
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.close(null)
    poller = select.poll()
    poller.register(0, select.POLLIN)
    poller.register(pidfd, select.POLLIN)
    last_check = 0.0
    while True:
        decision: Decision | None = None
        for fd, _ev in poller.poll(BEAT_INTERVAL * 1000):
            now = time.monotonic_ns()
            if fd == 0:
                try:
                    data = os.read(0, 4096)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                decision = state.feed(data, now) or decision
                if not data:
                    poller.unregister(0)
            elif fd == pidfd:
                # the owner exited: what it wrote last (a clean stop, or not) decides
                while True:
                    try:
                        data = os.read(0, 4096)
                    except OSError:     # EAGAIN: the pipe's write end lives on elsewhere
                        break
                    if not data:
                        break
                    state.feed(data, now)
                decision = state.owner_gone(now)
                break
        if decision is not None and decision.exit and not decision.freeze:
            return 0
        if decision is not None and not decision.freeze:
            decision = None
        if decision is None:
            decision = state.tick(time.monotonic_ns(), cg.frozen())
        if decision is not None and decision.freeze:
            _act(args, cg, decision, pidfd)
            if decision.exit:
                return 0
        if time.monotonic() - last_check >= 1.0:
            last_check = time.monotonic()
            if not cg.exists():
                return 0


if __name__ == "__main__":
    sys.exit(main())
