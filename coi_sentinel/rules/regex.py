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
from re2 import _re2

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False     # RE2 would print its own error lines on stderr


class RegexError(ValueError):
    """RE2 refuses a pattern; the message is RE2's reason, one line."""


#: texts longer than this are searched by RE2's full matcher (which falls back from the DFA to
#: the NFA when the DFA's memory runs out); shorter ones by an RE2 set of one pattern: the DFA
#: alone, no submatches, no wrapper objects - 8x faster on an argv or a path
SET_TEXT_MAX = 4096


def compile_search(pattern: str) -> Callable[[str], object]:
    """A search of ``pattern`` compiled with RE2, returning something not None (True, or a
    match object) when it matches anywhere in the text; :class:`RegexError` when RE2 refuses
    it. In text that was not valid UTF-8 (paths and argv keep such bytes as surrogate escapes)
    each such byte is searched as one character ("?"), so ``.`` and ``[^x]`` step over it."""
    try:
        full = re2.compile(pattern, _OPTIONS).search
    except re2.error as err:
        raise RegexError(f"{_text(err)} (rules use RE2, a linear-time engine: no backreferences, "
                         "no look-around)") from None
    except (TypeError, ValueError) as err:
        raise RegexError(_text(err)) from None
    one = _re2.Set(_re2.RE2.Anchor.UNANCHORED, _OPTIONS)
    if one.Add(pattern.encode("utf-8")) < 0 or not one.Compile():
        return full
    match = one.Match
    limit = SET_TEXT_MAX

    def search(text: str) -> object:
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError:
            data = text.encode("utf-8", "replace")     # each such byte one character: "?"
        except AttributeError:      # not a string: as RE2's own search would say
            return full(text)
        if len(data) > limit:
            return full(data)
        return True if match(data) else None

    return search


def _text(err: Exception) -> str:
    arg = err.args[0] if err.args else err
    return arg.decode(errors="replace") if isinstance(arg, bytes) else str(arg)
