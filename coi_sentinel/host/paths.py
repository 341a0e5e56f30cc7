"""Where the session layer keeps its files on the host (XDG base directories).

Run through sudo (which on Debian sets HOME to /root), the user's home is the one of
``$SUDO_USER``: their config, profiles and credentials are read from it, and the audit logs and
saved sessions are written under it (owned by root, 0600/0700, so an agent running as that
user cannot rewrite them).

Run without root (a member of the daemon's group, docs/daemon.md "Without root"), the audit
logs are not the user's to place: the daemon, which is root, writes them in
:func:`user_audit_dir` (``/var/lib/coi-sentinel/audit/<uid>``, root's, readable by the user's
group), so a path the user names can never make root write somewhere else.
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path


def user_home() -> Path:
    """The invoking user's home: ``$SUDO_USER``'s when sudo left HOME at root's, else HOME."""
    sudo_user = os.environ.get("SUDO_USER")
    home = Path.home()
    if os.geteuid() == 0 and sudo_user and sudo_user != "root":
        try:
            root_home = Path(pwd.getpwuid(0).pw_dir)
            if home == root_home:
                return Path(pwd.getpwnam(sudo_user).pw_dir)
        except KeyError:
            pass
    return home


def _xdg(var: str, default: str) -> Path:
    value = os.environ.get(var)
    if value and os.path.isabs(value):
        return Path(value)
    return user_home() / default


def config_dir() -> Path:
    return _xdg("XDG_CONFIG_HOME", ".config") / "coi-sentinel"


def state_dir() -> Path:
    return _xdg("XDG_STATE_HOME", ".local/state") / "coi-sentinel"


def user_config_file() -> Path:
    return config_dir() / "config.toml"


def user_profiles_dir() -> Path:
    """Extra or overriding agent profiles of this user (``<tool>.yaml``)."""
    return config_dir() / "sessions"


def shared_audit_root() -> Path:
    """Where the daemon writes the audit logs of sessions run without root
    (``$COI_SENTINEL_AUDIT_ROOT``, default ``/var/lib/coi-sentinel/audit``)."""
    value = os.environ.get("COI_SENTINEL_AUDIT_ROOT")
    return Path(value) if value and os.path.isabs(value) else Path("/var/lib/coi-sentinel/audit")


def user_audit_dir(uid: int) -> Path:
    """The audit folder of the sessions of ``uid`` run without root (the daemon makes it)."""
    return shared_audit_root() / str(uid)


def audit_dir() -> Path:
    """The audit logs of this user's sessions: under their state folder when run as root,
    else the folder the daemon keeps for their uid."""
    uid = os.geteuid()
    return state_dir() / "audit" if uid == 0 else user_audit_dir(uid)


def audit_log(container: str) -> Path:
    return audit_dir() / f"{container}.jsonl"


def saved_sessions_dir() -> Path:
    return state_dir() / "sessions"


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) with mode 0700 for the new levels; return it."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path
