"""The Incus REST API over its unix socket with the standard library alone.

A session's start talks to Incus a dozen times before the agent's first instruction; pylxd
would first import requests, urllib3, cryptography and ws4py (a sixth of a second) and make
three round trips to connect. :class:`RestClient` is the part of pylxd's client shape that
coi-sentinel uses, on ``http.client``::

    client.api.instances[name].state.put(json={"action": "start"})   # a Response
    client.api.instances.get(params={"recursion": 1}).json()["metadata"]
    client.operations.wait_for_operation(operation_url)               # an Operation
    client.websocket_url                                              # ws+unix://... (ws4py)

Errors are :class:`APIError` (an answer that is not a success; :class:`NotFound` for 404) and
:data:`TRANSPORT_ERRORS` (the socket: ``ConnectionError``, with its errno when connecting
failed, and ``http.client.HTTPException``); :mod:`.incus` turns them into ours.
Keep-alive connections are pooled, so threads may share one client. Image uploads and
simplestreams copies stay with pylxd (:func:`coi_sentinel.host.incus.connect_pylxd`).
"""

from __future__ import annotations

import http.client
import json as jsonlib
import socket
import threading
from typing import Any
from urllib.parse import quote, urlencode

#: how long to wait for the socket's connect (seconds); answers may take as long as they take
CONNECT_TIMEOUT = 10.0
#: what pylxd accepts as success, per method (synchronous 200, created 201, background 202)
_ALLOWED = {"GET": (200,), "POST": (200, 201, 202), "PUT": (200, 202), "PATCH": (200, 202),
            "DELETE": (200, 202)}


#: what a call raises when the socket, not Incus, failed
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError, http.client.HTTPException)


def connect_unix(path: str) -> socket.socket:
    """A connected stream socket to ``path``; any failure is a ``ConnectionError`` (with the
    errno: ``EACCES`` without permission, ``ENOENT`` without a socket)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        s.settimeout(CONNECT_TIMEOUT)
        s.connect(path)
        s.settimeout(None)
    except OSError as err:
        s.close()
        if isinstance(err, ConnectionError):
            raise
        raise ConnectionError(err.errno, f"cannot connect to {path}: {err.strerror or err}") from err
    except BaseException:
        s.close()
        raise
    return s


class Response:
    """An answer, read in full: ``status_code``, ``headers``, ``content``, ``json()``."""

    __slots__ = ("status_code", "headers", "content", "request")

    def __init__(self, status_code: int, headers: dict[str, str], content: bytes, request: str) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content
        self.request = request          # "GET /1.0/..." (for error messages)

    def json(self) -> Any:
        return jsonlib.loads(self.content)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


class APIError(Exception):
    """Incus answered, with an error (its message is the answer's ``error``, or an
    operation's ``err``)."""

    def __init__(self, response: Response, message: str | None = None) -> None:
        super().__init__(message or _error_text(response))
        self.response = response


class NotFound(APIError):
    """404: no such object."""


def _error_text(response: Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text.strip() or f"HTTP {response.status_code}"
    if isinstance(data, dict):
        meta = data.get("metadata")
        if isinstance(meta, dict) and meta.get("err"):
            return str(meta["err"])
        if data.get("error"):
            return str(data["error"])
    return f"HTTP {response.status_code} on {response.request}"


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("incus")
        self.path = path

    def connect(self) -> None:
        self.sock = connect_unix(self.path)


class Operation:
    """A finished background operation: ``id``, ``status``, ``err`` and its ``metadata``."""

    __slots__ = ("id", "status", "status_code", "err", "metadata")

    def __init__(self, data: dict[str, Any]) -> None:
        self.id = data.get("id")
        self.status = data.get("status")
        self.status_code = data.get("status_code")
        self.err = data.get("err") or ""
        self.metadata = data.get("metadata")


def _wait_timed_out(body: dict) -> bool:
    """Incus' answer to ``/wait?timeout=N`` when the operation has not ended: an error
    document (sent with status 200) saying the deadline passed."""
    return body.get("type") == "error" and "deadline exceeded" in str(body.get("error"))


class _Operations:
    def __init__(self, client: "RestClient") -> None:
        self._client = client

    def wait_for_operation(self, operation: str, *, between=None, every: int = 5) -> Operation:
        """Wait until ``operation`` (its URL or id) ends: one ``/wait`` request, whose answer
        is the finished operation. A failed operation raises :class:`APIError` with its
        ``err``. With ``between`` (a callable that raises to stop waiting), the wait is asked
        ``every`` seconds at a time and ``between()`` called after each: an exec asked of a
        container that is then deleted while frozen never ends in Incus, so its caller checks
        that the container is still there."""
        op_id = operation.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        while True:
            response = self._client.api.operations[op_id].wait.get(
                params=None if between is None else {"timeout": every})
            body = response.json()
            if between is None or not _wait_timed_out(body):
                break
            between()
        meta = body.get("metadata")
        if not isinstance(meta, dict):
            raise APIError(response)
        code = meta.get("status_code")
        if (code is not None and not 200 <= code < 300) or meta.get("status") == "Failure":
            raise APIError(response, meta.get("err") or f"operation {op_id} failed")
        return Operation(meta)


class _Node:
    """One API path; ``node.child`` and ``node[name]`` go deeper, the methods call it."""

    __slots__ = ("_client", "_path")

    def __init__(self, client: "RestClient", path: str) -> None:
        self._client = client
        self._path = path

    def __getattr__(self, name: str) -> "_Node":
        if name.startswith("__"):
            raise AttributeError(name)
        return _Node(self._client, f"{self._path}/{name}")

    def __getitem__(self, item: Any) -> "_Node":
        return _Node(self._client, f"{self._path}/{quote(str(item), safe='/@:')}")

    def get(self, *, params: dict | None = None, is_api: bool = True, **kw: Any) -> Response:
        return self._client.request("GET", self._path, params=params, check=is_api, **kw)

    def post(self, **kw: Any) -> Response:
        return self._client.request("POST", self._path, **kw)

    def put(self, **kw: Any) -> Response:
        return self._client.request("PUT", self._path, **kw)

    def patch(self, **kw: Any) -> Response:
        return self._client.request("PATCH", self._path, **kw)

    def delete(self, **kw: Any) -> Response:
        return self._client.request("DELETE", self._path, **kw)


class RestClient:
    """The Incus API on ``socket_path``. Making one checks that the socket takes a connection
    (``OSError`` when not), which is closed at once: incusd's accept loop waits for the first
    bytes of each connection it accepts (it looks for STARTTLS), so a connection must never
    sit open before its first request: every other client of the daemon would wait for it.
    Only connections that carried a request are kept for the next one."""

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self._idle: list[_UnixConnection] = []
        self._lock = threading.Lock()
        probe = _UnixConnection(socket_path)
        probe.connect()
        probe.close()
        self.api = _Node(self, "/1.0")
        self.operations = _Operations(self)

    @property
    def websocket_url(self) -> str:
        """Where ws4py connects an operation's websockets (as pylxd gives it)."""
        return f"ws+unix://{self.socket_path}"

    def request(self, method: str, path: str, *, params: dict | None = None, json: Any = None,
                data: bytes | str | None = None, headers: dict[str, str] | None = None,
                check: bool = True) -> Response:
        """One request; the answer read in full. ``check``: a status pylxd would refuse
        raises :class:`APIError` (404: :class:`NotFound`); without it, any error status does."""
        url = path + (f"?{urlencode(params)}" if params else "")
        hdrs = dict(headers or {})
        body: bytes | None
        if json is not None:
            body = jsonlib.dumps(json).encode()
            hdrs.setdefault("Content-Type", "application/json")
        else:
            body = data.encode() if isinstance(data, str) else data
        response = self._send(method, url, body, hdrs)
        allowed = _ALLOWED[method] if check else range(200, 400)
        if response.status_code not in allowed:
            raise (NotFound if response.status_code == 404 else APIError)(response)
        return response

    def _send(self, method: str, url: str, body: bytes | None, headers: dict[str, str]) -> Response:
        conn, reused = self._take()
        try:
            try:
                conn.request(method, url, body=body, headers=headers)
                answer = conn.getresponse()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                if not reused:
                    raise
                # a kept-alive connection the daemon had closed: nothing was read, so the
                # request was not taken; once more on a new connection
                conn.close()
                conn, reused = _UnixConnection(self.socket_path), False
                conn.request(method, url, body=body, headers=headers)
                answer = conn.getresponse()
            content = answer.read()
        except BaseException:
            conn.close()
            raise
        response = Response(answer.status, dict(answer.getheaders()), content, f"{method} {url}")
        if answer.will_close:
            conn.close()
        else:
            with self._lock:
                self._idle.append(conn)
        return response

    def _take(self) -> tuple[_UnixConnection, bool]:
        """A kept connection, or a new one that is not connected yet (``request`` connects
        and sends at once)."""
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        return _UnixConnection(self.socket_path), False

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
