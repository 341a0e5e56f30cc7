"""The guardian: its decisions, and the real process against a stand-in cgroup directory (a
folder with a ``cgroup.freeze`` file: what it writes there is what it would write to the
kernel's). The owner is a child process that the test kills or stops."""

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from coi_sentinel.supervision.guardian import BEAT, STOP, GuardState

pytestmark = pytest.mark.unit

S = 1_000_000_000


def state(stall_s=2):
    return GuardState(stall_ns=stall_s * S, last_beat_ns=0, owner=42)


def test_owner_death_freezes_unless_it_stopped_cleanly():
    g = state()
    d = g.owner_gone(3 * S)
    assert d.freeze and d.exit and d.owner_dead
    assert d.reason == ("the monitor's process (pid 42) died without stopping the monitor; "
                        "last heartbeat 3.0 s before")
    g = state()
    assert g.feed(BEAT + STOP, S) is None
    d = g.feed(b"", 2 * S)                         # then the pipe ends: a clean stop
    assert not d.freeze and d.exit


def test_pipe_end_without_stop_freezes_and_waits_to_know_the_owner_died():
    d = state().feed(b"", S)
    assert d.freeze and d.exit and not d.owner_dead
    assert "closed its pipe without stopping the monitor" in d.reason


def test_stall_freezes_once_then_again_only_if_resumed_while_silent():
    g = state(stall_s=2)
    assert g.tick(int(1.5 * S), frozen=False) is None
    g.feed(BEAT, int(1.5 * S))
    assert g.tick(int(3.4 * S), frozen=False) is None
    d = g.tick(int(3.6 * S), frozen=False)
    assert d.freeze and not d.exit and "no heartbeat for 2.1 s" in d.reason
    assert g.tick(4 * S, frozen=True) is None      # frozen: nothing to do
    d = g.tick(5 * S, frozen=False)                # resumed while the monitor is still silent
    assert d.freeze and "still no heartbeat" in d.reason
    g.feed(BEAT, 6 * S)                            # it reads again
    assert not g.stalled and g.tick(7 * S, frozen=False) is None


def test_no_stall_freeze_after_a_clean_stop():
    g = state(stall_s=1)
    g.feed(STOP, 0)
    assert g.tick(10 * S, frozen=False) is None


# ---------------------------------------------------------------- the real process
OWNER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from coi_sentinel.supervision.guardian import Guardian, Spares
    mode = sys.argv[6]
    spares = Spares(Path(sys.argv[5])) if mode == "spares" else None
    if spares is not None:
        spares.fill()
        spares.take().discard()        # one used up and thrown away: the next one comes
    g = Guardian.spawn(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]),
                       stall_seconds=float(sys.argv[4]), log_dir=Path(sys.argv[5]), spares=spares)
    print(g.pid, flush=True)
    if spares is not None:
        spares.fill()
        spares._filling.join()
        print(spares._spare.proc.pid, flush=True)
        mode = "beat"
    if mode == "clean":
        g.beat(force=True)
        g.stop()
        print("stopped", flush=True)
        sys.exit(0)
    while True:
        if mode == "beat":
            g.beat()
        if mode == "abandon" and not g.alive():    # as the daemon's tick: it exited, forget it
            g.abandon()
            print("abandoned", flush=True)
            sys.exit(0)
        time.sleep(0.05)
""")


@pytest.fixture
def box(tmp_path):
    cg = tmp_path / "cg"
    cg.mkdir()
    (cg / "cgroup.freeze").write_text("0")
    (cg / "cgroup.procs").write_text("1\n")
    procs: list[subprocess.Popen] = []
    pids: list[int] = []

    def owner(mode: str, stall: float = 10.0) -> subprocess.Popen:
        name = f"unit-guardian-{uuid.uuid4().hex[:8]}"
        p = subprocess.Popen([sys.executable, "-c", OWNER, name, str(cg), str(tmp_path / "audit.jsonl"),
                              str(stall), str(tmp_path / "logs"), mode],
                             stdout=subprocess.PIPE, text=True, cwd=tmp_path,
                             env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])})
        procs.append(p)
        pids.append(int(p.stdout.readline()))
        return p

    owner.cg = cg
    owner.tmp = tmp_path
    owner.guardians = pids
    yield owner
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def frozen(cg: Path) -> bool:
    return (cg / "cgroup.freeze").read_text().strip() == "1"


def gone(pid: int, timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            if state == "Z":
                return True
        except (ProcessLookupError, FileNotFoundError):
            return True
        time.sleep(0.02)
    return False


def test_sigkill_of_the_owner_freezes_and_is_recorded(box):
    p = box("beat")
    time.sleep(0.3)
    assert not frozen(box.cg)
    p.kill()
    p.wait()
    assert gone(box.guardians[0])
    assert frozen(box.cg)
    log = next((box.tmp / "logs").glob("guardian-*.log")).read_text()
    # the pipe's end of file or the pidfd may be seen first: either reason names the owner
    assert "froze" in log and f"(pid {p.pid})" in log and "without stopping the monitor" in log
    audit = (box.tmp / "audit.jsonl").read_text()
    assert '"action":"pause"' in audit and '"by":"guardian"' in audit


def test_clean_stop_leaves_it_running_and_no_log(box):
    p = box("clean")
    assert p.stdout.readline().strip() == "stopped"
    assert p.wait(timeout=10) == 0
    assert gone(box.guardians[0])
    assert not frozen(box.cg)
    assert list((box.tmp / "logs").glob("*.log")) == []
    assert not (box.tmp / "audit.jsonl").exists()


def test_a_silent_owner_is_frozen_after_the_stall_and_guarded_on(box):
    p = box("silent", stall=1.0)
    deadline = time.monotonic() + 5
    while not frozen(box.cg) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert frozen(box.cg)
    assert p.poll() is None and not gone(box.guardians[0], timeout=0.2)   # it keeps guarding
    assert not (box.tmp / "audit.jsonl").exists()      # the owner lives: its log is not touched
    (box.cg / "cgroup.freeze").write_text("0")           # resumed while still silent
    deadline = time.monotonic() + 3
    while not frozen(box.cg) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert frozen(box.cg)


def test_guardian_exits_when_the_cgroup_goes(box):
    box("beat")
    for f in box.cg.iterdir():
        f.unlink()
    box.cg.rmdir()
    assert gone(box.guardians[0], timeout=5)


def test_a_guardian_gone_with_its_cgroup_leaves_no_empty_log(box):
    """A container stopped before its session unregistered: the guardian exits with the cgroup,
    the daemon abandons it, and no empty guardian-<name>.log stays behind."""
    p = box("abandon")
    time.sleep(0.3)
    for f in box.cg.iterdir():
        f.unlink()
    box.cg.rmdir()
    assert p.stdout.readline().strip() == "abandoned"
    assert p.wait(timeout=10) == 0
    assert list((box.tmp / "logs").glob("*.log")) == []


def test_a_spare_guardian_guards_and_an_unused_one_leaves_with_its_owner(box):
    p = box("spares")
    spare = int(p.stdout.readline())
    time.sleep(0.3)
    assert not frozen(box.cg) and not gone(spare, timeout=0.1)
    p.kill()
    p.wait()
    assert gone(box.guardians[0]) and gone(spare)
    assert frozen(box.cg)                  # the assigned one froze; the spare guarded nothing
    [log] = (box.tmp / "logs").glob("guardian-*.log")
    assert "froze" in log.read_text()
