"""A checked, compiled rule set: what the engine runs and what lint reports on.

:func:`build` takes the merged lists, macros and rules, resolves every condition (also of
disabled rules, so lint sees their errors), runs the checks that need the whole set (unused
lists and macros, fields that never have a value, rules that can never fire, the kernel's
sensitive path sets) and compiles one match function per event type for the enabled rules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

from ..events.model import EVENT_CLASSES, Event
from ..events.types import EventType
from .compiler import CodeGen, Namespace, build_getter
from .index import match_functions
from .diagnostics import Diagnostics
from .fields import FieldType
from .kernelset import path_filter
from .merge import Merged
from .model import ListDef, MacroDef, Rule, Severity, Source
from .output import OutputTemplate, parse_output
from .resolve import FieldUse, Resolver, TAnd, TNode, TNot, Unresolved, fields_used

#: size limits of the kernel's sensitive path tries (bpf/file.bpf.c)
SENSITIVE_MAX_ENTRIES = 1024
SENSITIVE_MAX_BYTES = 255

_ATTACK_TAG = re.compile(r"^T\d{4}(\.\d{3})?$")
ALL_TYPES = tuple(EventType)


@dataclass(frozen=True, slots=True)
class Condition:
    """One thing the match functions test: a rule, or one step of a sequence rule."""

    events: tuple[EventType, ...]
    node: TNode
    by: tuple[FieldUse, ...]
    source: Source


@dataclass(frozen=True, slots=True)
class CompiledRule:
    rule: Rule
    index: int
    output: OutputTemplate
    conditions: tuple[Condition, ...]      # one per step for a sequence, else one
    threshold_by: tuple[FieldUse, ...] = ()
    threshold_sum: FieldUse | None = None
    threshold_distinct: FieldUse | None = None

    @property
    def id(self) -> str:
        return self.rule.id

    @property
    def severity(self) -> Severity:
        return self.rule.severity

    @property
    def kind(self) -> str:
        return self.rule.kind


class RuleSet:
    """Rules ready to run. Build with :func:`coi_sentinel.rules.load_ruleset`."""

    def __init__(self, *, files: list[str], lists: dict[str, ListDef], macros: dict[str, MacroDef],
                 rules: list[CompiledRule], diagnostics: Diagnostics, namespace: Namespace,
                 match_fns: dict[type[Event], Callable[..., list[int]]], matchers: list[tuple[CompiledRule, int]],
                 code: dict[EventType, str], prefixes: list[str], suffixes: list[str],
                 index_stats: dict[str, dict[str, int]] | None = None) -> None:
        self.files = files
        self.lists = lists
        self.macros = macros
        self.all_rules = rules
        self.rules = [r for r in rules if r.rule.enabled]
        self.diagnostics = diagnostics
        self.namespace = namespace
        self.match_fns = match_fns
        self.matchers = matchers
        self.code = code
        #: per event type: conditions tested on every event, conditions behind the index
        self.index_stats = index_stats or {}
        self._prefixes = prefixes
        self._suffixes = suffixes
        self._getters: dict[tuple[FieldUse, EventType], Callable[[Any, Any, Any], Any] | None] = {}
        self._by_id = {r.id: r for r in rules}

    def __len__(self) -> int:
        return len(self.rules)

    def __contains__(self, rule_id: str) -> bool:
        return rule_id in self._by_id

    def rule(self, rule_id: str) -> CompiledRule:
        return self._by_id[rule_id]

    @property
    def rule_ids(self) -> list[str]:
        return [r.id for r in self.rules]

    def sensitive_prefixes(self) -> list[str]:
        """Path prefixes whose reads the kernel must report (see kernelset.py)."""
        return list(self._prefixes)

    def sensitive_suffixes(self) -> list[str]:
        """Path suffixes whose reads the kernel must report (see kernelset.py)."""
        return list(self._suffixes)

    def getter(self, use: FieldUse, etype: EventType) -> Callable[[Any, Any, Any], Any] | None:
        key = (use, etype)
        if key not in self._getters:
            self._getters[key] = build_getter(self.namespace, use.fdef, use.index, etype)
        return self._getters[key]


def build(merged: Merged, files: list[str], diags: Diagnostics) -> RuleSet:
    resolver = Resolver(merged.lists, merged.macros, diags)
    compiled = [_compile_rule(rule, index, resolver, diags) for index, rule in enumerate(merged.rules.values())]

    for name, lst in merged.lists.items():
        if name not in resolver.used_lists and ("list", name) not in merged.weak:
            diags.warning(lst.source, f"list '{name}' is not used by any rule or macro")
    for name, mac in merged.macros.items():
        if name not in resolver.used_macros and ("macro", name) not in merged.weak:
            diags.warning(mac.source, f"macro '{name}' is not used by any rule")

    ns = Namespace()
    matchers: list[tuple[CompiledRule, int]] = []
    for c in compiled:
        if not c.rule.enabled:
            continue
        for step in range(len(c.conditions)):
            matchers.append((c, step if c.kind == "sequence" else -1))
    match_fns, code, index_stats = match_functions(ns, matchers)

    prefixes, suffixes = _sensitive_sets(compiled, diags)
    return RuleSet(files=files, lists=merged.lists, macros=merged.macros, rules=compiled, diagnostics=diags,
                   namespace=ns, match_fns=match_fns, matchers=matchers, code=code, prefixes=prefixes,
                   suffixes=suffixes, index_stats=index_stats)


def _compile_rule(rule: Rule, index: int, resolver: Resolver, diags: Diagnostics) -> CompiledRule:
    rid = rule.id
    if not rule.false_positives and rule.dialect != "falco":
        diags.warning(rule.source, f"rule '{rid}' has no 'false_positives' note")
    if not any(_ATTACK_TAG.match(t) for t in rule.tags):
        diags.warning(rule.source, f"rule '{rid}' has no MITRE ATT&CK technique tag (like T1059.004)")
    resolver.tainted = False
    exc = resolver.exceptions(rule.exceptions, rid)

    def with_exceptions(node: TNode) -> TNode:
        return node if exc is None else TAnd((node, TNot(exc)))

    conditions: list[Condition] = []
    if rule.sequence is not None:
        for step in rule.sequence.steps:
            node = with_exceptions(resolver.condition(step.condition))
            by = _fields(resolver, step.by, step.source, step.events, f"step '{step.name}' of rule '{rid}'", diags)
            conditions.append(Condition(step.events, node, by, step.source))
    else:
        events = rule.events
        node = with_exceptions(resolver.condition(rule.condition))
        if not events:
            # the event types the condition can hold for (evt.type = ..., Falco's evt.type in
            # (execve, open)): the others fold to false at compile time
            events = live_types(node)
            if len(events) in (0, len(ALL_TYPES)):
                diags.warning(rule.source, f"rule '{rid}' has no 'events': it is tested on every event type")
                events = ALL_TYPES
        conditions.append(Condition(events, node, (), rule.condition[0].source if rule.condition else rule.source))

    threshold_by: tuple[FieldUse, ...] = ()
    threshold_sum = threshold_distinct = None
    if rule.threshold is not None:
        th = rule.threshold
        events = conditions[0].events
        threshold_by = _fields(resolver, th.by, th.source, events, f"the threshold of rule '{rid}'", diags)
        if th.sum_field is not None:
            sums = _fields(resolver, (th.sum_field,), th.source, events, f"the threshold of rule '{rid}'", diags)
            if sums:
                threshold_sum = sums[0]
                if threshold_sum.fdef.type is not FieldType.INT or threshold_sum.multi:
                    diags.error(th.source, f"threshold of rule '{rid}' sums '{threshold_sum.name}', which is not "
                                           f"a number field")
        if th.distinct_field is not None:
            uses = _fields(resolver, (th.distinct_field,), th.source, events, f"the threshold of rule '{rid}'",
                           diags)
            if uses:
                threshold_distinct = uses[0]
                if threshold_distinct.multi:
                    diags.error(th.source, f"threshold of rule '{rid}' counts distinct values of "
                                           f"'{threshold_distinct.name}', which has several per event")

    if not resolver.tainted:    # a clause with an error reads as false: do not report that twice
        for cond in conditions:
            _check_fields(cond, rid, diags)
    all_events = tuple(dict.fromkeys(t for c in conditions for t in c.events))
    output = parse_output(rule.output, rule.output_source, diags, threshold=rule.threshold is not None)
    for use in output.fields:
        if not any(use.fdef.available(t) for t in all_events):
            diags.warning(rule.output_source, f"output field %{use.name} has no value for "
                                              f"{_types(all_events)} events: it prints <NA>")
    return CompiledRule(rule, index, output, tuple(conditions), threshold_by, threshold_sum, threshold_distinct)


def live_types(node: TNode, types: tuple[EventType, ...] = ALL_TYPES) -> tuple[EventType, ...]:
    """The event types for which ``node`` is not false at compile time."""
    gen = CodeGen(Namespace(), EventType.EXEC, lazy_locals=True)
    out = []
    for etype in types:
        gen.etype = etype
        if gen.expr(node) is not False:
            out.append(etype)
    return tuple(out)


def _fields(resolver: Resolver, names: tuple[str, ...], src: Source, events: tuple[EventType, ...],
            what: str, diags: Diagnostics) -> tuple[FieldUse, ...]:
    out = []
    for name in names:
        try:
            use = resolver.field(name, src)
        except Unresolved:
            continue
        if use.multi:
            diags.error(src, f"{what}: '{name}' is a list of values and cannot be a key")
            continue
        missing = [t for t in events if not use.fdef.available(t)]
        if missing:
            diags.warning(src, f"{what}: '{name}' has no value for {_types(tuple(missing))} events "
                               f"(those events all share the key <NA>)")
        out.append(use)
    return tuple(out)


def _check_fields(cond: Condition, rid: str, diags: Diagnostics) -> None:
    for use, src in fields_used(cond.node):
        if not any(use.fdef.available(t) for t in cond.events):
            diags.warning(src, f"field '{use.name}' has no value for {_types(cond.events)} events "
                               f"(rule '{rid}'): the clause is always false")
    gen = CodeGen(Namespace(), EventType.EXEC, lazy_locals=True)
    for etype in cond.events:
        gen.etype = etype
        if gen.expr(cond.node) is not False:
            return
    diags.error(cond.source, f"rule '{rid}' can never fire: its condition is false for every event type "
                             f"it applies to ({_types(cond.events)})")


def _types(events: tuple[EventType, ...]) -> str:
    return ", ".join(t.label for t in events)


def _sensitive_sets(compiled: list[CompiledRule], diags: Diagnostics) -> tuple[list[str], list[str]]:
    prefixes: dict[str, None] = {}
    suffixes: dict[str, None] = {}
    for c in compiled:
        if not c.rule.enabled:
            continue
        for cond in c.conditions:
            if EventType.FILE_OPEN not in cond.events:
                continue
            f = path_filter(cond.node)
            if f is None:
                diags.warning(cond.source, f"rule '{c.id}' applies to file_open but does not bound file.path: "
                                           f"the kernel reports write opens and only the reads other rules ask "
                                           f"for (add file.path startswith/endswith/= or file.name)")
                continue
            for kind, literal in sorted(f):
                size = len(literal.encode())
                if not 0 < size <= SENSITIVE_MAX_BYTES:
                    diags.error(cond.source, f"sensitive path {literal!r} of rule '{c.id}' must be 1 to "
                                             f"{SENSITIVE_MAX_BYTES} bytes")
                    continue
                (prefixes if kind == "prefix" else suffixes)[literal] = None
    for name, table in (("prefixes", prefixes), ("suffixes", suffixes)):
        if len(table) > SENSITIVE_MAX_ENTRIES:
            first = next(c for c in compiled if c.rule.enabled)
            diags.error(first.rule.source, f"the rules need {len(table)} sensitive path {name}; the kernel "
                                           f"holds {SENSITIVE_MAX_ENTRIES}")
    return sorted(prefixes), sorted(suffixes)
