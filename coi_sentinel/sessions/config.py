"""Session config: built-in defaults, then ``~/.config/coi-sentinel/config.toml``, then the
workspace's ``.coi-sentinel.toml``, then command-line flags.

A workspace file comes with the code an agent works on, so it is not trusted by default: it may
tighten protection but not weaken it. It may not turn monitoring off, open the network further,
drop a protected path, mount anything outside the workspace, forward more host environment
variables, or pick another Incus profile, unless the user lists the workspace in
``trusted_workspaces`` of their own config. Such a file is refused with one line naming the key,
rather than applied in part.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from . import paths
from .naming import check_prefix

WORKSPACE_FILE = ".coi-sentinel.toml"

#: network modes from the most closed to the most open; a workspace may only move left.
#: The network-policy layer adds its modes here.
NETWORK_MODES = ("none", "bridge")

IDMAP_MODES = ("auto", "shift", "raw")

DEFAULT_PROTECTED = (".git/hooks", ".git/config", ".vscode", ".husky")


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
    network: str = "bridge"
    monitoring: bool = True
    idmap: str = "auto"
    agent_uid: int = 1000
    protected_paths: tuple[str, ...] = DEFAULT_PROTECTED
    env: tuple[str, ...] = ()
    mounts: tuple[Mount, ...] = ()
    limits: tuple[tuple[str, str], ...] = ()     # Incus limits.* keys without the prefix
    trusted_workspaces: tuple[str, ...] = ()
    #: where each value came from, for `run -v` and error messages: key -> file
    sources: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    def source_of(self, key: str) -> str:
        return dict(self.sources).get(key, "default")


_TYPES: dict[str, type | tuple[type, ...]] = {
    "prefix": str, "tool": str, "image": str, "incus_profile": str, "max_slots": int,
    "persistent": bool, "network": str, "monitoring": bool, "idmap": str, "agent_uid": int,
    "protected_paths": list, "env": list, "mounts": list, "limits": dict,
    "trusted_workspaces": list,
}

#: keys that only the user's own config (or the command line) may set
_USER_ONLY = {"trusted_workspaces"}


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
        raise ConfigError(f"{origin}: network must be one of {', '.join(NETWORK_MODES)}")
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
    return out


def _weakenings(current: Config, ws: dict[str, Any], workspace: Path) -> list[str]:
    """What a workspace file asks for that would weaken ``current``."""
    bad = []
    if ws.get("monitoring") is False and current.monitoring:
        bad.append("monitoring = false")
    if "network" in ws and NETWORK_MODES.index(ws["network"]) > NETWORK_MODES.index(current.network):
        bad.append(f"network = {ws['network']!r}")
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
    return bad


def _apply(cfg: Config, values: dict[str, Any], origin: str) -> Config:
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
