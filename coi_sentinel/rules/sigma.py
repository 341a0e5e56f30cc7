"""Sigma rules -> coi-sentinel rules, through pySigma: a backend and its processing pipeline.

    report = convert_paths([Path("sigma/")])
    for result in report.results:       # one per Sigma rule: converted (with .item) or skipped
        print(result.line())

:class:`SentinelBackend` is a pySigma ``Backend`` (through ``TextQueryBackend``, which gives
the boolean structure, grouping and precedence) whose condition elements are written in our
condition language; :func:`pipeline` is its processing pipeline: it accepts the log sources we
have events for, maps Sigma's field names onto ours per log source, and fails a rule on a field
we have no data for, naming it. Each converted condition is then resolved by our own resolver
(:class:`~coi_sentinel.rules.resolve.Resolver`) before it is accepted, so a converted rule
passes lint; anything that does not resolve makes the rule skipped, with the reason.

Log sources (product ``linux``): ``process_creation`` -> exec, ``file_event`` -> write opens
and renames, ``file_delete`` -> unlink, ``network_connection`` -> connect, and service
``auditd`` where its record types and syscalls map onto our events (EXECVE, PATH, SYSCALL).

Sigma matches strings without regard to case: values become ``iglob`` (or ``icontains``)
clauses; the ``cased`` modifier gives ``=``, ``startswith``, ``endswith``, ``contains``,
``glob``. ``re`` gives ``regex`` (``i``, ``m``, ``s`` flags as ``(?ims)``), ``cidr`` gives
``cidr``, ``exists``, ``gt``/``lt``... give comparisons; ``all``, ``windash`` and ``base64``/
``base64offset`` are expanded by pySigma into plain values. ``fieldref``, ``expand`` (without a
placeholder value), keyword searches and correlation rules are skipped with the reason.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, Iterable

import yaml

from ..events.types import EVENT_TYPE_BY_LABEL, EventType
from ..errors import RuleError
from ..severity import Severity
from .diagnostics import Diagnostics
from .falco import EVENTS as FALCO_EVENTS
from .falco import UNSUPPORTED_EVENTS, field_def, slug
from .fields import FieldType
from .model import CondText, Rule, Source

try:  # pySigma is a dependency; a clear message if an install lacks it
    from sigma.collection import SigmaCollection
    from sigma.conditions import ConditionFieldEqualsValueExpression
    from sigma.conversion.base import TextQueryBackend
    from sigma.conversion.state import ConversionState
    from sigma.correlations import SigmaCorrelationRule
    from sigma.exceptions import SigmaError, SigmaFeatureNotSupportedByBackendError, SigmaTransformationError
    from sigma.processing.conditions import ExcludeFieldCondition, LogsourceCondition
    from sigma.processing.pipeline import ProcessingItem, ProcessingPipeline
    from sigma.processing.transformations import FieldMappingTransformation, RuleFailureTransformation
    from sigma.processing.transformations.base import DetectionItemTransformation
    from sigma.rule import SigmaDetectionItem, SigmaRule
    from sigma.types import (
        CompareOperators,
        Placeholder,
        SigmaBool,
        SigmaCasedString,
        SigmaCIDRExpression,
        SigmaCompareExpression,
        SigmaNumber,
        SigmaRegularExpression,
        SigmaString,
        SpecialChars,
    )
except ImportError as err:  # pragma: no cover - pysigma is in pyproject's dependencies
    raise RuleError("<sigma>", 1, f"pySigma is not installed ({err})",
                    hint="run scripts/setup.sh venv (pysigma is a dependency)") from err

log = logging.getLogger(__name__)

SIGMA_SUFFIXES = (".yml", ".yaml")

# ---- the log sources and their fields

#: category -> (event types, condition clause that selects the events, output fields)
CATEGORIES: dict[str, tuple[tuple[str, ...], str, str]] = {
    "process_creation": (("exec",), "evt.errno = 0",
                         "proc=%proc.name exe=%proc.exe cmdline=%proc.cmdline parent=%proc.pname "
                         "user=%user.name container=%container.name"),
    "file_event": (("file_open", "rename"), "(evt.type = rename or file.is_write)",
                   "file=%file.path proc=%proc.name cmdline=%proc.cmdline user=%user.name "
                   "container=%container.name"),
    "file_delete": (("unlink",), "evt.errno = 0",
                    "file=%file.path proc=%proc.name cmdline=%proc.cmdline user=%user.name "
                    "container=%container.name"),
    "network_connection": (("connect",), "",
                           "dest=%net.dip:%net.dport proc=%proc.name cmdline=%proc.cmdline "
                           "user=%user.name container=%container.name"),
}
AUDITD_OUTPUT = "proc=%proc.name cmdline=%proc.cmdline user=%user.name container=%container.name"

_PROCESS = {"Image": "proc.exe", "User": "user.name", "ProcessId": "proc.pid", "ProcessGuid": None}
#: category -> Sigma field -> our field
FIELD_MAPS: dict[str, dict[str, str]] = {
    "process_creation": {**_PROCESS, "CommandLine": "proc.cmdline", "ParentImage": "proc.pexe",
                         "ParentCommandLine": "proc.pcmdline", "ParentProcessId": "proc.ppid"},
    "file_event": {**_PROCESS, "TargetFilename": "file.path"},
    "file_delete": {**_PROCESS, "TargetFilename": "file.path"},
    "network_connection": {**_PROCESS, "DestinationIp": "net.dip", "DestinationPort": "net.dport",
                           "Initiated": "sigma.initiated"},
    "auditd": {"type": "auditd.type", "syscall": "evt.type", "exe": "proc.exe", "comm": "proc.comm",
               "proctitle": "proc.cmdline", "name": "file.path", "uid": "user.uid", "euid": "user.uid",
               "gid": "user.gid", "pid": "proc.pid", "ppid": "proc.ppid",
               **{f"a{i}": f"proc.argv[{i}]" for i in range(10)}},
}
for _m in FIELD_MAPS.values():
    for _k in [k for k, v in _m.items() if v is None]:
        del _m[_k]

#: Sigma fields we have no data for -> what to use
UNSUPPORTED_FIELDS: dict[str, str] = {
    "CurrentDirectory": "the working directory is not recorded: match Image or CommandLine",
    "OriginalFileName": "there is no PE metadata on Linux: match Image",
    "DestinationHostname": "DNS names are not recorded: match DestinationIp (cidr)",
    "DestinationIsIpv6": "match DestinationIp|cidr: '::/0'",
    "SourceIp": "the local end of a connection is not recorded: match DestinationIp",
    "SourcePort": "the local end of a connection is not recorded: match DestinationPort",
    "SourceHostname": "the local end of a connection is not recorded",
    "Protocol": "the transport protocol is not recorded: match DestinationPort",
    "LogonId": "logon sessions are not recorded: use User",
    "ParentUser": "the parent's user is not recorded: use User",
    "key": "auditd rule keys name auditd's own rules: match the syscall, exe or name instead",
    "cwd": "the working directory is not recorded",
}
_PSEUDO = ("auditd.type", "sigma.initiated")

#: auditd record type -> our event types (None: any event of the rule)
AUDITD_TYPES: dict[str, tuple[str, ...] | None] = {
    "EXECVE": ("exec",), "PROCTITLE": ("exec",), "SYSCALL": None,
    "PATH": ("file_open", "rename", "unlink", "chmod"), "SOCKADDR": ("connect",),
}


class UnsupportedField(DetectionItemTransformation):
    """Fail the rule on a field left unmapped, naming it and what to use instead."""

    def apply_detection_item(self, detection_item: SigmaDetectionItem) -> None:
        name = detection_item.field
        if name is None:
            raise SigmaTransformationError("keyword searches (values without a field) are not supported: "
                                           "name the field")
        advice = UNSUPPORTED_FIELDS.get(name or "", "coi-sentinel has no data for it (see docs/rules.md, "
                                                     "the Sigma field table)")
        raise SigmaTransformationError(f"field '{name}' is not supported: {advice}")


def pipeline() -> ProcessingPipeline:
    """Log source check, field mapping per log source, unsupported fields named."""
    sources = [LogsourceCondition(product="linux", category=c) for c in CATEGORIES]
    sources.append(LogsourceCondition(product="linux", service="auditd"))
    items = [ProcessingItem(
        identifier="coi_logsource",
        transformation=RuleFailureTransformation(
            "log source is not supported: coi-sentinel converts product linux with category "
            + ", ".join(CATEGORIES) + " or service auditd"),
        rule_conditions=sources, rule_condition_linking=any, rule_condition_negation=True)]
    for name, mapping in FIELD_MAPS.items():
        cond = (LogsourceCondition(product="linux", service="auditd") if name == "auditd"
                else LogsourceCondition(product="linux", category=name))
        items.append(ProcessingItem(identifier=f"coi_fields_{name}",
                                    transformation=FieldMappingTransformation(dict(mapping)),
                                    rule_conditions=[cond]))
    ours = sorted({v for m in FIELD_MAPS.values() for v in m.values()})
    items.append(ProcessingItem(identifier="coi_unsupported_field", transformation=UnsupportedField(),
                                field_name_conditions=[ExcludeFieldCondition(fields=ours)]))
    return ProcessingPipeline(name="coi-sentinel linux", priority=20, items=items)


# ---- the backend: condition elements in our language

class Unsupported(SigmaFeatureNotSupportedByBackendError):
    """A construct of the rule has no equivalent here; the message says what to use."""


def _quote(text: str) -> str:
    if '"' not in text:
        return f'"{text}"'
    if "'" not in text:
        return f"'{text}'"
    raise Unsupported(f"the value {text!r} holds both kinds of quote, which a condition cannot write")


def _glob(s: SigmaString) -> str:
    out = []
    for part in s.s:
        if isinstance(part, str):
            out.append(re.sub(r"([*?\[])", r"[\1]", part))
        elif part is SpecialChars.WILDCARD_MULTI:
            out.append("*")
        elif part is SpecialChars.WILDCARD_SINGLE:
            out.append("?")
        elif isinstance(part, Placeholder):
            raise Unsupported(f"placeholder %{part.name}% (expand modifier) has no value: write the values")
    return "".join(out)


def _plain(s: SigmaString) -> str:
    return "".join(p for p in s.s if isinstance(p, str))


class SentinelBackend(TextQueryBackend):
    """Sigma conditions -> coi-sentinel conditions (one text per Sigma condition)."""

    name: ClassVar[str] = "coi-sentinel"
    formats: ClassVar[dict[str, str]] = {"default": "coi-sentinel condition text"}
    requires_pipeline: ClassVar[bool] = False
    backend_processing_pipeline: ClassVar[ProcessingPipeline] = pipeline()

    precedence: ClassVar[tuple[Any, Any, Any]] = TextQueryBackend.precedence
    group_expression: ClassVar[str] = "({expr})"
    token_separator: str = " "
    or_token: ClassVar[str] = "or"
    and_token: ClassVar[str] = "and"
    not_token: ClassVar[str] = "not"
    eq_token: ClassVar[str] = " = "

    def _field(self, cond: ConditionFieldEqualsValueExpression) -> str:
        return cond.field

    def _type(self, name: str) -> FieldType | None:
        fdef = field_def(name.split("[", 1)[0])
        return None if fdef is None else fdef.type

    # ---- strings
    def convert_condition_field_eq_val_str(self, cond: ConditionFieldEqualsValueExpression,
                                           state: ConversionState) -> str:
        return self._string(cond, cased=isinstance(cond.value, SigmaCasedString))

    def convert_condition_field_eq_val_str_case_sensitive(self, cond: ConditionFieldEqualsValueExpression,
                                                          state: ConversionState) -> str:
        return self._string(cond, cased=True)

    def _string(self, cond: ConditionFieldEqualsValueExpression, *, cased: bool) -> str:
        name = self._field(cond)
        value: SigmaString = cond.value
        if name in _PSEUDO:
            return self._pseudo(name, _plain(value))
        if name == "evt.type":
            return self._syscall(_plain(value))
        ftype = self._type(name)
        # Linux paths are case-sensitive, and the kernel's sensitive-path sets need literal
        # prefixes and suffixes: file paths match with case (other strings as Sigma says, without)
        cased = cased or name == "file.path"
        if ftype is FieldType.INT:
            text = _plain(value)
            if value.contains_special() or not re.fullmatch(r"-?\d+", text):
                raise Unsupported(f"{name} is a number; the value {value.original!r} is not")
            return f"{name} = {text}"
        multi, star = SpecialChars.WILDCARD_MULTI, value.s
        inner = value[1:-1] if len(star) >= 2 and value.startswith(multi) and value.endswith(multi) else None
        if inner is not None and not inner.contains_special():
            return f"{name} {'contains' if cased else 'icontains'} {_quote(_plain(inner))}"
        if cased:
            if not value.contains_special():
                return f"{name} = {_quote(_plain(value))}"
            if value.endswith(multi) and not value[:-1].contains_special():
                return f"{name} startswith {_quote(_plain(value[:-1]))}"
            if value.startswith(multi) and not value[1:].contains_special():
                return f"{name} endswith {_quote(_plain(value[1:]))}"
            return f"{name} glob {_quote(_glob(value))}"
        return f"{name} iglob {_quote(_glob(value))}"

    def _pseudo(self, name: str, text: str) -> str:
        if name == "sigma.initiated":
            if text.lower() == "true":
                return "evt.type = connect"
            raise Unsupported("Initiated: 'false' (inbound connections) is not probed")
        kinds = AUDITD_TYPES.get(text.upper(), ())
        if kinds == ():
            raise Unsupported(f"auditd record type '{text}' has no coi-sentinel event (have: "
                              f"{', '.join(AUDITD_TYPES)})")
        if kinds is None:
            return "evt.type exists"
        return f"evt.type in ({', '.join(kinds)})"

    def _syscall(self, text: str) -> str:
        name = text.lower()
        if name in UNSUPPORTED_EVENTS:
            raise Unsupported(f"syscall '{name}' is not supported: {UNSUPPORTED_EVENTS[name]}")
        if name not in FALCO_EVENTS and name not in EVENT_TYPE_BY_LABEL:
            raise Unsupported(f"syscall '{name}' is not probed by coi-sentinel")
        return f"evt.type = {name}"

    # ---- other values
    def convert_condition_field_eq_val_num(self, cond: ConditionFieldEqualsValueExpression,
                                           state: ConversionState) -> str:
        name = self._field(cond)
        if name in _PSEUDO or name == "evt.type":
            return self._string_of(cond, str(cond.value))
        return f"{name} = {cond.value}"

    def _string_of(self, cond: ConditionFieldEqualsValueExpression, text: str) -> str:
        name = self._field(cond)
        if name == "evt.type":
            return self._syscall(text)
        return self._pseudo(name, text)

    def convert_condition_field_eq_val_bool(self, cond: ConditionFieldEqualsValueExpression,
                                            state: ConversionState) -> str:
        name = self._field(cond)
        value: SigmaBool = cond.value
        if name in _PSEUDO:
            return self._pseudo(name, "true" if value.boolean else "false")
        return f"{name} = {'true' if value.boolean else 'false'}"

    def convert_condition_field_eq_val_re(self, cond: ConditionFieldEqualsValueExpression,
                                          state: ConversionState) -> str:
        value: SigmaRegularExpression = cond.value
        flags = "".join(SigmaRegularExpression.sigma_to_re_flag[f] for f in sorted(value.flags, key=str))
        text = value.regexp.original if hasattr(value.regexp, "original") else str(value.regexp)
        pattern = (f"(?{flags})" if flags else "") + text
        try:
            re.compile(pattern)
        except re.error as err:
            raise Unsupported(f"regular expression {text!r} is not valid for Python's re: {err}") from None
        return f"{self._field(cond)} regex {_quote(pattern)}"

    def convert_condition_field_eq_val_cidr(self, cond: ConditionFieldEqualsValueExpression,
                                            state: ConversionState) -> str:
        value: SigmaCIDRExpression = cond.value
        return f"{self._field(cond)} cidr {_quote(value.cidr)}"

    def convert_condition_field_compare_op_val(self, cond: ConditionFieldEqualsValueExpression,
                                               state: ConversionState) -> str:
        value: SigmaCompareExpression = cond.value
        ops = {CompareOperators.LT: "<", CompareOperators.LTE: "<=", CompareOperators.GT: ">",
               CompareOperators.GTE: ">=", CompareOperators.NEQ: "!="}
        if not isinstance(value.number, SigmaNumber):
            raise Unsupported("comparisons with timestamps are not supported")
        return f"{self._field(cond)} {ops[value.op]} {value.number}"

    def convert_condition_field_exists(self, cond: ConditionFieldEqualsValueExpression,
                                       state: ConversionState) -> str:
        return f"{self._field(cond)} exists"

    def convert_condition_field_not_exists(self, cond: ConditionFieldEqualsValueExpression,
                                           state: ConversionState) -> str:
        return f"not {self._field(cond)} exists"

    def convert_condition_field_eq_val_null(self, cond: ConditionFieldEqualsValueExpression,
                                            state: ConversionState) -> str:
        return f"not {self._field(cond)} exists"

    def convert_condition_field_eq_field(self, cond: Any, state: ConversionState) -> str:
        raise Unsupported("fieldref (comparing two fields) is not supported: compare with values")

    def convert_condition_field_eq_val_timestamp_part(self, cond: Any, state: ConversionState) -> str:
        raise Unsupported("timestamp parts (minute, hour...) are not supported")

    def convert_condition_field_eq_query_expr(self, cond: Any, state: ConversionState) -> str:
        raise Unsupported("query expressions from a pipeline are not supported")

    def convert_condition_query_expr(self, cond: Any, state: ConversionState) -> str:
        raise Unsupported("query expressions from a pipeline are not supported")

    def convert_condition_val_str(self, cond: Any, state: ConversionState) -> str:
        raise Unsupported("keyword searches (values without a field) are not supported: name the field")

    convert_condition_val_num = convert_condition_val_str
    convert_condition_val_re = convert_condition_val_str

    def finalize_query_default(self, rule: SigmaRule, query: str, index: int, state: ConversionState) -> str:
        return query


# ---- whole rules

@dataclass(slots=True)
class Result:
    """One Sigma rule: converted (``item`` holds the rule, our YAML schema) or skipped."""

    path: str
    line: int
    title: str
    sigma_id: str
    item: dict[str, Any] | None = None
    reason: str = ""
    kind: str = ""          # why skipped, in a word: field, logsource, modifier, keyword...

    @property
    def converted(self) -> bool:
        return self.item is not None

    def text(self) -> str:
        if self.item is not None:
            return f"{self.path}:{self.line}: converted: {self.title} -> {self.item['rule']}"
        return f"{self.path}:{self.line}: skipped: {self.title or '(no title)'}: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"path": self.path, "line": self.line, "title": self.title, "id": self.sigma_id,
                             "converted": self.converted}
        if self.item is not None:
            d["rule"] = self.item["rule"]
        else:
            d["reason"] = self.reason
            d["kind"] = self.kind
        return d


@dataclass(slots=True)
class Report:
    results: list[Result] = field(default_factory=list)

    @property
    def converted(self) -> list[Result]:
        return [r for r in self.results if r.converted]

    @property
    def skipped(self) -> list[Result]:
        return [r for r in self.results if not r.converted]

    def summary(self) -> str:
        kinds = Counter(r.kind for r in self.skipped)
        by = ", ".join(f"{k} {n}" for k, n in kinds.most_common())
        return (f"{len(self.converted)} converted, {len(self.skipped)} skipped"
                + (f" ({by})" if by else "") + f" of {len(self.results)} Sigma rule(s)")

    def items(self) -> list[dict[str, Any]]:
        return [r.item for r in self.converted if r.item is not None]

    def yaml(self) -> str:
        """The converted rules as a rule file."""
        head = "# Converted from Sigma by coi-sentinel rules import-sigma.\n\n"
        return head + "\n".join(_dump_item(i) for i in self.items())


def _kind(message: str) -> str:
    for word, kind in (("log source", "logsource"), ("field '", "field"), ("keyword", "keyword"),
                       ("fieldref", "modifier"), ("placeholder", "modifier"), ("regular expression", "regex"),
                       ("syscall", "event"), ("record type", "event"), ("correlation", "correlation"),
                       ("not valid Sigma", "invalid"), ("Initiated", "field"),
                       ("does not resolve", "condition"), ("quote", "value"), ("is a number", "value")):
        if word in message:
            return kind
    return "other"


def _line_of(text: str, *needles: str, start: int = 0) -> int:
    """Line of the first line from offset ``start`` that has one of ``needles`` as a YAML key
    (the line of ``start`` if none)."""
    for needle in needles:
        if not needle:
            continue
        rx = re.compile(rf"^[ \t]*-?[ \t]*['\"]?{re.escape(needle)}['\"]?[ \t]*[:|]", re.M)
        m = rx.search(text, start)
        if m is not None:
            return text.count("\n", 0, m.start()) + 1
    return text.count("\n", 0, start) + 1


def _rule_text(text: str, title: str) -> str:
    """The part of a (multi-document) file from the rule's title on."""
    m = re.search(rf"^title:\s*['\"]?{re.escape(title)}", text, re.M) if title else None
    if m is None:
        return text
    return "\n" * text.count("\n", 0, m.start()) + text[m.start():]   # keeps line numbers


def _reason_line(text: str, message: str) -> int:
    m = re.search(r"field '([^']+)'", message)
    if m:
        return _line_of(text, m.group(1))
    m = re.search(r"(?:syscall|record type) '([^']+)'", message)
    if m:
        return _line_of(text, "syscall" if "syscall" in message else "type")
    if "log source" in message:
        return _line_of(text, "logsource")
    if "keyword" in message:
        return _line_of(text, "keywords", "detection")
    if "fieldref" in message:
        return _line_of(text, *re.findall(r"^\s*(\w+)\|fieldref", text, re.M))
    if "placeholder" in message:
        return _line_of(text, *re.findall(r"^\s*(\w+)\|expand", text, re.M))
    if "regular expression" in message:
        return _line_of(text, *re.findall(r"^\s*(\w+)\|re\b", text, re.M))
    return _line_of(text, "detection")


class Converter:
    """Converts Sigma rules one by one with :class:`SentinelBackend`, checking each result."""

    def __init__(self) -> None:
        self.backend = SentinelBackend()
        self.ids: set[str] = set()

    def convert_file(self, path: Path, name: str | None = None) -> list[Result]:
        name = name or str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            return [Result(name, 1, "", "", reason=f"cannot read the file: {err}", kind="invalid")]
        try:
            collection = SigmaCollection.from_yaml(text)
        except yaml.MarkedYAMLError as err:
            mark = err.problem_mark or err.context_mark
            return [Result(name, mark.line + 1 if mark else 1, "", "",
                           reason=f"not valid Sigma: invalid YAML: {err.problem or err.context}", kind="invalid")]
        except (SigmaError, yaml.YAMLError) as err:
            return [Result(name, 1, "", "", reason=f"not valid Sigma: {_one_line(err)}", kind="invalid")]
        out = []
        for rule in collection.rules:
            out.append(self.convert_rule(rule, text, name))
        return out

    def convert_rule(self, rule: Any, text: str, name: str) -> Result:
        title = str(getattr(rule, "title", "") or "")
        sid = str(getattr(rule, "id", "") or "")
        text = _rule_text(text, title)
        line = _line_of(text, "title")
        if isinstance(rule, SigmaCorrelationRule):
            return Result(name, line, title, sid, reason="correlation rules are not supported: write a "
                                                         "sequence or threshold rule", kind="correlation")
        try:
            queries = self.backend.convert_rule(rule)
        except (SigmaError, NotImplementedError) as err:
            msg = _one_line(err)
            return Result(name, _reason_line(text, msg), title, sid, reason=msg, kind=_kind(msg))
        try:
            item = self._item(rule, queries, name, line)
        except Unsupported as err:
            msg = _one_line(err)
            return Result(name, _reason_line(text, msg), title, sid, reason=msg, kind=_kind(msg))
        return Result(name, line, title, sid, item=item)

    def _item(self, rule: SigmaRule, queries: list[str], path: str, line: int) -> dict[str, Any]:
        logsource = rule.logsource
        category = logsource.category or ""
        if not queries:
            raise Unsupported("the rule gives no query (a rule only a correlation uses): write a sequence or "
                              "threshold rule")
        cond = queries[0] if len(queries) == 1 else " or ".join(f"({q})" for q in queries)
        if category in CATEGORIES:
            types, base, fields = CATEGORIES[category]
            condition = f"{base} and ({cond})" if base else cond
        else:   # auditd: the event types follow from the record types and syscalls
            types, fields = tuple(EVENT_TYPE_BY_LABEL), AUDITD_OUTPUT
            condition = cond
        events = _check(condition, tuple(EVENT_TYPE_BY_LABEL[t] for t in types), Source(path, line))
        title = str(rule.title)
        rid = slug(title)
        if rid in self.ids:
            rid = f"{rid}_{str(rule.id or len(self.ids))[:8]}"
        self.ids.add(rid)
        tags = [str(t) for t in rule.tags]
        attack = [f"T{m.group(1).upper()}" for t in tags
                  if (m := re.fullmatch(r"attack\.t(\d{4}(?:\.\d{3})?)", t.lower())) is not None]
        level = str(rule.level.name).lower() if rule.level is not None else "medium"
        item: dict[str, Any] = {
            "rule": rid,
            "title": title,
            "description": (str(rule.description or title)).strip(),
            "severity": _severity_label(level),
            "events": [t.label for t in events],
            "condition": condition,
            "output": f"{title.replace('%', '%%')} ({fields})",
            "tags": list(dict.fromkeys(tags + attack)),
        }
        if rule.references:
            item["references"] = [str(r) for r in rule.references]
        if rule.id is not None:
            item["sigma_id"] = str(rule.id)
        fps = [str(f) for f in (rule.falsepositives or [])]
        item["false_positives"] = "; ".join(fps) if fps else "Not stated by the Sigma rule."
        return item


def _check(condition: str, types: tuple[EventType, ...], src: Source) -> tuple[EventType, ...]:
    """Resolve a converted condition with our resolver; the event types it can match."""
    from .resolve import Resolver
    from .ruleset import live_types

    diags = Diagnostics()
    node = Resolver({}, {}, diags).condition((CondText(condition, src),))
    if diags.errors:
        raise Unsupported(f"the converted condition does not resolve: {diags.errors[0].message}")
    live = live_types(node, types)
    if not live:
        raise Unsupported("the converted condition can never match an event coi-sentinel records")
    return live


def _one_line(err: BaseException) -> str:
    text = str(err.args[0]) if getattr(err, "args", None) else str(err)
    text = re.sub(r"\s+", " ", text).strip()
    return re.sub(r" \(while converting rule .*\)$", "", text)


def sigma_files(paths: Iterable[Path], diags: Diagnostics | None = None) -> list[Path]:
    """Files under ``paths`` (directories recursively, like SigmaHQ's tree), sorted."""
    out: list[Path] = []
    for path in paths:
        path = Path(path)
        if path.is_dir():
            out.extend(sorted(p for p in path.rglob("*") if p.suffix in SIGMA_SUFFIXES and p.is_file()))
        elif path.is_file():
            out.append(path)
        elif diags is not None:
            diags.error(Source(str(path), 1), "no such Sigma rule file or directory")
        else:
            raise RuleError(str(path), 1, "no such Sigma rule file or directory")
    return out


def convert_paths(paths: Iterable[Path]) -> Report:
    """Convert every Sigma rule under ``paths``."""
    conv = Converter()
    report = Report()
    for path in sigma_files(paths):
        report.results.extend(conv.convert_file(path))
    return report


def sigma_file_items(paths: list[Path], diags: Diagnostics) -> list[Any]:
    """Sigma rules as rule file items for the loader (``watch --sigma DIR``). A rule that cannot
    be converted is a warning with its reason; the others load as if imported."""
    from .schema import read_file
    from .yamlload import load_text

    conv = Converter()
    out = []
    for path in sigma_files(paths, diags):
        for result in conv.convert_file(path):
            if result.item is None:
                diags.warning(Source(result.path, result.line), f"Sigma rule skipped: {result.reason}")
                log.warning("%s", result.text())
                continue
            data = load_text(_dump_item(result.item), result.path, diags)
            items = read_file(data, result.path, diags)
            # alerts and messages name the Sigma file and the line of its title
            src = Source(result.path, result.line)
            items.items = [replace(it, source=src, output_source=src,
                                   condition=tuple(replace(c, source=src, raw="") for c in it.condition))
                           if isinstance(it, Rule) else it for it in items.items]
            out.append(items)
    return out


def _dump_item(item: dict[str, Any]) -> str:
    text = yaml.safe_dump([item], sort_keys=False, allow_unicode=True, width=100, default_flow_style=None)
    return text


__all__ = ["Converter", "Report", "Result", "SentinelBackend", "convert_paths", "pipeline", "sigma_file_items"]


def _severity_label(level: str) -> str:
    """A Sigma level as our severity label (``informational`` -> ``info``), through the one
    vocabulary; an unknown one is left for the schema to report."""
    found = Severity.lookup(level)
    return found.label if found is not None else level
