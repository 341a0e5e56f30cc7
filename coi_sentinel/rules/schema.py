"""The schema of a rule file: YAML items -> model items, with every problem reported.

A rule file is a YAML list. Each item is one of::

    - required_engine_version: 1
    - list: NAME            (items)
    - macro: NAME           (condition)
    - rule: ID              (description, severity, events, condition | sequence, threshold,
                             output, exceptions, tags, action, false_positives, enabled)

An item may change one defined earlier (in the same or an earlier file) instead of defining
it: ``append: true`` appends every key it gives; ``override: {key: append|replace}`` says per
key; a rule item with only ``enabled`` switches a rule on or off. See docs/rules.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from ..events.types import EVENT_TYPE_BY_LABEL, EventType
from .diagnostics import Diagnostics
from .model import (
    ACTIONS,
    ENGINE_VERSION,
    SCOPES,
    SEVERITY_LABELS,
    CondText,
    ExceptionDef,
    ListDef,
    MacroDef,
    Rule,
    Sequence,
    Severity,
    Source,
    Step,
    Threshold,
)
from .falco import PRIORITIES, slug
from .parser import OPERATORS, suggest
from .units import parse_duration, parse_int
from .yamlload import LineDict, LineList

#: the house order of keys (lint warns when an item departs from it)
RULE_KEYS = ("rule", "append", "override", "title", "description", "severity", "events", "condition",
             "sequence", "threshold", "output", "exceptions", "tags", "references", "sigma_id", "action",
             "false_positives", "enabled")
#: Falco's names of our keys, and Falco keys that change nothing here
FALCO_KEY_NAMES = {"desc": "description", "priority": "severity"}
FALCO_IGNORED_KEYS = ("source", "warn_evttypes", "skip-if-unknown-filter", "capture", "capture_duration")
LIST_KEYS = ("list", "append", "override", "items")
MACRO_KEYS = ("macro", "append", "override", "condition")
STEP_KEYS = ("name", "events", "condition", "by")
SEQUENCE_KEYS = ("scope", "window", "steps")
THRESHOLD_KEYS = ("by", "window", "sum", "distinct", "above")
EXCEPTION_KEYS = ("name", "fields", "comps", "values")

#: rule keys a later item may append to or replace
RULE_APPENDABLE = ("condition", "events", "exceptions", "tags")
RULE_REPLACEABLE = ("title", "description", "severity", "events", "condition", "output", "exceptions",
                    "tags", "references", "action", "false_positives", "enabled")

_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _Bad(Exception):
    """The item has a problem that was reported; skip it."""


@dataclass(frozen=True, slots=True)
class Change:
    """A later item changing a list, macro or rule: ``changes[key] = (mode, value)``."""

    kind: str                      # "list", "macro", "rule"
    name: str
    changes: dict[str, tuple[str, Any]]
    source: Source


@dataclass(slots=True)
class FileItems:
    """What one file defines and changes, in file order."""

    path: str
    items: list[ListDef | MacroDef | Rule | Change] = field(default_factory=list)
    #: a compatibility file (rules/compat/): a later file may define its names again, and its
    #: unused lists and macros are not reported
    weak: bool = False


class _Reader:
    """Typed access to one YAML mapping, reporting problems at the right line."""

    def __init__(self, d: LineDict, path: str, diags: Diagnostics, what: str) -> None:
        self.d = d
        self.path = path
        self.diags = diags
        self.what = what

    def src(self, key: str | None = None) -> Source:
        if key is None:
            return Source(self.path, self.d.line)
        return Source(self.path, self.d.value_line(key))

    def key_src(self, key: str) -> Source:
        return Source(self.path, self.d.key_line(key))

    def fail(self, key: str | None, message: str) -> _Bad:
        self.diags.error(self.src(key), message)
        return _Bad()

    def check_keys(self, allowed: tuple[str, ...]) -> None:
        bad = False
        for key in self.d:
            if key not in allowed:
                self.diags.error(self.key_src(key), f"unknown key '{key}' in {self.what}{suggest(str(key), allowed)}")
                bad = True
        if bad:
            raise _Bad

    def check_order(self, order: tuple[str, ...]) -> None:
        keys = [k for k in self.d if k in order]
        expected = sorted(keys, key=order.index)
        if keys != expected:
            self.diags.warning(self.src(), f"keys of {self.what} are not in the house order "
                                           f"({', '.join(expected)})")

    def text(self, key: str, *, required: bool = True, default: str = "") -> str:
        if key not in self.d:
            if required:
                raise self.fail(None, f"{self.what} has no '{key}'")
            return default
        value = self.d[key]
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise self.fail(key, f"'{key}' of {self.what} must be text")
        text = str(value).strip()
        if required and not text:
            raise self.fail(key, f"'{key}' of {self.what} is empty")
        return text

    def cond(self, key: str) -> CondText:
        text = self.text(key)
        raw, raw_line = self.d.value_raw.get(key, ("", 0))
        return CondText(str(self.d[key]), self.src(key), raw, raw_line)

    def bool(self, key: str, default: bool) -> bool:
        if key not in self.d:
            return default
        value = self.d[key]
        if not isinstance(value, bool):
            raise self.fail(key, f"'{key}' of {self.what} must be true or false")
        return value

    def str_list(self, key: str, *, single_ok: bool = True) -> tuple[str, ...]:
        if key not in self.d:
            return ()
        value = self.d[key]
        if isinstance(value, str) and single_ok:
            return (value,)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(key, f"'{key}' of {self.what} must be a list of names")
        return tuple(value)

    def events(self, key: str = "events") -> tuple[EventType, ...]:
        names = self.str_list(key)
        out: list[EventType] = []
        for name in names:
            etype = EVENT_TYPE_BY_LABEL.get(name)
            if etype is None:
                raise self.fail(key, f"unknown event type '{name}'{suggest(name, EVENT_TYPE_BY_LABEL)} "
                                     f"(one of: {', '.join(EVENT_TYPE_BY_LABEL)})")
            if etype not in out:
                out.append(etype)
        return tuple(out)

    def mapping(self, key: str, what: str) -> "_Reader":
        value = self.d[key]
        if not isinstance(value, LineDict):
            raise self.fail(key, f"'{key}' of {self.what} must be a mapping")
        return _Reader(value, self.path, self.diags, what)


def read_file(data: Any, path: str, diags: Diagnostics) -> FileItems:
    """Turn the YAML of one file into items; problems go to ``diags``."""
    out = FileItems(path)
    if data is None:
        return out
    if not isinstance(data, LineList):
        diags.error(Source(path, getattr(data, "line", 1)),
                    "a rule file must be a YAML list of items (- rule: ..., - list: ..., - macro: ...)")
        return out
    for i, item in enumerate(data):
        line = data.item_line(i)
        if not isinstance(item, LineDict) or not item:
            diags.error(Source(path, line), "an item must be a mapping starting with rule:, list:, macro: "
                                             "or required_engine_version:")
            continue
        try:
            parsed = _read_item(item, path, diags)
        except _Bad:
            continue
        if parsed is not None:
            out.items.append(parsed)
    return out


def _read_item(d: LineDict, path: str, diags: Diagnostics) -> ListDef | MacroDef | Rule | Change | None:
    if "required_engine_version" in d:
        r = _Reader(d, path, diags, "required_engine_version")
        r.check_keys(("required_engine_version",))
        _check_version(r)
        return None
    if "required_plugin_versions" in d:
        diags.warning(Source(path, d.line), "plugins are not supported (coi-sentinel sees syscalls): "
                                             "required_plugin_versions is ignored")
        return None
    if "rule" in d:
        return _read_rule(d, path, diags)
    if "list" in d:
        return _read_list(d, path, diags)
    if "macro" in d:
        return _read_macro(d, path, diags)
    first = next(iter(d))
    raise _Reader(d, path, diags, "item").fail(
        None, f"unknown item '{first}'{suggest(str(first), ('rule', 'list', 'macro', 'required_engine_version'))}"
              ": an item starts with rule:, list:, macro: or required_engine_version:")


def _check_version(r: _Reader) -> None:
    value = r.d["required_engine_version"]
    text = str(value).strip()
    try:
        if isinstance(value, bool) or not re.match(r"^\d+(\.\d+){0,2}$", text):
            raise ValueError
        wanted = tuple(int(x) for x in text.split("."))
    except ValueError:
        raise r.fail("required_engine_version", f"required_engine_version must be a version like 1 or "
                                                 f"1.0.0, not {value!r}") from None
    wanted = wanted + (0,) * (3 - len(wanted))
    if wanted > ENGINE_VERSION:
        have = ".".join(map(str, ENGINE_VERSION))
        raise r.fail("required_engine_version", f"the file needs rule engine version {text}; this is {have}")


def _name(r: _Reader, key: str) -> str:
    name = r.text(key)
    if not _NAME.match(name):
        raise r.fail(key, f"{key} name '{name}' must be letters, digits and '_' (not starting with a digit)")
    return name


def _modes(r: _Reader, kind_key: str, given: list[str], appendable: tuple[str, ...],
           replaceable: tuple[str, ...]) -> dict[str, str] | None:
    """The change mode of each key: None for a definition; else {key: 'append'|'replace'}."""
    append = r.bool("append", False)
    if "override" in r.d:
        if append:
            raise r.fail("override", "use either 'append: true' or 'override:', not both")
        over = r.d["override"]
        if not isinstance(over, LineDict):
            raise r.fail("override", "'override' must map keys to append or replace")
        modes: dict[str, str] = {}
        for key, mode in over.items():
            allowed = appendable if mode == "append" else replaceable if mode == "replace" else None
            if allowed is None:
                raise r.fail("override", f"override of '{key}' must be append or replace, not {mode!r}")
            if key not in allowed:
                done = "appended" if mode == "append" else "replaced"
                raise r.fail("override", f"'{key}' cannot be {done} (can be: {', '.join(allowed)})")
            if key not in given:
                raise r.fail("override", f"override names '{key}' but the item gives no '{key}'")
            modes[key] = mode
        for key in given:
            if key not in modes:
                raise r.fail(None, f"'{key}' is given but not named in 'override' (add {key}: replace or "
                                   f"{key}: append)")
        return modes
    if append:
        for key in given:
            if key not in appendable:
                raise r.fail(None, f"'{key}' cannot be appended (can be: {', '.join(appendable)})")
        if not given:
            raise r.fail(None, f"'append: true' with nothing to append to {kind_key}")
        return {key: "append" for key in given}
    return None


def _read_list(d: LineDict, path: str, diags: Diagnostics) -> ListDef | Change:
    r = _Reader(d, path, diags, f"list '{d.get('list')}'")
    r.check_keys(LIST_KEYS)
    r.check_order(LIST_KEYS)
    name = _name(r, "list")
    items = d.get("items", [])
    if not isinstance(items, list):
        raise r.fail("items", f"'items' of list '{name}' must be a YAML list")
    for i, item in enumerate(items):
        if isinstance(item, bool) or not isinstance(item, (str, int)):
            line = items.item_line(i) if isinstance(items, LineList) else r.src("items").line
            diags.error(Source(path, line), f"item {item!r} of list '{name}' must be text or a whole number"
                                            + (" (quote it)" if isinstance(item, (bool, float)) else ""))
            raise _Bad
    given = [k for k in ("items",) if k in d]
    modes = _modes(r, f"list '{name}'", given, ("items",), ("items",))
    if modes is not None:
        return Change("list", name, {"items": (modes["items"], tuple(items))}, r.src())
    if "items" not in d:
        raise r.fail(None, f"list '{name}' has no 'items'")
    return ListDef(name, tuple(items), r.src())


def _read_macro(d: LineDict, path: str, diags: Diagnostics) -> MacroDef | Change:
    r = _Reader(d, path, diags, f"macro '{d.get('macro')}'")
    r.check_keys(MACRO_KEYS)
    r.check_order(MACRO_KEYS)
    name = _name(r, "macro")
    cond = r.cond("condition")
    modes = _modes(r, f"macro '{name}'", ["condition"], ("condition",), ("condition",))
    if modes is not None:
        return Change("macro", name, {"condition": (modes["condition"], cond)}, r.src())
    return MacroDef(name, (cond,), r.src())


def _falco_style(d: LineDict) -> LineDict:
    """A rule item written in Falco's style (``desc``, ``priority``) with our key names; the
    lines stay those of the file. Falco keys that change nothing here are dropped."""
    out = LineDict()
    out.line = d.line
    for key, value in d.items():
        if key in FALCO_IGNORED_KEYS:
            continue
        new = FALCO_KEY_NAMES.get(key, key)
        if key == "override" and isinstance(value, LineDict):
            over = LineDict()
            over.line = value.line
            for k, v in value.items():
                over[FALCO_KEY_NAMES.get(k, k)] = v
            value = over
        out[new] = value
        out.key_lines[new] = d.key_line(key)
        out.value_lines[new] = d.value_line(key)
        if key in d.value_raw:
            out.value_raw[new] = d.value_raw[key]
    return out


def _read_rule(d: LineDict, path: str, diags: Diagnostics) -> Rule | Change:
    name = d.get("rule")
    # Falco's keys, or a Falco rule name (with spaces...) on an item without our keys: an
    # item changing a Falco rule names it as Falco does
    falco = (any(k in d for k in FALCO_KEY_NAMES) or any(k in d for k in FALCO_IGNORED_KEYS)
             or (isinstance(name, str) and not _ID.match(name.strip())
                 and not any(k in d for k in FALCO_KEY_NAMES.values())))
    if falco:
        source = d.get("source", "syscall")
        if source != "syscall":
            diags.error(Source(path, d.value_line("source")),
                        f"rule '{name}': source '{source}' is not supported: coi-sentinel sees syscalls "
                        f"(source: syscall)")
            raise _Bad
        d = _falco_style(d)
    r = _Reader(d, path, diags, f"rule '{name}'")
    r.check_keys(RULE_KEYS)
    if not falco:
        r.check_order(RULE_KEYS)
    rid = r.text("rule")
    title = ""
    if not _ID.match(rid):
        if not falco:
            raise r.fail("rule", f"rule id '{rid}' must be lower case letters, digits, '_', '-' or '.'")
        rid, title = slug(rid), rid
    r.what = f"rule '{rid}'"
    given = [k for k in d if k not in ("rule", "append", "override")]
    if given == ["enabled"] and "override" not in d and "append" not in d:
        return Change("rule", rid, {"enabled": ("replace", r.bool("enabled", True))}, r.src())
    modes = _modes(r, f"rule '{rid}'", given, RULE_APPENDABLE, RULE_REPLACEABLE)
    if modes is not None:
        changes = {key: (mode, _rule_value(r, key, append=mode == "append")) for key, mode in modes.items()}
        return Change("rule", rid, changes, r.src())
    rule = _define_rule(r, rid)
    if falco:
        rule = replace(rule, title=rule.title or title, dialect="falco")
    return rule


def _rule_value(r: _Reader, key: str, *, append: bool) -> Any:
    """The parsed value of one key of a rule change."""
    if key == "condition":
        return r.cond(key)
    if key == "events":
        return r.events()
    if key == "exceptions":
        return _exceptions(r, partial=append)
    if key in ("tags", "references"):
        return r.str_list(key)
    if key == "severity":
        return _severity(r)
    if key == "action":
        return _action(r)
    if key == "enabled":
        return r.bool("enabled", True)
    if key == "output":
        return (r.text("output"), r.src("output"))
    return r.text(key, required=key != "false_positives")


def _severity(r: _Reader) -> Severity:
    """Our severities, Falco's priorities (WARNING, NOTICE...) and Sigma's levels."""
    text = r.text("severity")
    low = text.lower()
    if low in SEVERITY_LABELS:
        return Severity.parse(low)
    if low in PRIORITIES:
        return PRIORITIES[low]
    names = (*SEVERITY_LABELS, *PRIORITIES)
    raise r.fail("severity", f"unknown severity '{text}'{suggest(low, names)} "
                             f"(one of: {', '.join(SEVERITY_LABELS)}; or a Falco priority)")


def _action(r: _Reader) -> str | None:
    if "action" not in r.d:
        return None
    text = r.text("action")
    if text not in ACTIONS:
        raise r.fail("action", f"unknown action '{text}'{suggest(text, ACTIONS)} (one of: {', '.join(ACTIONS)})")
    return text


def _define_rule(r: _Reader, rid: str) -> Rule:
    description = r.text("description")
    severity = _severity(r)
    events = r.events()
    sequence = threshold = None
    if "sequence" in r.d and "threshold" in r.d:
        raise r.fail("threshold", f"rule '{rid}' has both 'sequence' and 'threshold'")
    if "sequence" in r.d:
        if "condition" in r.d:
            raise r.fail("condition", f"sequence rule '{rid}' has its conditions in its steps, not in 'condition'")
        if "events" in r.d:
            raise r.fail("events", f"sequence rule '{rid}' has its event types in its steps, not in 'events'")
        sequence = _sequence(r.mapping("sequence", f"the sequence of rule '{rid}'"), rid)
        condition: tuple[CondText, ...] = ()
    else:
        condition = (r.cond("condition"),)
    if "threshold" in r.d:
        threshold = _threshold(r.mapping("threshold", f"the threshold of rule '{rid}'"))
    output = r.text("output")
    return Rule(
        id=rid, description=description, severity=severity, events=events, condition=condition,
        output=output, tags=r.str_list("tags"), action=_action(r), exceptions=_exceptions(r, partial=False),
        false_positives=r.text("false_positives", required=False), enabled=r.bool("enabled", True),
        source=r.src(), output_source=r.src("output"), sequence=sequence, threshold=threshold,
        title=r.text("title", required=False), references=r.str_list("references"),
        sigma_id=r.text("sigma_id", required=False),
    )


def _window(r: _Reader) -> int:
    if "window" not in r.d:
        raise r.fail(None, f"{r.what} has no 'window'")
    try:
        return parse_duration(r.d["window"])
    except ValueError as err:
        raise r.fail("window", f"window of {r.what}: {err}") from None


def _sequence(r: _Reader, rid: str) -> Sequence:
    r.check_keys(SEQUENCE_KEYS)
    scope = r.text("scope")
    if scope not in SCOPES:
        raise r.fail("scope", f"unknown scope '{scope}'{suggest(scope, SCOPES)} (one of: {', '.join(SCOPES)})")
    window = _window(r)
    raw_steps = r.d.get("steps")
    if not isinstance(raw_steps, LineList) or len(raw_steps) < 2:
        raise r.fail("steps" if "steps" in r.d else None, f"sequence of rule '{rid}' needs a list of at least 2 steps")
    steps = []
    for i, raw in enumerate(raw_steps):
        if not isinstance(raw, LineDict):
            r.diags.error(Source(r.path, raw_steps.item_line(i)), f"step {i + 1} of rule '{rid}' must be a mapping")
            raise _Bad
        sr = _Reader(raw, r.path, r.diags, f"step {i + 1} of rule '{rid}'")
        sr.check_keys(STEP_KEYS)
        events = sr.events()
        if not events:
            raise sr.fail(None, f"step {i + 1} of rule '{rid}' has no 'events'")
        name = sr.text("name", required=False, default=f"step{i + 1}")
        steps.append(Step(name, events, (sr.cond("condition"),), sr.str_list("by"), sr.src()))
    if len({len(s.by) for s in steps}) != 1:
        raise r.fail("steps", f"every step of rule '{rid}' must have the same number of 'by' fields")
    return Sequence(scope, window, tuple(steps), r.src())


def _threshold(r: _Reader) -> Threshold:
    r.check_keys(THRESHOLD_KEYS)
    window = _window(r)
    if "above" not in r.d:
        raise r.fail(None, f"{r.what} has no 'above'")
    try:
        above = parse_int(r.d["above"])
    except ValueError as err:
        raise r.fail("above", f"'above' of {r.what}: {err}") from None
    if above < 0:
        raise r.fail("above", f"'above' of {r.what} must not be negative")
    total = r.text("sum", required=False) or None
    distinct = r.text("distinct", required=False) or None
    if total and distinct:
        raise r.fail("distinct", f"{r.what} has both 'sum' and 'distinct'")
    return Threshold(r.str_list("by"), window, total, above, r.src(), distinct)


def _exceptions(r: _Reader, *, partial: bool) -> tuple[ExceptionDef, ...]:
    """Parse ``exceptions``. ``partial``: entries may omit fields (rows for an existing one)."""
    if "exceptions" not in r.d:
        return ()
    raw = r.d["exceptions"]
    if not isinstance(raw, LineList):
        raise r.fail("exceptions", f"'exceptions' of {r.what} must be a list")
    out: list[ExceptionDef] = []
    names: set[str] = set()
    for i, item in enumerate(raw):
        src = Source(r.path, raw.item_line(i))
        if not isinstance(item, LineDict):
            r.diags.error(src, f"exception {i + 1} of {r.what} must be a mapping")
            raise _Bad
        er = _Reader(item, r.path, r.diags, f"exception {i + 1} of {r.what}")
        er.check_keys(EXCEPTION_KEYS)
        name = _name(er, "name")
        er.what = f"exception '{name}' of {r.what}"
        if name in names:
            raise er.fail("name", f"{r.what} has two exceptions named '{name}'")
        names.add(name)
        fields = er.str_list("fields")
        if not fields and not partial:
            raise er.fail(None, f"{er.what} has no 'fields'")
        comps = er.str_list("comps") or tuple("=" for _ in fields)
        if fields and len(comps) != len(fields):
            raise er.fail("comps", f"{er.what} has {len(comps)} comps for {len(fields)} fields")
        for comp in comps:
            if comp not in OPERATORS or comp == "exists":
                raise er.fail("comps", f"unknown comparison '{comp}' in {er.what}{suggest(comp, OPERATORS)}")
        values = item.get("values", [])
        if not isinstance(values, list):
            raise er.fail("values", f"'values' of {er.what} must be a list")
        rows = tuple(_frozen(v) for v in values)
        out.append(ExceptionDef(name, fields, comps, rows, er.src()))
    return tuple(out)


def _frozen(value: object) -> object:
    """YAML lists -> tuples (hashable, immutable); other values unchanged."""
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    return value
