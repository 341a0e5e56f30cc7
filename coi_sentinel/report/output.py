"""Writing a report: which format, where, with which mode.

A session's report goes by default to ``$XDG_STATE_HOME/coi-sentinel/reports/<session>.html``
(beside the audit logs). It holds what the audit log holds (command lines, paths of secrets),
so it is written mode 0600, atomically (a reader never sees half a page). Under sudo the file
and its folder are given to the invoking user, so they open it in their own browser; the audit
log itself stays root's.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import orjson

from ..errors import OutputError
from . import html, markdown
from .model import SessionReport, build

FORMATS = ("html", "md", "json")

#: `run` writes its session's report at once when the log is at most this big; a bigger log
#: (an hour of a busy agent) is left for `coi-sentinel report`, so `run` returns at once
EAGER_MAX_BYTES = 16 << 20     # about a second of work


def render(rep: SessionReport, fmt: str) -> str:
    if fmt == "html":
        return html.render(rep)
    if fmt == "md":
        return markdown.render(rep)
    if fmt == "json":
        return orjson.dumps(rep.to_dict(), option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode() + "\n"
    raise OutputError(f"unknown report format {fmt!r} (one of: {', '.join(FORMATS)})")


def format_of(path: str | None, fmt: str | None) -> str:
    """The format asked for, else the one the output's name says, else html."""
    if fmt:
        return fmt
    if path and path != "-":
        suffix = Path(path).suffix.lower()
        return {".md": "md", ".markdown": "md", ".json": "json"}.get(suffix, "html")
    return "html"


def reports_dir() -> Path:
    from ..host.paths import state_dir

    return state_dir() / "reports"


def default_path(session: str, fmt: str) -> Path:
    return reports_dir() / f"{session}.{fmt}"


def write(text: str, path: Path, *, give_to_sudo_user: bool = False) -> Path:
    """Write ``text`` to ``path`` (mode 0600, atomically); folders made 0700."""
    try:
        new_dirs = [p for p in reversed(path.parent.parents) if not p.exists()]
        new_dirs += [path.parent] if not path.parent.exists() else []
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            owner = _sudo_owner() if give_to_sudo_user else None
            if owner is not None:
                for d in new_dirs + [path.parent]:
                    os.chown(d, *owner)
                os.chown(tmp, *owner)
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
    except OSError as err:
        raise OutputError(f"{path}: cannot write the report: {err.strerror}") from err
    return path


def _sudo_owner() -> tuple[int, int] | None:
    if os.geteuid() != 0:
        return None
    try:
        uid, gid = int(os.environ["SUDO_UID"]), int(os.environ["SUDO_GID"])
    except (KeyError, ValueError):
        return None
    return (uid, gid) if uid != 0 else None


def session_report(audit_files: list[Path], session: str, fmt: str = "html",
                   facts: dict[str, Any] | None = None) -> Path:
    """Build and write the report of a session to its default place; its path."""
    text = render(build(audit_files, facts), fmt)
    return write(text, default_path(session, fmt), give_to_sudo_user=True)


def log_size(files: list[Path]) -> int:
    total = 0
    for f in files:
        try:
            total += f.stat().st_size
        except OSError:
            pass
    return total
