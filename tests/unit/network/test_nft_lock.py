"""The table lock (network/nft.py): a file lock per table whose file goes with the table, and
a process that waited on a removed file takes the new one, so two changes never overlap."""

from __future__ import annotations

import fcntl
import os
import threading
import time

import pytest

pytestmark = pytest.mark.unit

nft = pytest.importorskip("coi_sentinel.network.nft")


def make(tmp_path):
    try:
        return nft.Nft("coi_sentinel_tlock", lock_dir=tmp_path)
    except Exception as err:        # libnftables missing: NetworkError names the package
        pytest.skip(f"needs python3-nftables (scripts/setup.sh): {err}")


def held_by_other(path) -> bool:
    """Whether an exclusive lock is held on the file now at ``path``."""
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def test_the_lock_file_goes_with_the_table(tmp_path):
    a = make(tmp_path)
    path = tmp_path / "nft.inet.coi_sentinel_tlock.lock"
    with a.locked():
        assert path.exists() and held_by_other(path)
    assert path.exists()                # a table that stays keeps its file
    with a.locked():
        a.forget_lock()
    assert not path.exists()
    with a.locked():                    # the next change makes a new one
        assert held_by_other(path)


def test_a_waiter_on_a_removed_file_locks_the_new_one(tmp_path):
    holder, waiter = make(tmp_path), make(tmp_path)
    path = tmp_path / "nft.inet.coi_sentinel_tlock.lock"
    inside = threading.Event()
    waiting_done = threading.Event()
    seen: list[bool] = []

    def wait() -> None:
        with waiter.locked():
            inside.set()
            # while this thread holds it, the file at the path is the locked one
            seen.append(path.exists() and held_by_other(path))
            waiting_done.wait(10)

    with holder.locked():
        t = threading.Thread(target=wait)
        t.start()
        time.sleep(0.2)                 # the waiter blocks on the holder's file
        assert not inside.is_set()
        holder.forget_lock()
    assert inside.wait(10)
    waiting_done.set()
    t.join(10)
    assert seen == [True]
    assert path.exists()
