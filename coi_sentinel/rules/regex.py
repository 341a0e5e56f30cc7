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
#: answers kept per pattern (texts of at most CACHE_TEXT_MAX characters): a process's command
#: line or name is searched again on each of its events (the corpus: 5,561 searches of 1,891
#: texts); a call into RE2 costs far more than a dict lookup. At most CACHE_MAX x
#: CACHE_TEXT_MAX characters per pattern, then it starts afresh
CACHE_MAX = 512
CACHE_TEXT_MAX = 256


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
    cache: dict[str, object] = {}

    def search(text: str) -> object:
        hit = cache.get(text, cache)        # (the cache itself: not there)
        if hit is not cache:
            return hit
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError:
            data = text.encode("utf-8", "replace")     # each such byte one character: "?"
        except AttributeError:      # not a string: as RE2's own search would say
            return full(text)
        if len(data) > limit:
            return full(data)
        hit = True if match(data) else None
        if len(text) <= CACHE_TEXT_MAX:
            if len(cache) >= CACHE_MAX:
                cache.clear()
            cache[text] = hit
        return hit

    search.cache = cache        # type: ignore[attr-defined]  # (tests: what it holds)
    return search


def _text(err: Exception) -> str:
    arg = err.args[0] if err.args else err
    return arg.decode(errors="replace") if isinstance(arg, bytes) else str(arg)
