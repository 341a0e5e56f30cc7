"""A session's monitor: the container's execs in its audit log, nothing of the host."""

from __future__ import annotations

import json
import stat
import subprocess
import threading
import uuid

import pytest

from support import require_bpf

pytestmark = [pytest.mark.incus, pytest.mark.bpf]


def test_exec_in_container_is_in_the_audit_log_and_host_exec_is_not(env):
    require_bpf()
    env.config(image="coi/busybox", monitoring=True)
    inside, outside = f"in-{uuid.uuid4().hex[:8]}", f"host-{uuid.uuid4().hex[:8]}"
    stop = threading.Event()

    def host_load() -> None:            # a host process exec'ing all through the session
        while not stop.is_set():
            subprocess.run(["/bin/echo", outside], stdout=subprocess.DEVNULL)

    t = threading.Thread(target=host_load)
    t.start()
    try:
        r = env.run("run", "--", "sh", "-c", f"/bin/echo {inside}; /bin/echo {inside}-2", timeout=300)
    finally:
        stop.set()
        t.join()
    assert r.code == 0, r.err
    assert r.out == f"{inside}\n{inside}-2\n"
    [audit] = (env.home / ".local/state/coi-sentinel/audit").glob("*.jsonl")
    assert stat.S_IMODE(audit.stat().st_mode) == 0o600
    name = audit.stem
    lines = [json.loads(line) for line in audit.read_text().splitlines()]
    assert lines[0]["record"] == "header" and lines[0]["session"] == name
    execs = [ev for ev in lines if ev.get("type") == "exec"]
    mine = [ev for ev in execs if inside in " ".join(ev["argv"])]
    assert {tuple(ev["argv"]) for ev in mine if not ev["errno"]} >= {
        ("/bin/echo", inside), ("/bin/echo", f"{inside}-2")}
    assert all(ev["container"] == name for ev in mine)
    assert execs and all(ev["container"] == name for ev in execs)
    assert outside not in audit.read_text()
