"""The session lifecycle: one agent in one Incus container, from create to gone.

Start-up, in order (each step undone if a later one fails, or on Ctrl-C):

1. check the workspace, the profile, the image and the Incus profile (nothing made yet);
2. create the container (``<prefix>-<hash8>-<slot>``, ephemeral unless persistent) with the
   workspace disk, the read-only protected paths, the id mapping for the agent uid and its NIC
   with a pinned host-side name (:mod:`.network`);
3. hook that name in the network policy's table, dropping everything; start the container;
   switch the hook to the session's policy; find its cgroup and start the monitor (before any
   agent process exists);
4. run the profile's install check, stage credentials, restore a saved state (``--resume``).

Then either :meth:`Session.run_headless` (CMD without a terminal, output streamed, its exit code
returned) or :meth:`Session.start_tmux` (the agent in tmux, for ``attach``). :meth:`Session.finish`
saves the profile's state directory, stops the monitor and stops the container (an ephemeral
one is then deleted by Incus), then removes the network policy. :meth:`Session.abort` is the
error path: monitor stopped, the container this run made force-deleted, its policy removed. A
policy is removed only once its container is stopped or gone; if that fails, the policy stays
(fail closed) until ``clean --orphans``.

Who owns a running session is written in the container's config (``user.coi.keeper``: boot id,
pid and start time of the process that stops the monitor and the container at the end); a
session whose keeper is gone is an orphan for ``clean --orphans``.
"""

from __future__ import annotations

import logging
import os
import signal
import stat
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Mapping

from ..host import status as status_mod
from ..errors import (ContainerDied, ImageMissing, IncusError, MonitorError, NameClash,
                      SessionError, SessionNotFound, SlotLimit, StagingError,
                      ToolNotInstalled, WorkspaceError)
from ..host import incus, naming, paths
from . import staging, streams
from . import network as net
from ..host import pause_state
from . import state as state_mod
from .config import Config
from ..supervision.monitor import Monitor, MonitorFactory
from ..host.owner import keeper_alive, keeper_token
from .profiles import Profile

log = logging.getLogger(__name__)

#: exit code of `run` when the monitor killed the agent (documented in `run --help`)
EXIT_KILLED = 3
#: exit code of `run -- CMD` when the session was shut down or killed from outside
EXIT_STOPPED = 4

KEY = "user.coi."
#: Incus' security.syscalls.deny for a session container (one syscall a line). Each fails with
#: ENOSYS, as on a kernel without io_uring, so runtimes that probe for it (libuv, tokio) fall
#: back to plain system calls; a bare name would kill the caller with SIGSYS instead.
IO_URING_DENY = "\n".join(f"{name} errno 38" for name in
                          ("io_uring_setup", "io_uring_enter", "io_uring_register"))
TMUX_SESSION = "coi"
WORKSPACE_PATH = "/workspace"
PATH_ENV = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class StopRequested(BaseException):
    """SIGTERM to a session's keeper (sent by `coi-sentinel shutdown`): end the session
    normally, state saved. A BaseException so that no library ``except Exception`` eats it."""


def on_sigterm_stop() -> None:
    """Make SIGTERM and SIGHUP raise :class:`StopRequested` (its argument: the signal's name)
    in the main thread. SIGHUP - the terminal closed, an ssh session dropped - ends the session
    like `coi-sentinel shutdown`: state saved, monitor and container stopped, policy removed.
    Its hung-up terminal is replaced by /dev/null first, so the clean-up writes nowhere."""
    def handler(sig, _frame) -> None:
        if sig == signal.SIGHUP:
            _leave_hung_up_terminal()
        raise StopRequested(signal.Signals(sig).name)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, handler)


def _leave_hung_up_terminal() -> None:
    """Say why on stderr (if it can still be read), then put /dev/null in place of every
    standard descriptor that is a terminal: writes to a hung-up one fail with EIO."""
    try:
        os.write(2, b"coi-sentinel: hangup: ending the session (state saved)\n")
    except OSError:
        pass
    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    try:
        for fd in (0, 1, 2):
            try:
                if os.isatty(fd):
                    os.dup2(null, fd)
            except OSError:
                continue
    finally:
        os.close(null)


# ---------------------------------------------------------------- spec
@dataclass(frozen=True, slots=True)
class SessionSpec:
    workspace: Path
    config: Config
    profile: Profile
    command: tuple[str, ...] | None = None     # headless when set; else the profile's, in tmux
    slot: int | None = None
    preserve_path: bool = False
    resume: str | None = None                   # saved session id, or "" for the latest
    host_home: Path = field(default_factory=paths.user_home)
    host_env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    interactive: bool = False

    @property
    def mount_path(self) -> str:
        return str(self.workspace) if self.preserve_path else WORKSPACE_PATH


@dataclass(frozen=True, slots=True)
class SessionInfo:
    name: str
    tool: str
    workspace: str
    status: str
    mode: str
    persistent: bool
    started: float | None
    keeper_alive: bool
    audit: str
    alerts: int
    network: str = "?"
    #: why a frozen session is paused (``user.coi.paused``: by, rule, reason), see .paused
    paused: dict | None = None

    @property
    def orphan(self) -> bool:
        return self.status in ("Running", "Frozen") and not self.keeper_alive

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "tool": self.tool, "workspace": self.workspace,
                "state": self.status, "mode": self.mode, "persistent": self.persistent,
                "uptime": None if self.started is None else round(time.time() - self.started, 1),
                "alerts": self.alerts, "orphan": self.orphan, "audit": self.audit,
                "network": self.network, "paused": self.paused}


def _count_alerts(path: str) -> int:
    try:
        with open(path, "rb") as f:
            return sum(1 for line in f if b'"type":"alert"' in line or b'"record":"alert"' in line)
    except OSError:
        return 0


# ---------------------------------------------------------------- workspace checks
def check_workspace(path: str | os.PathLike[str]) -> Path:
    raw = os.fspath(path)
    real = Path(os.path.realpath(raw))
    if not real.exists():
        raise WorkspaceError(raw, "does not exist")
    if not real.is_dir():
        raise WorkspaceError(raw, "is not a directory")
    if real == Path("/"):
        raise WorkspaceError(raw, "is the root of the file system")
    return real


def _protected_sources(workspace: Path, rel_paths: tuple[str, ...]) -> list[tuple[str, Path]]:
    """(relative path, host path) of each protected path that exists as a real file or
    directory inside the workspace. A symlinked one would mount whatever it points at, so it
    is refused."""
    out = []
    for rel in rel_paths:
        host = workspace / rel
        try:
            st = os.lstat(host)
        except FileNotFoundError:
            log.debug("protected path %s does not exist in the workspace", rel)
            continue
        except OSError as err:
            raise WorkspaceError(str(workspace), f"cannot check {rel}: {err.strerror}") from err
        parent_real = os.path.realpath(host.parent)
        if stat.S_ISLNK(st.st_mode) or not (parent_real == str(workspace)
                                             or parent_real.startswith(str(workspace) + os.sep)):
            raise WorkspaceError(str(workspace), f"protected path {rel} is a symlink or leaves the "
                                 "workspace; refusing to mount it")
        if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
            raise WorkspaceError(str(workspace), f"protected path {rel} is not a file or directory")
        out.append((rel, host))
    return out


def _subid_allows(uid: int, file: str) -> bool:
    try:
        with open(file) as f:
            for line in f:
                parts = line.strip().split(":")
                if len(parts) == 3 and parts[0] == "root":
                    start, count = int(parts[1]), int(parts[2])
                    if start <= uid < start + count:
                        return True
    except (OSError, ValueError):
        return False
    return False


def _invoking_user() -> str:
    """Who ran sudo (for a `chown` hint), else the owner of the user's home."""
    user = os.environ.get("SUDO_USER")
    if user and user != "root":
        return user
    try:
        import pwd

        home_owner = paths.user_home().stat().st_uid
        return pwd.getpwuid(home_owner).pw_name if home_owner != 0 else "YOUR_USER"
    except (OSError, KeyError):
        return "YOUR_USER"


def id_mapping(workspace: Path, config: Config) -> tuple[bool, str | None]:
    """(shift the workspace disks?, raw.idmap value) so that the agent (``config.agent_uid``
    in the container) writes workspace files as the workspace's owner on the host."""
    st = workspace.stat()
    owner, group = st.st_uid, st.st_gid
    agent = config.agent_uid
    mode = config.idmap
    if mode == "auto" and owner == 0:
        # never the host's root: the agent keeps its unprivileged host uid, given access by
        # an ACL once the container exists (Session.grant_workspace, see .acl)
        return False, None
    if mode == "auto":
        mode = "shift" if owner == agent else "raw"
    if mode == "shift":
        if owner != agent:
            raise WorkspaceError(str(workspace), f"is owned by uid {owner}, but idmap = \"shift\" "
                                 f"maps the agent (uid {agent}) to host uid {agent}",
                                 hint='use idmap = "auto" or "raw"')
        return True, None
    if owner == 0:
        raise WorkspaceError(str(workspace), f'is owned by root; idmap = "{config.idmap}" would make '
                             "the agent write as host root",
                             hint='set idmap = "auto" (the agent then writes as an unprivileged uid), '
                                  f"or `chown -R {_invoking_user()}: {workspace}`")
    for file, wanted in (("/etc/subuid", owner), ("/etc/subgid", group)):
        if not _subid_allows(wanted, file):
            raise WorkspaceError(str(workspace), f"mapping host id {wanted} into the container needs "
                                 f"'root:{wanted}:1' in {file}", hint=f"echo root:{wanted}:1 >> {file}")
    return False, f"uid {owner} {agent}\ngid {group} {agent}"


# ---------------------------------------------------------------- manager
#: called with a session's name once `kill`, `shutdown` or `clean` stopped or deleted its
#: container: returns what else it removed, one line each (the session's network policy)
Cleaner = Callable[[str], list[str]]
#: called by `clean --orphans` with the names of every instance that exists and the workspace
#: (None: all): removes what a layer keeps for sessions whose container is gone, one line each
Sweeper = Callable[[set[str], "str | None"], list[str]]


class SessionManager:
    """Sessions on one Incus daemon. ``monitor_factory`` makes one monitor per session;
    ``cleaners`` and ``sweepers`` remove what other layers keep per session (see
    :data:`Cleaner`, :data:`Sweeper`; by default the network policy's). The kernel filter
    entries need neither: the BPF maps are not pinned and die with the process that loaded
    them. ``resolver`` resolves allowlisted domains (default: getaddrinfo on the host)."""

    def __init__(self, client=None, monitor_factory: MonitorFactory | None = None,
                 cleaners: tuple[Cleaner, ...] | None = None,
                 sweepers: tuple[Sweeper, ...] | None = None, resolver=None) -> None:
        self.client = client if client is not None else incus.connect()
        self.monitor_factory = monitor_factory
        self.cleaners = cleaners if cleaners is not None else (net.remove_policy,)
        self.sweepers = sweepers if sweepers is not None else (net.sweep,)
        self.resolver = resolver

    # ---- queries ----
    def _instances(self) -> list[dict]:
        # recursion 1: names, status and config are all a listing needs; 2 adds each one's
        # live state, which Incus asks LXC for and which hangs while a container is frozen
        # halfway through its start (every listing of the host would hang with it)
        return incus.raw_get(self.client, "instances", recursion=1)

    def sessions(self) -> list[SessionInfo]:
        out = []
        for inst in self._instances():
            cfg = inst.get("config") or {}
            if cfg.get(KEY + "managed") != "true":
                continue
            started = cfg.get(KEY + "started")
            out.append(SessionInfo(
                name=inst["name"], tool=cfg.get(KEY + "tool", "?"),
                workspace=cfg.get(KEY + "workspace", "?"),
                status=pause_state.effective_status(inst["name"], inst.get("status", "?")),
                mode=cfg.get(KEY + "mode", "?"), persistent=not inst.get("ephemeral", False),
                started=float(started) if started else None,
                keeper_alive=keeper_alive(cfg.get(KEY + "keeper")),
                audit=cfg.get(KEY + "audit", ""), alerts=_count_alerts(cfg.get(KEY + "audit", "")),
                network=cfg.get(KEY + "network", "?"), paused=pause_state.reason_of(cfg)))
        return sorted(out, key=lambda s: s.name)

    def get(self, name: str) -> SessionInfo:
        for s in self.sessions():
            if s.name == name:
                return s
        raise SessionNotFound(name)

    # ---- ending sessions from outside ----
    def kill(self, name: str) -> None:
        """Force-stop and delete at once: no state saved. A live keeper sees its container go."""
        self.get(name)
        delete_container(self.client, name)
        self._clean_after(name)

    def _clean_after(self, name: str) -> list[str]:
        """The container ``name`` is stopped or gone: what other layers keep for it goes too."""
        removed = []
        for cleaner in self.cleaners:
            removed.extend(cleaner(name))
        return removed

    def shutdown(self, name: str, timeout: float = 20.0) -> str:
        """End a session normally (state saved): ask its keeper, or do it here if it has none."""
        info = self.get(name)
        if info.status not in ("Running", "Frozen"):
            return f"{name} is already {info.status.lower()}"
        token = (incus.raw_get(self.client, f"instances/{name}").get("config") or {}).get(KEY + "keeper", "")
        if keeper_alive(token):
            os.kill(int(token.split(":")[1]), signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                inst = self._instance_or_none(name)
                if inst is None or inst.get("status") == "Stopped":
                    self._clean_after(name)     # the keeper does it too; whoever is first
                    return f"{name} shut down by its keeper"
                time.sleep(0.1)
            log.warning("keeper of %s did not finish in %.0f s; stopping it here", name, timeout)
        self._save_without_keeper(info)
        stop_container(self.client, name, force=False)
        self._clean_after(name)
        return f"{name} shut down"

    def _instance_or_none(self, name: str) -> dict | None:
        try:
            return incus.raw_get(self.client, f"instances/{name}")
        except IncusError as err:
            if "not found" in str(err).lower():
                return None
            raise

    def _save_without_keeper(self, info: SessionInfo) -> None:
        from . import profiles

        try:
            profile = profiles.get(info.tool)
        except SessionError as err:
            log.warning("state of %s not saved: %s", info.name, err)
            return
        if not profile.state_dir:
            return
        inst = self._instance_or_none(info.name) or {}
        uid = int((inst.get("config") or {}).get(KEY + "uid", "1000"))
        home = agent_home(self.client, info.name, uid)
        if home is None:
            return
        try:
            state_mod.save(rootfs_path(info.name), home, profile.state_dir, container=info.name,
                           workspace=info.workspace, tool=info.tool,
                           credentials=[c.path for c in profile.credentials])
        except SessionError as err:
            log.warning("state of %s not saved: %s", info.name, err)

    def clean(self, orphans: bool = False, workspace: str | None = None) -> list[str]:
        """Delete stopped sessions; with ``orphans``, also running ones whose keeper died
        (a `run` killed with SIGKILL), and what other layers keep for sessions whose container
        is gone (:data:`Sweeper`). Only those of ``workspace`` when given. Returns what was
        removed, one line each."""
        removed = []
        for s in self.sessions():
            if workspace is not None and s.workspace != workspace:
                continue
            if s.status == "Stopped":
                delete_container(self.client, s.name)
                removed.append(f"{s.name} (stopped)")
            elif orphans and s.orphan:
                delete_container(self.client, s.name)
                removed.append(f"{s.name} (orphan: its keeper is gone)")
            else:
                continue
            removed.extend(self._clean_after(s.name))
        if orphans:
            live = {i["name"] for i in incus.raw_get(self.client, "instances", recursion=1)}
            for sweeper in self.sweepers:
                removed.extend(sweeper(live, workspace))
        return removed

    def names(self) -> set[str]:
        """The names of every instance (of the default project)."""
        return {url.rstrip("/").rsplit("/", 1)[-1] for url in incus.raw_get(self.client, "instances")}

    # ---- start ----
    def _check_incus_objects(self, config: Config, profile=None) -> None:
        try:
            incus.raw_get(self.client, f"images/aliases/{config.image}")
        except IncusError as err:
            if "not found" in str(err).lower():
                hint = None
                if profile is not None and config.image == profile.image_alias:
                    hint = f"build it with `sudo coi-sentinel image build --tool {profile.name}`"
                raise ImageMissing(config.image, hint) from None
            raise
        try:
            incus.raw_get(self.client, f"profiles/{config.incus_profile}")
        except IncusError as err:
            if "not found" in str(err).lower():
                raise SessionError(f"Incus profile {config.incus_profile!r} does not exist",
                                   hint="run `bash scripts/setup-incus.sh`") from None
            raise

    def _instance_body(self, spec: SessionSpec, name: str, slot: int,
                       nics: Mapping[str, Mapping[str, str]]) -> dict:
        cfg = spec.config
        ws = spec.workspace
        shift, raw_idmap = id_mapping(ws, cfg)
        mount = spec.mount_path
        disk = {"type": "disk"}
        if shift:
            disk["shift"] = "true"
        devices: dict[str, dict[str, str]] = {
            "workspace": {**disk, "source": str(ws), "path": mount},
        }
        for i, (rel, host) in enumerate(_protected_sources(ws, cfg.protected_paths)):
            devices[f"protect{i}"] = {**disk, "source": str(host), "readonly": "true",
                                      "path": str(PurePosixPath(mount) / rel)}
        for i, m in enumerate(cfg.mounts):
            if not os.path.exists(m.source):
                raise SessionError(f"mount source {m.source} does not exist")
            devices[f"mount{i}"] = {**disk, "source": m.source, "path": m.path,
                                    "readonly": "true" if m.readonly else "false"}
        devices.update({k: dict(v) for k, v in nics.items()})    # see network.plan_nic
        config = {
            KEY + "managed": "true",
            KEY + "workspace": str(ws),
            KEY + "tool": spec.profile.name,
            KEY + "slot": str(slot),
            KEY + "mode": "interactive" if spec.interactive else "headless",
            KEY + "keeper": keeper_token(),
            KEY + "audit": str(paths.audit_log(name)),
            KEY + "mount": mount,
            KEY + "uid": str(cfg.agent_uid),
            KEY + "network": cfg.network,
            KEY + "started": f"{time.time():.0f}",
            "security.privileged": "false",
            "security.nesting": "false",
        }
        if not spec.profile.io_uring:
            # io_uring performs connects, opens and writes no system-call hook sees: denied
            # unless the agent profile says `io_uring: true` (then bpf/uring.bpf.c reports
            # each operation by opcode and kills a connect through it)
            config["security.syscalls.deny"] = IO_URING_DENY
        if raw_idmap:
            config["raw.idmap"] = raw_idmap
        for key, value in cfg.limits:
            config[f"limits.{key}"] = value
        return {"name": name, "type": "container", "ephemeral": not cfg.persistent,
                "profiles": [cfg.incus_profile], "config": config, "devices": devices,
                "source": {"type": "image", "alias": cfg.image}}

    def start(self, spec: SessionSpec, *, on_step: Callable[[str], None] | None = None) -> "Session":
        """Create and start the container, start the monitor, stage files. See the module doc."""
        step = on_step or (lambda _s: None)
        cfg = spec.config
        check_workspace(spec.workspace)
        self._check_incus_objects(cfg, spec.profile)
        nics = net.profile_nics(self.client, cfg.incus_profile)
        nameservers = net.resolvers_of(self.client, cfg, nics)
        policy = net.policy_of(cfg, nameservers)
        firewall = None
        existing = self.names()
        if spec.slot is not None:
            name = naming.container_name(cfg.prefix, spec.workspace, spec.slot)
            if name in existing:
                raise NameClash(name)
            slots = [spec.slot]
        else:
            first = naming.free_slot(cfg.prefix, spec.workspace, existing, cfg.max_slots)
            slots = [s for s in range(first, cfg.max_slots + 1)
                     if naming.container_name(cfg.prefix, spec.workspace, s) not in existing]
        session = None
        for slot in slots:
            name = naming.container_name(cfg.prefix, spec.workspace, slot)
            plan = net.plan_nic(cfg, name, nics)
            body = self._instance_body(spec, name, slot, plan.devices)
            if policy is not None and plan.ifname is not None and firewall is None:
                firewall = net.open_firewall()      # no nftables: fail before anything exists
            session = Session(self, spec, name, body["config"][KEY + "keeper"])
            if policy is not None and plan.ifname is not None:
                session.network = net.SessionNetwork(name, policy, plan.ifname, plan.device,
                                                     firewall=firewall, resolver=self.resolver,
                                                     nameservers=nameservers)
            step(f"creating {name}")
            try:
                session.create(body)
                break
            except NameClash:
                session = None
                if spec.slot is not None:
                    raise
                continue          # another run took this slot between our list and create
            except BaseException:
                session.abort()
                raise
        if session is None:
            raise SlotLimit(str(spec.workspace), cfg.max_slots)
        try:
            session.boot(step)
        except BaseException:
            session.abort()
            raise
        return session


# ---------------------------------------------------------------- session
class Session:
    def __init__(self, manager: SessionManager, spec: SessionSpec, name: str, token: str) -> None:
        self.manager = manager
        self.client = manager.client
        self.spec = spec
        self.name = name
        self.token = token
        self.monitor: Monitor | None = None
        #: the network policy (None: mode none, or no NIC); its firewall session name is
        #: ``self.name``. The response engine blocks with ``network.block(address, port)``.
        self.network: net.SessionNetwork | None = None
        self.home = "/root"
        self.uid = spec.config.agent_uid
        self.gid = spec.config.agent_uid
        self._created = False
        self._create_op: str | None = None
        self.saved: state_mod.SavedSession | None = None
        self.timings: dict[str, float] = {}
        #: what the person who started the session should be told (one line each)
        self.notices: list[str] = []

    @property
    def api(self):
        return self.client.api.instances[self.name]

    # ---- start-up steps ----
    def create(self, body: dict) -> None:
        self._created = True      # from here on, abort() deletes the container if it is ours
        try:
            with incus.api_call(f"create {self.name}"):
                resp = self.client.api.instances.post(json=body)
                self._create_op = resp.json()["operation"]
                self.client.operations.wait_for_operation(self._create_op)
                self._create_op = None
        except IncusError as err:
            text = str(err).lower()
            # the name is taken, or another run is creating it right now (its database row
            # may win the race: "UNIQUE constraint failed: instances.project_id, instances.name")
            if "already exists" in text or 'busy running a "create"' in text \
                    or "unique constraint failed: instances." in text:
                self._created = False
                self._create_op = None
                raise NameClash(self.name) from None
            raise

    def grant_workspace(self, step: Callable[[str], None]) -> None:
        """A root-owned workspace with the default id mapping: give the agent's host uid (read
        from the container's id map) write access by ACL, and say so."""
        cfg = self.spec.config
        if cfg.idmap != "auto" or self.spec.workspace.stat().st_uid != 0:
            return
        from . import acl

        inst = incus.raw_get(self.client, f"instances/{self.name}")
        host = host_id((inst.get("config") or {}).get("volatile.idmap.next"), self.uid)
        if host is None or host == 0:
            raise WorkspaceError(str(self.spec.workspace), "is owned by root and the container's id "
                                 f"map gives no unprivileged host uid for the agent (uid {self.uid})")
        ws = self.spec.workspace
        if not acl.has_user(ws, host):
            step(f"granting uid {host} access to {ws}")
            n = acl.grant_tree(ws, host, skip=cfg.protected_paths)
            log.info("%s: ACL entry user:%d:rwX on %d entries of %s", self.name, host, n, ws)
        self.notices.append(f"{ws} is owned by root: the agent writes there as host uid {host} "
                            f"(unprivileged; access by ACL, `getfacl {ws}` shows it), never as root")

    def boot(self, step: Callable[[str], None]) -> None:
        t0 = time.monotonic()
        # the monitor is made and meets the daemon while Incus starts the container; it
        # registers the container's cgroup once that exists
        registering = self._monitor_thread(step, t0)
        try:
            self.grant_workspace(step)
            if self.network is not None:
                self.network.prepare()                 # before start: the veth drops everything
            self.timings["prepare"] = time.monotonic() - t0
            with incus.api_call(f"start {self.name}"):
                resp = self.api.state.put(json={"action": "start", "timeout": 30})
                self.client.operations.wait_for_operation(resp.json()["operation"])
            self.timings["start"] = time.monotonic() - t0
            # the policy goes on the veth while the daemon registers the container (or ends
            # the registration it began when the cgroup appeared): both are done before the
            # first exec of anything but the image's init
            if registering is not None:
                from ..host.cgroups import container_cgroup

                registering.register(container_cgroup(self.name))
            try:
                if self.network is not None:
                    step(f"network: {self.network.mode}")
                    self.network.apply(self.client)
                self.timings["network"] = time.monotonic() - t0
                self.home = self._agent_home()     # a file read: no process in the container
                self.timings["home"] = time.monotonic() - t0
            finally:
                if registering is not None:
                    registering.join()             # self.monitor is set before anything else
            if registering is not None and registering.starting and self.monitor is not None:
                started = getattr(self.monitor, "started", None)
                if started is not None:
                    started()                      # the pauses held during the start apply
        except BaseException:
            if registering is not None:
                registering.abandon()              # a monitor that registers is left to abort()
            raise
        if registering is not None and registering.error is not None:
            raise registering.error
        self.timings["monitor"] = time.monotonic() - t0
        # the agent's first connect must find a route: its address (DHCP began when the
        # container started) is awaited while the install check runs and the files are staged
        addressed = _Addressed(self, t0) if self.network is not None else None
        try:
            self._check_and_stage(step, t0)
        except BaseException:
            if addressed is not None:
                addressed.cancel()             # start-up failed: no need for the address
            raise
        if addressed is not None:
            addressed.join()
            if addressed.error is not None:
                raise addressed.error
        self.timings["ready"] = time.monotonic() - t0
        log.debug("%s: start-up (s since boot): %s", self.name,
                  ", ".join(f"{k} {v:.3f}" for k, v in self.timings.items()))

    def _check_and_stage(self, step: Callable[[str], None], t0: float) -> None:
        """The profile's install check, then its saved state restored (``--resume``) and its
        files staged."""
        profile = self.spec.profile
        if profile.install_check:
            code, _out, err = self.exec_capture(list(profile.install_check))
            if code != 0:
                raise ToolNotInstalled(f"{profile.name}: install check failed in image "
                                       f"{self.spec.config.image}" + (f" ({err.strip()})" if err.strip() else ""),
                                       hint=profile.install_hint or None)
        files = incus.InstanceFiles(self.client, self.name)
        creds = [c.path for c in profile.credentials]
        # restore first, stage second: the credential just staged from the host wins over
        # anything a saved state holds
        if self.spec.resume is not None:
            if not profile.state_dir:
                raise StagingError(f"profile {profile.name} has no state_dir to resume")
            saved = state_mod.find(self.spec.resume or None, str(self.spec.workspace), profile.name)
            step(f"restoring {saved.id}")
            state_mod.restore(saved, files, self.home, self.uid, self.gid, credentials=creds)
        staged = staging.plan(profile, self.spec.host_home)
        if staged:
            step(f"staging {len(staged)} file(s)")
            staging.push(files, staged, self.home, self.uid, self.gid)
        self.timings["staged"] = time.monotonic() - t0

    def _monitor_thread(self, step: Callable[[str], None], t0: float) -> "_Registering | None":
        """The session's monitor, made and prepared (:meth:`Monitor.prepare`) in a thread
        that registers the container once :meth:`_Registering.register` gives its cgroup
        (None when the session is unmonitored); the thread sets ``self.monitor`` once the
        monitor watches the container."""
        factory = self.manager.monitor_factory
        if factory is None:
            return None
        step("starting the monitor")
        audit = paths.audit_log(self.name)
        if os.geteuid() == 0:       # without root, the daemon makes the folder (.paths)
            paths.private_dir(audit.parent)
        from ..host.cgroups import container_cgroup_path

        cgroup = container_cgroup_path(self.name)
        # registered as soon as LXC makes the cgroup, while Incus still starts the container;
        # not if a directory of that name is there already (a stale one: the start's own is
        # the one to register, once it is done)
        early = None if cgroup.exists() else cgroup
        registering = _Registering(self, factory, audit, t0, early=early)
        registering.start()
        return registering

    def _wait_for_address(self, timeout: float = 15.0, stop: threading.Event | None = None) -> None:
        """Wait until the container's NIC has its IPv4 address (its init runs DHCP once it
        starts); the agent starts anyway after ``timeout``, with a warning. ``stop`` ends the
        wait early (start-up failed meanwhile)."""
        deadline = time.monotonic() + timeout
        while stop is None or not stop.is_set():
            try:
                state = incus.raw_get(self.client, f"instances/{self.name}/state") or {}
            except IncusError as err:
                log.debug("%s: state not read: %s", self.name, err)
                state = {}
            if state.get("status") != "Running" and not self.is_running():
                raise ContainerDied(self.name, "before the agent started")
            for nic, info in (state.get("network") or {}).items():
                if nic != "lo" and any(a.get("family") == "inet" and a.get("scope") == "global"
                                       for a in (info or {}).get("addresses") or []):
                    return
            if time.monotonic() >= deadline:
                log.warning("%s: its network has no address after %g s; the agent starts anyway",
                            self.name, timeout)
                return
            if stop is not None:
                stop.wait(0.02)
            else:
                time.sleep(0.02)

    def _agent_home(self) -> str:
        home = agent_home(self.client, self.name, self.uid)
        if home is None:
            raise SessionError(f"image {self.spec.config.image} has no user with uid {self.uid}",
                               hint="rebuild it with `coi-sentinel image build --force`")
        return home

    # ---- commands ----
    def environment(self, term: str | None = None) -> dict[str, str]:
        """The agent's environment: a fixed base plus the forwarded variables (by name, from the
        host). Sent in the exec request body, never placed on a command line."""
        env = {"HOME": self.home, "USER": "code", "LOGNAME": "code", "PATH": PATH_ENV,
               "LANG": "C.UTF-8", "TERM": term or "dumb", "COI_SESSION": self.name,
               "COI_WORKSPACE": self.spec.mount_path}
        names = dict.fromkeys(self.spec.profile.env + self.spec.config.env)
        for var in names:
            if var == "TERM" and term is None:
                continue
            value = self.spec.host_env.get(var)
            if value is not None:
                env[var] = value
        return env

    def exec_capture(self, command: list[str], *, as_root: bool = False,
                     term: str | None = None, cwd: str = "/") -> tuple[int, str, str]:
        out: list[bytes] = []
        err: list[bytes] = []
        try:
            code = streams.exec_stream(self.client, self.name, command,
                                       environment=self.environment(term),
                                       uid=None if as_root else self.uid,
                                       gid=None if as_root else self.gid, cwd=cwd,
                                       stdout=out.append, stderr=err.append)
        except IncusError as e:
            code = _exec_error_code(e)
            if code is None:
                raise
            return code, "", str(e)
        return code, b"".join(out).decode(errors="replace"), b"".join(err).decode(errors="replace")

    def run_headless(self, command: list[str], stdout=None, stderr=None) -> int:
        """Run ``command`` as the agent in the workspace, stream its output; its exit code."""
        out = stdout or sys.stdout.buffer
        err = stderr or sys.stderr.buffer

        def writer(stream):
            def write(data: bytes) -> None:
                stream.write(data)
                stream.flush()
            return write

        try:
            code = streams.exec_stream(self.client, self.name, command,
                                       environment=self.environment(), uid=self.uid,
                                       gid=self.gid, cwd=self.spec.mount_path,
                                       stdout=writer(out), stderr=writer(err))
        except IncusError as e:
            code = _exec_error_code(e)
            if code is not None and self.is_running():
                what = "command not found" if code == 127 else "permission denied (not executable)"
                err.write(f"coi-sentinel: {command[0] if command else '?'}: {what} in "
                          f"{self.name}\n".encode(errors="replace"))
                err.flush()
                return code
            # a failed exec ("Failed to retrieve PID of executing child process") may be the
            # first sign of the container going down: it gets the moment a signal gets
            if not self._still_running(-1):
                if self._monitor_killed():
                    return EXIT_KILLED
                raise ContainerDied(self.name) from e
            raise
        if not self._still_running(code):
            if self._monitor_killed():      # the monitor's `kill` (cgroup.kill) ended it
                return EXIT_KILLED
            raise ContainerDied(self.name)
        if self._monitor_killed():
            return EXIT_KILLED
        return code

    def _monitor_killed(self) -> bool:
        if self.monitor is None:
            return False
        settle = getattr(self.monitor, "settle", None)
        if settle is not None:
            settle()                # what happened before CMD ended, the monitor has read
        return bool(getattr(self.monitor, "killed", False))

    def _still_running(self, code: int) -> bool:
        """After CMD ended: is the container still up? A CMD killed by a signal (or an exec
        that failed: ``code`` -1) may be the first sign of the container going down, so that
        case gets a moment to settle: a failed exec up to 10 s (a forced stop under load kept
        the container Running for more than 1.5 s after Incus had failed the exec with "Failed
        to retrieve PID of executing child process"), a signal up to 3 s (a CMD killed inside a
        container that stays up waits that long for its exit code)."""
        if code < 128 and code >= 0:
            return self.is_running()
        deadline = time.monotonic() + (10.0 if code < 0 else 3.0)
        while time.monotonic() < deadline:
            if not self.is_running():
                return False
            try:
                inst = incus.raw_get(self.client, f"instances/{self.name}/state")
            except IncusError:        # "Invalid PID" while it goes down
                return False
            if inst.get("status") != "Running" or not inst.get("pid"):
                return False
            time.sleep(0.1)
        return True

    def start_tmux(self, term: str, width: int, height: int, command: list[str]) -> None:
        """The agent in a detached tmux session named ``coi``, in the workspace. The forwarded
        variables reach it through the environment of this exec (the tmux server inherits
        it), never through a command line."""
        code, _o, err = self.exec_capture(
            ["tmux", "new-session", "-d", "-s", TMUX_SESSION, "-x", str(width), "-y", str(height),
             "-c", self.spec.mount_path, "--", *command], term=term, cwd=self.spec.mount_path)
        if code != 0:
            raise SessionError(f"tmux did not start in {self.name}: {err.strip()}")

    def wait_tmux_end(self) -> None:
        """Block until the tmux session is gone (the agent exited, or the user killed it)
        or the container stopped."""
        script = f"while tmux has-session -t {TMUX_SESSION} 2>/dev/null; do sleep 1; done"
        try:
            self.exec_capture(["sh", "-c", script])
        except SessionError as err:
            log.info("%s: waiting for tmux ended: %s", self.name, err)

    # ---- state ----
    def status(self) -> str | None:
        """The container's status, None when it is gone. Incus answers errors such as
        "Invalid PID" while a container is going down: those are retried, then read as gone."""
        for attempt in range(5):
            try:
                return incus.raw_get(self.client, f"instances/{self.name}")["status"]
            except IncusError as err:
                if "not found" in str(err).lower():
                    return None
                log.debug("%s: status: %s", self.name, err)
                time.sleep(0.1 * (attempt + 1))
        return None

    def is_running(self) -> bool:
        return self.status() in ("Running", "Frozen")

    def save_state(self) -> state_mod.SavedSession | None:
        sd = self.spec.profile.state_dir
        if not sd:
            return None
        saved, _report = state_mod.save(rootfs_path(self.name), self.home, sd, container=self.name,
                                        workspace=str(self.spec.workspace), tool=self.spec.profile.name,
                                        credentials=[c.path for c in self.spec.profile.credentials])
        self.saved = saved
        return saved

    # ---- end ----
    def _remove_network(self) -> None:
        """The container is stopped or gone: its policy goes."""
        if self.network is not None:
            self.network.remove()

    def _stop_network(self) -> None:
        if self.network is not None:
            self.network.stop()

    def _stop_monitor(self) -> None:
        if self.monitor is not None:
            monitor, self.monitor = self.monitor, None
            try:
                monitor.stop()
            except Exception as err:  # the container must still be stopped after this
                log.error("stopping the monitor of %s failed: %s", self.name, err)

    def finish(self) -> None:
        """Normal end: save state, stop the monitor, stop (and so delete) the container."""
        with _no_interrupts():
            try:
                if self.is_running():
                    try:
                        self.save_state()
                    except SessionError as err:
                        log.warning("state of %s not saved: %s", self.name, err)
            finally:
                try:
                    stop_container(self.client, self.name, force=not self.spec.config.persistent)
                    self._remove_network()
                finally:
                    self._stop_network()
                    self._stop_monitor()

    def abort(self) -> None:
        """Error path: stop the monitor, delete the container this run created."""
        with _no_interrupts():
            try:
                if self._create_op is not None:     # interrupted while Incus was creating it
                    try:
                        with incus.api_call(f"create {self.name}"):
                            self.client.operations.wait_for_operation(self._create_op)
                    except SessionError as err:
                        log.debug("%s: create ended with %s", self.name, err)
                if self._created:
                    delete_container(self.client, self.name, only_keeper=self.token)
                self._remove_network()
            finally:
                self._stop_network()
                self._stop_monitor()


class _Registering(threading.Thread):
    """A session's monitor starting beside the container: made by the factory and prepared
    (``prepare()``, when the monitor has one: it meets the daemon) while Incus starts the
    container, then started on the container's cgroup as soon as ``early`` (its path) exists,
    or on the one :meth:`register` gives, whichever comes first. ``error`` is what it raised,
    as a :class:`MonitorError` unless it is already one of the session's own errors.
    :meth:`abandon` (start-up failed) makes a thread that has not begun to register close its
    monitor; one that has is waited for, so that the session's abort stops its monitor."""

    #: how often the cgroup's appearance is checked while Incus starts the container
    POLL = 0.005

    def __init__(self, session: Session, factory: MonitorFactory, audit: Path, t0: float, *,
                 early: Path | None = None) -> None:
        super().__init__(name=f"monitor-start-{session.name}", daemon=True)
        self.session, self.factory, self.audit = session, factory, audit
        self.error: BaseException | None = None
        self._t0 = t0                      # the session's boot began (for its timings)
        self._early = early
        self._cgroup: Path | None = None
        self._go = threading.Event()
        self._lock = threading.Lock()
        self._abandoned = False
        self._registering = False
        #: registered while Incus was still starting the container (the monitor then holds
        #: its pauses until it is told the start is over)
        self.starting = False

    def register(self, cgroup: Path) -> None:
        self._cgroup = cgroup
        self._go.set()

    def abandon(self) -> None:
        with self._lock:
            self._abandoned = True
            registering = self._registering
        self._go.set()
        if registering:
            self.join()

    def _cgroup_to_register(self) -> Path | None:
        while not self._go.wait(self.POLL if self._early is not None else None):
            if self._early is not None and self._early.is_dir():
                self.starting = True
                return self._early
        return self._cgroup

    def run(self) -> None:
        s = self.session
        monitor = None
        try:
            monitor = self.factory()
            prepare = getattr(monitor, "prepare", None)
            if prepare is not None:
                prepare()
            s.timings["monitor prepared"] = time.monotonic() - self._t0
            cgroup = self._cgroup_to_register()
            with self._lock:
                if cgroup is None or self._abandoned:
                    cgroup = None
                else:
                    self._registering = True
            if cgroup is None:
                monitor.stop()
                return
            monitor.start(s.name, cgroup, self.audit, starting=self.starting)
        except (MonitorError, SessionError) as err:
            self.error = err
        except Exception as err:  # a monitor is third-party code to the session
            self.error = MonitorError(f"the monitor of {s.name} did not start: {err}")
            self.error.__cause__ = err
        if self.error is not None:
            self._go.wait()                # the session reads error after register()
            return
        s.monitor = monitor
        s.timings["monitor registered"] = time.monotonic() - self._t0


class _Addressed(threading.Thread):
    """:meth:`Session._wait_for_address` in a thread, started at once; ``error`` is what the
    wait raised (the container died). :meth:`cancel` ends the wait and the thread."""

    def __init__(self, session: Session, t0: float) -> None:
        super().__init__(name=f"address-{session.name}", daemon=True)
        self.session = session
        self.error: BaseException | None = None
        self._t0 = t0                      # the session's boot began (for its timings)
        self._cancelled = threading.Event()
        self.start()

    def run(self) -> None:
        try:
            self.session._wait_for_address(stop=self._cancelled)
        except SessionError as err:
            self.error = err
        self.session.timings["address"] = time.monotonic() - self._t0

    def cancel(self) -> None:
        self._cancelled.set()
        self.join()


class _no_interrupts:
    """Ctrl-C, SIGTERM or SIGHUP during clean-up would leave things behind: hold SIGINT until
    it is done (then raise it); SIGTERM and SIGHUP ask for what is being done already, so they
    are only noted (a hung-up terminal is still replaced at once)."""

    _HELD = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __enter__(self):
        self._old: dict[int, Any] = {}
        self._pending = False
        try:
            for sig in self._HELD:
                self._old[sig] = signal.signal(sig, self._note)
        except ValueError:       # not the main thread
            pass
        return self

    def _note(self, sig, _frame) -> None:
        if sig == signal.SIGINT:
            self._pending = True
        elif sig == signal.SIGHUP:
            _leave_hung_up_terminal()

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        if self._pending and exc[0] is None:
            raise KeyboardInterrupt


def host_id(idmap_json: str | None, nsid: int, *, uid: bool = True) -> int | None:
    """The host id that container id ``nsid`` maps to, from ``volatile.idmap.next``."""
    import json

    try:
        entries = json.loads(idmap_json or "[]")
    except ValueError:
        return None
    for e in entries if isinstance(entries, list) else []:
        try:
            if (e["Isuid"] if uid else e["Isgid"]) and e["Nsid"] <= nsid < e["Nsid"] + e["Maprange"]:
                return int(e["Hostid"]) + nsid - int(e["Nsid"])
        except (KeyError, TypeError, ValueError):
            continue
    return None


def _exec_error_code(err: IncusError) -> int | None:
    """Incus fails the exec operation, instead of returning the code, when the command is
    not found (127) or not executable (126)."""
    text = str(err).lower()
    if "command not found" in text:
        return 127
    if "permission denied" in text:
        return 126
    return None


# ---------------------------------------------------------------- container helpers
def agent_home(client, name: str, uid: int) -> str | None:
    """The home directory of ``uid`` in the container's /etc/passwd."""
    passwd = incus.InstanceFiles(client, name).read("/etc/passwd") or b""
    for line in passwd.decode(errors="replace").splitlines():
        parts = line.split(":")
        if len(parts) >= 6 and parts[2] == str(uid):
            return parts[5] or "/"
    return None


def rootfs_path(name: str) -> Path:
    """The host side of a container's root file system (default project)."""
    return Path(incus.incus_dir()) / "containers" / name / "rootfs"


def _wait_gone(client, name: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            incus.raw_get(client, f"instances/{name}")
        except IncusError as err:
            if "not found" in str(err).lower():
                return True
            raise
        time.sleep(0.05)
    return False


def stop_container(client, name: str, *, force: bool, timeout: int = 10) -> None:
    """Stop; an ephemeral container is deleted by Incus, and we wait until it is gone."""
    api = client.api.instances[name]
    try:
        inst = incus.raw_get(client, f"instances/{name}")
    except IncusError as err:
        if "not found" in str(err).lower():
            return
        raise
    if inst.get("status") in ("Running", "Frozen"):
        with incus.api_call(f"stop {name}"):
            if inst.get("status") == "Frozen" or pause_state.is_frozen(name):
                force = True            # a frozen init cannot shut down cleanly
            resp = api.state.put(json={"action": "stop", "force": force,
                                       "timeout": -1 if force else timeout})
            client.operations.wait_for_operation(resp.json()["operation"])
    if inst.get("ephemeral"):
        _wait_gone(client, name, 15)


def delete_container(client, name: str, *, only_keeper: str | None = None) -> bool:
    """Force-stop and delete ``name``; with ``only_keeper``, only if that keeper made it. The
    cgroup a frozen container leaves behind goes too (:func:`remove_left_cgroup`)."""
    deleted = _delete_container(client, name, only_keeper=only_keeper)
    if deleted and os.geteuid() == 0:       # without root, cgroups are not the user's to remove
        from ..host.cgroups import remove_left_cgroup

        remove_left_cgroup(name)
    return deleted


def _delete_container(client, name: str, *, only_keeper: str | None) -> bool:
    try:
        inst = incus.raw_get(client, f"instances/{name}")
    except IncusError as err:
        if "not found" in str(err).lower():
            return False
        raise
    if only_keeper is not None:
        deadline = time.monotonic() + 30
        while not inst.get("config") and time.monotonic() < deadline:
            time.sleep(0.1)         # still being created: its config is not readable yet
            inst = incus.raw_get(client, f"instances/{name}")
        if (inst.get("config") or {}).get(KEY + "keeper") != only_keeper:
            return False
    api = client.api.instances[name]
    # a start may still be in flight (Ctrl-C during start-up): stop and delete until it is gone
    for attempt in range(20):
        if inst.get("status") in ("Running", "Frozen"):
            try:
                with incus.api_call(f"stop {name}"):
                    resp = api.state.put(json={"action": "stop", "force": True, "timeout": -1})
                    client.operations.wait_for_operation(resp.json()["operation"])
            except IncusError as err:
                log.debug("stop %s: %s", name, err)
            if inst.get("ephemeral") and _wait_gone(client, name, 15):
                return True
        try:
            with incus.api_call(f"delete {name}"):
                resp = api.delete()
                client.operations.wait_for_operation(resp.json()["operation"])
            return True
        except IncusError as err:
            if "not found" in str(err).lower():
                return True
            if attempt == 19:
                raise
            log.debug("delete %s: %s (retrying)", name, err)
        time.sleep(0.1)
        try:
            inst = incus.raw_get(client, f"instances/{name}")
        except IncusError as err:
            if "not found" in str(err).lower():
                return True
            raise
    return True
    try:
        with incus.api_call(f"delete {name}"):
            resp = api.delete()
            client.operations.wait_for_operation(resp.json()["operation"])
    except IncusError as err:
        if "not found" not in str(err).lower():
            raise
    return True
