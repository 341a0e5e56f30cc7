"""The audit log's hash chain: every line carries its sequence number and a hash of itself and
of the line before it, so an edited, deleted, duplicated or moved line breaks the chain.

A line is the record's JSON with two keys added at the end, always in this order::

    {...the record or event...,"_n":41,"_h":"<64 hex digits>"}

``_n`` counts lines from 0 across all files of a log. ``_h`` is
``sha256(previous line's _h as 64 ASCII hex digits + the line's bytes up to and including
"_n":41})``: exactly the bytes on disk, so verifying needs no re-serialisation. The first
line's "previous hash" is :data:`GENESIS`. Readers ignore keys starting with ``_``.

The chain shows that lines were changed *after* they were written; someone able to rewrite the
whole log from the changed line on can also recompute every hash. ``audit verify`` prints the
last hash (the head): kept elsewhere (a ticket, a second host), it anchors everything before it.
"""

from __future__ import annotations

import re
from hashlib import sha256

ALG = "sha256"
GENESIS = "0" * 64

_H_KEY = b',"_h":"'
_N_KEY = b',"_n":'
#: ``,"_h":"`` + 64 hex digits + ``"}``
_SUFFIX_LEN = len(_H_KEY) + 64 + 2
_HEX = re.compile(rb"[0-9a-f]{64}")
#: a sha256 context with nothing hashed yet: copied for each line
_INIT = sha256()


class HashChain:
    """Seals lines in order; :attr:`prev` is the last hash, :attr:`n` the next line's number."""

    __slots__ = ("_prev", "n")

    def __init__(self, prev: str = GENESIS, n: int = 0) -> None:
        self._prev = prev.encode("ascii")
        self.n = n

    @property
    def prev(self) -> str:
        return self._prev.decode("ascii")

    def seal(self, body: bytes) -> bytes:
        """A JSON object's bytes (no newline) -> the line to write, with ``_n`` and ``_h``."""
        if len(body) < 3 or body[-1] != 125:           # b"}"
            raise ValueError("only a non-empty JSON object can be sealed")
        return self.seal_line(body)[:-1]

    def seal_line(self, body: bytes) -> bytes:
        """:meth:`seal` with the line's newline, for a body known to be a non-empty JSON
        object (not checked: the trace writer's lines are, events and records alike). What the
        audit log's writer buffers, in the fewest steps: each is a few hundred instructions."""
        n = self.n
        head = body[:-1] + b',"_n":%d' % n
        h = _INIT.copy()            # cheaper than a new context (OpenSSL's set-up)
        h.update(self._prev + head + b"}")      # one update: fewer calls than three
        self._prev = digest = h.hexdigest().encode()
        self.n = n + 1
        return head + b',"_h":"' + digest + b'"}\n'


def unseal(line: bytes) -> tuple[bytes, int, str] | None:
    """``(hashed bytes, _n, _h)`` of a sealed line, or None if it has no well-formed seal."""
    if len(line) < _SUFFIX_LEN + 2 or line[-2:] != b'"}' or line[-_SUFFIX_LEN:-_SUFFIX_LEN + len(_H_KEY)] != _H_KEY:
        return None
    h = line[-66:-2]
    if not _HEX.fullmatch(h):
        return None
    numbered = line[:-_SUFFIX_LEN] + b"}"
    i = numbered.rfind(_N_KEY)
    digits = numbered[i + len(_N_KEY):-1] if i >= 0 else b""
    if not digits.isdigit():
        return None
    return numbered, int(digits), h.decode("ascii")


def link(prev: str, numbered: bytes) -> str:
    """The hash a line must carry when it follows a line whose hash is ``prev``."""
    return sha256(prev.encode("ascii") + numbered).hexdigest()
