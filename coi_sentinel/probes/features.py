"""What this host can do for the probes: checked at start-up and printed by ``doctor``.

Nothing here raises on a missing feature; each check returns a :class:`Check` with a verdict
and, when it fails, what to do.
"""

from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass
from pathlib import Path

from .hooks import Hook

TRACEFS_CANDIDATES = (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing"))


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


def _is_dir(p: Path) -> bool:
    try:
        return p.is_dir()
    except OSError:  # EACCES for a normal user
        return False


def tracefs_root() -> Path | None:
    for p in TRACEFS_CANDIDATES:
        if _is_dir(p / "events"):
            return p
    return None


def tracepoint_exists(tracepoint: str, root: Path | None = None) -> bool:
    root = root or tracefs_root()
    if root is None:
        return False
    cat, ev = tracepoint.split(":", 1)
    return _is_dir(root / "events" / cat / ev)


def check_root() -> Check:
    ok = os.geteuid() == 0
    return Check("root", ok, "running as root" if ok else f"running as uid {os.geteuid()}",
                 "" if ok else "run as root (sudo) to load BPF programs")


def check_bcc() -> Check:
    try:
        import bcc  # noqa: F401  (only whether it imports)
    except ImportError as err:
        return Check("bcc", False, f"python module bcc not importable: {err}",
                     "run scripts/setup.sh (installs python3-bpfcc) and use its venv")
    version = getattr(bcc, "__version__", "?")
    return Check("bcc", True, f"bcc {version}")


def check_headers() -> Check:
    build = Path(f"/lib/modules/{platform.release()}/build")
    if build.exists():
        target = os.path.realpath(build)
        exact = platform.release() in target
        detail = f"{build} -> {target}" + ("" if exact else " (distribution headers of another kernel)")
        return Check("kernel-headers", True, detail)
    return Check("kernel-headers", False, f"{build} is missing",
                 "run scripts/setup.sh (installs and links kernel headers)")


def check_tracefs() -> Check:
    root = tracefs_root()
    if root is not None:
        return Check("tracefs", True, f"mounted at {root}")
    if os.geteuid() != 0:
        return Check("tracefs", False, "not readable by this user", "run as root")
    return Check("tracefs", False, "not mounted", "mount -t tracefs tracefs /sys/kernel/tracing")


def check_btf() -> Check:
    ok = Path("/sys/kernel/btf/vmlinux").exists()
    return Check("kernel-btf", ok, "/sys/kernel/btf/vmlinux present" if ok else "no kernel BTF",
                 "" if ok else "argv of successful execs will be empty (kernel without BTF)",
                 required=False)


def check_cgroup2() -> Check:
    from ..host.cgroups import cgroup2_mount
    from ..errors import ScopeError

    try:
        return Check("cgroup2", True, f"mounted at {cgroup2_mount()}")
    except ScopeError as err:
        return Check("cgroup2", False, str(err), err.hint or "")


def host_checks() -> list[Check]:
    """The checks that need no BPF load (safe as any user)."""
    return [check_root(), check_bcc(), check_headers(), check_tracefs(), check_cgroup2(), check_btf()]


def missing_tracepoints(hooks: list[Hook]) -> list[Hook]:
    root = tracefs_root()
    return [h for h in hooks if root is None or not tracepoint_exists(h.tracepoint, root)]


def kernel_info() -> dict:
    return {"release": platform.release(), "machine": platform.machine()}
