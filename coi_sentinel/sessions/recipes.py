"""Agent images: a profile's image recipe, pinned by ``sessions/agents.lock``.

A profile (``sessions/claude.yaml``) names the apt, npm and pip packages its tool needs; npm and
pip packages without a version take theirs from the lock file. :func:`packages_for` turns one or
more profiles into a :class:`Packages` set: what ``image build --tool`` installs, what its recipe
hash covers (so a changed lock rebuilds), and what the image's properties record.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import yaml

from ..assets import asset_dir
from ..errors import ProfileError
from .profiles import Profile

LOCK_NAME = "agents.lock"
_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+_-]*$")


@dataclass(frozen=True, slots=True)
class Lock:
    npm: dict[str, str]
    pip: dict[str, str]
    source: str


def lock_path() -> Path:
    return asset_dir("sessions") / LOCK_NAME


def load_lock(path: Path | None = None) -> Lock:
    """The pinned versions; errors name the file (and the line where there is one)."""
    path = path or lock_path()
    try:
        text = path.read_text()
    except OSError as err:
        raise ProfileError(f"{path}: {err.strerror}") from err
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f"{mark.line + 1}:" if mark is not None else ""
        raise ProfileError(f"{path}:{line} {getattr(err, 'problem', err)}") from err
    if not isinstance(data, dict) or set(data) - {"npm", "pip"}:
        raise ProfileError(f"{path}:1: the lock is a mapping with npm and pip")
    out: dict[str, dict[str, str]] = {}
    for key in ("npm", "pip"):
        section = data.get(key) or {}
        if not isinstance(section, dict):
            raise ProfileError(f"{path}:1: {key} must map package names to versions")
        for name, version in section.items():
            if not isinstance(version, str) or not _VERSION_RE.match(version):
                raise ProfileError(f"{path}:1: {key} {name}: version must be a string like "
                                   f"\"1.2.3\", not {version!r}")
        out[key] = {str(k): v for k, v in section.items()}
    return Lock(out["npm"], out["pip"], str(path))


def split_npm(spec: str) -> tuple[str, str | None]:
    """``@scope/name@1.2`` -> (``@scope/name``, ``1.2``); no version -> (name, None)."""
    at = spec.rfind("@")
    if at > 0:
        return spec[:at], spec[at + 1:]
    return spec, None


def split_pip(spec: str) -> tuple[str, str | None]:
    name, sep, version = spec.partition("==")
    return name, (version if sep else None)


@dataclass(frozen=True, slots=True)
class Packages:
    """What an agent image adds to the Debian base: apt names, (name, version) pairs, and for
    each tool the package that is the tool itself."""

    tools: tuple[str, ...]
    apt: tuple[str, ...]
    npm: tuple[tuple[str, str], ...]
    pip: tuple[tuple[str, str], ...]
    tool_packages: tuple[tuple[str, str, str], ...]     # (tool, package, version)

    def npm_specs(self) -> list[str]:
        return [f"{n}@{v}" for n, v in self.npm]

    def pip_specs(self) -> list[str]:
        return [f"{n}=={v}" for n, v in self.pip]

    def tool_versions(self) -> str:
        """``claude=2.1.332,codex=0.171.0``: the image property ``image list`` shows."""
        return ",".join(f"{t}={v}" for t, _p, v in self.tool_packages)

    def fingerprint(self) -> str:
        """A stable text of everything installed, for the recipe hash."""
        return ";".join([",".join(self.tools), ",".join(self.apt), ",".join(self.npm_specs()),
                         ",".join(self.pip_specs())])


def _pin(spec: str, kind: str, lock: dict[str, str], profile: Profile, lock_src: str) -> tuple[str, str]:
    name, version = (split_npm if kind == "npm" else split_pip)(spec)
    if version is None:
        version = lock.get(name)
        if version is None:
            line = profile.image.line if profile.image else 1
            raise ProfileError(f"{profile.source}:{line}: {kind} package {name!r} has no version "
                               f"and is not in {lock_src}",
                               hint=f"pin it: {name}{'@' if kind == 'npm' else '=='}VERSION, "
                                    f"or add it to the lock")
    return name, version


def packages_for(profiles: Iterable[Profile], lock: Lock | None = None) -> Packages:
    """The packages of one or more profiles (``image build --tool all`` merges them)."""
    lock = lock or load_lock()
    tools: list[str] = []
    apt: list[str] = []
    npm: dict[str, str] = {}
    pip: dict[str, str] = {}
    tool_packages = []
    for profile in profiles:
        if profile.image is None:
            raise ProfileError(f"{profile.source}:1: profile {profile.name} has no image recipe "
                               "(key `image`)")
        tools.append(profile.name)
        apt += [a for a in profile.image.apt if a not in apt]
        first = None
        for kind, specs, table, pins in (("npm", profile.image.npm, lock.npm, npm),
                                         ("pip", profile.image.pip, lock.pip, pip)):
            for spec in specs:
                name, version = _pin(spec, kind, table, profile, lock.source)
                if pins.get(name, version) != version:
                    raise ProfileError(f"{profile.source}:{profile.image.line}: {kind} {name} "
                                       f"pinned twice ({pins[name]} and {version})")
                pins[name] = version
                first = first or (name, version)
        if first is not None:
            tool_packages.append((profile.name, first[0], first[1]))
    if npm and "nodejs" not in apt:
        apt.append("nodejs")
    if pip and "python3-venv" not in apt:
        apt.append("python3-venv")
    return Packages(tuple(tools), tuple(apt), tuple(sorted(npm.items())), tuple(sorted(pip.items())),
                    tuple(tool_packages))
