"""The Incus REST API over the daemon's unix socket, and the one place where the client's
exceptions become :class:`~coi_sentinel.errors.SessionError` subclasses.

:func:`connect` gives a :class:`~.incus_rest.RestClient` (the standard library alone: a
session's start makes a dozen calls before its agent's first instruction, and pylxd's imports
and connect would cost more than all of them); :func:`connect_pylxd` gives pylxd's client for
what only it does here (image uploads, simplestreams copies: ``coi-sentinel image``). Both have
the same ``client.api`` shape, so :func:`raw_get`, :func:`api_call` and :class:`InstanceFiles`
take either.

pylxd looks for LXD's socket paths, so the Incus socket is always given explicitly
(``$INCUS_SOCKET``, else ``$INCUS_DIR/unix.socket``, else ``/var/lib/incus/unix.socket``).
pylxd is imported only when a pylxd client is made: ``--help``, ``run`` and the unit tests never
need it.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sys
from typing import Any, Iterator

from ..errors import IncusError, IncusUnavailable
from . import incus_rest

log = logging.getLogger(__name__)

DEFAULT_DIR = "/var/lib/incus"


def incus_dir() -> str:
    return os.environ.get("INCUS_DIR") or DEFAULT_DIR


def socket_path() -> str:
    return os.environ.get("INCUS_SOCKET") or os.path.join(incus_dir(), "unix.socket")


def _pylxd():
    try:
        import pylxd  # noqa: PLC0415 - kept lazy on purpose
        import pylxd.exceptions  # noqa: F401
    except ImportError as err:
        raise IncusUnavailable(f"pylxd cannot be imported ({err})",
                               hint="run `bash scripts/setup-incus.sh venv`") from err
    return pylxd


def connect(socket: str | None = None) -> incus_rest.RestClient:
    """A client on the Incus socket, or :class:`IncusUnavailable` in one line."""
    socket = socket or socket_path()
    if not os.path.exists(socket):
        raise IncusUnavailable(f"no Incus daemon: {socket} does not exist",
                               hint="run `bash scripts/setup-incus.sh`")
    try:
        return incus_rest.RestClient(socket)
    except OSError as err:
        if err.errno in (errno.EACCES, errno.EPERM):
            raise IncusUnavailable(f"no permission to use {socket}", hint="run as root") from err
        raise IncusUnavailable(f"the Incus daemon does not answer on {socket}",
                               hint="start it with `bash scripts/setup-incus.sh daemon`") from err


def connect_pylxd(socket: str | None = None):
    """pylxd's Client on the Incus socket (image uploads and copies), or
    :class:`IncusUnavailable` in one line."""
    socket = socket or socket_path()
    pylxd = _pylxd()
    if not os.path.exists(socket):
        raise IncusUnavailable(f"no Incus daemon: {socket} does not exist",
                               hint="run `bash scripts/setup-incus.sh`")
    try:
        client = pylxd.Client(endpoint=socket)
    except pylxd.exceptions.ClientConnectionFailed as err:
        raise IncusUnavailable(f"the Incus daemon does not answer on {socket}",
                               hint="start it with `bash scripts/setup-incus.sh daemon`") from err
    except PermissionError as err:
        raise IncusUnavailable(f"no permission to use {socket}", hint="run as root") from err
    return client


def _pylxd_loaded() -> bool:
    """Whether a pylxd client may exist in this process (its errors are then ours to
    translate too); never imports it."""
    return "pylxd.exceptions" in sys.modules


def api_errors() -> tuple[type[BaseException], ...]:
    """What a client call raises when Incus refuses it or the socket fails."""
    errors: tuple[type[BaseException], ...] = (incus_rest.APIError, *incus_rest.TRANSPORT_ERRORS)
    if _pylxd_loaded():
        import requests  # noqa: PLC0415 - a pylxd dependency

        errors += (sys.modules["pylxd.exceptions"].LXDAPIException, requests.RequestException)
    return errors


def not_found() -> tuple[type[BaseException], ...]:
    """The "no such object" errors of the clients."""
    if _pylxd_loaded():
        return (incus_rest.NotFound, sys.modules["pylxd.exceptions"].NotFound)
    return (incus_rest.NotFound,)


def _lost_connection(err: BaseException) -> bool:
    if isinstance(err, incus_rest.TRANSPORT_ERRORS):
        return True
    requests = sys.modules.get("requests")
    return requests is not None and isinstance(err, requests.ConnectionError)


def _message(err: BaseException) -> str:
    response = getattr(err, "response", None)
    if response is not None:
        try:
            return response.json().get("error") or str(err)
        except ValueError:
            pass
    return str(err).splitlines()[0] if str(err) else type(err).__name__


@contextlib.contextmanager
def api_call(operation: str) -> Iterator[None]:
    """Translate pylxd/requests errors raised inside into :class:`IncusError` (one line)."""
    errors = api_errors()
    try:
        yield
    except errors as err:
        if _lost_connection(err):
            raise IncusUnavailable(f"{operation}: lost the connection to the Incus daemon") from err
        raise IncusError(operation, _message(err)) from err


def raw_get(client, path: str, **params: Any) -> Any:
    """GET an API path (``"instances"``, ``"images/aliases/x"``) and return its metadata."""
    node = client.api
    for part in path.split("/"):
        node = node[part]
    with api_call(f"GET /1.0/{path}"):
        return node.get(params=params or None).json()["metadata"]


class InstanceFiles:
    """A container's files through the Incus file API, in the shape staging and restore need."""

    def __init__(self, client, name: str) -> None:
        self.name = name
        self._files = client.api.instances[name].files
        self._not_found = not_found()

    def read(self, path: str) -> bytes | None:
        """The file's content, or None when it does not exist."""
        try:
            with api_call(f"read {path} in {self.name}"):
                response = self._files.get(params={"path": path}, is_api=False)
        except IncusError as err:
            if isinstance(err.__cause__, self._not_found):
                return None
            raise
        return response.content

    def mkdir(self, path: str, mode: int, uid: int, gid: int) -> None:
        """Create a directory; an existing one is fine (its owner and mode are kept)."""
        headers = {"X-Incus-type": "directory", "X-Incus-mode": f"{mode:04o}",
                   "X-Incus-uid": str(uid), "X-Incus-gid": str(gid)}
        try:
            with api_call(f"mkdir {path} in {self.name}"):
                self._files.post(params={"path": path}, headers=headers)
        except IncusError as err:
            if "exists" not in str(err).lower():
                raise

    def write(self, path: str, data: bytes, mode: int, uid: int, gid: int) -> None:
        headers = {"X-Incus-type": "file", "X-Incus-mode": f"{mode:04o}",
                   "X-Incus-uid": str(uid), "X-Incus-gid": str(gid),
                   "X-Incus-write": "overwrite"}
        with api_call(f"write {path} in {self.name}"):
            self._files.post(params={"path": path}, data=data, headers=headers)
