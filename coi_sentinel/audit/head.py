"""The sealed head of an audit log: where its chain ended, kept outside the log.

The hash chain shows lines edited, deleted or moved, but not lines cut from the end: a log
cut after any complete line still verifies. So each time the writer has written (and, by
policy, fsync'd) a batch, :class:`AuditLog` rewrites a small file beside the active file in
place, ``<stem>.head`` (``agent-1.jsonl`` -> ``agent-1.head``; :data:`SIZE` bytes, fsync'd when
created and at rotation and close)::

    {"record":"head","kind":"coi-sentinel-trace","chain":"<id>","file":3,"log":"agent-1.jsonl",
     "n":4120,"h":"<64 hex>","closed":false,"time":"...","seal":"<hmac-sha256 hex>"}   (padded)

``n``/``h`` are the last written line's ``_n``/``_h``. ``audit verify`` compares the end of the
chain it reads with the head: fewer records than the head names is a log cut from its end
(problem ``cut``). The head is written after the lines it names, so a crash leaves it behind
the log (an older head), never ahead of it.

``seal`` is an HMAC-SHA256 of the other fields under a key kept beside the logs
(``.head.key`` in the log's folder, 0600, created on first use; ``COI_SENTINEL_HEAD_KEY``
names another file): rewriting the head to match a cut log needs that key too, so it takes
what rewriting the logs takes (the folder is root's, 0700) plus knowing to do it. Whoever can
read the key can forge a head; keep a copy of the head (or of ``audit verify``'s printed hash)
elsewhere for more than that.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from pathlib import Path
from typing import Any

import orjson

from ..trace.format import KIND, iso_time

log = logging.getLogger(__name__)

#: the fields a head file must have, and their JSON types
FIELDS = {"record": str, "kind": str, "chain": str, "file": int, "log": str, "n": int, "h": str,
          "closed": bool, "time": str, "seal": str}
#: a head file is one short line; anything longer is not one
MAX_BYTES = 4096


def head_path(active: str | os.PathLike[str]) -> Path:
    """``dir/agent-1.jsonl`` -> ``dir/agent-1.head``."""
    p = Path(active)
    return p.with_name(p.name.partition(".")[0] + ".head")


def key_path(folder: str | os.PathLike[str]) -> Path:
    env = os.environ.get("COI_SENTINEL_HEAD_KEY")
    return Path(env) if env else Path(folder) / ".head.key"


def _read_key(path: Path) -> bytes | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    return data if len(data) >= 32 else None


def load_key(folder: str | os.PathLike[str], create: bool) -> bytes | None:
    """The head key of the logs in ``folder``; with ``create``, made (0600, atomically) when
    it does not exist."""
    path = key_path(folder)
    key = _read_key(path)
    if key is not None or not create:
        return key
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, secrets.token_bytes(32))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)          # fails if another writer made it first: use theirs
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    except OSError as err:
        log.warning("cannot create the audit head key %s: %s", path, err.strerror)
        return None
    return _read_key(path)


def _seal(key: bytes, body: dict[str, Any]) -> str:
    data = orjson.dumps({k: v for k, v in body.items() if k != "seal"}, option=orjson.OPT_SORT_KEYS)
    return hmac.new(key, data, hashlib.sha256).hexdigest()


#: a head file is this many bytes, rewritten in place (padded with spaces): one write of
#: unchanged size, no new inode, no rename
SIZE = 1024


class HeadFile:
    """The head file of one log, kept open. :meth:`write` overwrites it in place; it is
    fsync'd when created and when ``sync`` is asked (close, rotation). Without fsync a crash
    leaves an older head on disk - behind the log, which is still true - never a torn one:
    the file is one block that changes size never."""

    def __init__(self, path: Path, key: bytes | None, *, mode: int = 0o600) -> None:
        self.path = path
        self.key = key
        self.fd = -1
        try:
            self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
            if mode != 0o600:
                os.fchmod(self.fd, mode)            # whatever the umask
        except OSError as err:
            log.warning("audit head %s cannot be opened: %s", path, err.strerror)
        self._synced_once = False

    def write(self, *, chain: str, file: int, log_name: str, n: int, h: str, closed: bool,
              sync: bool = False) -> None:
        """Failures are logged: a head behind the log is still a true statement."""
        if self.fd < 0:
            return
        body: dict[str, Any] = {"record": "head", "kind": KIND, "chain": chain, "file": file,
                                "log": log_name, "n": n, "h": h, "closed": closed, "time": iso_time()}
        body["seal"] = _seal(self.key, body) if self.key is not None else ""
        data = orjson.dumps(body)
        if len(data) >= SIZE:
            log.warning("audit head %s: %d bytes do not fit in %d", self.path, len(data), SIZE)
            return
        data += b" " * (SIZE - 1 - len(data)) + b"\n"
        try:
            os.pwrite(self.fd, data, 0)
            if os.fstat(self.fd).st_size != SIZE:
                os.ftruncate(self.fd, SIZE)
            if sync or not self._synced_once:
                os.fsync(self.fd)
                self._synced_once = True
        except OSError as err:
            log.debug("audit head %s not written: %s", self.path, err.strerror)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class HeadError(ValueError):
    """A head file that cannot be used: the message says why, one line."""


def read(path: Path) -> dict[str, Any]:
    """The head file's fields, type-checked; :class:`HeadError` if it is not a head file,
    FileNotFoundError if there is none."""
    with open(path, "rb") as f:
        raw = f.read(MAX_BYTES + 1)
    if len(raw) > MAX_BYTES:
        raise HeadError("not a head file: too long")
    try:
        d = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise HeadError("not a head file: not JSON") from None
    if not isinstance(d, dict) or d.get("record") != "head" or d.get("kind") != KIND:
        raise HeadError("not a head file")
    for name, typ in FIELDS.items():
        value = d.get(name)
        if type(value) is not typ:
            raise HeadError(f"head field {name!r} is missing or of the wrong type")
    return d


def seal_ok(head: dict[str, Any], key: bytes) -> bool:
    return hmac.compare_digest(head["seal"], _seal(key, head))
