"""Syntax tree -> typed tree: fields looked up, macros inlined, lists expanded, values checked.

Every problem becomes a diagnostic at the line of the clause that has it (a clause inside a
macro is reported at the macro's line). A clause that cannot be resolved becomes "false", so
resolution goes on and reports all the problems of a file in one run.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
from dataclasses import dataclass
from typing import Iterable, Iterator

from . import falco
from . import parser as syn
from .diagnostics import Diagnostics
from .fields import FIELDS, FieldDef, FieldType, split_ref
from .model import CondText, ExceptionDef, ListDef, MacroDef, Source
from .parser import ConditionSyntaxError, suggest
from .units import parse_int
from ..events.types import EVENT_TYPE_BY_LABEL

# operators each field type accepts
_STRING_OPS = {"=", "!=", "in", "contains", "icontains", "startswith", "endswith", "glob", "iglob", "regex",
               "exists", "pmatch", "intersects", "bcontains", "bstartswith"}
OPS_BY_TYPE: dict[FieldType, frozenset[str]] = {
    FieldType.STR: frozenset(_STRING_OPS),
    FieldType.IP: frozenset(_STRING_OPS | {"cidr"}),
    FieldType.INT: frozenset({"=", "!=", "<", "<=", ">", ">=", "in", "intersects", "exists"}),
    FieldType.BOOL: frozenset({"=", "!=", "exists"}),
}
#: Falco's operators that are one of ours once their values are read
_SAME_AS = {"intersects": "in", "bcontains": "contains", "bstartswith": "startswith"}
#: operators that take several values (a parenthesised list or a list name)
MULTI_VALUE_OPS = frozenset(syn.WORD_OPS)


# ---- typed tree ----

@dataclass(frozen=True, slots=True)
class FieldUse:
    fdef: FieldDef
    index: int | None

    @property
    def name(self) -> str:
        return self.fdef.name if self.index is None else f"{self.fdef.name}[{self.index}]"

    @property
    def multi(self) -> bool:
        return self.fdef.multi and self.index is None


@dataclass(frozen=True, slots=True)
class FieldRef:
    """``val(FIELD)`` as a value: the other field's value for the same event."""

    use: FieldUse


#: operators that may compare a field with val(another field)
REF_OPS = ("=", "!=", "<", "<=", ">", ">=", "startswith", "endswith", "contains")


@dataclass(frozen=True, slots=True)
class TCompare:
    field: FieldUse
    op: str
    values: tuple[object, ...]    # typed: str, int, bool, ip_network, pattern text
    source: Source


@dataclass(frozen=True, slots=True)
class TBool:
    """A boolean field used as a predicate."""

    field: FieldUse
    source: Source


@dataclass(frozen=True, slots=True)
class TAnd:
    items: tuple["TNode", ...]


@dataclass(frozen=True, slots=True)
class TOr:
    items: tuple["TNode", ...]


@dataclass(frozen=True, slots=True)
class TNot:
    item: "TNode"


@dataclass(frozen=True, slots=True)
class TConst:
    value: bool


TNode = TCompare | TBool | TAnd | TOr | TNot | TConst
FALSE = TConst(False)


def walk(node: TNode) -> Iterator[TNode]:
    yield node
    if isinstance(node, (TAnd, TOr)):
        for item in node.items:
            yield from walk(item)
    elif isinstance(node, TNot):
        yield from walk(node.item)


def fields_used(node: TNode) -> Iterator[tuple[FieldUse, Source]]:
    for n in walk(node):
        if isinstance(n, (TCompare, TBool)):
            yield n.field, n.source
        if isinstance(n, TCompare):
            for v in n.values:
                if isinstance(v, FieldRef):
                    yield v.use, n.source


class Unresolved(Exception):
    """A clause could not be resolved (already reported)."""


class Resolver:
    def __init__(self, lists: dict[str, ListDef], macros: dict[str, MacroDef], diags: Diagnostics) -> None:
        self.lists = lists
        self.macros = macros
        self.diags = diags
        self.used_lists: set[str] = set()
        self.used_macros: set[str] = set()
        self._macro_nodes: dict[str, TNode] = {}
        self._macro_stack: list[str] = []
        self._list_items: dict[str, tuple[str | int, ...]] = {}
        self._bad_macros: set[str] = set()
        #: set when an error was reported (or a macro with errors was used) since the last reset
        self.tainted = False

    def _error(self, src: Source, message: str) -> None:
        self.tainted = True
        self.diags.error(src, message)

    # ---- conditions ----
    def condition(self, parts: tuple[CondText, ...]) -> TNode:
        node: TNode | None = None
        for i, part in enumerate(parts):
            try:
                tree = syn.parse(part.text) if i == 0 else syn.parse_continuation(part.text)
            except ConditionSyntaxError as err:
                self._error(part.source_at(err.pos, err.token), err.message)
                return FALSE
            node = self._node(tree, part, node)
        return node if node is not None else FALSE

    def _node(self, tree: syn.Node, part: CondText, base: TNode | None) -> TNode:
        if isinstance(tree, syn.And):
            return TAnd(tuple(self._node(t, part, base) for t in tree.items))
        if isinstance(tree, syn.Or):
            return TOr(tuple(self._node(t, part, base) for t in tree.items))
        if isinstance(tree, syn.Not):
            return TNot(self._node(tree.item, part, base))
        if isinstance(tree, syn.Base):
            assert base is not None
            return base
        if isinstance(tree, syn.Ref):
            return self._ref(tree, part)
        try:
            return self._compare(tree, part)
        except Unresolved:
            return FALSE

    def _ref(self, ref: syn.Ref, part: CondText) -> TNode:
        src = part.source_at(ref.pos, ref.name)
        if ref.name in self.macros:
            return self.macro(ref.name, src)
        if split_ref(ref.name) is not None and "." in ref.name:
            try:
                use = self.field(ref.name, src)
            except Unresolved:
                return FALSE
            if use.fdef.type is not FieldType.BOOL or use.multi:
                self._error(src, f"field '{ref.name}' is not a boolean: compare it with an operator")
                return FALSE
            return TBool(use, src)
        candidates = list(self.macros) + [n for n, f in FIELDS.items() if f.type is FieldType.BOOL]
        self._error(src, f"unknown macro '{ref.name}'{suggest(ref.name, candidates)}")
        return FALSE

    def macro(self, name: str, used_at: Source) -> TNode:
        self.used_macros.add(name)
        cached = self._macro_nodes.get(name)
        if cached is not None:
            if name in self._bad_macros:
                self.tainted = True
            return cached
        if name in self._macro_stack:
            cycle = " -> ".join(self._macro_stack[self._macro_stack.index(name):] + [name])
            self._error(used_at, f"macro cycle: {cycle}")
            return FALSE
        self._macro_stack.append(name)
        outer, self.tainted = self.tainted, False
        try:
            node = self.condition(self.macros[name].condition)
        finally:
            self._macro_stack.pop()
        if self.tainted:
            self._bad_macros.add(name)
        self.tainted = self.tainted or outer
        self._macro_nodes[name] = node
        return node

    # ---- fields ----
    def field(self, text: str, src: Source) -> FieldUse:
        ref = split_ref(text)
        fdef = falco.field_def(ref[0]) if ref is not None else None
        if ref is None or fdef is None:
            base = text.split("[", 1)[0]
            advice = falco.unsupported_field(text)
            if advice is not None:
                self._error(src, f"field '{text}' is not supported: {advice}")
            else:
                self._error(src, f"unknown field '{text}'{suggest(base, FIELDS)}")
            raise Unresolved
        name, index = ref
        if index is not None and fdef.indexed == "no":
            self._error(src, f"field '{name}' takes no index")
            raise Unresolved
        if index is None and fdef.indexed == "required":
            self._error(src, f"field '{name}' needs an index, like {name}[1]")
            raise Unresolved
        return FieldUse(fdef, index)

    def _compare(self, cmp: syn.Compare, part: CondText) -> TNode:
        src = part.source_at(cmp.pos, cmp.field)
        use = self.field(cmp.field, src)
        if cmp.values and cmp.values[0].ref:
            return self._field_ref(use, cmp.op, self.field(cmp.values[0].text, src), src)
        return self.comparison(use, cmp.op, [(v.text, v.quoted, part.source_at(v.pos, v.text)) for v in cmp.values],
                               cmp.parenthesised, src)

    def comparison(self, use: FieldUse, op: str, values: list[tuple[object, bool, Source]],
                   parenthesised: bool, src: Source) -> TNode:
        """Check ``use op values``; values are (raw value, quoted, source) triples."""
        ftype = use.fdef.type
        if op not in OPS_BY_TYPE[ftype]:
            allowed = ", ".join(sorted(OPS_BY_TYPE[ftype]))
            self._error(src, f"operator '{op}' does not apply to {use.name}, a {ftype.value} field "
                                  f"(it takes: {allowed})")
            raise Unresolved
        if op == "exists":
            return TCompare(use, op, (), src)
        base_op = _SAME_AS.get(op, op)
        if op == "!=" and use.multi:
            self.diags.warning(src, f"'{use.name} != ...' is true when any value differs; write "
                                    f"'not {use.name} = ...' to mean that no value is equal")
        raw: list[tuple[object, Source]] = []
        for value, quoted, vsrc in values:
            if op in MULTI_VALUE_OPS and not quoted and isinstance(value, str) and value in self.lists:
                raw.extend((item, vsrc) for item in self.list_items(value))
            else:
                if op in ("=", "!=") and isinstance(value, str) and value in self.lists and not quoted:
                    self.diags.warning(vsrc, f"'{value}' is a list name but '{op}' compares with the word "
                                             f"itself; write 'in ({value})' to use the list")
                raw.append((value, vsrc))
        if base_op == "in" and not parenthesised and not (len(values) == 1 and values[0][0] in self.lists):
            self._error(src, f"'{op}' takes a list: {use.name} {op} (a, b) or {use.name} {op} list_name")
            raise Unresolved
        if use.fdef.name == "evt.type" and base_op in ("=", "!=", "in"):
            node = self._event_types(use, raw, src)
            return TNot(node) if op == "!=" else node
        typed = tuple(self._typed(use, op, value, vsrc) for value, vsrc in raw)
        if not typed and base_op not in ("in", "cidr"):
            self._error(src, f"'{op}' needs at least one value")
            raise Unresolved
        return TCompare(use, base_op, typed, src)

    def _field_ref(self, use: FieldUse, op: str, other: FieldUse, src: Source) -> TNode:
        """``FIELD op val(OTHER)``: both fields of the same event."""
        if op not in REF_OPS:
            self._error(src, f"val() works with {', '.join(REF_OPS)}, not '{op}'")
            raise Unresolved
        if use.multi or other.multi:
            self._error(src, f"val() compares single values: index the list field ({use.name}, {other.name})")
            raise Unresolved
        kinds = {use.fdef.type, other.fdef.type}
        if len(kinds) > 1 and kinds != {FieldType.STR, FieldType.IP}:
            self._error(src, f"val() compares {use.name} ({use.fdef.type.value}) with {other.name} "
                             f"({other.fdef.type.value}): use fields of one type")
            raise Unresolved
        if use.fdef.type is not FieldType.INT and op in ("<", "<=", ">", ">="):
            self._error(src, f"operator '{op}' compares numbers; {use.name} is a {use.fdef.type.value} field")
            raise Unresolved
        return TCompare(use, op, (FieldRef(other),), src)

    def _event_types(self, use: FieldUse, raw: list[tuple[object, Source]], src: Source) -> TNode:
        """``evt.type`` compared with our event types or Falco's syscall names: the event types
        (and for ``priv`` events the ``priv.op``) that the probes report for them."""
        labels: list[str] = []
        ops: list[str] = []
        unsupported: list[tuple[str, str, Source]] = []
        for value, vsrc in raw:
            name = str(value)
            if name in EVENT_TYPE_BY_LABEL:
                labels.append(name)
            elif name in falco.EVENTS:
                label, op = falco.EVENTS[name]
                if op is None:
                    labels.append(label)
                else:
                    ops.append(op)
            elif name in falco.UNSUPPORTED_EVENTS:
                unsupported.append((name, falco.UNSUPPORTED_EVENTS[name], vsrc))
            else:
                self._error(vsrc, f"unknown event type '{name}'"
                                  f"{suggest(name, [*EVENT_TYPE_BY_LABEL, *falco.EVENTS])}")
                raise Unresolved
        for name, advice, vsrc in unsupported:
            if labels or ops:
                self.diags.warning(vsrc, f"event '{name}' is not supported ({advice}): it never matches")
            else:
                self._error(vsrc, f"event '{name}' is not supported: {advice}")
                raise Unresolved
        items: list[TNode] = []
        if labels:
            items.append(TCompare(use, "in", tuple(dict.fromkeys(labels)), src))
        if ops:
            priv_op = FieldUse(FIELDS["priv.op"], None)
            items.append(TAnd((TCompare(use, "=", ("priv",), src),
                               TCompare(priv_op, "in", tuple(dict.fromkeys(ops)), src))))
        return items[0] if len(items) == 1 else TOr(tuple(items))

    def _typed(self, use: FieldUse, op: str, value: object, src: Source) -> object:
        ftype = use.fdef.type
        try:
            if isinstance(value, (list, tuple, dict)):
                raise ValueError(f"expected a single value, got {type(value).__name__} {value!r}")
            if op == "cidr":
                return _network(value)
            if op == "regex":
                text = _text(value)
                re.compile(text)
                return text
            if op in ("glob", "iglob"):
                text = _text(value)
                re.compile(fnmatch.translate(text))
                return text
            if op in ("bcontains", "bstartswith"):
                return falco.hex_bytes(_text(value))
            if op == "pmatch":
                text = _text(value)
                if not text.startswith("/"):
                    raise ValueError(f"pmatch takes absolute paths, not {text!r}")
                return text.rstrip("/") or "/"
            if op in ("contains", "icontains", "startswith", "endswith"):
                text = _text(value)
                if not text:
                    raise ValueError(f"'{op}' with an empty value is always true")
                return text.lower() if op == "icontains" else text
            if ftype is FieldType.INT:
                return parse_int(value)
            if ftype is FieldType.BOOL:
                return _bool(value)
            if ftype is FieldType.IP:
                return _address(value)
            return _text(value)
        except re.error as err:
            self._error(src, f"bad regular expression {value!r} for {use.name}: {err}")
        except ValueError as err:
            self._error(src, f"{use.name} {op}: {err}")
        raise Unresolved

    # ---- lists ----
    def list_items(self, name: str, stack: tuple[str, ...] = ()) -> tuple[str | int, ...]:
        self.used_lists.add(name)
        cached = self._list_items.get(name)
        if cached is not None:
            return cached
        if name in stack:
            cycle = " -> ".join(stack[stack.index(name):] + (name,))
            self._error(self.lists[name].source, f"list cycle: {cycle}")
            return ()
        out: list[str | int] = []
        for item in self.lists[name].items:
            if isinstance(item, str) and item in self.lists:
                out.extend(self.list_items(item, stack + (name,)))
            else:
                out.append(item)
        items = tuple(out)
        self._list_items[name] = items
        return items

    # ---- exceptions ----
    def exceptions(self, excs: Iterable[ExceptionDef], rule_id: str) -> TNode | None:
        """The exceptions of a rule as one node that is true for an excepted event."""
        rows_all: list[TNode] = []
        for exc in excs:
            uses: list[FieldUse] = []
            try:
                for fname in exc.fields:
                    uses.append(self.field(fname, exc.source))
            except Unresolved:
                continue
            for entry, values in zip(exc.values, exc.rows()):
                if values is None:
                    self._error(exc.source, f"exception '{exc.name}' of rule '{rule_id}': the entry "
                                                 f"{_show(entry)} does not give one value for each of "
                                                 f"{len(uses)} fields {list(exc.fields)}")
                    continue
                clauses: list[TNode] = []
                try:
                    for use, comp, value in zip(uses, exc.comps, values):
                        clauses.append(self._exception_clause(use, comp, value, exc.source))
                except Unresolved:
                    continue
                rows_all.append(clauses[0] if len(clauses) == 1 else TAnd(tuple(clauses)))
        if not rows_all:
            return None
        return rows_all[0] if len(rows_all) == 1 else TOr(tuple(rows_all))

    def _exception_clause(self, use: FieldUse, comp: str, value: object, src: Source) -> TNode:
        if comp in MULTI_VALUE_OPS and isinstance(value, (list, tuple)):
            items = [(v, True, src) for v in value]
            return self.comparison(use, comp, items, True, src)
        if comp in MULTI_VALUE_OPS and isinstance(value, str) and value in self.lists:
            return self.comparison(use, comp, [(value, False, src)], True, src)
        if comp == "in":
            return self.comparison(use, comp, [(value, True, src)], True, src)
        return self.comparison(use, comp, [(value, True, src)], False, src)


def _show(value: object) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return str(value)


def _text(value: object) -> str:
    if isinstance(value, bool):
        raise ValueError(f"{str(value).lower()} is not text (quote it)")
    if isinstance(value, (str, int, float)):
        return str(value)
    raise ValueError(f"{value!r} is not text")


def _bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise ValueError(f"{value!r} is not true or false")


def _address(value: object) -> str:
    text = _text(value)
    try:
        return ipaddress.ip_address(text).compressed
    except ValueError:
        raise ValueError(f"'{text}' is not an IP address (use cidr for ranges)") from None


def _network(value: object) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    text = _text(value)
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ValueError(f"'{text}' is not an address or a CIDR range") from None
