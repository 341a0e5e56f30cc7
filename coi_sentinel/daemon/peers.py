"""What a peer that is not root may ask of the daemon: its own sessions, nothing else.

The daemon is the only root process of a session run by a member of its group (docs/daemon.md,
"Without root"). Such a peer is known by ``SO_PEERCRED``; what it names is checked here before
root acts on it:

* a session is the peer's when the process that owns it (``user.coi.keeper`` in the container's
  Incus config: boot id, pid and start time, see :mod:`coi_sentinel.host.owner`) is alive and
  runs as the peer's uid. The daemon reads that config itself, over its own Incus client; the
  peer cannot name another user's ``run`` as the owner of a container, since that process runs
  as the other uid;
* the audit log of its session is not a path of its choosing: the daemon writes it in the
  folder it keeps for the uid (:func:`coi_sentinel.host.paths.user_audit_dir`, root's,
  group the user's primary group, 2750), so no name the peer gives makes root write elsewhere.
"""

from __future__ import annotations

import logging
import os
import pwd
from pathlib import Path

from ..errors import IncusError, SentinelError
from ..host import incus, paths
from ..host.owner import keeper_alive
from . import protocol as P

log = logging.getLogger(__name__)

KEEPER_KEY = "user.coi.keeper"


def process_uid(pid: int) -> int | None:
    """The real uid of a living process, None when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Uid:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def session_owner(client, name: str) -> int:
    """The uid of the process that owns session ``name`` (DaemonError when there is none)."""
    try:
        inst = incus.raw_get(client, f"instances/{name}")
    except IncusError as err:
        if "not found" in str(err).lower():
            raise P.DaemonError(f"no session named {name!r}", code=P.UNKNOWN_SCOPE) from None
        raise
    config = inst.get("config") or {}
    if config.get("user.coi.managed") != "true":
        raise P.DaemonError(f"{name} is not a coi-sentinel session", code=P.DENIED)
    token = config.get(KEEPER_KEY, "")
    uid = process_uid(int(token.split(":")[1])) if keeper_alive(token) else None
    if uid is None:
        raise P.DaemonError(f"{name} has no living owner", code=P.DENIED)
    return uid


def check_session(client, name: str, uid: int) -> None:
    """Root may act on every session; another peer only on one its own process owns."""
    if uid == 0:
        return
    if not isinstance(name, str) or not name:
        raise P.DaemonError("a session name is needed", code=P.USAGE)
    owner = session_owner(client, name)
    if owner != uid:
        raise P.DaemonError(f"{name} belongs to uid {owner}", code=P.DENIED)


def audit_path(uid: int, name: str) -> Path:
    """Where the daemon writes the audit log of session ``name`` of a peer that is not root."""
    return paths.user_audit_dir(uid) / f"{name}.jsonl"


def check_audit(uid: int, name: str, asked: str) -> None:
    """A peer that is not root names the one audit path :func:`audit_path` gives."""
    if uid == 0:
        return
    want = audit_path(uid, name)
    if Path(asked) != want:
        raise P.DaemonError(f"the audit log of {name} is {want}, not {asked}: the daemon keeps "
                            "the audit logs of sessions run without root", code=P.DENIED)


def audit_folder(uid: int) -> Path:
    """Make (or check) the folder of ``uid``'s audit logs: root's, its group the user's primary
    group, 2750 (the log files in it are 0640, see :func:`coi_sentinel.audit.log.file_mode`)."""
    folder = paths.user_audit_dir(uid)
    try:
        gid = pwd.getpwuid(uid).pw_gid
    except KeyError:
        raise P.DaemonError(f"uid {uid} has no entry in the user database", code=P.DENIED) from None
    try:
        for level in (folder.parent.parent, folder.parent):     # /var/lib/coi-sentinel/audit
            level.mkdir(mode=0o755, parents=True, exist_ok=True)
            st = os.stat(level)
            if st.st_uid == 0 and st.st_mode & 0o055 != 0o055:
                os.chmod(level, st.st_mode | 0o755)           # whatever the umask made
        folder.mkdir(mode=0o700, exist_ok=True)
        st = os.lstat(folder)
        if st.st_uid != 0 or not os.path.isdir(folder) or os.path.islink(folder):
            raise P.DaemonError(f"{folder} is not root's folder", code=P.STATE)
        if st.st_gid != gid:
            os.chown(folder, 0, gid, follow_symlinks=False)
        os.chmod(folder, 0o2750)
    except OSError as err:
        raise SentinelError(f"cannot make the audit folder {folder}: {err.strerror}") from err
    return folder
