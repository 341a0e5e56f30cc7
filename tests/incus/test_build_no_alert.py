"""A build is no fork bomb: `make -j2` of 200 C files and a loop of 2,000 short execs inside a
monitored session raise no alert (the fork bomb rule counts processes that stay alive)."""

from __future__ import annotations

import json
import os

import pytest

from incus_support import AGENT_UID, require_incus
from support import require_bpf

pytestmark = [pytest.mark.incus, pytest.mark.bpf]

BUILD_IMAGE = "coi/debian12-build"
FILES = 200
EXECS = 2000


def test_make_j2_and_an_exec_loop_raise_no_alert(env):
    require_bpf()
    require_incus(BUILD_IMAGE)      # skips naming `image build --variant build` when missing
    src = env.ws / "src"
    src.mkdir()
    for i in range(FILES):
        (src / f"f{i}.c").write_text(f"int f{i}(int x) {{ return x * {i} + 1; }}\n")
    (src / "main.c").write_text("int f0(int);\nint main(void) { return f0(0) == 1 ? 0 : 1; }\n")
    objs = " ".join(f"f{i}.o" for i in range(FILES))
    (src / "Makefile").write_text(f"prog: main.o {objs}\n\t$(CC) -o $@ $^\n\n%.o: %.c\n\t$(CC) -O1 -c $<\n")
    (env.ws / "work.sh").write_text(
        "set -e\nmake -s -j2 -C /workspace/src\n/workspace/src/prog\n"
        f"i=0\nwhile [ $i -lt {EXECS} ]; do /bin/true; i=$((i + 1)); done\necho built and looped\n")
    for path in [src, *src.iterdir(), env.ws / "work.sh"]:
        os.chown(path, AGENT_UID, AGENT_UID)
    env.config(image=BUILD_IMAGE, monitoring=True)
    r = env.run("run", "--", "sh", "/workspace/work.sh", timeout=900)
    assert r.code == 0, (r.out, r.err)
    assert r.out == "built and looped\n", (r.out, r.err)
    [audit] = (env.home / ".local/state/coi-sentinel/audit").glob("*.jsonl")
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    alerts = [r for r in records if r.get("record") == "alert"]
    assert alerts == []
    # the monitor saw the work: every compiler run and every exec of the loop
    execs = [r for r in records if r.get("type") == "exec" and not r.get("errno")]
    forks = [r for r in records if r.get("type") == "fork"]
    assert sum(1 for e in execs if e["filename"].endswith("bin/true")) == EXECS, len(execs)
    assert sum(1 for e in execs if e["filename"].endswith("/cc1")) == FILES + 1
    assert len(forks) >= EXECS + 2 * FILES
    assert not [r for r in records if r.get("record") == "action"]
