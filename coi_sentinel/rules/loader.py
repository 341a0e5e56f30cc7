"""Loading a rule set: the bundled rules, then the user's files, checked and compiled.

``load_ruleset(None)`` gives the bundled rules; ``load_ruleset([dir_or_file, ...])`` adds the
user's files after them (their items may append to or override bundled items), and
``replace_bundled=True`` uses only the user's files. A directory means its ``*.yaml`` and
``*.yml`` files, sorted by name (not recursive: ``rules/tests/`` holds fixtures).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Iterable

from ..assets import asset_dir
from .diagnostics import Diagnostics
from .merge import merge
from .model import Source
from .ruleset import RuleSet, build
from .schema import FileItems, read_file
from .yamlload import load_file

log = logging.getLogger(__name__)

RULE_SUFFIXES = (".yaml", ".yml")


def bundled_dir() -> Path:
    return asset_dir("rules")


def yaml_files(paths: Iterable[Path], diags: Diagnostics, *, what: str = "rule",
               name: Callable[[Path], str] = str) -> list[Path]:
    """Expand directories to their ``.yaml`` files (sorted, not recursive); a missing path is an
    error and an empty directory a warning. ``what`` names the files in messages."""
    out: list[Path] = []
    for path in paths:
        path = Path(path)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix in RULE_SUFFIXES and p.is_file())
            if not found:
                diags.warning(Source(name(path), 1), f"the directory has no .yaml {what} files")
            out.extend(found)
        elif path.is_file():
            out.append(path)
        else:
            diags.error(Source(name(path), 1), f"no such {what} file or directory")
    unique: dict[Path, Path] = {}
    for p in out:
        unique.setdefault(p.resolve(), p)
    return list(unique.values())


def rule_files(paths: Iterable[Path], diags: Diagnostics) -> list[Path]:
    return yaml_files(paths, diags, what="rule")


def compat_dir() -> Path:
    """Compatibility files (``rules/compat/``): the standard macros and lists of Falco's rule
    files, so a Falco file can use them. Loaded with every rule set, bundled or not; a file
    that defines one of their names itself replaces it."""
    return bundled_dir() / "compat"


def check_ruleset(paths: Iterable[Path] | None = None, replace_bundled: bool = False,
                  sigma_paths: Iterable[Path] | None = None) -> RuleSet:
    """Load and check without raising: errors and warnings are in ``ruleset.diagnostics``.
    ``sigma_paths``: Sigma rule files or directories, converted (rules/sigma.py) and loaded
    after ``paths``; a Sigma rule that cannot be converted is a warning naming the reason."""
    diags = Diagnostics()
    sources: list[Path] = [] if replace_bundled else rule_files([bundled_dir()], diags)
    compat = rule_files([compat_dir()], diags) if compat_dir().is_dir() else []
    user = rule_files(paths or [], diags)
    files: list[FileItems] = []
    names: list[str] = []
    for path in [*sources, *compat, *user]:
        name = display_name(path)
        data = load_file(path, diags, name)
        items = read_file(data, name, diags)
        items.weak = path in compat
        files.append(items)
        if not items.weak:      # infrastructure, not one of the files the user asked for
            names.append(name)
    if sigma_paths:
        from .sigma import sigma_file_items

        for items in sigma_file_items(list(sigma_paths), diags):
            files.append(items)
            names.append(items.path)
    merged = merge(files, diags)
    return build(merged, names, diags)


def display_name(path: Path) -> str:
    """How messages name a file: ``rules/x.yaml`` for a bundled one, else as given."""
    try:
        rel = path.resolve().relative_to(bundled_dir().resolve())
    except ValueError:
        return str(path)
    return f"rules/{rel}"


def load_ruleset(paths: list[Path] | None = None, replace_bundled: bool = False,
                 sigma_paths: list[Path] | None = None) -> RuleSet:
    """The rule set to run: bundled rules plus ``paths`` (or only ``paths``).

    Raises :class:`~coi_sentinel.errors.RuleSetInvalid` (a :class:`RuleError`: ``path``,
    ``line``, and every error in ``diagnostics``) when any file has an error; warnings are
    logged.
    """
    ruleset = check_ruleset(paths, replace_bundled, sigma_paths)
    ruleset.diagnostics.raise_if_errors()
    for diag in ruleset.diagnostics.warnings:
        log.debug("%s", diag)
    return ruleset
