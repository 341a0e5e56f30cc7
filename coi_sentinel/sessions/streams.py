"""A command in a container without a terminal, over the Incus exec API: stdin closed, stdout
and stderr streamed to callbacks as they come, the exit code returned.

(pylxd's ``execute`` does the same through a shared ws4py manager thread that sometimes dies
with a traceback on stderr when a command ends; each stream here has its own reader, on the
standard library's websocket client of :mod:`coi_sentinel.host.websocket`, and the end of a
command is decided by the operation and the streams' own end markers.)
"""

from __future__ import annotations

import logging
import threading
from typing import Callable, Mapping

from ..errors import IncusError
from ..host import incus
from ..host.websocket import BINARY, WebSocket

log = logging.getLogger(__name__)

#: how long the output streams may trail the end of the command
DRAIN_SECONDS = 5.0


class _Output(threading.Thread):
    """Reads one output stream into ``sink`` until its end: an empty text message (Incus'
    end of the stream) or the close of the connection."""

    def __init__(self, ws: WebSocket, sink: Callable[[bytes], None]) -> None:
        super().__init__(name="exec-output", daemon=True)
        self.ws, self.sink = ws, sink
        self.done = threading.Event()

    def run(self) -> None:
        sink: Callable[[bytes], None] | None = self.sink
        try:
            while True:
                message = self.ws.recv()
                if message is None:
                    return
                kind, data = message
                if data and sink is not None:
                    try:
                        sink(data)
                    except Exception as err:  # noqa: BLE001 - a closed stdout: the rest is read, not shown
                        log.debug("output of %s not shown any more: %s", self.ws.resource, err)
                        sink = None
                elif not data and kind != BINARY:
                    return              # an empty text message ends the stream
        except OSError as err:          # closed under us at the end, or the daemon went away
            log.debug("websocket %s: %s", self.ws.resource, err)
        finally:
            self.done.set()


def _check_there(client, name: str) -> None:
    """Raise :class:`IncusError` when an exec in ``name`` can no longer end: its container is
    gone or stopped."""
    try:
        state = incus.raw_get(client, f"instances/{name}")["status"]
    except IncusError as err:
        if "not found" in str(err).lower():
            raise IncusError(f"exec in {name}", "the container is gone") from err
        return
    if state in ("Stopped", "Error"):
        raise IncusError(f"exec in {name}", f"the container is {state.lower()}")


def exec_stream(client, name: str, command: list[str], *, environment: Mapping[str, str],
                uid: int | None, gid: int | None, cwd: str,
                stdout: Callable[[bytes], None], stderr: Callable[[bytes], None]) -> int:
    """Run ``command``; returns its exit code. Raises IncusError (translated) on API errors,
    including Incus' "Command not found" (127) and "Permission denied" (126) failures."""
    body = {"command": command, "environment": dict(environment), "wait-for-websocket": True,
            "interactive": False, "user": uid, "group": gid, "cwd": cwd}
    with incus.api_call(f"exec in {name}"):
        op = client.api.instances[name].exec.post(json=body).json()
    fds = op["metadata"]["metadata"]["fds"]
    op_url = op["operation"]
    base = f"/1.0/operations/{op_url.split('/')[-1].split('?')[0]}/websocket?secret="
    path = client.socket_path
    sockets: list[WebSocket] = []
    readers: list[_Output] = []
    try:
        with incus.api_call(f"exec in {name}"):
            stdin = WebSocket(path, base + fds["0"])
            sockets.append(stdin)
            for fd, sink in (("1", stdout), ("2", stderr)):
                ws = WebSocket(path, base + fds[fd])
                sockets.append(ws)
                readers.append(_Output(ws, sink))
                readers[-1].start()
            try:
                stdin.send("")          # an empty text message: stdin is at its end
            except OSError as err:      # the command ended and Incus closed first
                log.debug("stdin of %s already closed: %s", stdin.resource, err)
            result = client.operations.wait_for_operation(
                op_url, between=lambda: _check_there(client, name))
        for reader in readers:
            reader.done.wait(DRAIN_SECONDS)
    finally:
        for ws in sockets:
            ws.close()
    code = (result.metadata or {}).get("return")
    if code is None:
        raise IncusError(f"exec in {name}", f"no exit code ({result.err or 'operation ended'})")
    return int(code)
