"""The one place that talks to libnftables (python3-nftables, JSON API).

Every change is one JSON document, so one kernel transaction. Changes that depend on what is
in the table (removing the table once it is empty, replacing a hook) are read-then-write, so
they are made under an exclusive ``flock`` on a file per table: two `coi-sentinel` processes
starting and stopping sessions at once never act on a stale view.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import threading
from pathlib import Path
from typing import Iterator

from ..errors import NetworkError
from .naming import FAMILY

log = logging.getLogger(__name__)

LOCK_DIR = Path("/run/coi-sentinel")


def _first_error_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.startswith("Error:")]
    return (lines[0] if lines else text.strip().splitlines()[0] if text.strip() else "failed").strip()


class Nft:
    """A libnftables context for one table, with a process lock and a file lock."""

    def __init__(self, table: str, *, lock_dir: Path = LOCK_DIR) -> None:
        try:
            import nftables
        except ImportError as err:
            raise NetworkError("python3-nftables is not installed",
                               hint="apt-get install python3-nftables; make the venv with "
                                    "--system-site-packages") from err
        try:
            self._nft = nftables.Nftables()
        except OSError as err:
            raise NetworkError(f"libnftables does not load: {err}",
                               hint="apt-get install libnftables1") from err
        self._nft.set_json_output(True)
        self._nft.set_handle_output(True)
        self.table = table
        self._lock_path = lock_dir / f"nft.{FAMILY}.{table}.lock"
        self._mutex = threading.Lock()

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive access to the table for read-then-write changes (threads and processes)."""
        with self._mutex:
            fd = self._lock_file()
            try:
                yield
            finally:
                os.close(fd)

    @contextlib.contextmanager
    def in_process(self) -> Iterator[None]:
        """The context to this process's threads alone (libnftables' is not thread-safe): for
        a transaction that touches no table of others, so needs no file lock."""
        with self._mutex:
            yield

    def _lock_file(self) -> int:
        """The lock file, open and locked. A holder that saw the table go removes the file
        (:meth:`forget_lock`); a process that waited on it meanwhile holds a lock on a file
        without a name, so it opens the path again."""
        while True:
            try:
                self._lock_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError as err:
                raise NetworkError(f"cannot open the lock file {self._lock_path}: {err.strerror}",
                                   hint="run as root" if err.errno in (errno.EACCES, errno.EPERM) else None) from err
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                held = os.fstat(fd)
                try:
                    now = os.stat(self._lock_path)
                except FileNotFoundError:
                    now = None
            except BaseException:
                os.close(fd)
                raise
            if now is not None and (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino):
                return fd
            os.close(fd)

    def forget_lock(self) -> None:
        """Inside :meth:`locked`, once the table is gone (or was never made): its lock file goes
        too, so sessions and test tables leave nothing in the lock directory."""
        try:
            self._lock_path.unlink()
        except FileNotFoundError:
            pass
        except OSError as err:
            log.debug("cannot remove the lock file %s: %s", self._lock_path, err)

    def run(self, batch: dict, *, what: str, session: str | None = None) -> None:
        """Run one JSON document as one transaction; translate failures to NetworkError."""
        if not batch.get("nftables"):
            return
        rc, _out, err = self._nft.json_cmd(batch)
        if rc != 0:
            msg = _first_error_line(err)
            hint = "run as root" if "Operation not permitted" in err else None
            log.debug("nftables batch for %s failed: %s\n%s", what, err, batch)
            raise NetworkError(f"nftables: {what}: {msg}", session=session, hint=hint)

    def list_table(self) -> dict | None:
        """``list table inet <table>`` as libnftables JSON, or None if there is no such table."""
        rc, out, err = self._nft.json_cmd(
            {"nftables": [{"list": {"table": {"family": FAMILY, "name": self.table}}}]})
        if rc == 0:
            return out or {"nftables": []}
        if not self.table_exists():
            return None
        hint = "run as root" if "Operation not permitted" in err else None
        raise NetworkError(f"nftables: list table {FAMILY} {self.table}: {_first_error_line(err)}", hint=hint)

    def table_exists(self) -> bool:
        rc, out, err = self._nft.json_cmd({"nftables": [{"list": {"tables": None}}]})
        if rc != 0:
            hint = "run as root" if "Operation not permitted" in err else None
            raise NetworkError(f"nftables: list tables: {_first_error_line(err)}", hint=hint)
        return any("table" in item and item["table"].get("family") == FAMILY
                   and item["table"].get("name") == self.table for item in (out or {}).get("nftables", []))
