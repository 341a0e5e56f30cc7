"""A websocket client (RFC 6455) on the Incus unix socket, for an exec operation's streams.

What a command without a terminal needs and no more: the opening handshake, binary and text
messages (fragmented or not) read as they come, pings answered, an empty text message sent
(Incus reads it as the end of stdin), and the closing handshake. No extensions, no TLS. The
standard library alone: ws4py (with pyOpenSSL behind it) costs a twentieth to a fifth of a
second to import, on the path to every session's first instruction.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import struct
import threading

from .incus_rest import CONNECT_TIMEOUT, APIError, Response, connect_unix

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
#: a message longer than this is refused (a command's output comes in pieces of a few KiB)
MAX_MESSAGE = 64 << 20


class WebSocketClosed(ConnectionError):
    """The connection ended without a closing handshake, or broke the protocol."""


def accept_key(key: str) -> str:
    """What the server answers in ``Sec-WebSocket-Accept`` to ``Sec-WebSocket-Key: key``."""
    return base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()


def mask(key: bytes, data: bytes) -> bytes:
    """``data`` XOR the repeated 4-byte ``key`` (a client masks every frame it sends)."""
    if not data:
        return data
    n = len(data)
    pad = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(pad, "big")).to_bytes(n, "big")


def frame(opcode: int, payload: bytes, *, key: bytes | None = None) -> bytes:
    """One final frame of ``opcode``, masked with ``key`` (random when not given)."""
    key = key if key is not None else os.urandom(4)
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return head + key + mask(key, payload)


class WebSocket:
    """One websocket to ``resource`` (``/1.0/operations/<id>/websocket?secret=...``) on the
    Incus socket at ``socket_path``; connected on creation. :meth:`recv` is for one reader
    thread; :meth:`send` and :meth:`close` may come from any thread."""

    # (the handshake goes out as soon as the socket connects: incusd's accept loop waits for
    # a new connection's first bytes, see .incus_rest.RestClient)
    def __init__(self, socket_path: str, resource: str) -> None:
        self.resource = resource
        self._buf = b""
        self._send_lock = threading.Lock()
        self._close_sent = False
        self.closed = False
        self._sock = connect_unix(socket_path)
        try:
            self._sock.settimeout(CONNECT_TIMEOUT)
            self._handshake()
            self._sock.settimeout(None)
        except BaseException:
            self._sock.close()
            self.closed = True
            raise

    # ---------------------------------------------------------------- opening
    def _handshake(self) -> None:
        key = base64.b64encode(os.urandom(16)).decode()
        self._sock.sendall((f"GET {self.resource} HTTP/1.1\r\nHost: incus\r\n"
                            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        while b"\r\n\r\n" not in self._buf:
            self._fill("the websocket handshake")
            if len(self._buf) > 65536:
                raise WebSocketClosed(f"{self.resource}: the handshake's answer is too long")
        head, self._buf = self._buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if status != 101:
            # an error answer (its JSON body, as far as it came with the head)
            raise APIError(Response(status, headers, self._buf, f"GET {self.resource}"))
        if headers.get("sec-websocket-accept") != accept_key(key):
            raise WebSocketClosed(f"{self.resource}: the server's handshake answer is wrong")

    def _fill(self, what: str) -> None:
        data = self._sock.recv(65536)
        if not data:
            raise WebSocketClosed(f"{self.resource}: the connection ended during {what}")
        self._buf += data

    def _read(self, n: int) -> bytes:
        while len(self._buf) < n:
            self._fill("a frame")
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    # ---------------------------------------------------------------- messages
    def recv(self) -> tuple[int, bytes] | None:
        """The next message, ``(TEXT or BINARY, payload)``; None once the server closed
        (its close is answered). Pings are answered on the way."""
        opcode, parts, size = None, [], 0
        while True:
            b0, b1 = self._read(2)
            fin, op, n = b0 & 0x80, b0 & 0x0F, b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._read(8))[0]
            key = self._read(4) if b1 & 0x80 else None
            if n > MAX_MESSAGE or size + n > MAX_MESSAGE:
                raise WebSocketClosed(f"{self.resource}: a message of more than {MAX_MESSAGE} bytes")
            payload = self._read(n)
            if key is not None:
                payload = mask(key, payload)
            if op == CLOSE:
                self._send_close(payload[:2])
                self.closed = True
                return None
            if op == PING:
                self._send(PONG, payload)
                continue
            if op == PONG:
                continue
            if op != CONTINUATION:
                opcode = op
            elif opcode is None:
                raise WebSocketClosed(f"{self.resource}: a continuation with nothing to continue")
            parts.append(payload)
            size += n
            if fin:
                return opcode, b"".join(parts)

    def send(self, payload: bytes | str) -> None:
        """A text message (for a ``str``) or a binary one."""
        if isinstance(payload, str):
            self._send(TEXT, payload.encode())
        else:
            self._send(BINARY, payload)

    def _send(self, opcode: int, payload: bytes) -> None:
        with self._send_lock:
            if self._close_sent:
                raise WebSocketClosed(f"{self.resource}: closed")
            self._sock.sendall(frame(opcode, payload))

    def _send_close(self, code: bytes = b"") -> None:
        with self._send_lock:
            if self._close_sent:
                return
            self._close_sent = True
            try:
                self._sock.sendall(frame(CLOSE, code or struct.pack("!H", 1000)))
            except OSError:
                pass                  # the server is gone already

    # ---------------------------------------------------------------- closing
    def close(self) -> None:
        """Say goodbye (a close frame, if none was sent) and close the connection; the
        reader's :meth:`recv` then ends (None, or :class:`WebSocketClosed`)."""
        self._send_close()
        self.closed = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
