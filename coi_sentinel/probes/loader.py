"""Compile bpf/*.bpf.c with bcc, attach each hook on its own, and manage the filter maps.

One :class:`ProbeSet` is one BPF object: all families compiled together so they share the
scope filter, ring buffers and per-fd maps. Each tracepoint is attached separately; a hook
that fails to attach is reported in :class:`Coverage`, never fatal. Closing the ProbeSet (or
the process dying, even by SIGKILL) detaches everything: the programs live only as long as
their file descriptors.
"""

from __future__ import annotations

import ctypes
import ipaddress
import logging
import os
import platform
from collections import Counter
from dataclasses import dataclass, field

from ..assets import asset_dir
from ..errors import FeatureMissing, ProbeError
from ..events.types import (
    AF_INET,
    AF_INET6,
    EVT_MAX,
    KILL_BLOCKED_CONNECT,
    KILL_COMPAT_SYSCALL,
    KILL_MEMFD_EXEC,
    KILL_REASONS,
    KILL_SHELL_SOCKET,
    KILL_UNLINKED_EXEC,
    KILL_URING_CONNECT,
    PATH_LEN,
    RING_RETRIES,
    SCOPE_ALL,
    SCOPE_LISTED,
    EventType,
)
from . import features
from .hooks import (
    COMPAT_SYSCALLS,
    DISPATCHED,
    FAMILIES,
    GENERIC_FOR,
    MODULE_SYSCALLS,
    RAW_SYSCALLS,
    Hook,
    hooks,
)

log = logging.getLogger(__name__)

#: level of lxc.payload.<name> below the cgroup2 root: reported as scope_id in host-wide mode
HOST_SCOPE_LEVEL = 1


#: (program array, index, function, what goes unseen without it) - see bpf/file.bpf.c
TAIL_PROGRAMS = (
    ("open_tails", 0, "open_exit_respelled",
     'read-only opens of sensitive paths spelled with "//", "/./", "/../" or /proc/PID/root'),
)


@dataclass(slots=True)
class Coverage:
    attached: list[Hook] = field(default_factory=list)
    missing: list[tuple[Hook, str]] = field(default_factory=list)
    #: tracepoints this kernel lacks whose system calls a generic hook covers: (hook, by what)
    substituted: list[tuple[Hook, str]] = field(default_factory=list)
    #: entry tracepoints left detached because the raw sys_enter hook takes their system calls
    #: by number (hooks.DISPATCHED): (hook, by what)
    dispatched: list[tuple[Hook, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def families(self) -> dict[str, dict]:
        out: dict[str, dict] = {}
        for fam in FAMILIES:
            ok = [h.tracepoint for h in self.attached if h.family == fam]
            bad = {h.tracepoint: why for h, why in self.missing if h.family == fam}
            sub = {h.tracepoint: by for h, by in self.substituted if h.family == fam}
            dis = {h.tracepoint: by for h, by in self.dispatched if h.family == fam}
            if ok or bad or sub or dis:
                out[fam] = {"attached": ok, "missing": bad, "substituted": sub, "dispatched": dis}
        return out

    def to_dict(self) -> dict:
        return {"attached": len(self.attached), "missing": len(self.missing),
                "substituted": len(self.substituted), "dispatched": len(self.dispatched),
                "families": self.families(),
                "notes": list(self.notes)}


@dataclass(frozen=True, slots=True)
class ProbeOptions:
    families: tuple[str, ...] = tuple(FAMILIES)
    # 4 MiB: an exec record is ~1.4 KB; a build's compiler bursts (800 execs and failed PATH
    # lookups in 3 s) beside a reader stalled on a loaded machine lost one with 1 MiB
    hi_pages: int = 1024
    bulk_pages: int = 1024       # 4 MiB
    bulk_wakeup_every: int = 64
    wake_interval_ns: int = 2_000_000
    max_aggs: int = 16384


class ProbeSet:
    def __init__(self, options: ProbeOptions | None = None) -> None:
        self.options = options or ProbeOptions()
        self.bpf = None
        self.coverage = Coverage()
        self._level_refs: Counter[int] = Counter()
        self._host_wide = False
        self._scopes: dict[int, int] = {}  # cgroup id -> level
        self._kill_policies: dict[int, tuple[list[str], list[int]]] = {}

    # ---- load ----
    def load(self) -> Coverage:
        """Compile and attach. Raises FeatureMissing / ProbeError with a one-line reason."""
        for check in (features.check_root(), features.check_bcc(), features.check_headers(),
                      features.check_tracefs()):
            if not check.ok:
                raise FeatureMissing(check.name, f"cannot load probes: {check.detail}", hint=check.fix)
        BPF = _bpf_class()  # imported late: `--help`, `rules lint`, replay never need bcc

        wanted = hooks(self.options.families)
        absent = set(features.missing_tracepoints(wanted))
        generic_needed = any(h.tracepoint in GENERIC_FOR for h in absent)
        nrs = MODULE_SYSCALLS.get(platform.machine())
        # 32-bit calls reach no syscalls:* tracepoint: on x86-64 the generic hook is attached
        # for them whether or not the module calls need it
        compat = COMPAT_SYSCALLS.get(platform.machine(), {})
        present = []
        for h in wanted:
            if h.tracepoint in RAW_SYSCALLS:
                if not generic_needed and not compat:
                    continue                  # the kernel has the specific tracepoints
                if nrs is None and not compat:
                    self.coverage.missing.append((h, f"no syscall numbers for {platform.machine()}"))
                    continue
            if h in absent:
                self.coverage.missing.append((h, "tracepoint not in this kernel"))
                continue
            present.append(h)
        dispatch = self._dispatchable(present, wanted, compat)
        bpf_dir = asset_dir("bpf")
        o = self.options
        cflags = [
            f"-I{bpf_dir}", f"-I{bpf_dir / 'include'}",
            f"-DHI_PAGES={o.hi_pages}", f"-DBULK_PAGES={o.bulk_pages}",
            f"-DBULK_WAKEUP_EVERY={o.bulk_wakeup_every}", f"-DMAX_AGGS={o.max_aggs}",
            f"-DWAKE_INTERVAL_NS={o.wake_interval_ns}ULL",
            "-Wno-macro-redefined", "-Wno-unused-function",
        ] + [h.define for h in present]
        if nrs is not None:
            cflags += [f"-DNR_INIT_MODULE={nrs[0]}", f"-DNR_FINIT_MODULE={nrs[1]}"]
        if compat:
            cflags.append("-DCOMPAT_X86=1")
        if dispatch:
            cflags.append("-DDISPATCH_ENTRIES=1")
            cflags += [f"-DNR_DISPATCH_{h.event.removeprefix('sys_enter_')}={nr}" for h, nr in dispatch.items()]
        if not features.check_btf().ok:
            cflags.append("-DNO_TASK_BTF=1")
            self.coverage.notes.append("no kernel BTF: argv of successful execs is not read")
        # in FAMILIES order whatever the caller's: priv.bpf.c's raw sys_enter calls the entries
        # of file, io and net (dispatch_entry), so they come before it
        text = program_text(bpf_dir, [f for f in FAMILIES if f in o.families])
        try:
            self.bpf = BPF(text=text.encode(), cflags=cflags)
        except Exception as err:  # bcc raises bare Exception on compile/load failures
            raise ProbeError(f"the BPF programs did not compile or load: {err}",
                             hint="run `coi-sentinel doctor`; compiler messages are above") from err
        self._load_tails(BPF)
        for h in present:
            if h not in dispatch:
                self._attach_or_note(h)
        attached = {h.tracepoint for h in self.coverage.attached}
        if not set(RAW_SYSCALLS) <= attached:
            for h in dispatch:                # no raw hook to take them: their tracepoints
                self._attach_or_note(h)
            dispatch = {}
        for h, nr in dispatch.items():
            self.coverage.dispatched.append((h, f"raw tracepoint sys_enter (64-bit number {nr})"))
        # nothing is traced before _write_config below, so the marks may come after attaching
        self._mark_syscalls(compat, nrs if generic_needed else None, dispatch.values())
        if not self.coverage.attached:
            self.close()
            raise ProbeError("no probe could be attached")
        if set(RAW_SYSCALLS) <= attached:
            by = "raw tracepoint sys_enter (syscall number filtered in the kernel)"
            still = []
            for h, why in self.coverage.missing:
                if h.tracepoint.replace("sys_exit_", "sys_enter_") in GENERIC_FOR:
                    self.coverage.substituted.append((h, by))
                else:
                    still.append((h, why))
            self.coverage.missing = still
        # nothing is traced until the caller says what: set_host_wide() or add_scope()
        self._host_wide = False
        self._write_config()
        self.set_shell_names(shell_task_names())
        log.info("probes: %d hooks attached, %d missing", len(self.coverage.attached),
                 len(self.coverage.missing))
        return self.coverage

    @staticmethod
    def _dispatchable(present: list[Hook], wanted: list[Hook], compat: dict[int, str]) -> dict[Hook, int]:
        """The entry hooks the raw sys_enter program takes by number (hooks.DISPATCHED), with
        their numbers: on a machine where that program runs for the 32-bit calls, for the
        families loaded, each with its exit present (or none to have)."""
        table = DISPATCHED.get(platform.machine(), {}) if compat else {}
        names = {h.tracepoint for h in present}
        if not table or not names & set(RAW_SYSCALLS):
            return {}
        wanted_names = {h.tracepoint for h in wanted}
        out = {}
        for h in present:
            exit_tp = h.tracepoint.replace("sys_enter_", "sys_exit_")
            if h.tracepoint in table and (exit_tp not in wanted_names or exit_tp in names):
                out[h] = table[h.tracepoint]
        return out

    def _attach_or_note(self, h: Hook) -> None:
        try:
            self._attach(h)
            self.coverage.attached.append(h)
        except Exception as err:  # bcc: Exception("Failed to attach ...")
            self.coverage.missing.append((h, str(err).splitlines()[0]))

    def _mark_syscalls(self, compat: dict[int, str], module_nrs: tuple[int, int] | None,
                       dispatch_nrs=()) -> None:
        """The numbers the generic sys_enter hook looks at (bpf/priv.bpf.c syscall_marks): the
        32-bit calls of interest (2), init_module/finit_module (1) where no tracepoint of
        theirs exists, and the 64-bit calls whose entries it takes (4)."""
        try:
            marks = self.bpf.get_table(b"syscall_marks")
        except KeyError:
            return                            # the priv family is not loaded
        bits = dict.fromkeys(compat, 2)
        for nr in module_nrs or ():
            bits[nr] = bits.get(nr, 0) | 1
        for nr in dispatch_nrs:
            bits[nr] = bits.get(nr, 0) | 4
        for nr, bit in bits.items():
            marks[ctypes.c_int(nr)] = ctypes.c_uint8(bit)

    def _load_tails(self, BPF) -> None:
        """The programs the hooks jump to (bpf_tail_call), in their program arrays: one place
        for work whose verification would be paid in each hook that needs it."""
        for table, index, fn, what in TAIL_PROGRAMS:
            try:
                prog_array = self.bpf.get_table(table.encode())
            except KeyError:
                continue                      # its family is not loaded
            try:
                prog = self.bpf.load_func(fn.encode(), BPF.TRACEPOINT)
                prog_array[ctypes.c_int(index)] = ctypes.c_int(prog.fd)
            except Exception as err:  # bcc raises bare Exception on load failures
                self.coverage.notes.append(f"{fn} did not load ({str(err).splitlines()[0]}): {what}")

    def _require(self):
        if self.bpf is None:
            raise ProbeError("probes are not loaded")
        return self.bpf

    def _attach(self, h: Hook) -> None:
        if h.raw:
            self.bpf.attach_raw_tracepoint(tp=h.event.encode(), fn_name=h.fn_name.encode())
        else:
            self.bpf.attach_tracepoint(tp=h.tracepoint.encode(), fn_name=h.fn_name.encode())

    def set_attached(self, on: bool) -> None:
        """Detach every hook of ``coverage.attached`` (the programs and maps stay loaded), or
        attach them again. For benches: a baseline with nothing attached, in the same run,
        without compiling twice. Detaching takes ~70 ms per hook (an RCU wait each)."""
        b = self._require()
        for h in self.coverage.attached:
            attached = (h.event.encode() in b.raw_tracepoint_fds if h.raw
                        else h.tracepoint.encode() in b.tracepoint_fds)
            if on and not attached:
                self._attach(h)
            elif not on and attached:
                if h.raw:
                    b.detach_raw_tracepoint(tp=h.event.encode())
                else:
                    b.detach_tracepoint(tp=h.tracepoint.encode())

    # ---- scope filter ----
    def _write_config(self) -> None:
        b = self._require()
        levels = 0
        for level, refs in self._level_refs.items():
            if refs > 0:
                levels |= 1 << level
        cfg = b[b"config"]
        cfg[ctypes.c_int(0)] = cfg.Leaf(SCOPE_ALL if self._host_wide else SCOPE_LISTED, levels,
                                        os.getpid(), HOST_SCOPE_LEVEL)

    def set_host_wide(self) -> None:
        """Trace every process on the host except this one."""
        self._host_wide = True
        self._write_config()

    def add_scope(self, cgroup_id: int, level: int) -> None:
        """Trace the processes in this cgroup (and below); switches off host-wide mode.

        ``level`` is the cgroup's depth below the cgroup2 root (lxc.payload.<name> is 1). Takes
        effect at once, no reload."""
        if not 1 <= level < 8:
            raise ProbeError(f"cgroup level {level} is not supported (1-7)")
        b = self._require()
        if cgroup_id not in self._scopes:
            self._scopes[cgroup_id] = level
            self._level_refs[level] += 1
        b[b"scopes"][ctypes.c_uint64(cgroup_id)] = ctypes.c_uint8(1)
        self._host_wide = False
        self._write_config()

    def remove_scope(self, cgroup_id: int) -> None:
        b = self._require()
        level = self._scopes.pop(cgroup_id, None)
        if level is not None:
            self._level_refs[level] -= 1
        self.clear_kill_policy(cgroup_id)
        for table in (b[b"scopes"], b[b"scope_drops"]):
            try:
                del table[ctypes.c_uint64(cgroup_id)]
            except KeyError:
                pass
        self._write_config()

    @property
    def scopes(self) -> dict[int, int]:
        return dict(self._scopes)

    def seed_parents(self, table) -> int:
        """Fill the kernel's fork map from a process table seeded at start-up, so processes
        that started before the probes still report their parent."""
        b = self._require()
        parents = b[b"parents"]
        n = 0
        for proc in table.processes():
            if proc.ppid:
                parents[ctypes.c_uint32(proc.pid)] = ctypes.c_uint32(proc.ppid)
                n += 1
        return n

    # ---- sensitive path sets (filled from the rules) ----
    def set_sensitive(self, prefixes: list[str], suffixes: list[str]) -> None:
        b = self._require()
        sizes = b[b"sens_sizes"]
        for index, (name, items, rev) in enumerate((("sens_prefix", prefixes, False),
                                                    ("sens_suffix", suffixes, True))):
            sizes[ctypes.c_int(index)] = ctypes.c_uint32(0)
            table = b[name.encode()]
            table.clear()
            for item in items:
                data = item.encode()[::-1] if rev else item.encode()
                if not data or len(data) >= PATH_LEN:
                    raise ProbeError(f"sensitive path {item!r} is empty or longer than {PATH_LEN - 1} bytes")
                table[table.Key(len(data) * 8, data)] = ctypes.c_uint8(1)
            sizes[ctypes.c_int(index)] = ctypes.c_uint32(len(items))

    # ---- in-kernel kill policy ----
    def set_kill_policy(self, scope_id: int, *, memfd_exec: bool = False,
                        blocked: list[str] | tuple[str, ...] = (),
                        blocked_ports: list[int] | tuple[int, ...] = (),
                        shell_socket: bool = False, uring_connect: bool = False,
                        unlinked_exec: bool = False, compat_syscall: bool = False) -> None:
        """What the kernel kills on its own in one scope (bpf_send_signal(SIGKILL) from the probe,
        before the process can act): an exec from a memfd (``memfd_exec``) or from an O_TMPFILE
        or unlinked file (``unlinked_exec``), a connect to a blocked network (CIDR, v4 or v6) or
        port, a shell or interpreter with a network socket on fd 0 or 1 (``shell_socket``: at
        its exec, or at the dup that puts it there), a connect submitted through io_uring
        (``uring_connect``: its destination cannot be known), a 32-bit system call of
        interest (``compat_syscall``: socket, connect, dup2... through `int $0x80`, which no
        syscall tracepoint sees). Replaces the scope's previous policy."""
        b = self._require()
        self.clear_kill_policy(scope_id)
        nets = b[b"blocked_nets"]
        ports = b[b"blocked_ports"]
        scope_be = list(scope_id.to_bytes(8, "big"))
        for cidr in blocked:
            try:
                net = ipaddress.ip_network(cidr, strict=False)
            except ValueError as err:
                raise ProbeError(f"blocked network {cidr!r}: {err}") from err
            fam = AF_INET if net.version == 4 else AF_INET6
            addr = list(net.network_address.packed.ljust(16, b"\0"))
            key = nets.Key(64 + 8 + net.prefixlen, (ctypes.c_uint8 * 8)(*scope_be), fam,
                           (ctypes.c_uint8 * 16)(*addr))
            nets[key] = ctypes.c_uint8(1)
        for port in blocked_ports:
            if not 0 < int(port) < 65536:
                raise ProbeError(f"blocked port {port!r} is not a port number")
            ports[ports.Key(scope_id, int(port))] = ctypes.c_uint8(1)
        flags = (KILL_MEMFD_EXEC if memfd_exec else 0) | \
            (KILL_BLOCKED_CONNECT if (blocked or blocked_ports) else 0) | \
            (KILL_SHELL_SOCKET if shell_socket else 0) | \
            (KILL_URING_CONNECT if uring_connect else 0) | \
            (KILL_UNLINKED_EXEC if unlinked_exec else 0) | \
            (KILL_COMPAT_SYSCALL if compat_syscall else 0)
        if flags:
            b[b"kill_cfg"][ctypes.c_uint64(scope_id)] = ctypes.c_uint32(flags)
        self._kill_policies[scope_id] = (list(blocked), [int(p) for p in blocked_ports])

    def set_shell_names(self, names) -> None:
        """The task names (comm, 15 characters at most) the KILL_SHELL_SOCKET policy treats as
        shells and interpreters; replaces the set."""
        b = self._require()
        table = b[b"shell_comms"]
        names = list(names)
        table.clear()
        for name in names:
            raw = name.encode()
            if len(names) > 1024:
                raise ProbeError(f"{len(names)} task names: the kernel's set holds 1024")
            if not raw or len(raw) >= 16:
                raise ProbeError(f"task name {name!r} is empty or longer than 15 bytes")
            table[table.Key(raw)] = ctypes.c_uint8(1)

    def clear_kill_policy(self, scope_id: int) -> None:
        b = self._require()
        try:
            del b[b"kill_cfg"][ctypes.c_uint64(scope_id)]
        except KeyError:
            pass
        old = self._kill_policies.pop(scope_id, None)
        if old is None:
            return
        nets, ports = b[b"blocked_nets"], b[b"blocked_ports"]
        scope_be = list(scope_id.to_bytes(8, "big"))
        for cidr in old[0]:
            net = ipaddress.ip_network(cidr, strict=False)
            fam = AF_INET if net.version == 4 else AF_INET6
            key = nets.Key(64 + 8 + net.prefixlen, (ctypes.c_uint8 * 8)(*scope_be), fam,
                           (ctypes.c_uint8 * 16)(*list(net.network_address.packed.ljust(16, b"\0"))))
            try:
                del nets[key]
            except KeyError:
                pass
        for port in old[1]:
            try:
                del ports[ports.Key(scope_id, port)]
            except KeyError:
                pass

    def kill_counts(self) -> dict[str, int]:
        """SIGKILLs the probes sent, by reason (summed over CPUs)."""
        b = self._require()
        table = b[b"kills"]
        out = {}
        for i, name in KILL_REASONS.items():
            n = int(table.sum(ctypes.c_int(i)).value)
            if n:
                out[name] = n
        return out

    # ---- loss accounting ----
    def drop_counts(self) -> dict[str, int]:
        """Records lost because a ring buffer was full, by event type (summed over CPUs)."""
        b = self._require()
        table = b[b"drops"]
        out: dict[str, int] = {}
        for t in EventType:
            if t.value >= EVT_MAX:
                continue
            n = int(table.sum(ctypes.c_int(t.value)).value)
            if n:
                out[t.label] = n
        return out

    def scope_drop_counts(self) -> dict[int, int]:
        """Records lost because a ring buffer was full, by scope id (the container's cgroup id;
        0 for host-wide tracing without a host level)."""
        b = self._require()
        return {int(k.value): int(v.value) for k, v in b[b"scope_drops"].items()}

    def ring_retry_counts(self) -> dict[str, int]:
        """Refusals that lost nothing (summed over CPUs): reservations granted on a retry, per
        ring (``hi``, ``bulk``: refusals with room left), and high-priority records the bulk
        ring took when the high-priority ring refused them twice (``hi_via_bulk``)."""
        b = self._require()
        table = b[b"ring_retries"]
        return {name: n for i, name in RING_RETRIES.items()
                if (n := int(table.sum(ctypes.c_int(i)).value))}

    def agg_full_counts(self) -> dict[str, int]:
        b = self._require()
        table = b[b"agg_full"]
        names = {0: "file_aggs", 1: "net_aggs", 2: "conn_aggs"}
        return {names[i]: int(table.sum(ctypes.c_int(i)).value) for i in names
                if int(table.sum(ctypes.c_int(i)).value)}

    def close(self, *, background: bool = True) -> None:
        """Detach everything. The kernel unregisters each tracepoint with an RCU wait (~70 ms
        each here, ~5 s for all the hooks), so by default the attachments are handed to a
        short-lived reaper process that closes them after this process is done: tracing is
        switched off first (nothing is traced meanwhile) and the reaper exits by itself."""
        if self.bpf is None:
            return
        try:
            try:
                self._host_wide = False
                self._level_refs.clear()
                self._write_config()      # SCOPE_NONE with no levels: the programs do nothing
            except Exception as err:  # noqa: BLE001 - closing must go on
                log.debug("could not switch tracing off before close: %s", err)
            if background:
                _hand_off(list(self.bpf.tracepoint_fds.values()) +
                          list(self.bpf.raw_tracepoint_fds.values()), self.bpf.cleanup)
            else:
                self.bpf.cleanup()
        finally:
            self.bpf = None

    def __enter__(self) -> "ProbeSet":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _hand_off(fds: list[int], cleanup) -> None:
    """Run ``cleanup`` (which closes ``fds``) while a detached reaper process keeps the same
    open files; the reaper closes them, paying the kernel's slow unregistration, once this
    process has finished its own cleanup. It keeps nothing else of ours open."""
    try:
        r, w = os.pipe()
        pid = os.fork()
    except OSError as err:
        log.debug("no reaper (%s): detaching in place", err)
        cleanup()
        return
    if pid == 0:  # intermediate child: fork the reaper and leave at once
        try:
            os.close(w)
            if os.fork() == 0:
                os.setsid()
                keep = set(fds) | {r}
                for fd in range(3, _max_fd()):
                    if fd not in keep:
                        try:
                            os.close(fd)
                        except OSError:
                            pass
                devnull = os.open(os.devnull, os.O_RDWR)
                for fd in (0, 1, 2):
                    os.dup2(devnull, fd)
                os.close(devnull)
                try:
                    os.read(r, 1)         # EOF: the monitor has finished its cleanup
                finally:
                    os._exit(0)           # closing the attachments happens here
        finally:
            os._exit(0)
    os.close(r)
    os.waitpid(pid, 0)
    try:
        cleanup()
    finally:
        os.close(w)


def _max_fd() -> int:
    try:
        return max(int(x) for x in os.listdir("/proc/self/fd")) + 1
    except (OSError, ValueError):
        return 1024


#: versioned names of interpreters as their binaries are called (python3.12, ruby3.1, php8.2)
_VERSIONED = {"python": (2, 3), "pypy": (3,), "ruby": (1, 2, 3), "php": (5, 7, 8), "lua": (5,),
              "perl": (5,), "tclsh": (8,)}


def shell_task_names() -> list[str]:
    """The task names of shells and interpreters, as the kernel sets them at exec (the basename
    of the path executed, cut to 15 bytes): the rules' SHELLS and INTERPRETERS lists, plus
    the usual versioned spellings of interpreters."""
    from ..rules.fields import INTERPRETERS, SHELLS

    names = set(SHELLS) | set(INTERPRETERS)
    for base, majors in _VERSIONED.items():
        for major in majors:
            names.add(f"{base}{major}")
            for minor in range(0, 21):
                names.add(f"{base}{major}.{minor}")
    return sorted(n for n in names if len(n.encode()) < 16)


def program_text(bpf_dir, families) -> str:
    """bpf/include/scope.h, then the families' files, one after another, as bcc's main file.

    bcc rewrites map calls (``map.lookup()``) and defines TRACEPOINT_PROBE argument structs only
    in its main file, so neither the shared header that uses maps nor the family files can be
    #included; each part is preceded by a #line marker so compiler messages name the real file
    and line (the families' own ``#include "scope.h"`` is then a no-op thanks to its guard)."""
    parts = []
    for path in [bpf_dir / "include" / "scope.h"] + [bpf_dir / f"{fam}.bpf.c" for fam in families]:
        try:
            parts.append(f'#line 1 "{path}"\n' + path.read_text())
        except OSError as err:
            raise ProbeError(f"probe source {path}: {err.strerror}") from err
    return "\n".join(parts)


def _bpf_class():
    """bcc's BPF without its auto-attach of every TRACEPOINT_PROBE: we attach each hook on
    its own so one that fails is reported instead of failing the load."""
    from bcc import BPF

    class ManualAttachBPF(BPF):
        def _trace_autoload(self) -> None:
            return None

    return ManualAttachBPF


def layout_from_bcc(bpf) -> dict[str, type[ctypes.Structure]]:
    """bcc's own ctypes classes for the structs used as map keys/values (for the layout test)."""
    return {
        "file_key": bpf[b"file_aggs"].Key,
        "file_agg": bpf[b"file_aggs"].Leaf,
        "fd_key": bpf[b"net_aggs"].Key,
        "net_agg": bpf[b"net_aggs"].Leaf,
        "conn_key": bpf[b"conn_aggs"].Key,
        "conn_agg": bpf[b"conn_aggs"].Leaf,
        "lpm_path_key": bpf[b"sens_prefix"].Key,
        "scope_cfg": bpf[b"config"].Leaf,
    }




_OPTIONAL_PROGRAMS = {
    # the smallest program of each kind; bpf/ holds the probes, these only test the kernel
    "lsm": ("LSM_PROBE(file_open, struct file *file) { return 0; }", "BPF LSM"),
    "fentry": ("KFUNC_PROBE(do_sys_openat2) { return 0; }", "fentry/kfunc"),
}


def try_optional_program(kind: str) -> tuple[bool, str]:
    """Whether a program type loads here (for `doctor`); never raises."""
    text, label = _OPTIONAL_PROGRAMS[kind]
    try:
        from bcc import BPF
    except ImportError:
        return False, f"{label}: bcc not importable"
    devnull = os.open(os.devnull, os.O_WRONLY)
    saved = os.dup(2)
    try:
        os.dup2(devnull, 2)  # bcc prints the verifier log on stderr
        b = BPF(text=text)
        b.cleanup()
        return True, f"{label}: loads (not used)"
    except Exception as err:  # bcc raises bare Exception
        msg = str(err).splitlines()[0]
        if "super-user" in msg or "Operation not permitted" in msg:
            msg = "EPERM"
        return False, f"{label}: refused by the kernel ({msg[:60]})"
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
