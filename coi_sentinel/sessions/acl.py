"""Write access to a root-owned workspace for the agent's unprivileged host uid, by POSIX ACL.

README's first run is `run` as root in the folder root just cloned. Mapping the agent onto
the workspace's owner would make it write as host root; instead the agent keeps the host uid
Incus gives it in an unprivileged container (the start of root's range in /etc/subuid plus
its uid in the container: 1001000 for 1000), and that uid gets read-write access to the tree
through an ACL entry (``user:1001000:rwX``, and the same as a default ACL on directories, so
files root adds later are writable too). Files the agent creates belong to that uid. Nothing
else changes: owners, modes for the owner and others, other ACL entries.

The ACL is written as the kernel's ``system.posix_acl_access`` / ``system.posix_acl_default``
extended attributes (linux/posix_acl_xattr.h), so no setfacl is needed.
"""

from __future__ import annotations

import errno
import os
import stat
import struct
from pathlib import Path

from ..errors import WorkspaceError

ACCESS = "system.posix_acl_access"
DEFAULT = "system.posix_acl_default"
_VERSION = 2
USER_OBJ, USER, GROUP_OBJ, GROUP, MASK, OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
_UNDEFINED = 0xFFFFFFFF
_HEAD = struct.Struct("<I")
_ENTRY = struct.Struct("<HHI")


def parse(data: bytes) -> list[tuple[int, int, int]]:
    """(tag, perm, id) entries of an ACL xattr."""
    if len(data) < _HEAD.size or _HEAD.unpack_from(data)[0] != _VERSION:
        raise ValueError("not a POSIX ACL")
    body = data[_HEAD.size:]
    return [_ENTRY.unpack_from(body, i) for i in range(0, len(body) - len(body) % _ENTRY.size, _ENTRY.size)]


def build(entries: list[tuple[int, int, int]]) -> bytes:
    entries = sorted(entries, key=lambda e: (e[0], e[2] if e[0] in (USER, GROUP) else 0))
    return _HEAD.pack(_VERSION) + b"".join(_ENTRY.pack(*e) for e in entries)


def _from_mode(mode: int) -> list[tuple[int, int, int]]:
    return [(USER_OBJ, (mode >> 6) & 7, _UNDEFINED), (GROUP_OBJ, (mode >> 3) & 7, _UNDEFINED),
            (OTHER, mode & 7, _UNDEFINED)]


def _with_user(entries: list[tuple[int, int, int]], uid: int, perm: int) -> list[tuple[int, int, int]]:
    out = [e for e in entries if not (e[0] == USER and e[2] == uid) and e[0] != MASK]
    out.append((USER, perm, uid))
    group_class = 0
    for tag, p, _id in out:
        if tag in (USER, GROUP, GROUP_OBJ):
            group_class |= p
    out.append((MASK, group_class, _UNDEFINED))
    return out


def _read(path: str, name: str) -> list[tuple[int, int, int]] | None:
    try:
        return parse(os.getxattr(path, name, follow_symlinks=False))
    except OSError as err:
        if err.errno == errno.ENODATA:
            return None
        raise
    except ValueError:
        return None


def has_user(path: Path, uid: int) -> bool:
    """Does ``path`` already grant ``uid`` read, write and search?"""
    try:
        entries = _read(str(path), ACCESS) or []
    except OSError:
        return False
    return any(tag == USER and i == uid and perm == 7 for tag, perm, i in entries)


def _grant_one(path: str, st: os.stat_result, uid: int) -> None:
    is_dir = stat.S_ISDIR(st.st_mode)
    perm = 7 if is_dir or st.st_mode & 0o111 else 6          # setfacl's rwX
    current = _read(path, ACCESS) or _from_mode(st.st_mode)
    os.setxattr(path, ACCESS, build(_with_user(current, uid, perm)), follow_symlinks=False)
    if is_dir:
        default = _read(path, DEFAULT) or _from_mode(st.st_mode)
        os.setxattr(path, DEFAULT, build(_with_user(default, uid, 7)), follow_symlinks=False)


def grant_tree(workspace: Path, uid: int, skip: tuple[str, ...] = ()) -> int:
    """Give ``uid`` rwX on every directory and file of ``workspace`` but the paths in ``skip``
    (relative: the protected paths, read-only in the container anyway) - symlinks and other
    mounts are left alone too; returns how many entries were changed. WorkspaceError if the
    file system has no ACLs."""
    top = os.lstat(workspace)
    skipped = {os.path.normpath(os.path.join(workspace, rel)) for rel in skip}
    changed = 0
    try:
        for root, dirs, files in os.walk(workspace):
            for name in [*dirs, *files]:
                path = os.path.join(root, name)
                if path in skipped:
                    if name in dirs:
                        dirs.remove(name)
                    continue
                st = os.lstat(path)
                if stat.S_ISLNK(st.st_mode) or st.st_dev != top.st_dev:
                    if name in dirs:
                        dirs.remove(name)
                    continue
                if stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode):
                    _grant_one(path, st, uid)
                    changed += 1
        _grant_one(str(workspace), top, uid)      # the top last: it marks the tree as done
    except OSError as err:
        hint = f"chown -R {uid}:{uid} {workspace}, or run in a folder of your own user"
        if err.errno in (errno.EOPNOTSUPP, errno.ENOTSUP):
            raise WorkspaceError(str(workspace), "is owned by root and its file system has no "
                                 "POSIX ACLs to let the agent's unprivileged uid write",
                                 hint=hint) from err
        raise WorkspaceError(str(workspace), f"cannot give the agent's uid {uid} access to "
                             f"{err.filename or workspace}: {err.strerror}", hint=hint) from err
    return changed + 1
