"""Typed conditions -> Python code, compiled once, one function per event type.

For each event type the compiler writes one function ``_match_<type>(ev, p, E)`` that tests,
in order, every condition that can apply to that type and returns the ids of those that hold.
Field expressions come from :mod:`~coi_sentinel.rules.fields` and are specialised per type: a
field with no value for the type folds its clause to false at compile time, so a rule costs
nothing on events it cannot match. Values from rule files are never written into the code:
each is bound to a name (``_k12``) in the function's namespace - sets for ``in``, compiled
patterns for ``regex``/``glob``, :class:`CidrSet` for ``cidr``.

Fields marked costly (``proc.name``...) and the ancestry/session lookups are computed at most
once per event, on first use, in local variables of the generated function.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
from typing import Any, Callable

from ..events.types import EventType
from .fields import FIELDS, HELPERS, FieldDef
from .resolve import FieldRef, FieldUse, TAnd, TBool, TCompare, TConst, TNode, TNot, TOr

Code = str | bool       # Python source, or a value known at compile time

_PLACEHOLDER = re.compile(r"\{(f:[a-z_.]+|anc|ses)\}")
_UNSET = object()


class CidrSet:
    """``cidr`` operator: is an address text inside any of the networks (v4, v6, v4-mapped v6)?"""

    __slots__ = ("v4", "v6", "_cache")
    CACHE_MAX = 4096

    def __init__(self, networks: tuple[Any, ...]) -> None:
        self.v4 = tuple(n for n in networks if n.version == 4)
        self.v6 = tuple(n for n in networks if n.version == 6)
        self._cache: dict[str, bool] = {}

    def __call__(self, text: str) -> bool:
        hit = self._cache.get(text)
        if hit is None:
            hit = self._match(text)
            if len(self._cache) >= self.CACHE_MAX:
                self._cache.clear()
            self._cache[text] = hit
        return hit

    def _match(self, text: str) -> bool:
        try:
            addr = ipaddress.ip_address(text)
        except ValueError:
            return False
        if addr.version == 6:
            mapped = addr.ipv4_mapped
            if mapped is not None:
                addr = mapped
            else:
                return any(addr in n for n in self.v6)
        return any(addr in n for n in self.v4)


class PathPrefixes:
    """Falco's ``pmatch``: the path is one of the directories or below one of them."""

    __slots__ = ("exact", "below")

    def __init__(self, paths: tuple[Any, ...]) -> None:
        self.exact = frozenset(str(p) for p in paths)
        self.below = tuple("/" if p == "/" else f"{p}/" for p in self.exact)

    def __call__(self, path: str) -> bool:
        return path in self.exact or path.startswith(self.below)


class Namespace:
    """Globals of the generated code: helpers, the context sentinel, and bound constants."""

    def __init__(self) -> None:
        self.globals: dict[str, Any] = dict(HELPERS)
        self.globals["_U"] = _UNSET
        self._by_key: dict[tuple[Any, ...], str] = {}

    def const(self, key: tuple[Any, ...], make: Callable[[], Any]) -> str:
        name = self._by_key.get(key)
        if name is None:
            name = f"_k{len(self._by_key)}"
            self._by_key[key] = name
            self.globals[name] = make()
        return name


class CodeGen:
    """Writes the Python expression of typed nodes for one event type."""

    def __init__(self, ns: Namespace, etype: EventType, *, lazy_locals: bool) -> None:
        self.ns = ns
        self.etype = etype
        self.lazy_locals = lazy_locals
        #: local name -> initial value source, for the function prelude
        self.locals: dict[str, str] = {}
        self._tmp = 0

    # ---- fields ----
    def field(self, fdef: FieldDef, index: int | None) -> str | None:
        text = fdef.expr(self.etype, index)
        if text is None:
            return None
        text = _PLACEHOLDER.sub(self._placeholder, text)
        if fdef.costly and index is None and self.lazy_locals:
            name = "_c_" + fdef.name.replace(".", "_")
            self.locals[name] = "_U"
            return f"({name} if {name} is not _U else ({name} := {text}))"
        return text

    def _placeholder(self, m: re.Match[str]) -> str:
        what = m.group(1)
        if what.startswith("f:"):
            inner = self.field(FIELDS[what[2:]], None)
            assert inner is not None, f"{what} has no value for {self.etype.label}"
            return f"({inner})"
        call = "E.ancestors(p)" if what == "anc" else "E.session(ev)"
        if not self.lazy_locals:
            return f"({call})"
        name = "_" + what
        self.locals[name] = "None"
        return f"({name} if {name} is not None else ({name} := {call}))"

    def temp(self) -> str:
        self._tmp += 1
        return f"_t{self._tmp}"

    # ---- nodes ----
    def _join(self, items, op: str, *, absorbing: bool) -> Code:
        """``and`` / ``or`` of the items, folding constants: ``absorbing`` decides the whole
        (False for and, True for or), its opposite drops out."""
        parts = []
        for item in items:
            code = self.expr(item)
            if code is absorbing:
                return absorbing
            if code is not (not absorbing):
                parts.append(code)
        if not parts:
            return not absorbing
        return parts[0] if len(parts) == 1 else "(" + f" {op} ".join(parts) + ")"

    def expr(self, node: TNode) -> Code:
        if isinstance(node, TConst):
            return node.value
        if isinstance(node, TAnd):
            return self._join(node.items, "and", absorbing=False)
        if isinstance(node, TOr):
            return self._join(node.items, "or", absorbing=True)
        if isinstance(node, TNot):
            code = self.expr(node.item)
            return (not code) if isinstance(code, bool) else f"(not {code})"
        if isinstance(node, TBool):
            x = self.field(node.field.fdef, node.field.index)
            if x is None:
                return False
            return f"({x} is True)" if node.field.fdef.nullable else x
        return self.compare(node)

    def compare(self, n: TCompare) -> Code:
        if n.values and isinstance(n.values[0], FieldRef):
            return self.compare_fields(n, n.values[0].use)
        fdef = n.field.fdef
        if fdef.name == "evt.type" and n.op in ("=", "!=", "in", "exists"):
            return _fold_event_type(self.etype, n)
        x = self.field(fdef, n.field.index)
        if x is None:
            return False
        if n.op == "exists":
            if n.field.multi:
                return f"(len({x}) > 0)"
            return f"({x} is not None)" if fdef.nullable else True
        if n.field.multi:
            # bound to a temporary first: a comprehension's iterable may not hold a walrus
            t = self.temp()
            test = self.op("_x", n)
            if isinstance(test, bool):
                return test and f"(len({x}) > 0)"
            return f"(({t} := {x}) is not None and any({test} for _x in {t}))"
        if fdef.nullable:
            t = self.temp()
            test = self.op(t, n)
            if isinstance(test, bool):
                return test and f"({x} is not None)"
            return f"(({t} := {x}) is not None and {test})"
        return self.op(f"({x})", n)

    def compare_fields(self, n: TCompare, other: FieldUse) -> Code:
        """``FIELD op val(OTHER)``: false when either has no value."""
        x = self.field(n.field.fdef, n.field.index)
        y = self.field(other.fdef, other.index)
        if x is None or y is None:
            return False
        tx, ty = self.temp(), self.temp()
        if n.op in ("startswith", "endswith"):
            test = f"{tx}.{n.op}({ty})"
        elif n.op == "contains":
            test = f"({ty} in {tx})"
        else:
            test = f"({tx} {'==' if n.op == '=' else n.op} {ty})"
        return f"((({tx} := {x}) is not None) and (({ty} := {y}) is not None) and {test})"

    def op(self, v: str, n: TCompare) -> Code:
        op, values = n.op, n.values
        key = (op, n.field.fdef.type, values)
        if op in ("=", "!=", "<", "<=", ">", ">="):
            k = self.ns.const(("value", type(values[0]), values[0]), lambda: values[0])
            return f"({v} {'==' if op == '=' else op} {k})"
        if op == "in":
            if not values:
                return False
            k = self.ns.const(("set", frozenset(values)), lambda: frozenset(values))
            return f"({v} in {k})"
        if op == "cidr":
            if not values:
                return False
            k = self.ns.const(key, lambda: CidrSet(values))
            return f"{k}({v})"
        if op in ("startswith", "endswith"):
            arg = values[0] if len(values) == 1 else tuple(values)
            k = self.ns.const(("value", type(arg), arg), lambda: arg)
            return f"{v}.{op}({k})"
        if op in ("contains", "icontains") and len(values) == 1:
            k = self.ns.const(("value", str, values[0]), lambda: values[0])
            return f"({k} in {v}.lower())" if op == "icontains" else f"({k} in {v})"
        if op in ("contains", "icontains"):
            flags = re.IGNORECASE if op == "icontains" else 0
            k = self.ns.const(key, lambda: re.compile("|".join(re.escape(str(x)) for x in values), flags).search)
            return f"({k}({v}) is not None)"
        if op in ("glob", "iglob"):
            pattern = "|".join(f"(?:{fnmatch.translate(str(x))})" for x in values)
            flags = re.IGNORECASE if op == "iglob" else 0
            k = self.ns.const(key, lambda: re.compile(pattern, flags).match)
            return f"({k}({v}) is not None)"
        if op == "pmatch":
            k = self.ns.const(key, lambda: PathPrefixes(values))
            return f"{k}({v})"
        if op == "regex":
            pattern = values[0] if len(values) == 1 else "|".join(f"(?:{x})" for x in values)
            k = self.ns.const(key, lambda: re.compile(str(pattern)).search)
            return f"({k}({v}) is not None)"
        raise AssertionError(f"unhandled operator {op}")


def _fold_event_type(etype: EventType, n: TCompare) -> bool:
    label = etype.label
    if n.op == "exists":
        return True
    if n.op == "=":
        return label == n.values[0]
    if n.op == "!=":
        return label != n.values[0]
    return label in n.values


def build_match_function(ns: Namespace, etype: EventType, conditions: list[tuple[int, TNode]]
                         ) -> tuple[Callable[..., list[int]] | None, str]:
    """One function testing ``conditions`` ((id, node) pairs) for events of ``etype``.

    Returns the function (None when no condition can ever hold for the type) and its source
    (``RuleSet.code``, for debugging and tests).
    """
    gen = CodeGen(ns, etype, lazy_locals=True)
    body: list[str] = []
    live: list[int] = []
    for cid, node in conditions:
        code = gen.expr(node)
        if code is False:
            continue
        live.append(cid)
        if code is True:
            body.append(f"    hits.append({cid})")
        else:
            body.append(f"    if {code}:")
            body.append(f"        hits.append({cid})")
    if not live:
        return None, ""
    name = f"_match_{etype.label}"
    lines = [f"def {name}(ev, p, E):"]
    lines += [f"    {local} = {init}" for local, init in gen.locals.items()]
    lines.append("    hits = []")
    lines += body
    lines.append("    return hits")
    src = "\n".join(lines) + "\n"
    exec(compile(src, f"<rules:{etype.label}>", "exec"), ns.globals)  # noqa: S102 - our own code
    return ns.globals[name], src


def build_getter(ns: Namespace, fdef: FieldDef, index: int | None, etype: EventType
                 ) -> Callable[[Any, Any, Any], Any] | None:
    """A function (ev, p, E) -> value of the field for events of ``etype`` (None: no value)."""
    gen = CodeGen(ns, etype, lazy_locals=False)
    text = gen.field(fdef, index)
    if text is None:
        return None
    return eval(compile(f"lambda ev, p, E: {text}", f"<field:{fdef.name}>", "eval"), ns.globals)  # noqa: S307
