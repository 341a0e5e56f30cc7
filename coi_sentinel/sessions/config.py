"""Session config: built-in defaults, then ``~/.config/coi-sentinel/config.toml``, then the
workspace's ``.coi-sentinel.toml``, then command-line flags.

A workspace file comes with the code an agent works on, so it is not trusted by default: it may
tighten protection but not weaken it. It may not turn monitoring off, open the network further,
drop a protected path, mount anything outside the workspace, forward more host environment
variables, or pick another Incus profile or bridge, unless the user lists the workspace in
``trusted_workspaces`` of their own config. Such a file is refused with one line naming the key,
rather than applied in part.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, NetworkError
from ..network.naming import check_ifname
from ..network.policy import Service, check_domain, parse_address
from ..host import paths
from ..host.naming import check_prefix
from ..respond.settings import ResponseSettings
from ..respond.settings import parse as parse_response
from ..respond.settings import weakenings as response_weakenings

WORKSPACE_FILE = ".coi-sentinel.toml"

#: network modes from the most closed to the most open; a workspace may only move left.
#: ``none``: no NIC; the others are the policies of coi_sentinel.network (docs/network.md).
NETWORK_MODES = ("none", "allowlist", "restricted", "open")

IDMAP_MODES = ("auto", "shift", "raw")

#: read-only in the container. `.venv`: README runs the monitor itself from the project's
#: .venv (with sudo too), so the agent must not be able to rewrite it
DEFAULT_PROTECTED = (".git/hooks", ".git/config", ".vscode", ".husky", ".venv")


@dataclass(frozen=True, slots=True)
class Mount:
    source: str          # host path, absolute after loading ("~" expanded)
    path: str            # path in the container
    readonly: bool = True


@dataclass(frozen=True, slots=True)
class Config:
    prefix: str = "coi"
    tool: str = "shell"
    image: str = "coi/debian12"
    incus_profile: str = "coi-sentinel"
    max_slots: int = 10
    persistent: bool = False
    network: str = "restricted"
    #: allowlist mode: host names resolved on the host, and networks, the session may reach
    network_allow_domains: tuple[str, ...] = ()
    network_allow_cidrs: tuple[str, ...] = ()
    #: every mode: host services the session needs ("10.123.45.1:3128/tcp")
    network_needs: tuple[str, ...] = ()
    #: ports blocked (TCP and UDP) on top of the C2 ports, in restricted and allowlist
    network_block_ports: tuple[int, ...] = ()
    #: a host bridge for the session's NIC instead of the Incus profile's NIC ("" = the profile's)
    network_bridge: str = ""
    #: restricted and open: the DNS servers of the container's /etc/resolv.conf, let through
    #: on port 53 even on the host or a private address (() = the bridge's own resolver, when
    #: its Incus network runs one)
    network_dns: tuple[str, ...] = ()
    monitoring: bool = True
    idmap: str = "auto"
    agent_uid: int = 1000
    protected_paths: tuple[str, ...] = DEFAULT_PROTECTED
    env: tuple[str, ...] = ()
    mounts: tuple[Mount, ...] = ()
    limits: tuple[tuple[str, str], ...] = ()     # Incus limits.* keys without the prefix
    trusted_workspaces: tuple[str, ...] = ()
    #: rule files or folders added to the bundled rules (absolute after loading)
    rules: tuple[str, ...] = ()
    #: what the monitor does when a rule fires or it cannot vouch for a session ([response])
    response: ResponseSettings = ResponseSettings()
    #: where alerts also go ([[outputs]]: coi_sentinel.outputs.spec); user config only
    outputs: tuple[Any, ...] = ()
    #: where each value came from, for `run -v` and error messages: key -> file
    sources: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    def source_of(self, key: str) -> str:
        return dict(self.sources).get(key, "default")


_TYPES: dict[str, type | tuple[type, ...]] = {
    "prefix": str, "tool": str, "image": str, "incus_profile": str, "max_slots": int,
    "persistent": bool, "network": str, "monitoring": bool, "idmap": str, "agent_uid": int,
    "protected_paths": list, "env": list, "mounts": list, "limits": dict,
    "trusted_workspaces": list, "network_allow_domains": list, "network_allow_cidrs": list,
    "network_needs": list, "network_block_ports": list, "network_bridge": str,
    "network_dns": list,
    "rules": list, "response": dict, "outputs": list,
}

#: keys that only the user's own config (or the command line) may set
_USER_ONLY = {"trusted_workspaces", "outputs"}     # a workspace must not send alerts elsewhere


def _load_toml(path: Path) -> dict[str, Any] | None:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        return None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: {err}") from err
    except OSError as err:
        raise ConfigError(f"{path}: {err.strerror}") from err


def _check_types(data: dict[str, Any], origin: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        want = _TYPES.get(key)
        if want is None:
            raise ConfigError(f"{origin}: unknown key {key!r}")
        if want is int and isinstance(value, bool) or not isinstance(value, want):
            raise ConfigError(f"{origin}: {key} must be a {getattr(want, '__name__', want)}, "
                              f"not {type(value).__name__}")
        out[key] = value
    return out


def _normalise(values: dict[str, Any], origin: str, base: Path) -> dict[str, Any]:
    """TOML values -> Config field values; relative mount sources are taken from ``base``."""
    out = dict(values)
    if "prefix" in out:
        check_prefix(out["prefix"])
    if "network" in out and out["network"] not in NETWORK_MODES:
        raise ConfigError(f"{origin}: network must be one of {', '.join(NETWORK_MODES)}",
                          hint="'bridge' is now 'restricted' (the default) or 'open'"
                          if out["network"] == "bridge" else None)
    _normalise_network(out, origin)
    if "idmap" in out and out["idmap"] not in IDMAP_MODES:
        raise ConfigError(f"{origin}: idmap must be one of {', '.join(IDMAP_MODES)}")
    if "max_slots" in out and not 1 <= out["max_slots"] <= 999:
        raise ConfigError(f"{origin}: max_slots must be 1-999")
    if "agent_uid" in out and not 1 <= out["agent_uid"] < 65536:
        raise ConfigError(f"{origin}: agent_uid must be 1-65535")
    for key in ("protected_paths", "env", "trusted_workspaces"):
        if key in out:
            if not all(isinstance(v, str) and v for v in out[key]):
                raise ConfigError(f"{origin}: {key} must be a list of non-empty strings")
            out[key] = tuple(out[key])
    for p in out.get("protected_paths", ()):
        if os.path.isabs(p) or ".." in Path(p).parts:
            raise ConfigError(f"{origin}: protected path {p!r} must be relative to the workspace")
    if "trusted_workspaces" in out:
        out["trusted_workspaces"] = tuple(os.path.realpath(os.path.expanduser(p))
                                          for p in out["trusted_workspaces"])
    if "mounts" in out:
        mounts = []
        for i, m in enumerate(out["mounts"]):
            if not isinstance(m, dict) or set(m) - {"source", "path", "readonly"} \
                    or not isinstance(m.get("source"), str) or not isinstance(m.get("path"), str):
                raise ConfigError(f"{origin}: mounts[{i}] needs string 'source' and 'path' "
                                  "(and optional 'readonly')")
            if not os.path.isabs(m["path"]):
                raise ConfigError(f"{origin}: mounts[{i}].path must be absolute")
            src = Path(os.path.expanduser(m["source"]))
            src = src if src.is_absolute() else base / src
            mounts.append(Mount(os.path.realpath(src), m["path"], bool(m.get("readonly", True))))
        out["mounts"] = tuple(mounts)
    if "limits" in out:
        out["limits"] = tuple(sorted((str(k), str(v)) for k, v in out["limits"].items()))
    if "rules" in out:
        if not all(isinstance(v, str) and v for v in out["rules"]):
            raise ConfigError(f"{origin}: rules must be a list of rule files or folders")
        out["rules"] = tuple(os.path.realpath(base / os.path.expanduser(p)) for p in out["rules"])
    if "response" in out:
        out["response"] = parse_response(out["response"], origin)
    if "outputs" in out:
        from ..outputs.spec import parse_config as parse_outputs
        out["outputs"] = tuple(parse_outputs({"outputs": out["outputs"]}, origin))
    return out


def _normalise_network(out: dict[str, Any], origin: str) -> None:
    """The network_* keys in canonical form (so a workspace's lists compare with the user's)."""
    try:
        for key, canon in (("network_allow_domains", check_domain),
                           ("network_allow_cidrs", lambda c: str(ipaddress.ip_network(c.strip()))),
                           ("network_needs", lambda n: str(Service.parse(n)))):
            if key in out:
                if not all(isinstance(v, str) and v for v in out[key]):
                    raise ConfigError(f"{origin}: {key} must be a list of non-empty strings")
                out[key] = tuple(dict.fromkeys(canon(v) for v in out[key]))
        if out.get("network_bridge"):
            check_ifname(out["network_bridge"])
        if "network_dns" in out:
            if not all(isinstance(v, str) and v for v in out["network_dns"]):
                raise ConfigError(f"{origin}: network_dns must be a list of addresses")
            out["network_dns"] = tuple(dict.fromkeys(str(parse_address(v)) for v in out["network_dns"]))
    except NetworkError as err:
        raise ConfigError(f"{origin}: {err}") from err
    except ValueError as err:       # ip_network: host bits set, not a network
        raise ConfigError(f"{origin}: network_allow_cidrs: {err}") from err
    if "network_block_ports" in out:
        ports = out["network_block_ports"]
        if not all(isinstance(p, int) and not isinstance(p, bool) and 1 <= p <= 65535 for p in ports):
            raise ConfigError(f"{origin}: network_block_ports must be a list of ports (1-65535)")
        out["network_block_ports"] = tuple(sorted(set(ports)))


def _outside(cidrs: tuple[str, ...], allowed: tuple[str, ...]) -> list[str]:
    """The networks of ``cidrs`` that are not inside one of ``allowed``."""
    nets = [ipaddress.ip_network(a) for a in allowed]
    return [c for c in cidrs
            if not any(n.version == ipaddress.ip_network(c).version and ipaddress.ip_network(c).subnet_of(n)
                       for n in nets)]


def _network_weakenings(current: Config, ws: dict[str, Any]) -> list[str]:
    """What a workspace's network keys ask for beyond ``current``. Allowing a name, a network
    or a service the user did not allow is a weakening even in allowlist mode: an allowed name
    may resolve to a private address, and an allowed network may be the host's."""
    bad = []
    if "network" in ws and NETWORK_MODES.index(ws["network"]) > NETWORK_MODES.index(current.network):
        bad.append(f"network = {ws['network']!r}")
    for key in ("network_allow_domains", "network_needs", "network_dns"):
        added = sorted(set(ws.get(key, ())) - set(getattr(current, key)))
        if added:
            bad.append(f"{key} {', '.join(added)}")
    added = _outside(ws.get("network_allow_cidrs", ()), current.network_allow_cidrs)
    if added:
        bad.append(f"network_allow_cidrs {', '.join(added)}")
    dropped = sorted(set(current.network_block_ports) - set(ws.get("network_block_ports",
                                                                   current.network_block_ports)))
    if dropped:
        bad.append(f"network_block_ports without {', '.join(map(str, dropped))}")
    if "network_bridge" in ws and ws["network_bridge"] != current.network_bridge:
        bad.append(f"network_bridge = {ws['network_bridge']!r}")
    return bad


def _weakenings(current: Config, ws: dict[str, Any], workspace: Path) -> list[str]:
    """What a workspace file asks for that would weaken ``current``."""
    bad = []
    if ws.get("monitoring") is False and current.monitoring:
        bad.append("monitoring = false")
    bad += _network_weakenings(current, ws)
    if "protected_paths" in ws:
        dropped = set(current.protected_paths) - set(ws["protected_paths"])
        if dropped:
            bad.append(f"protected_paths without {', '.join(sorted(dropped))}")
    root = os.path.realpath(workspace)
    for m in ws.get("mounts", ()):
        if m.source != root and not m.source.startswith(root + os.sep):
            bad.append(f"a mount of {m.source} (outside the workspace)")
        elif not m.readonly:
            pass  # read-write inside the workspace: the workspace is read-write anyway
    if set(ws.get("env", ())) - set(current.env):
        bad.append("env " + ", ".join(sorted(set(ws["env"]) - set(current.env))))
    if "incus_profile" in ws and ws["incus_profile"] != current.incus_profile:
        bad.append(f"incus_profile = {ws['incus_profile']!r}")
    if "idmap" in ws and ws["idmap"] != current.idmap:
        bad.append(f"idmap = {ws['idmap']!r}")
    if "limits" in ws and ws["limits"] != current.limits:
        bad.append("limits")
    bad += response_weakenings(current.response, ws.get("response"), ws.get("rules"))
    return bad


def _apply(cfg: Config, values: dict[str, Any], origin: str) -> Config:
    if "response" in values:           # a table is merged over the one before, key by key
        values = {**values, "response": cfg.response.merged(values["response"])}
    if "rules" in values:              # rule files add up
        values = {**values, "rules": tuple(dict.fromkeys(cfg.rules + values["rules"]))}
    sources = dict(cfg.sources)
    sources.update({k: origin for k in values})
    return dataclasses.replace(cfg, **values, sources=tuple(sorted(sources.items())))


def load(workspace: str | os.PathLike[str] | None = None, *, user_file: Path | None = None,
         overrides: dict[str, Any] | None = None) -> Config:
    """The config for a session on ``workspace``: defaults < user < workspace < overrides."""
    cfg = Config()
    user_path = user_file if user_file is not None else paths.user_config_file()
    data = _load_toml(user_path)
    if data is not None:
        values = _normalise(_check_types(data, str(user_path)), str(user_path), user_path.parent)
        cfg = _apply(cfg, values, str(user_path))
    if workspace is not None:
        ws_path = Path(os.path.realpath(workspace)) / WORKSPACE_FILE
        data = _load_toml(ws_path)
        if data is not None:
            values = _check_types(data, str(ws_path))
            for key in _USER_ONLY & set(values):
                raise ConfigError(f"{ws_path}: {key} may only be set in {user_path}")
            values = _normalise(values, str(ws_path), ws_path.parent)
            trusted = os.path.realpath(workspace) in cfg.trusted_workspaces
            bad = _weakenings(cfg, values, Path(workspace))
            if bad and not trusted:
                raise ConfigError(
                    f"{ws_path} would weaken protection ({'; '.join(bad)}); not applied",
                    hint=f"add {os.path.realpath(workspace)!r} to trusted_workspaces in {user_path} "
                         "if you trust this workspace")
            cfg = _apply(cfg, values, str(ws_path))
    if overrides:
        values = _normalise({k: v for k, v in overrides.items() if v is not None},
                            "command line", Path.cwd())
        cfg = _apply(cfg, values, "command line")
    return cfg


def with_tool_image(cfg: Config, profile) -> Config:
    """A profile with an image recipe runs in its own image (``coi/claude``) unless the user's
    config, the workspace's or ``--image`` named one: the default image has no agent in it."""
    alias = getattr(profile, "image_alias", None)
    if alias is None or cfg.source_of("image") != "default":
        return cfg
    return _apply(cfg, {"image": alias}, f"profile {profile.name}")


def with_outputs(cfg: Config, urls: tuple[str, ...] | list[str]) -> Config:
    """``run --alerts-to URL``: these outputs after the config's own ``[[outputs]]``."""
    from ..outputs.spec import parse_url

    extra = tuple(parse_url(u) for u in urls)
    return dataclasses.replace(cfg, outputs=cfg.outputs + extra)
