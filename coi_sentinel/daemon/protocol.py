"""The daemon's socket API: where the socket is, how a line is framed, what an error says.

One JSON object per line each way (docs/daemon.md lists the ops). A request carries ``op`` and
an optional ``id``; its answer repeats the ``id`` with ``"ok": true`` and the op's fields, or
``"ok": false`` with a one-line ``error`` and a ``code``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson

from ..errors import SentinelError

#: where the daemon listens unless told otherwise (``COI_SENTINEL_SOCKET`` for every client)
DEFAULT_SOCKET = "/run/coi-sentinel/sentinel.sock"
#: the group that may use the socket, by default the one that may use Incus
DEFAULT_GROUP = "incus-admin"
#: a request line longer than this is refused (rule files travel inside register)
MAX_LINE = 8 << 20
VERSION = 1

OPS = ("hello", "status", "register", "started", "unregister", "subscribe", "reload", "pause",
       "resume", "kill", "processes", "settle", "network")
STREAMS = ("events", "alerts", "actions", "status")

#: error codes
USAGE, DENIED, UNKNOWN_SCOPE, RULES, STATE, INTERNAL = (
    "usage", "denied", "unknown-scope", "rules", "state", "internal")


class DaemonError(SentinelError):
    """The daemon refused a request, or cannot be reached."""

    def __init__(self, message: str, *, code: str = INTERNAL, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.code = code


class DaemonUnavailable(DaemonError):
    """No daemon answers on the socket."""

    def __init__(self, path: str, why: str) -> None:
        super().__init__(f"no coi-sentinel daemon at {path}: {why}", code="unavailable",
                         hint="start one: sudo coi-sentinel daemon --detach")
        self.path = path


def socket_path(value: str | os.PathLike[str] | None = None) -> Path:
    return Path(value or os.environ.get("COI_SENTINEL_SOCKET") or DEFAULT_SOCKET)


def state_dir_of(sock: str | os.PathLike[str]) -> Path:
    """The daemon's state directory for a socket: ``/run/coi-sentinel/sentinel.sock`` ->
    ``/run/coi-sentinel/sentinel.d`` (so daemons on different sockets never share one)."""
    p = Path(sock)
    return p.with_name(p.stem + ".d")


def encode(obj: dict[str, Any]) -> bytes:
    return orjson.dumps(obj, default=str) + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as err:
        raise DaemonError(f"not a JSON line: {err}", code=USAGE) from None
    if not isinstance(obj, dict):
        raise DaemonError("a request is a JSON object", code=USAGE)
    return obj


def answer(req_id: Any, **fields: Any) -> dict[str, Any]:
    return {"id": req_id, "ok": True, **fields}


def failure(req_id: Any, err: BaseException) -> dict[str, Any]:
    code = getattr(err, "code", None) or (RULES if err.__class__.__name__.startswith("Rule") else INTERNAL)
    text = str(err)
    hint = getattr(err, "hint", None)
    if hint:
        text += f" ({hint})"
    return {"id": req_id, "ok": False, "error": text.splitlines()[0] if text else repr(err), "code": code}
