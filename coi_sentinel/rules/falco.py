"""Falco's vocabulary, mapped onto ours: priorities, event (syscall) names, field names.

A Falco rule file loads beside ours (docs/rules.md, "Porting from Falco"): the schema reads
``desc``/``priority`` and rule names with spaces, the resolver looks field names up here when
they are not ours, and ``evt.type`` compared with a syscall name becomes the event type (and,
for the syscalls our ``priv`` event stands for, ``priv.op``) that the probes report for it.

Everything Falco has and coi-sentinel cannot see gets one line that names it and says what to
use instead (:data:`UNSUPPORTED_FIELDS`, :data:`UNSUPPORTED_EVENTS`).
"""

from __future__ import annotations

import re

from .fields import FIELDS, FieldDef
from ..severity import ALIASES, FALCO_PRIORITIES, Severity

#: Falco's eight priorities -> our severities (Falco's ``info`` spelling too), read through the
#: one vocabulary (coi_sentinel.severity)
PRIORITIES: dict[str, Severity] = {
    name: ALIASES[name] for name in (*(p.lower() for p in FALCO_PRIORITIES), "info")}

#: syscall (Falco event) name -> (our event type label, priv.op or None)
EVENTS: dict[str, tuple[str, str | None]] = {
    **{n: ("exec", None) for n in ("execve", "execveat")},
    **{n: ("fork", None) for n in ("clone", "clone3", "fork", "vfork")},
    "procexit": ("exit", None),
    "connect": ("connect", None),
    **{n: ("dup", None) for n in ("dup", "dup2", "dup3")},
    **{n: ("net_send", None) for n in ("sendto", "sendmsg", "sendmmsg")},
    **{n: ("file_open", None) for n in ("open", "openat", "openat2", "creat")},
    **{n: ("rename", None) for n in ("rename", "renameat", "renameat2")},
    **{n: ("unlink", None) for n in ("unlink", "unlinkat")},
    **{n: ("chmod", None) for n in ("chmod", "fchmod", "fchmodat")},
    **{n: ("accept", None) for n in ("accept", "accept4")},
    "bind": ("bind", None),
    "listen": ("listen", None),
    **{n: ("link", None) for n in ("link", "linkat", "symlink", "symlinkat")},
    **{n: ("chdir", None) for n in ("chdir", "fchdir")},
    "ptrace": ("priv", "ptrace"),
    "mount": ("priv", "mount"),
    "unshare": ("priv", "unshare"),
    "setns": ("priv", "setns"),
    "init_module": ("priv", "init_module"),
    "finit_module": ("priv", "finit_module"),
    "io_uring_setup": ("priv", "io_uring_setup"),
    "io_uring_register": ("priv", "io_uring_register"),
    "process_vm_readv": ("priv", "process_vm_readv"),
    "process_vm_writev": ("priv", "process_vm_writev"),
    "memfd_create": ("priv", "memfd_create"),
    "bpf": ("priv", "bpf"),
    # no path and no open hook: an open by handle is its own record (wave 8 audit)
    **{n: ("priv", n) for n in ("open_by_handle_at", "name_to_handle_at", "setuid", "setresuid",
                                "setreuid", "pidfd_getfd", "fsopen", "fsmount", "move_mount",
                                "open_tree", "pivot_root", "chroot", "userfaultfd", "setgid",
                                "setresgid", "setregid", "capset")},
    **{n: ("priv", "chown") for n in ("chown", "fchown", "fchownat", "lchown")},
}

#: Falco event names we have no probe for -> what to use
UNSUPPORTED_EVENTS: dict[str, str] = {
    **{n: "reads are not probed; a read of a sensitive path is an open (evt.type = open)"
       for n in ("read", "pread", "readv", "recvfrom")},
    "recvmsg": "reads are not probed; a recvmsg that receives fds (SCM_RIGHTS) is a priv record "
               "(priv.op = scm_rights)",
    **{n: "writes are summarised per file as file_write and per socket as net_send"
       for n in ("write", "pwrite", "writev")},
    **{n: "not probed; the file's later open, rename or chmod is"
       for n in ("mkdir", "mkdirat", "rmdir", "close", "socket", "fcntl")},
    "prctl": "not probed; privilege changes are priv records (priv.op = setuid...) and user.uid",
    "umount": "not probed; mounts are (evt.type = mount)",
    "umount2": "not probed; mounts are (evt.type = mount)",
    "container": "container lifecycle events are not probed; container.name is on every event",
    "k8s": "Kubernetes audit events are not collected",
}

#: Falco field -> our field with the same meaning
FIELD_ALIASES: dict[str, str] = {
    "fd.name": "file.path",
    "fd.directory": "file.dir",
    "fd.filename": "file.name",
    "fd.sip": "net.dip",
    "fd.rip": "net.dip",
    "fd.sport": "net.dport",
    "fd.rport": "net.dport",
    "proc.exepath": "proc.exe",
    "proc.pexepath": "proc.pexe",
    "proc.aexepath": "proc.aexe",
    "proc.is_exe_from_memfd": "proc.exe_from_memfd",
    "thread.tid": "proc.tid",
    "group.gid": "user.gid",
    "container.id": "container.name",
    "evt.num": "evt.time",
    "evt.rawtime": "evt.time",
}

_NO_SOCK_LOCAL = "the local end of a connect is not recorded: use fd.sip / fd.sport (the remote end)"
#: Falco fields (or prefixes ending in '.') we have no data for -> what to use
UNSUPPORTED_FIELDS: dict[str, str] = {
    "proc.tty": "terminals are not recorded: use proc.is_shell and proc.pname for interactive shells",
    "proc.cwd": "the working directory is not recorded: use file.path",
    "proc.env": "the environment is not recorded",
    "proc.sid": "sessions are not recorded: use proc.aname or session.id",
    "proc.sname": "sessions are not recorded: use proc.aname",
    "proc.vpgid": "process groups are not recorded: use proc.aname",
    "proc.loginshellid": "login shells are not recorded: use proc.aname",
    "proc.duration": "process age is not recorded",
    "proc.is_container_healthcheck": "container health checks are not known to coi-sentinel",
    "proc.is_container_liveness_probe": "container probes are not known to coi-sentinel",
    "proc.is_container_readiness_probe": "container probes are not known to coi-sentinel",
    "proc.is_exe_upper_layer": "overlay layers are not recorded: use proc.exe startswith",
    "proc.is_exe_writable": "file permissions are not recorded: use proc.exe startswith /tmp ...",
    "proc.exe_ino": "inodes are not recorded: use proc.exe",
    "fd.cip": _NO_SOCK_LOCAL,
    "fd.cport": _NO_SOCK_LOCAL,
    "fd.lip": _NO_SOCK_LOCAL,
    "fd.lport": _NO_SOCK_LOCAL,
    "fd.l4proto": "the transport protocol is not recorded: use fd.sport",
    "fd.sip.name": "DNS names are not recorded: match fd.sip with cidr",
    "fd.rip.name": "DNS names are not recorded: match fd.sip with cidr",
    "fd.snet": "use fd.sip cidr (NETWORKS)",
    "fd.rnet": "use fd.sip cidr (NETWORKS)",
    "fd.net": "use fd.sip cidr (NETWORKS)",
    "fd.ino": "inodes are not recorded: use fd.name",
    "fd.dev": "devices are not recorded: use fd.name",
    "fd.nameraw": "use fd.name",
    "fd.containername": "use container.name and fd.name",
    "user.loginuid": "login uids are not recorded: use user.uid",
    "user.loginname": "login uids are not recorded: use user.name",
    "user.homedir": "use file.path endswith ... (paths relative to a home work as suffixes)",
    "user.shell": "use proc.is_shell",
    "group.name": "use user.gid",
    "evt.arg.": "syscall arguments are named fields here: see `coi-sentinel rules fields`",
    "evt.rawarg.": "syscall arguments are named fields here: see `coi-sentinel rules fields`",
    "evt.args": "syscall arguments are named fields here: see `coi-sentinel rules fields`",
    "evt.is_open_exec": "use evt.type = execve (the exec itself)",
    "evt.category": "use evt.type",
    "evt.buffer": "data buffers are not recorded",
    "evt.latency": "syscall latency is not recorded",
    "container.image": "containers are Incus instances without image metadata: use container.name",
    "container.image.": "containers are Incus instances without image metadata: use container.name",
    "container.privileged": "container configuration is not recorded: use container.name",
    "container.mounts": "container configuration is not recorded",
    "container.mount.": "container configuration is not recorded",
    "container.type": "every container is an Incus instance: use not container.is_host",
    "container.start_ts": "not recorded",
    "k8s.": "Kubernetes metadata is not collected: use container.name",
    "ka.": "Kubernetes audit events are not collected",
    "fs.path.": "use file.path / file.oldpath",
}

_HEX = re.compile(r"^(?:[0-9a-fA-F]{2})+$")


def field_def(name: str) -> FieldDef | None:
    """Our field of that name, or of the Falco name that means the same."""
    fdef = FIELDS.get(name)
    if fdef is None and name in FIELD_ALIASES:
        fdef = FIELDS.get(FIELD_ALIASES[name])
    return fdef


def unsupported_field(name: str) -> str | None:
    """What to use instead of a Falco field we do not have, or None if it is not one."""
    base = name.split("[", 1)[0]
    if base in UNSUPPORTED_FIELDS:
        return UNSUPPORTED_FIELDS[base]
    for prefix, advice in UNSUPPORTED_FIELDS.items():
        if prefix.endswith(".") and base.startswith(prefix):
            return advice
    return None


def hex_bytes(text: str) -> str:
    """``bcontains 6c73`` -> the text ``ls``: Falco's byte operators take hex."""
    if not _HEX.match(text):
        raise ValueError(f"'{text}' is not hex bytes (like 2f746d70 for /tmp)")
    return bytes.fromhex(text).decode("utf-8", "surrogateescape")


def slug(name: str) -> str:
    """A Falco rule name (``Read sensitive file untrusted``) -> a stable rule id
    (``read_sensitive_file_untrusted``): lower case, runs of other characters as one '_'."""
    out = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    return out or "rule"
