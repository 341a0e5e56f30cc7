"""The one action vocabulary, beside :mod:`coi_sentinel.severity`: what a rule may ask for, what
the response settings map severities to, what an ``action`` record says was done.

=============  ==============================================================  ========
action         what                                                            strength
=============  ==============================================================  ========
alert          record only                                                     0
block          add the destination to the session's deny set                   1
kill-process   kill the offending process and its descendants                  2
pause          freeze the whole container (cgroup2 freezer)                    3
kill           kill the whole container                                        4
resume         thaw a paused container (a user, or a re-adopting daemon)       -
=============  ==============================================================  ========

``resume`` is never a response to an alert: only the first five are (:data:`RESPONSES`). A
weaker response never follows a stronger one on the same target (:data:`STRENGTH`).
"""

from __future__ import annotations

import enum

from .errors import ResponseError


class Action(str, enum.Enum):
    ALERT = "alert"
    PAUSE = "pause"
    KILL = "kill"
    KILL_PROCESS = "kill-process"
    BLOCK = "block"
    RESUME = "resume"

    @classmethod
    def parse(cls, text: str) -> "Action":
        """A response named in a rule or the response settings; ResponseError otherwise."""
        try:
            action = cls(text)
        except ValueError:
            action = None
        if action not in RESPONSES:
            raise ResponseError(f"unknown action {text!r} (one of: {', '.join(NAMES)})")
        return action

    def __str__(self) -> str:
        return self.value


#: what an alert may get, weakest first
RESPONSES: tuple[Action, ...] = (Action.ALERT, Action.BLOCK, Action.KILL_PROCESS, Action.PAUSE, Action.KILL)
#: their names, in the order rules and errors list them
NAMES: tuple[str, ...] = ("alert", "pause", "kill", "kill-process", "block")
STRENGTH: dict[Action, int] = {a: i for i, a in enumerate(RESPONSES)}
#: the actions that end a process (``run`` exits with EXIT_KILLED after one)
KILLS = frozenset({Action.KILL, Action.KILL_PROCESS})

__all__ = ["Action", "KILLS", "NAMES", "RESPONSES", "STRENGTH"]
