"""Rule regexes run on RE2 (google-re2): linear time in the length of the text, whatever the
pattern.

Python's ``re`` backtracks: ``(a+)+$`` takes seconds on 26 characters of agent-controlled
arguments, which stalls the monitor and lets the guardian freeze the session - a denial of
service by whoever writes a rule or controls argv. RE2 has no backreferences and no
look-around; a pattern that needs them is a rule error (``rules lint`` reports it), never a
silent fall-back to a backtracking engine.
"""

from __future__ import annotations

from typing import Callable

import re2

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False     # RE2 would print its own error lines on stderr


class RegexError(ValueError):
    """RE2 refuses a pattern; the message is RE2's reason, one line."""


def compile_search(pattern: str) -> Callable[[str], object]:
    """The ``search`` of ``pattern`` compiled with RE2; :class:`RegexError` when RE2 refuses
    it."""
    try:
        return re2.compile(pattern, _OPTIONS).search
    except re2.error as err:
        raise RegexError(f"{_text(err)} (rules use RE2, a linear-time engine: no backreferences, "
                         "no look-around)") from None
    except (TypeError, ValueError) as err:
        raise RegexError(_text(err)) from None


def _text(err: Exception) -> str:
    arg = err.args[0] if err.args else err
    return arg.decode(errors="replace") if isinstance(arg, bytes) else str(arg)
