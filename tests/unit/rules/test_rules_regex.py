"""Rule regexes (coi_sentinel/rules/regex.py): RE2's DFA for short texts, its full matcher for
long ones, the same answers either way; text that is not UTF-8 is searched, never an error."""

from __future__ import annotations

import pytest
import re2

from coi_sentinel.rules.regex import SET_TEXT_MAX, compile_search

pytestmark = pytest.mark.unit

NC = r"(^|\s|/)(nc|ncat|netcat|busybox nc)(\s.*)?\s-[a-z]*l"


@pytest.mark.parametrize("text", ["nc -lvp 4444", "busybox nc 10.0.0.1 80 -l", "/bin/nc -l", "ncat",
                                  "echo nc", "é nc -l", "", "x" * (SET_TEXT_MAX + 10) + " nc -l",
                                  "x" * (SET_TEXT_MAX + 10)])
def test_the_fast_search_answers_as_re2s_own(text: str) -> None:
    assert (compile_search(NC)(text) is not None) == (re2.compile(NC).search(text) is not None)


def test_a_byte_that_is_not_utf8_is_one_character() -> None:
    argv = b"nc \xff -l".decode("utf-8", "surrogateescape")      # how argv keeps such bytes
    assert compile_search(NC)(argv) is not None                  # "." steps over it
    assert compile_search(r"^\[[^\]]\]$")(b"[\xfe]".decode("utf-8", "surrogateescape")) is not None
    assert compile_search(r"^\[[a-z]\]$")(b"[\xfe]".decode("utf-8", "surrogateescape")) is None


def test_answers_are_kept_per_pattern_and_the_cache_stays_bounded() -> None:
    """A text searched again is answered from the pattern's cache - the same answer as RE2's
    own, surrogates included - which never holds more than CACHE_MAX texts, none longer than
    CACHE_TEXT_MAX."""
    from coi_sentinel.rules.regex import CACHE_MAX, CACHE_TEXT_MAX

    search = compile_search(NC)
    plain = re2.compile(NC).search
    texts = [f"{w} {i}" for i in range(CACHE_MAX * 2 + 7) for w in ("nc -l", "ls -l")]
    texts += [b"nc \xff -l".decode("utf-8", "surrogateescape"), "nc -l " + "x" * CACHE_TEXT_MAX]
    for _round in range(2):
        for text in texts:
            want = plain(text.encode("utf-8", "replace")) is not None
            assert (search(text) is not None) == want, text
            assert len(search.cache) <= CACHE_MAX
    assert "nc -l " + "x" * CACHE_TEXT_MAX not in search.cache
    assert search.cache and all(len(t) <= CACHE_TEXT_MAX for t in search.cache)
