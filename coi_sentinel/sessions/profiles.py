"""Agent profiles: one declarative YAML file per tool in ``sessions/`` (shipped in the wheel),
overridable by ``~/.config/coi-sentinel/sessions/<tool>.yaml``.

A profile says what to run, how to tell it is installed, which files of the user's home to
stage into the container (always copied, mode 0600, owned by the agent; JSON settings merged),
which environment variables to forward by name, what to save for ``run --resume``, and the
image recipe of the tool (``image``: apt, npm and pip packages that ``image build --tool NAME``
installs; versions of unversioned packages come from ``sessions/agents.lock``). Errors read ``sessions/claude.yaml:12: ...``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..assets import asset_dir
from ..errors import ProfileError, UnknownTool
from ..host import paths

_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MERGE_MODES = ("none", "json")


@dataclass(frozen=True, slots=True)
class Credential:
    path: str                     # relative to the home directory, on the host and in the container
    merge: str = "none"           # "json": merged into the file already in the container
    settings: dict[str, Any] = field(default_factory=dict)   # JSON forced on top (merge: json)
    optional: bool = True         # a missing host file is skipped


@dataclass(frozen=True, slots=True)
class ImageRecipe:
    """What ``image build --tool NAME`` adds to the Debian session image. npm and pip entries
    are ``name`` (version from the lock) or ``name@version`` / ``name==version``; the first npm
    or pip package is the tool's own, whose version ``image list`` shows."""

    apt: tuple[str, ...] = ()
    npm: tuple[str, ...] = ()
    pip: tuple[str, ...] = ()
    line: int = 1                 # of the ``image`` key, for errors


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    description: str
    command: tuple[str, ...]
    source: str                                  # file the profile came from
    install_check: tuple[str, ...] = ()
    install_hint: str = ""
    credentials: tuple[Credential, ...] = ()
    env: tuple[str, ...] = ()
    state_dir: str | None = None                 # relative to the agent's home
    resume_args: tuple[str, ...] = ()
    #: io_uring allowed in the container (denied by default, as Docker's seccomp profile does):
    #: with it, io_uring operations are seen by opcode only and a connect through it is killed
    io_uring: bool = False
    image: ImageRecipe | None = None             # None: the tool needs no packages of its own

    @property
    def image_alias(self) -> str | None:
        """The alias ``image build --tool NAME`` imports under (``coi/NAME``)."""
        return f"coi/{self.name}" if self.image is not None else None


class _Loader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys and keeps the line of every mapping key."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> dict:
    out: dict = {}
    lines: dict = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in out:
            raise ProfileError(f"{loader.name}:{key_node.start_mark.line + 1}: duplicate key {key!r}")
        out[key] = loader.construct_object(value_node, deep=True)
        lines[key] = key_node.start_mark.line + 1
    out_lines = _Lines(out)
    out_lines.lines = lines
    return out_lines


class _Lines(dict):
    lines: dict


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _line(d: Any, key: str) -> int:
    return getattr(d, "lines", {}).get(key, 1)


def _str_list(d: dict, key: str, where: str) -> tuple[str, ...]:
    value = d.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ProfileError(f"{where}:{_line(d, key)}: {key} must be a list of strings")
    return tuple(value)


def _home_relative(p: str, where: str) -> str:
    if os.path.isabs(p) or ".." in Path(p).parts or p.startswith("~"):
        raise ProfileError(f"{where}: {p!r} must be a path relative to the home directory")
    return os.path.normpath(p)


_KEYS = {"name", "description", "command", "install_check", "install_hint", "credentials",
         "env", "state_dir", "resume_args", "io_uring", "image"}
_PKG_RE = re.compile(r"^(@[a-z0-9][a-z0-9._-]*/)?[A-Za-z0-9][A-Za-z0-9._-]*"
                     r"((@|==)[A-Za-z0-9][A-Za-z0-9.+_-]*)?$")
_APT_RE = re.compile(r"^[a-z0-9][a-z0-9.+-]+$")


def _image_recipe(data: dict, source: str) -> ImageRecipe | None:
    raw = data.get("image")
    if raw is None:
        return None
    line = _line(data, "image")
    if not isinstance(raw, dict) or set(raw) - {"apt", "npm", "pip"}:
        raise ProfileError(f"{source}:{line}: image must be a mapping with apt, npm, pip")
    lists = {key: _str_list(raw, key, source) for key in ("apt", "npm", "pip")}
    for key, names in lists.items():
        pattern = _APT_RE if key == "apt" else _PKG_RE
        for name in names:
            if not pattern.match(name):
                raise ProfileError(f"{source}:{_line(raw, key)}: {name!r} is not a {key} package name")
    return ImageRecipe(lists["apt"], lists["npm"], lists["pip"], line)


def parse(text: str, source: str) -> Profile:
    loader = _Loader(text)
    loader.name = source
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f"{mark.line + 1}:" if mark is not None else ""
        raise ProfileError(f"{source}:{line} {getattr(err, 'problem', err)}") from err
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise ProfileError(f"{source}:1: a profile must be a mapping")
    for key in data:
        if key not in _KEYS:
            raise ProfileError(f"{source}:{_line(data, key)}: unknown key {key!r}")
    for key in ("name", "command"):
        if key not in data:
            raise ProfileError(f"{source}:1: missing key {key!r}")
    name = data["name"]
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ProfileError(f"{source}:{_line(data, 'name')}: name must match {_NAME_RE.pattern}")
    command = _str_list(data, "command", source)
    if not command:
        raise ProfileError(f"{source}:{_line(data, 'command')}: command is empty")
    env = _str_list(data, "env", source)
    for var in env:
        if not _ENV_RE.match(var):
            raise ProfileError(f"{source}:{_line(data, 'env')}: {var!r} is not a variable name")
    creds = []
    raw_creds = data.get("credentials", [])
    if not isinstance(raw_creds, list):
        raise ProfileError(f"{source}:{_line(data, 'credentials')}: credentials must be a list")
    for item in raw_creds:
        where = f"{source}:{_line(data, 'credentials')}"
        if isinstance(item, str):
            item = {"path": item}
        if not isinstance(item, dict) or "path" not in item or \
                set(item) - {"path", "merge", "settings", "optional"}:
            raise ProfileError(f"{where}: each credential is a path or a mapping with path, "
                               "merge, settings, optional")
        merge = item.get("merge", "none")
        if merge not in MERGE_MODES:
            raise ProfileError(f"{where}: merge must be one of {', '.join(MERGE_MODES)}")
        settings = item.get("settings", {})
        if not isinstance(settings, dict) or (settings and merge != "json"):
            raise ProfileError(f"{where}: settings must be a mapping and needs merge: json")
        creds.append(Credential(_home_relative(str(item["path"]), where), merge, dict(settings),
                                bool(item.get("optional", True))))
    state_dir = data.get("state_dir")
    if state_dir is not None:
        if not isinstance(state_dir, str):
            raise ProfileError(f"{source}:{_line(data, 'state_dir')}: state_dir must be a string")
        state_dir = _home_relative(state_dir, f"{source}:{_line(data, 'state_dir')}")
    description = data.get("description", "")
    hint = data.get("install_hint", "")
    if not isinstance(description, str) or not isinstance(hint, str):
        raise ProfileError(f"{source}:1: description and install_hint must be strings")
    io_uring = data.get("io_uring", False)
    if not isinstance(io_uring, bool):
        raise ProfileError(f"{source}:{_line(data, 'io_uring')}: io_uring must be true or false")
    return Profile(name=name, description=description.strip(), command=command, source=source,
                   install_check=_str_list(data, "install_check", source),
                   install_hint=hint.strip(), credentials=tuple(creds), env=env,
                   state_dir=state_dir, resume_args=_str_list(data, "resume_args", source),
                   io_uring=io_uring, image=_image_recipe(data, source))


def _dirs(extra: Path | None) -> list[Path]:
    dirs = [asset_dir("sessions")]
    user = extra if extra is not None else paths.user_profiles_dir()
    if user.is_dir():
        dirs.append(user)
    return dirs


def load_all(user_dir: Path | None = None) -> dict[str, Profile]:
    """Every profile by name; the user's files replace shipped ones of the same name."""
    out: dict[str, Profile] = {}
    for d in _dirs(user_dir):
        for path in sorted(d.glob("*.yaml")):
            try:
                text = path.read_text()
            except OSError as err:
                raise ProfileError(f"{path}: {err.strerror}") from err
            profile = parse(text, str(path))
            if profile.name != path.stem:
                raise ProfileError(f"{path}:{1}: name {profile.name!r} does not match the file name")
            out[profile.name] = profile
    return out


def get(tool: str, user_dir: Path | None = None) -> Profile:
    profiles = load_all(user_dir)
    try:
        return profiles[tool]
    except KeyError:
        raise UnknownTool(tool, sorted(profiles)) from None
