"""Reading the table back: the JSON of ``list table inet coi_sentinel``, grouped by session.

Pure parsing (the listing comes from :class:`.nft.Nft`), so it is unit-tested on recorded
listings as well as on the real kernel.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .naming import COUNTERS, SETS, owner_key
from .ruleset import parse_meta


@dataclass(slots=True)
class Rule:
    chain: str
    handle: int
    comment: str
    expr: list
    #: "accept", "drop", "reject" or "jump" (empty for a rule without a verdict)
    verdict: str = ""


@dataclass(slots=True)
class SessionState:
    """What the kernel holds for one session key."""

    key: str
    chains: set[str] = field(default_factory=set)
    #: suffix -> elements (as libnftables JSON gives them)
    sets: dict[str, list] = field(default_factory=dict)
    #: category -> (packets, bytes)
    counters: dict[str, tuple[int, int]] = field(default_factory=dict)
    rules: list[Rule] = field(default_factory=list)
    #: session, dev, mode from the base chain's rule comment
    meta: dict[str, str] = field(default_factory=dict)
    #: set and counter names with a suffix this version does not make (kept for removal)
    other_sets: set[str] = field(default_factory=set)
    other_counters: set[str] = field(default_factory=set)

    @property
    def session(self) -> str | None:
        return self.meta.get("session")

    @property
    def mode(self) -> str | None:
        return self.meta.get("mode")

    @property
    def device(self) -> str | None:
        return self.meta.get("dev")

    def set_names(self) -> list[str]:
        return [f"{self.key}.{s}" for s in self.sets] + sorted(self.other_sets)

    def counter_names(self) -> list[str]:
        return [f"{self.key}.{c}" for c in self.counters] + sorted(self.other_counters)

    def elements(self, suffix: str) -> list[str]:
        """The plain values of a set (timeouts dropped; concatenations joined with ' . ')."""
        return [element_text(e)[0] for e in self.sets.get(suffix, [])]


@dataclass(slots=True)
class TableState:
    exists: bool
    sessions: dict[str, SessionState] = field(default_factory=dict)
    #: objects whose names are not ``<key>.<suffix>`` (nothing of ours makes them)
    foreign: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return self.exists and not self.sessions and not self.foreign


def _value_text(v: Any) -> str:
    if isinstance(v, dict):
        if "prefix" in v:
            return f"{v['prefix']['addr']}/{v['prefix']['len']}"
        if "concat" in v:
            return " . ".join(_value_text(x) for x in v["concat"])
        if "range" in v:
            return "-".join(_value_text(x) for x in v["range"])
    return str(v)


def element_text(e: Any) -> tuple[str, int | None]:
    """(value, seconds until it expires or None)."""
    if isinstance(e, dict) and "elem" in e:
        inner = e["elem"]
        return _value_text(inner.get("val")), inner.get("expires")
    return _value_text(e), None


def parse_table(listing: dict | None) -> TableState:
    """Group the objects of a ``list table`` JSON document by session key."""
    if not listing:
        return TableState(exists=False)
    state = TableState(exists=True)

    def session(key: str) -> SessionState:
        return state.sessions.setdefault(key, SessionState(key))

    for item in listing.get("nftables", []):
        kind, obj = next(iter(item.items()))
        if kind in ("metainfo", "table"):
            continue
        name = obj.get("chain") if kind == "rule" else obj.get("name")
        key = owner_key(name or "")
        if key is None:
            state.foreign.append(f"{kind} {name}")
            continue
        suffix = name.split(".", 1)[1]
        s = session(key)
        if kind == "chain":
            s.chains.add(name)
        elif kind == "set":
            if suffix in SETS:
                s.sets[suffix] = list(obj.get("elem", []))
            else:
                s.other_sets.add(name)
        elif kind == "counter":
            if suffix in COUNTERS:
                s.counters[suffix] = (int(obj.get("packets", 0)), int(obj.get("bytes", 0)))
            else:
                s.other_counters.add(name)
        elif kind == "rule":
            expr = obj.get("expr", [])
            verdict = next((k for e in expr for k in e if k in ("accept", "drop", "reject", "jump")), "")
            rule = Rule(name, int(obj.get("handle", 0)), obj.get("comment", ""), expr, verdict)
            s.rules.append(rule)
            if suffix == "hook":
                meta = parse_meta(rule.comment)
                if meta:
                    s.meta = meta
        else:
            state.foreign.append(f"{kind} {name}")
    return state


def session_view(s: SessionState, table: str, *, interface_present: bool) -> dict:
    """What ``net show --json`` prints for one session (plain JSON types)."""
    return {
        "session": s.session or s.key,
        "key": s.key,
        "table": table,
        "chains": sorted(s.chains),
        "interface": s.device,
        "interface_present": interface_present,
        "mode": s.mode or "unknown",
        "state": "pending" if s.mode == "pending" else "applied" if s.mode else "incomplete",
        "counters": {c: {"packets": p, "bytes": b} for c, (p, b) in s.counters.items()},
        "sets": {name: [{"value": v, "expires": exp} for v, exp in map(element_text, elems)]
                 for name, elems in s.sets.items()},
        "rules": [{"chain": r.chain, "comment": r.comment, "verdict": r.verdict} for r in s.rules],
    }
