"""Definitions and changes of all files -> one set of lists, macros and rules.

Files are applied in order (bundled first, then the user's). A name may be defined once; a
second definition is an error that names the first. A change (``append``/``override``/
``enabled``) applies to a definition made earlier - in an earlier file or higher up in the same
one - and an appended condition keeps its own ``path:line`` for error messages.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from .diagnostics import Diagnostics
from .model import CondText, ExceptionDef, ListDef, MacroDef, Rule, Source
from .schema import Change, FileItems


class Merged:
    def __init__(self) -> None:
        self.lists: dict[str, ListDef] = {}
        self.macros: dict[str, MacroDef] = {}
        self.rules: dict[str, Rule] = {}
        #: where each item was last changed (for messages and lint)
        self.changed_at: dict[tuple[str, str], list[Source]] = {}
        #: (kind, name) of the items a compatibility file defines and no later file redefined
        self.weak: set[tuple[str, str]] = set()


def merge(files: list[FileItems], diags: Diagnostics) -> Merged:
    m = Merged()
    for f in files:
        for item in f.items:
            if isinstance(item, ListDef):
                _define(m, m.lists, item.name, item, "list", diags, f.weak)
            elif isinstance(item, MacroDef):
                _define(m, m.macros, item.name, item, "macro", diags, f.weak)
            elif isinstance(item, Rule):
                _define(m, m.rules, item.id, item, "rule", diags, f.weak)
            else:
                _change(m, item, diags)
    return m


def _define(m: Merged, table: dict[str, Any], name: str, item: Any, kind: str, diags: Diagnostics,
            weak: bool) -> None:
    first = table.get(name)
    if first is not None and (kind, name) in m.weak and not weak:
        # a file of its own defines what the compatibility file stood in for (falco_rules.yaml
        # brings its own open_read): the later definition wins
        m.weak.discard((kind, name))
        table[name] = item
        return
    if weak and first is None:
        m.weak.add((kind, name))
    if first is not None:
        word = "rule id" if kind == "rule" else f"{kind} name"
        diags.error(item.source, f"duplicate {word} '{name}' (first defined at {first.source}); "
                                 f"to change it use 'append: true' or 'override:'")
        return
    table[name] = item


def _change(m: Merged, ch: Change, diags: Diagnostics) -> None:
    table: dict[str, Any] = {"list": m.lists, "macro": m.macros, "rule": m.rules}[ch.kind]
    current = table.get(ch.name)
    if current is None:
        diags.error(ch.source, f"cannot change {ch.kind} '{ch.name}': it is not defined in this file "
                               f"above or in an earlier file")
        return
    m.changed_at.setdefault((ch.kind, ch.name), []).append(ch.source)
    if ch.kind == "list":
        mode, items = ch.changes["items"]
        table[ch.name] = replace(current, items=current.items + items if mode == "append" else items)
    elif ch.kind == "macro":
        mode, cond = ch.changes["condition"]
        table[ch.name] = replace(current, condition=_condition(current.condition, mode, cond))
    else:
        updated = _change_rule(current, ch, diags)
        if updated is not None:
            table[ch.name] = updated


def _condition(parts: tuple[CondText, ...], mode: str, cond: CondText) -> tuple[CondText, ...]:
    return parts + (cond,) if mode == "append" else (cond,)


def _change_rule(rule: Rule, ch: Change, diags: Diagnostics) -> Rule | None:
    kw: dict[str, Any] = {}
    for key, (mode, value) in ch.changes.items():
        if key == "condition":
            if rule.sequence is not None:
                diags.error(ch.source, f"rule '{rule.id}' is a sequence: its conditions are in its steps "
                                       f"and cannot be changed; disable it and write a new rule")
                return None
            kw["condition"] = _condition(rule.condition, mode, value)
        elif key == "events":
            if rule.sequence is not None:
                diags.error(ch.source, f"rule '{rule.id}' is a sequence: its event types are in its steps")
                return None
            kw["events"] = tuple(dict.fromkeys(rule.events + value)) if mode == "append" else value
        elif key == "tags":
            kw["tags"] = tuple(dict.fromkeys(rule.tags + value)) if mode == "append" else value
        elif key == "exceptions":
            merged = _exceptions(rule, value, ch.source, diags) if mode == "append" else value
            if merged is None:
                return None
            kw["exceptions"] = merged
        elif key == "output":
            kw["output"], kw["output_source"] = value
        else:
            kw[key] = value
    return replace(rule, **kw)


def _exceptions(rule: Rule, added: tuple[ExceptionDef, ...], source: Source,
                diags: Diagnostics) -> tuple[ExceptionDef, ...] | None:
    """Appended exceptions: new ones, or values for an existing one. Values appended to an
    existing exception stay a separate entry of the same name, so they keep their own line."""
    out = list(rule.exceptions)
    for exc in added:
        have = next((e for e in out if e.name == exc.name), None)
        if have is None:
            if not exc.fields:
                diags.error(exc.source, f"rule '{rule.id}' has no exception '{exc.name}' to add values to; "
                                        f"a new exception needs 'fields'")
                return None
            out.append(exc)
            continue
        if exc.fields and (exc.fields != have.fields or exc.comps != have.comps):
            diags.error(exc.source, f"exception '{exc.name}' of rule '{rule.id}' has fields {list(have.fields)} "
                                    f"{list(have.comps)} (defined at {have.source}); appended values must use "
                                    f"the same or give no 'fields'")
            return None
        out.append(replace(exc, fields=have.fields, comps=have.comps))
    return tuple(out)
