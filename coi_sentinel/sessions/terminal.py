"""The user's terminal attached to a command in a container, over the Incus exec API.

An interactive exec gives two websockets: the pty (both ways) and a control channel (window
size). The local terminal is put in raw mode; keys go to the pty, the pty's output to stdout,
SIGWINCH becomes a ``window-resize`` message. ``notices`` (its ``text()`` polled ten times a
second) writes text of the host's own onto the terminal (the monitor's action blocks); when its
``detach`` becomes true (the session was paused: its tmux no longer answers) the terminal is
given back at once, without waiting for the command. Returns when the command ends (for
``tmux attach``: when the user detaches or the session ends) with its exit code.
"""

from __future__ import annotations

import json
import logging
import os
import select
import shutil
import signal
import sys
import termios
import threading
import tty
from typing import Mapping, Protocol

from ..host import incus

log = logging.getLogger(__name__)


class Notices(Protocol):
    detach: bool

    def text(self) -> bytes: ...


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


def _clients():
    WebSocketClient = quiet_client_class()

    class PtyOutput(WebSocketClient):
        def __init__(self, url: str, out_fd: int) -> None:
            super().__init__(url, exclude_headers=["Origin"])
            self.out_fd = out_fd
            self.done = threading.Event()

        def received_message(self, message) -> None:
            data = message.data
            if data:
                os.write(self.out_fd, data if isinstance(data, bytes) else data.encode())
            elif not message.is_binary:
                self.done.set()        # Incus' end-of-output marker: an empty text message

        def closed(self, code, reason=None) -> None:
            self.done.set()

    class Control(WebSocketClient):
        def __init__(self, url: str, done: threading.Event) -> None:
            super().__init__(url, exclude_headers=["Origin"])
            self.done = done

        def received_message(self, message) -> None:
            return None

        def closed(self, code, reason=None) -> None:
            self.done.set()            # Incus closes the control channel when the command ends

    return PtyOutput, Control


def attach(client, name: str, command: list[str], *, environment: Mapping[str, str],
           uid: int, gid: int, cwd: str, stdin_fd: int | None = None,
           stdout_fd: int | None = None, notices: Notices | None = None) -> int:
    stdin_fd = sys.stdin.fileno() if stdin_fd is None else stdin_fd
    stdout_fd = sys.stdout.fileno() if stdout_fd is None else stdout_fd
    cols, rows = shutil.get_terminal_size((80, 24))
    body = {"command": command, "environment": dict(environment), "wait-for-websocket": True,
            "interactive": True, "width": cols, "height": rows, "user": uid, "group": gid,
            "cwd": cwd}
    with incus.api_call(f"attach to {name}"):
        op = client.api.instances[name].exec.post(json=body).json()
    fds = op["metadata"]["metadata"]["fds"]
    op_url = op["operation"]
    op_id = op_url.split("/")[-1].split("?")[0]
    PtyOutput, Control = _clients()
    url = client.websocket_url
    pty = PtyOutput(url, stdout_fd)
    pty.resource = f"/1.0/operations/{op_id}/websocket?secret={fds['0']}"
    ctl = Control(url, pty.done)
    ctl.resource = f"/1.0/operations/{op_id}/websocket?secret={fds['control']}"
    with incus.api_call(f"attach to {name}"):
        pty.connect()
        ctl.connect()

    def resize(_sig=None, _frame=None) -> None:
        c, r = shutil.get_terminal_size((80, 24))
        try:
            ctl.send(json.dumps({"command": "window-resize",
                                 "args": {"width": str(c), "height": str(r)}}))
        except Exception as err:  # ws4py raises plain socket errors once the peer is gone
            log.debug("resize not sent: %s", err)

    # the command's end is told by its operation: the websockets may stay open after it
    result: dict = {}

    def wait_op() -> None:
        try:
            result["op"] = client.operations.wait_for_operation(op_url)
        except Exception as err:  # re-raised (translated) in the main thread below
            result["error"] = err
        finally:
            pty.done.set()

    waiter = threading.Thread(target=wait_op, name=f"exec-{name}", daemon=True)
    waiter.start()
    old_winch = signal.signal(signal.SIGWINCH, resize) if os.isatty(stdout_fd) else None
    old_tty = None
    if os.isatty(stdin_fd):
        old_tty = termios.tcgetattr(stdin_fd)
        tty.setraw(stdin_fd)
    try:
        # when the command ends Incus closes the control channel and sends an empty message on
        # the pty; it completes the operation only once we close the pty's websocket (below)
        while not pty.done.is_set():
            ready, _, _ = select.select([stdin_fd], [], [], 0.1)
            if notices is not None:
                text = notices.text()
                if text:
                    os.write(stdout_fd, text)
                if notices.detach:
                    break
            if ready:
                data = os.read(stdin_fd, 4096)
                if not data:
                    break
                try:
                    pty.send(data, binary=True)
                except OSError:
                    break
    finally:
        if old_tty is not None:
            termios.tcsetattr(stdin_fd, termios.TCSADRAIN, old_tty)
        if old_winch is not None:
            signal.signal(signal.SIGWINCH, old_winch)
        for ws in (pty, ctl):
            if not ws.terminated:
                try:
                    ws.close()
                except (OSError, RuntimeError):   # closed by the server meanwhile
                    pass
    if notices is not None and notices.detach:
        return 0                    # the command is frozen: its operation ends when it is thawed
    waiter.join(timeout=15)
    if "error" in result:
        with incus.api_call(f"attach to {name}"):
            raise result["error"]
    op = result.get("op")
    return int(((op.metadata if op is not None else None) or {}).get("return", 0))
