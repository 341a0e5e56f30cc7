"""Session reports: what an agent did, from its audit log, for people.

:func:`build` reads a log into a :class:`SessionReport`; :mod:`.html` renders a
self-contained page, :mod:`.markdown` a text version.
"""

from .model import SessionReport, build

__all__ = ["SessionReport", "build"]
