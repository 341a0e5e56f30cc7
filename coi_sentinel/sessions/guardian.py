"""The guardian of a session: when its monitor dies or stops reading, the session is paused.

A session's monitor lives in the process that owns the session (``run -- CMD``, or the keeper
of an interactive session). If that process is killed (SIGKILL, the OOM killer, a crash in
bcc), nothing watches the agent any more, and the BPF maps die with it. So before the agent
runs, the monitor starts a guardian: a small process of its own
(``python -m coi_sentinel.sessions.guardian``, in its own session so Ctrl-C and a closed
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
import json
import logging
import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .owner import start_time

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

    @classmethod
    def spawn(cls, name: str, cgroup: Path, audit: Path, *, stall_seconds: float,
              log_dir: Path) -> "Guardian":
        from ..errors import MonitorError

        r, w = os.pipe()                    # not inherited by anything else (O_CLOEXEC)
        log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        log_path = log_dir / f"guardian-{name}.log"
        package_root = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [package_root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])}
        argv = [sys.executable, "-m", "coi_sentinel.sessions.guardian", "--name", name,
                "--cgroup", str(cgroup), "--audit", str(audit), "--owner", str(os.getpid()),
                "--stall", f"{stall_seconds:g}"]
        try:
            with open(log_path, "ab", buffering=0) as logf:
                os.chmod(log_path, 0o600)
                proc = subprocess.Popen(argv, stdin=r, stdout=subprocess.PIPE, stderr=logf,
                                        start_new_session=True, env=env, cwd="/")
        except OSError as err:
            os.close(w)
            raise MonitorError(f"cannot start the guardian of {name}: {err.strerror}") from err
        finally:
            os.close(r)
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], READY_TIMEOUT)
        line = proc.stdout.readline() if ready else b""
        proc.stdout.close()
        if line.strip() != b"ready":
            os.close(w)
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            raise MonitorError(f"the guardian of {name} did not start (see {log_path})")
        os.set_blocking(w, False)
        g = cls(proc, w, log_path)
        g.beat(force=True)
        return g

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
        os.close(self._fd)
        self._fd = -1
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        try:
            if self.log_path.stat().st_size == 0:
                self.log_path.unlink()
        except OSError:
            pass

    def abandon(self) -> None:
        """Forget a guardian that died (its replacement takes over)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


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
    from . import incus, paused

    try:
        paused.mark(incus.connect(), args.name, {"by": "guardian", "reason": decision.reason,
                                                 "at": time.time()})
    except SentinelError as err:  # Incus down: the freeze stands, the reason is in this log
        _log(f"could not record the pause in Incus: {err}")


def _record_in_audit(args, decision: Decision, freeze_ns: int, frozen_at_ns: int) -> None:
    """Only once the monitor's process is gone: the log must not have two writers."""
    rec = {"record": "action", "action": "pause", "by": "guardian", "ok": True,
           "container": args.name, "reason": decision.reason, "target": args.cgroup,
           "freeze_ns": freeze_ns, "ts_ns": frozen_at_ns}
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
    from .. import status

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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="coi_sentinel.sessions.guardian")
    p.add_argument("--name", required=True)
    p.add_argument("--cgroup", required=True)
    p.add_argument("--audit", required=True)
    p.add_argument("--owner", type=int, required=True)
    p.add_argument("--stall", type=float, required=True)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s guardian: %(name)s: %(message)s")
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)
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
