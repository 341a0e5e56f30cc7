"""A command in a container without a terminal, over the Incus exec API: stdin closed, stdout
and stderr streamed to callbacks as they come, the exit code returned.

(pylxd's ``execute`` does the same through a shared ws4py manager thread that sometimes dies
with a traceback on stderr when a command ends; each stream here has its own reader and the
end of a command is decided by the operation and the streams' own end markers.)
"""

from __future__ import annotations

import logging
import threading
from typing import Callable, Mapping

from ..errors import IncusError
from . import incus

log = logging.getLogger(__name__)

#: how long the output streams may trail the end of the command
DRAIN_SECONDS = 5.0


def quiet_client_class():
    """ws4py's threaded client that does not log a traceback when Incus resets a websocket at
    the end of a command (it does, routinely)."""
    from ws4py.client.threadedclient import WebSocketClient  # noqa: PLC0415 - pylxd's dependency

    class QuietClient(WebSocketClient):
        """Also: ws4py starts the reader thread inside connect() (handshake_ok) and then parses
        the bytes that came with the handshake on the calling thread, so a command that ends at
        once has two threads on one parser. Here the thread starts after connect() is done."""

        def handshake_ok(self) -> None:
            return None

        def connect(self) -> None:
            super().connect()
            self._th.start()

        def unhandled_error(self, error) -> None:
            log.debug("websocket %s: %s", self.resource, error)

    return QuietClient


def _client_classes():
    WebSocketClient = quiet_client_class()

    class Output(WebSocketClient):
        def __init__(self, url: str, sink: Callable[[bytes], None]) -> None:
            super().__init__(url, exclude_headers=["Origin"])
            self.sink = sink
            self.done = threading.Event()

        def received_message(self, message) -> None:
            data = message.data
            if data:
                self.sink(data if isinstance(data, bytes) else data.encode())
            elif not message.is_binary:
                self.done.set()           # an empty text message ends the stream

        def closed(self, code, reason=None) -> None:
            self.done.set()

    class Stdin(WebSocketClient):
        def __init__(self, url: str) -> None:
            super().__init__(url, exclude_headers=["Origin"])

        def opened(self) -> None:
            try:
                self.send(b"", binary=False)  # EOF: the command reads nothing
            except (OSError, RuntimeError) as err:  # the command ended and Incus closed first
                log.debug("stdin of %s already closed: %s", self.resource, err)

    return Output, Stdin


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
    Output, Stdin = _client_classes()
    url = client.websocket_url
    outs = [Output(url, stdout), Output(url, stderr)]
    stdin = Stdin(url)
    sockets = [stdin, *outs]
    try:
        with incus.api_call(f"exec in {name}"):
            for ws, fd in zip(sockets, ("0", "1", "2")):
                ws.resource = base + fds[fd]
                ws.connect()
            result = client.operations.wait_for_operation(op_url)
        for out in outs:
            out.done.wait(DRAIN_SECONDS)
    finally:
        for ws in sockets:
            if not ws.terminated:
                try:
                    ws.close()
                except (OSError, RuntimeError):   # closed by the server meanwhile
                    pass
    code = (result.metadata or {}).get("return")
    if code is None:
        raise IncusError(f"exec in {name}", f"no exit code ({result.err or 'operation ended'})")
    return int(code)
