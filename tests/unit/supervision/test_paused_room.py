"""`resume-session` checks that the audit log's disk has room before it thaws (issue 17): a
session paused for a full disk would otherwise print "resumed" and be paused again at once."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.unit


def _in_tmpfs(script: str) -> subprocess.CompletedProcess:
    """Run ``script`` (Python) with a 512 KiB tmpfs at /mnt, in a user and mount namespace of
    its own (no root needed; nothing is mounted outside it)."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is missing")
    code = "import os, subprocess\n" + textwrap.dedent(script)
    shell = ("mount -t tmpfs -o size=512k coi-test /mnt && exec "
             f"{sys.executable} -c \"$0\"")
    res = subprocess.run(["unshare", "-rm", "sh", "-c", shell, code], capture_output=True,
                         text=True, timeout=30)
    if res.returncode != 0 and "mount" in res.stderr and "Traceback" not in res.stderr:
        pytest.skip(f"cannot mount a tmpfs in a user namespace here: {res.stderr.strip()}")
    return res


def test_a_full_disk_is_named_and_room_is_seen_again() -> None:
    res = _in_tmpfs("""
        from coi_sentinel.supervision.paused import audit_room
        fd = os.open("/mnt/fill", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while True:
                os.write(fd, bytes(4096))
        except OSError:
            os.close(fd)
        print(audit_room("/mnt/s.jsonl"))
        os.unlink("/mnt/fill")
        print(audit_room("/mnt/s.jsonl", 64 * 1024))
        print(sorted(os.listdir("/mnt")))
    """)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [
        "the disk of its audit log /mnt/s.jsonl is still full (ENOSPC)", "None", "[]"]
