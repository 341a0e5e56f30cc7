"""Rule index: an event meets only the conditions that can match it.

Without an index, the match function of an event type tests every condition for that type in
turn, so the cost of an event grows with the number of rules. Most conditions, though, cannot
hold unless one field has one of a few literal values: ``proc.name in (nc, ncat)``,
``file.path startswith /etc/sudoers``, ``file.path endswith .aws/credentials``,
``fd.port = 4444``. :func:`guard` finds such a *necessary* test in a typed condition tree
(:mod:`~coi_sentinel.rules.resolve` nodes, the same objects the compiler reads):

- a comparison ``=`` / ``in`` gives exact values, ``startswith`` prefixes, ``endswith``
  suffixes, ``contains`` substrings, ``glob`` the literal text before its first wildcard (a
  prefix);
- ``A and B`` needs the guard of either side: the most selective one is taken (exact values
  before suffixes before prefixes, then longer literals; a guard on a field with few distinct
  values, :data:`WEAK_FIELDS`, is not used at all);
- ``A or B`` needs a guard on both sides (their union, possibly on different fields);
- ``not ...``, boolean fields, ``icontains``, ``regex``, ``cidr``, ranges and list-valued fields
  guard nothing: such a condition is tested on every event of its types, as before.

:func:`build_indexed_function` then writes, per event type, one function that tests the
unguarded conditions inline (as the plain compiler does), computes each indexed field once,
looks its value up in a :class:`FieldIndex` (a dict for exact values, a dict keyed by the
directory part for prefixes, dicts keyed by the last path component and by length for
suffixes) and runs only the conditions found there, each compiled as a function of its own.
The ids returned are the same, in the same (ascending) order, as the plain match function's:
the index only skips conditions whose guard proves them false. tests/unit/test_rule_index.py
checks that on the rule test corpus.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Hashable, Iterable

from ..events.types import EventType
from .compiler import Code, CodeGen, Namespace, _fold_event_type
from .fields import FieldType
from .resolve import FieldUse, TAnd, TBool, TCompare, TConst, TNode, TNot, TOr

#: one necessary test: (field, "eq" | "prefix" | "suffix" | "contains", literal)
Alt = tuple[FieldUse, str, Any]
#: a set of tests of which at least one holds whenever the condition holds; None: no guard
#: (the condition is tested on every event); empty: the condition can never hold
Guard = frozenset[Alt] | None

_NEVER: frozenset[Alt] = frozenset()
_WILDCARDS = "*?["
#: a prefix shorter than this passes too many events to be worth indexing
MIN_PREFIX = 2
#: a guard scoring less (a field of WEAK_FIELDS, one needing ancestry or the session) is not
#: used: the condition is tested inline, which is cheaper than a lookup that nearly always hits
MIN_SCORE = 2
#: an event type with at most this many conditions is tested inline: for so few, the lookups
#: and calls of the index cost more than the tests they save
INDEX_MIN_CONDITIONS = 8
#: fields with few distinct values (kinds, errnos, ids of the few containers...): a guard on
#: them passes for most events, so it is never used (see MIN_SCORE)
WEAK_FIELDS = frozenset({
    "evt.errno", "evt.exit_code", "evt.signal", "evt.clone_flags", "user.uid", "user.gid",
    "container.name", "container.scope_id", "container.cgroup_id", "session.id", "session.tool",
    "session.network", "net.family", "fd.num", "fd.oldfd", "fd.newfd", "file.kind", "file.flags",
    "file.mode", "file.mode_octal", "priv.op", "priv.ptrace_request", "proc.argc",
})


def shape(node: TNode) -> Hashable:
    """The node without where it was written: equal for conditions that test the same thing
    (copies of a rule in other files or lines); may raise TypeError for an unhashable value."""
    if isinstance(node, TCompare):
        key: Hashable = ("cmp", node.field, node.op, node.values)
    elif isinstance(node, TBool):
        key = ("bool", node.field)
    elif isinstance(node, TAnd):
        key = ("and", tuple(shape(i) for i in node.items))
    elif isinstance(node, TOr):
        key = ("or", tuple(shape(i) for i in node.items))
    elif isinstance(node, TNot):
        key = ("not", shape(node.item))
    elif isinstance(node, TConst):
        key = ("const", node.value)
    else:
        key = ("node", id(node))
    hash(key)
    return key


def guard(node: TNode, etype: EventType) -> Guard:
    """A necessary test for ``node`` on events of ``etype`` (see the module doc)."""
    if isinstance(node, TConst):
        return None if node.value else _NEVER
    if isinstance(node, TAnd):
        found = [g for g in (guard(i, etype) for i in node.items) if g is not None]
        if not found:
            return None
        if any(not g for g in found):
            return _NEVER
        return max(found, key=_selectivity)
    if isinstance(node, TOr):
        out: set[Alt] = set()
        for item in node.items:
            g = guard(item, etype)
            if g is None:
                return None
            out |= g
        return frozenset(out)
    if isinstance(node, TNot):
        return None
    if isinstance(node, TBool):
        return None if node.field.fdef.expr(etype, node.field.index) is not None else _NEVER
    if isinstance(node, TCompare):
        return _compare_guard(node, etype)
    return None     # a node kind this module does not know: tested on every event, as before


def _compare_guard(n: TCompare, etype: EventType) -> Guard:
    use, op, values = n.field, n.op, n.values
    fdef = use.fdef
    if fdef.name == "evt.type" and op in ("=", "!=", "in", "exists"):
        return None if _fold_event_type(etype, n) else _NEVER
    if fdef.expr(etype, use.index) is None:
        return _NEVER               # no value for this type: the compiler folds it to false
    if use.multi or fdef.type not in (FieldType.STR, FieldType.INT):
        return None
    if op in ("=", "in"):
        if not values:
            return _NEVER
        if not all(_plain(v, fdef.type) for v in values):
            return None
        return frozenset((use, "eq", v) for v in values)
    if fdef.type is not FieldType.STR:
        return None
    if op in ("startswith", "endswith") and values and all(isinstance(v, str) for v in values):
        if any(v == "" for v in values):
            return None             # every string starts with ""
        kind = "prefix" if op == "startswith" else "suffix"
        if kind == "prefix" and any(len(v) < MIN_PREFIX for v in values):
            return None
        return frozenset((use, kind, v) for v in values)
    if op == "contains" and values and all(isinstance(v, str) for v in values):
        if any(len(v) < MIN_PREFIX for v in values):
            return None
        return frozenset((use, "contains", v) for v in values)
    if op == "glob" and values:
        alts = set()
        for v in values:
            text = str(v)
            cut = min((i for i in (text.find(c) for c in _WILDCARDS) if i >= 0), default=len(text))
            if cut == len(text):                       # no wildcard: the whole value, exactly
                alts.add((use, "eq", text))
                continue
            if cut < MIN_PREFIX:
                return None
            alts.add((use, "prefix", text[:cut]))
        return frozenset(alts)
    return None


def _plain(value: Any, ftype: FieldType) -> bool:
    """A literal that compares with ``==`` as it hashes (a dict lookup finds exactly it)."""
    if ftype is FieldType.STR:
        return isinstance(value, str)
    return isinstance(value, int) and not isinstance(value, bool)


def _selectivity(g: frozenset[Alt]) -> tuple[int, int]:
    """How rarely the guard passes (higher is rarer): its weakest test decides."""
    return (min(_alt_score(a) for a in g), -len(g))


def _alt_score(alt: Alt) -> int:
    use, kind, literal = alt
    if use.fdef.name in WEAK_FIELDS:
        return 1
    size = len(literal) if isinstance(literal, str) else 8
    base = {"eq": 1000, "suffix": 500, "contains": 250, "prefix": 0}[kind] + min(size, 100)
    expr = use.fdef.index_exprs.get(EventType.EXEC) if use.index is not None else None
    text = " ".join(use.fdef.exprs.values()) + (expr or "")
    if "{anc}" in text or "{ses}" in text:
        base -= 2000                # looked up in the process table or sessions: used only if alone
    return base


class FieldIndex:
    """Literals of one field -> the conditions they guard. Called with the field's value and
    a list, it appends the ids of the conditions whose guard the value passes."""

    __slots__ = ("exact", "prefix", "suffix_tail", "suffix_len", "contains", "_lens", "_affix",
                 "_prefix_dir_max", "_prefixes", "_suffixes", "_pgate", "_sgate", "_cgate", "tail_len",
                 "tails")

    def __init__(self) -> None:
        self.exact: dict[Any, list[int]] = {}
        #: prefix literal keyed by its directory part (up to and including the last "/")
        self.prefix: dict[str, list[tuple[str, int]]] = {}
        #: suffix literal with a "/", keyed by the part after its last "/"
        self.suffix_tail: dict[str, list[tuple[str, int]]] = {}
        #: suffix literal without a "/": by length, then literal
        self.suffix_len: dict[int, dict[str, list[int]]] = {}
        #: substring literal -> the conditions it guards
        self.contains: dict[str, list[int]] = {}
        self._lens: tuple[int, ...] = ()
        self._affix = False
        self._prefix_dir_max = -1
        self._prefixes: set[str] = set()
        self._suffixes: set[str] = set()
        #: one anchored regex of every prefix (and of every reversed suffix): a value that
        #: passes neither costs two scans in C, not a walk in Python
        self._pgate: Callable[[str], Any] | None = None
        self._sgate: Callable[[str], Any] | None = None
        #: one regex of every substring: a value holding none costs one search in C
        self._cgate: Callable[[str], Any] | None = None
        #: the last ``tail_len`` characters of every suffix (at most 4, the shortest suffix's
        #: length): a value whose own last characters are not among them ends with none, found
        #: with a slice and a set lookup before the suffixes' regex is run on the reversed value
        self.tail_len = 0
        self.tails: frozenset[str] = frozenset()

    def add(self, kind: str, literal: Any, cid: int) -> None:
        if kind == "eq":
            self.exact.setdefault(literal, []).append(cid)
        elif kind == "contains":
            if literal not in self.contains:
                self._cgate = _trie_regex(self.contains.keys() | {literal}).search
            self.contains.setdefault(literal, []).append(cid)
        elif kind == "prefix":
            self.prefix.setdefault(literal[:literal.rfind("/") + 1], []).append((literal, cid))
            if literal not in self._prefixes:
                self._prefixes.add(literal)
                self._pgate = _gate(self._prefixes)
        else:
            if "/" in literal:
                self.suffix_tail.setdefault(literal[literal.rfind("/") + 1:], []).append((literal, cid))
            else:
                self.suffix_len.setdefault(len(literal), {}).setdefault(literal, []).append(cid)
            if literal not in self._suffixes:
                self._suffixes.add(literal)
                self._sgate = _gate({x[::-1] for x in self._suffixes})
                self.tail_len = min(4, min(map(len, self._suffixes)))
                self.tails = frozenset(x[-self.tail_len:] for x in self._suffixes)
        self._lens = tuple(sorted(self.suffix_len))
        self._affix = bool(self.prefix or self.suffix_tail or self.suffix_len or self.contains)
        self._prefix_dir_max = max(map(len, self.prefix), default=-1)

    def __call__(self, value: Any, out: list[int]) -> None:
        hit = self.exact.get(value)
        if hit is not None:
            out += hit
        if not self._affix or type(value) is not str:
            return
        self.walk(value, out)

    def gate_source(self, value: str, cgate: str, pgate: str, tails: str) -> str:
        """The test, in generated code, that a string ``value`` may start with a prefix, hold
        a substring or end with a suffix of this index (the names: its gates, bound by the
        caller): only then need :meth:`walk` run. Cheaper than the call for most values."""
        tests = []
        if self._cgate is not None:
            tests.append(f"{cgate}({value}) is not None")
        if self._pgate is not None:
            tests.append(f"{pgate}({value}) is not None")
        if self._sgate is not None:
            tests.append(f"{value}[-{self.tail_len}:] in {tails}")
        return " or ".join(tests) or "False"

    def walk(self, value: str, out: list[int]) -> None:
        """Append the ids of the prefixes, substrings and suffixes ``value`` has (a string)."""
        if self._cgate is not None and self._cgate(value) is not None:
            for literal, cids in self.contains.items():
                if literal in value:
                    out += cids
        prefix = self.prefix
        if prefix and self._pgate(value) is not None:       # type: ignore[misc]
            start, last = 0, self._prefix_dir_max
            while start <= last:            # directory parts no longer than the longest key
                bucket = prefix.get(value[:start])
                if bucket is not None:
                    for literal, cid in bucket:
                        if value.startswith(literal):
                            out.append(cid)
                slash = value.find("/", start)
                if slash < 0:
                    break
                start = slash + 1
        if (self._sgate is None or value[-self.tail_len:] not in self.tails
                or self._sgate(value[::-1]) is None):
            return
        if self.suffix_tail:
            bucket = self.suffix_tail.get(value[value.rfind("/") + 1:])
            if bucket is not None:
                for literal, cid in bucket:
                    if value.endswith(literal):
                        out.append(cid)
        if self._lens:
            size = len(value)
            for n in self._lens:
                if n > size:
                    break
                hit = self.suffix_len[n].get(value[-n:])
                if hit is not None:
                    out += hit

    @property
    def exact_only(self) -> bool:
        return not self._affix

    def __len__(self) -> int:
        return (sum(map(len, self.exact.values())) + sum(map(len, self.prefix.values()))
                + sum(map(len, self.contains.values()))
                + sum(map(len, self.suffix_tail.values()))
                + sum(len(c) for d in self.suffix_len.values() for c in d.values()))


def _gate(literals: set[str]) -> Callable[[str], Any]:
    """``match`` of a regex true at position 0 for a string that starts with any literal."""
    return _trie_regex(literals).match


def _trie_regex(literals: Iterable[str]) -> "re.Pattern[str]":
    """A regex matching exactly the literals (at the position it is tried), written as their
    trie: ``/etc/(?:cron|sudoers)`` rather than ``/etc/cron|/etc/sudoers``. The regex engine
    tries the alternatives of a group in turn but leaves one whose first character differs at
    once, so the cost of a value is that of its path down the trie, not the number of literals
    (a flat alternation of a few hundred paths that all start with ``/`` cost microseconds per
    value). A literal that extends another adds nothing: the shorter one matches first."""
    root: dict[str, Any] = {}
    for text in literals:
        node = root
        for ch in text:
            if "" in node:          # a shorter literal ends here: this one changes nothing
                break
            node = node.setdefault(ch, {})
        else:
            node.clear()            # longer literals below it change nothing either
            node[""] = True
    return re.compile(_trie_source(root), re.DOTALL)


def _trie_source(node: dict[str, Any]) -> str:
    if "" in node:
        return ""
    alts = []
    for ch in sorted(node):
        text, child = re.escape(ch), node[ch]
        while "" not in child and len(child) == 1:     # a chain: one literal run, no group
            (ch, child), = child.items()
            text += re.escape(ch)
        alts.append(text + _trie_source(child))
    return alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"


def _run_candidates(hits: list[int], found: list[int], fns: dict[int, tuple[Callable[..., bool], tuple[int, ...]]],
                    ev: Any, p: Any, E: Any) -> list[int]:
    """Test the conditions the indexes found (each once) after the unguarded ones; ids ascending."""
    for gid in (set(found) if len(found) > 1 else found):
        fn, members = fns[gid]
        if fn(ev, p, E):
            hits += members
    if len(hits) > 1:
        hits.sort()
    return hits


def build_indexed_function(ns: Namespace, etype: EventType, conditions: Iterable[tuple[int, TNode]],
                           *, index: bool = True
                           ) -> tuple[Callable[..., list[int]] | None, str, dict[str, int]]:
    """Like :func:`~coi_sentinel.rules.compiler.build_match_function`, with the index
    (``index=False``: every condition inline, for a type with few of them).

    Equal conditions (rules that differ only in their output, severity, action...) are tested
    once for all of them, with or without the index. Returns the function (None when no condition can hold for the type),
    its source, and counts: ``inline`` conditions tested on every event, ``indexed`` ones,
    ``fields`` indexed.
    """
    gen = CodeGen(ns, etype, lazy_locals=True)
    inline = indexed = 0
    indexes: dict[FieldUse, FieldIndex] = {}
    guarded: dict[int, tuple[Callable[..., bool], tuple[int, ...]]] = {}
    extra_src: list[str] = []
    label = etype.label
    groups: dict[Any, list[tuple[int, TNode]]] = {}
    for cid, node in conditions:
        try:
            key: Any = shape(node)
        except TypeError:
            key = ("unique", cid)
        groups.setdefault(key, []).append((cid, node))
    unguarded: list[tuple[tuple[int, ...], TNode]] = []
    for members in groups.values():
        gid, node = members[0]
        ids = tuple(cid for cid, _ in members)
        code = CodeGen(ns, etype, lazy_locals=True).expr(node)
        if code is False:
            continue
        g = guard(node, etype) if code is not True and index else None
        if g and _selectivity(g)[0] < MIN_SCORE:
            g = None    # a weak field (or one needing ancestry or the session): cheaper inline
        if not g:   # no guard (or one claiming "never" where the compiler sees otherwise)
            unguarded.append((ids, node))
            inline += len(ids)
            continue
        fn, src = _condition_function(ns, etype, gid, node)
        guarded[gid] = (fn, ids)
        indexed += len(ids)
        extra_src.append(src)
        for use, kind, literal in g:
            indexes.setdefault(use, FieldIndex()).add(kind, literal, gid)
    if not inline and not guarded:
        return None, "", {"inline": 0, "indexed": 0, "fields": 0}
    body, reordered = _inline_tests(gen, unguarded)
    if reordered:
        body.append("    hits.sort()")
    name = f"_match_{label}"
    probe: list[str] = []
    if indexes:
        fns_name = ns.const(("index-fns", label, id(guarded)), lambda: guarded)
        run = ns.const(("index-run",), lambda: _run_candidates)
        probe.append("    found = []")
        for use, index in indexes.items():
            text = gen.field(use.fdef, use.index)
            assert text is not None
            if index.exact_only:    # one dict lookup, inline
                k = ns.const(("index", label, id(index)), lambda index=index: index.exact)
                probe.append(f"    _f = {k}.get({text})")
                probe.append("    if _f is not None:")
                probe.append("        found += _f")
            else:       # the exact values inline, the rest only past the gates
                k = ns.const(("index", label, id(index)), lambda index=index: index)
                ex = ns.const(("index-exact", label, id(index)), lambda index=index: index.exact)
                gate = index.gate_source(
                    "_v", ns.const(("index-cgate", label, id(index)), lambda index=index: index._cgate),
                    ns.const(("index-pgate", label, id(index)), lambda index=index: index._pgate),
                    ns.const(("index-tails", label, id(index)), lambda index=index: index.tails))
                probe.append(f"    _v = {text}")
                if index.exact:
                    probe.append(f"    _f = {ex}.get(_v)")
                    probe.append("    if _f is not None:")
                    probe.append("        found += _f")
                probe.append(f"    if _v.__class__ is str and ({gate}):")
                probe.append(f"        {k}.walk(_v, found)")
        probe.append("    if found:")
        probe.append(f"        return {run}(hits, found, {fns_name}, ev, p, E)")
    lines = [f"def {name}(ev, p, E):"]
    lines += [f"    {local} = {init}" for local, init in gen.locals.items()]
    lines.append("    hits = []")
    lines += body
    lines += probe
    lines.append("    return hits")
    src = "\n".join(lines) + "\n"
    exec(compile(src, f"<rules:{label}>", "exec"), ns.globals)  # noqa: S102 - our own code
    counts = {"inline": inline, "indexed": indexed, "fields": len(indexes)}
    return ns.globals[name], "".join(extra_src) + src, counts


def _inline_tests(gen: CodeGen, units: list[tuple[tuple[int, ...], TNode]]) -> tuple[list[str], bool]:
    """The body lines testing the unguarded conditions (each: the ids it stands for, its node),
    and whether their ids may come out of order (then the caller sorts them).

    Conditions whose ``and`` starts with the same test share it: ``if A:`` once, then the rest
    of each under it. Copies of a rule set with other values (a user's larger set, or rules
    written from one template) mostly differ after a common first test (``evt.errno = 0``,
    ``file.kind = write``), so an event that fails it costs one test for all of them. The
    first conjunct of ``A and B`` is evaluated first either way and nothing here has side
    effects, so what holds is unchanged."""
    order: list[Hashable] = []
    heads: dict[Hashable, list[tuple[tuple[int, ...], list[TNode]]]] = {}
    probe = CodeGen(gen.ns, gen.etype, lazy_locals=True)
    for ids, node in units:
        # tests true for every event of the type (``evt.type = exec`` in the exec function)
        # fold away: the first real one is the one shared
        items = [i for i in _conjuncts(node) if probe.expr(i) is not True] or [node]
        key: Hashable
        try:
            key = ("head", shape(items[0])) if len(items) > 1 else ("unit", ids)
        except TypeError:
            key = ("unit", ids)
        if key not in heads:
            order.append(key)
            heads[key] = []
        heads[key].append((ids, items))
    body: list[str] = []
    emitted: list[int] = []
    for key in order:
        members = heads[key]
        if len(members) == 1:
            ids, items = members[0]
            emitted += ids
            _emit_test(body, "    ", gen.expr(items[0] if len(items) == 1 else TAnd(tuple(items))), ids)
            continue
        head = gen.expr(members[0][1][0])
        if head is False:
            continue
        indent = "    " if head is True else "        "
        tests: list[str] = []
        for ids, items in members:
            emitted += ids
            _emit_test(tests, indent, gen.expr(TAnd(tuple(items[1:]))), ids)
        if tests and head is not True:
            body.append(f"    if {head}:")
        body += tests
    return body, emitted != sorted(emitted)


def _conjuncts(node: TNode) -> list[TNode]:
    """``A and (B and C)`` as [A, B, C] (the order of evaluation kept); any other node alone."""
    if not isinstance(node, TAnd):
        return [node]
    out: list[TNode] = []
    for item in node.items:
        out += _conjuncts(item)
    return out


def _emit_test(body: list[str], indent: str, code: Code, ids: tuple[int, ...]) -> None:
    add = f"hits.append({ids[0]})" if len(ids) == 1 else f"hits += {ids!r}"
    if code is False:
        return
    if code is True:
        body.append(f"{indent}{add}")
    else:
        body.append(f"{indent}if {code}:")
        body.append(f"{indent}    {add}")


def _condition_function(ns: Namespace, etype: EventType, cid: int, node: TNode
                        ) -> tuple[Callable[..., bool], str]:
    gen = CodeGen(ns, etype, lazy_locals=True)
    code = gen.expr(node)
    name = f"_cond_{cid}_{etype.label}"
    lines = [f"def {name}(ev, p, E):"]
    lines += [f"    {local} = {init}" for local, init in gen.locals.items()]
    lines.append(f"    return {code}")
    src = "\n".join(lines) + "\n"
    exec(compile(src, f"<rules:{etype.label}:{cid}>", "exec"), ns.globals)  # noqa: S102 - our own code
    return ns.globals[name], src


def match_functions(ns: Namespace, matchers: list[tuple[Any, int]], *, indexed: bool = True,
                    min_conditions: int = INDEX_MIN_CONDITIONS) -> tuple[dict[type, Callable[..., list[int]]], dict[EventType, str], dict[str, dict[str, int]]]:
    """The match function of every event type for ``matchers`` (``RuleSet.matchers``: the
    compiled rule and the step, -1 for a rule that is not a sequence), keyed by event class;
    their sources by type; and per type the counts of :func:`build_indexed_function`.
    ``indexed=False`` builds the plain functions (tests compare the two). A type with at most
    ``min_conditions`` conditions has them all inline, but equal ones tested once and shared
    first tests written once (the three downloaded-file sequences' first step on
    ``file_write``)."""
    from ..events.model import EVENT_CLASSES
    from .compiler import build_match_function

    per_type: dict[EventType, list[tuple[int, TNode]]] = {t: [] for t in EventType}
    for mid, (rule, step) in enumerate(matchers):
        cond = rule.conditions[max(step, 0)]
        for etype in cond.events:
            per_type[etype].append((mid, cond.node))
    fns: dict[type, Callable[..., list[int]]] = {}
    code: dict[EventType, str] = {}
    stats: dict[str, dict[str, int]] = {}
    for etype, conds in per_type.items():
        if indexed:
            fn, src, counts = build_indexed_function(ns, etype, conds, index=len(conds) > min_conditions)
        else:
            fn, src = build_match_function(ns, etype, conds)
            counts = {"inline": len(conds), "indexed": 0, "fields": 0}
        if fn is not None:
            fns[EVENT_CLASSES[etype]] = fn
            code[etype] = src
            stats[etype.label] = counts
    return fns, code, stats


__all__ = ["FieldIndex", "Guard", "build_indexed_function", "guard", "match_functions", "shape"]
