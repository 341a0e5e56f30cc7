"""Rule test cases: a trace and the alerts it must raise, checked rule by rule.

A case file is a YAML list (docs/rule-tests.md)::

    - case: reverse_shell_python_dup2
      description: python3 -c with os.dup2 of a socket onto 0, 1, 2, then /bin/sh -i
      trace: traces/reverse_shell_python.jsonl.gz      # relative to this file
      expect:                                          # rule id: count, or `none`
        reverse_shell_socket_dup: 3
        reverse_shell_exec_socket_stdio: 1
      negative: [exfil_secret_read_then_connect]       # near misses that must stay quiet
      missed: [other_rule]                             # known gaps (see below)
      session: {network: restricted}                   # optional: session fields for the rules

    - waive: kernel_module_load
      reason: the recording kernel has no module support, so no init_module event exists

Every rule not named in ``expect`` must not fire at all (so a case says exactly which rules
fire). A count is exact (``3``), a minimum (``">=1"``) or a range (``"2..4"``). A case is a
*positive* case of the rules it expects at least once, and a *negative* case of the rules in
``negative``. ``missed`` names rules that should fire on the trace and do not - a known gap,
reported, pinned: the case fails the day such a rule fires, so a fix is noticed and the rule
moves to ``expect``. A known gap is neither a positive nor a negative case. ``--strict`` fails
every enabled rule without a positive and a negative case, unless a ``waive`` item says why it
cannot have them.

Files are read with the rule loader's YAML reader: every problem is a diagnostic naming
``path:line``, duplicate keys included; all of them are reported, none stops the others.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from ..errors import TraceError
from ..rules.context import SessionInfo
from ..rules.diagnostics import Diagnostics
from ..rules.loader import bundled_dir, display_name, yaml_files
from ..rules.model import Source
from ..rules.yamlload import LineDict, LineList, load_file
from .replayer import Replayer

if TYPE_CHECKING:
    from ..rules.ruleset import RuleSet

CASE_KEYS = ("case", "description", "trace", "expect", "negative", "missed", "session", "family")
#: the case file (stem) of ordinary work: every case there is benign
BENIGN_FAMILY = "benign"
#: --strict fails when fewer attack cases than this are detected by a rule of their family
DETECTION_FLOOR = 0.95
WAIVER_KEYS = ("waive", "reason")
SESSION_KEYS = ("id", "tool", "network")
NETWORK_MODES = ("restricted", "allowlist", "open")
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_COUNT = re.compile(r"^\s*(?:(\d+)|>=\s*(\d+)|(\d+)\s*\.\.\s*(\d+))\s*$")


def bundled_cases_dir() -> Path:
    """The cases of the bundled rules: ``rules/tests/`` (case files, ``traces/``)."""
    return bundled_dir() / "tests"


@dataclass(frozen=True, slots=True)
class Expectation:
    rule: str
    low: int
    high: int | None          # None: no upper bound
    source: Source

    def holds(self, count: int) -> bool:
        return count >= self.low and (self.high is None or count <= self.high)

    @property
    def text(self) -> str:
        if self.high is None:
            return f">={self.low}"
        return str(self.low) if self.low == self.high else f"{self.low}..{self.high}"


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    trace: Path
    source: Source
    description: str = ""
    expect: tuple[Expectation, ...] = ()       # empty: `none`
    negative: tuple[tuple[str, Source], ...] = ()
    missed: tuple[tuple[str, Source], ...] = ()
    session: SessionInfo | None = None
    #: the kind of attack (the stem of the rule file whose rules should catch it); the case
    #: file's stem unless the case says ``family:``
    family: str = ""

    @property
    def is_attack(self) -> bool:
        """A case some rule must (or should, a known gap) fire on; the others are benign."""
        return self.family != BENIGN_FAMILY and bool(self.expect or self.missed)

    def expected(self, rule: str) -> Expectation | None:
        for exp in self.expect:
            if exp.rule == rule:
                return exp
        return None

    def is_positive(self, rule: str) -> bool:
        exp = self.expected(rule)
        return exp is not None and exp.low >= 1

    def is_negative(self, rule: str) -> bool:
        return any(r == rule for r, _ in self.negative)

    def is_missed(self, rule: str) -> bool:
        return any(r == rule for r, _ in self.missed)


@dataclass(frozen=True, slots=True)
class Waiver:
    rule: str
    reason: str
    source: Source


@dataclass(slots=True)
class Suite:
    """Everything read from the case files, and the problems found reading them."""

    cases: list[Case] = field(default_factory=list)
    waivers: list[Waiver] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    diagnostics: Diagnostics = field(default_factory=Diagnostics)


# ---- reading ------------------------------------------------------------------------------

def case_files(paths: Iterable[Path], diags: Diagnostics) -> list[Path]:
    """Directories become their ``*.yaml`` / ``*.yml`` files (sorted, not recursive)."""
    return yaml_files(paths, diags, what="case", name=display_name)


def load_suite(paths: Iterable[Path]) -> Suite:
    suite = Suite()
    names: dict[str, Source] = {}
    for path in case_files(paths, suite.diagnostics):
        name = display_name(path)
        suite.files.append(name)
        errors = len(suite.diagnostics.errors)
        data = load_file(path, suite.diagnostics, name)
        if data is None:
            if len(suite.diagnostics.errors) == errors:
                suite.diagnostics.warning(Source(name, 1), "empty case file")
            continue
        if not isinstance(data, LineList):
            suite.diagnostics.error(Source(name, getattr(data, "line", 1) or 1),
                                    "a case file is a YAML list of `case` and `waive` items")
            continue
        for i, item in enumerate(data):
            src = Source(name, data.item_line(i))
            if not isinstance(item, LineDict):
                suite.diagnostics.error(src, "an item is a mapping with `case:` or `waive:`")
            elif "case" in item:
                case = _read_case(item, path.parent, name, suite.diagnostics)
                if case is None:
                    continue
                first = names.get(case.name)
                if first is not None:
                    suite.diagnostics.error(case.source, f"duplicate case {case.name!r} "
                                                         f"(first at {first})")
                    continue
                names[case.name] = case.source
                suite.cases.append(case)
            elif "waive" in item:
                waiver = _read_waiver(item, name, suite.diagnostics)
                if waiver is not None:
                    suite.waivers.append(waiver)
            else:
                suite.diagnostics.error(src, "an item needs `case:` or `waive:`")
    return suite


def _unknown_keys(item: LineDict, allowed: tuple[str, ...], name: str, diags: Diagnostics) -> bool:
    bad = False
    for key in item:
        if key not in allowed:
            diags.error(Source(name, item.key_line(key)),
                        f"unknown key {key!r} (expected one of: {', '.join(allowed)})")
            bad = True
    return bad


def _read_case(item: LineDict, base: Path, name: str, diags: Diagnostics) -> Case | None:
    src = Source(name, item.key_line("case"))
    errors = len(diags.errors)
    _unknown_keys(item, CASE_KEYS, name, diags)
    case_name = item.get("case")
    if not isinstance(case_name, str) or not _NAME.match(case_name):
        diags.error(src, "`case` is a name of letters, digits, '_', '-' and '.'")
        case_name = "?"
    trace = item.get("trace")
    if not isinstance(trace, str) or not trace:
        diags.error(Source(name, item.value_line("trace") if "trace" in item else src.line),
                    f"case {case_name}: `trace` is the path of a trace file "
                    "(relative to this file)")
        trace = ""
    description = item.get("description", "")
    if not isinstance(description, str):
        diags.error(Source(name, item.value_line("description")), "`description` is text")
        description = ""
    expect = _read_expect(item, name, case_name, src, diags)
    negative = _read_rule_list(item, "negative", name, diags)
    missed = _read_rule_list(item, "missed", name, diags)
    for rule, at in (*negative, *missed):
        if any(exp.rule == rule for exp in expect):
            diags.error(at, f"case {case_name}: rule {rule} is also in `expect`")
    for rule, at in missed:
        if any(r == rule for r, _ in negative):
            diags.error(at, f"case {case_name}: rule {rule} is both `negative` and `missed`")
    session = _read_session(item, name, diags)
    family = item.get("family", Path(name).stem)
    if not isinstance(family, str) or not _NAME.match(family):
        diags.error(Source(name, item.value_line("family")), "`family` is the stem of a rule "
                                                             "file (reverse_shell, credentials...)")
        family = "?"
    if len(diags.errors) > errors:
        return None
    return Case(case_name, base / trace, src, description.strip(), expect, negative, missed,
                session, family)


def _read_expect(item: LineDict, name: str, case_name: str, src: Source,
                 diags: Diagnostics) -> tuple[Expectation, ...]:
    if "expect" not in item:
        diags.error(src, f"case {case_name}: `expect` is missing (rule ids and counts, or `none`)")
        return ()
    value = item["expect"]
    line = item.value_line("expect")
    if value == "none":
        return ()
    if not isinstance(value, LineDict) or not value:
        diags.error(Source(name, line), "`expect` is `none` or a mapping of rule id to count "
                                        "(3, \">=1\", \"1..2\")")
        return ()
    out = []
    for rule, count in value.items():
        at = Source(name, value.key_line(rule))
        if not isinstance(rule, str):
            diags.error(at, f"{rule!r} is not a rule id")
            continue
        bounds = _count(count)
        if bounds is None:
            diags.error(at, f"{rule}: count {count!r} is not N, \">=N\" or \"N..M\"")
            continue
        low, high = bounds
        if high == 0:
            diags.error(at, f"{rule}: a count of 0 is written `negative: [{rule}]`")
            continue
        if high is not None and high < low:
            diags.error(at, f"{rule}: empty range {count!r}")
            continue
        out.append(Expectation(rule, low, high, at))
    return tuple(out)


def _count(value: Any) -> tuple[int, int | None] | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return (value, value) if value >= 0 else None
    if not isinstance(value, str):
        return None
    m = _COUNT.match(value)
    if m is None:
        return None
    if m.group(1) is not None:
        return int(m.group(1)), int(m.group(1))
    if m.group(2) is not None:
        return int(m.group(2)), None
    return int(m.group(3)), int(m.group(4))


def _read_rule_list(item: LineDict, key: str, name: str,
                    diags: Diagnostics) -> tuple[tuple[str, Source], ...]:
    if key not in item:
        return ()
    value = item[key]
    if not isinstance(value, LineList) or not all(isinstance(v, str) for v in value):
        diags.error(Source(name, item.value_line(key)), f"`{key}` is a list of rule ids")
        return ()
    return tuple((rule, Source(name, value.item_line(i))) for i, rule in enumerate(value))


def _read_session(item: LineDict, name: str, diags: Diagnostics) -> SessionInfo | None:
    if "session" not in item:
        return None
    value = item["session"]
    line = item.value_line("session")
    if not isinstance(value, LineDict):
        diags.error(Source(name, line), "`session` is a mapping: id, tool, network")
        return None
    if _unknown_keys(value, SESSION_KEYS, name, diags):
        return None
    for key in SESSION_KEYS:
        if key in value and not isinstance(value[key], str):
            diags.error(Source(name, value.key_line(key)), f"session {key} is text")
            return None
    network = value.get("network")
    if network is not None and network not in NETWORK_MODES:
        diags.error(Source(name, value.key_line("network")),
                    f"session network is one of: {', '.join(NETWORK_MODES)}")
        return None
    return SessionInfo(id=value.get("id"), tool=value.get("tool"), network=network)


def _read_waiver(item: LineDict, name: str, diags: Diagnostics) -> Waiver | None:
    src = Source(name, item.key_line("waive"))
    if _unknown_keys(item, WAIVER_KEYS, name, diags):
        return None
    rule, reason = item.get("waive"), item.get("reason")
    if not isinstance(rule, str) or not rule:
        diags.error(src, "`waive` names one rule id")
        return None
    if not isinstance(reason, str) or not reason.strip():
        diags.error(src, f"waiver of {rule}: `reason` says why the rule cannot have a "
                         "positive and a negative case")
        return None
    return Waiver(rule, " ".join(reason.split()), src)


# ---- running ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Problem:
    rule: str | None            # the rule at fault; None: a case that could not run
    case: str | None            # None: a rule without the cases --strict asks for
    source: Source | None       # where the case (or the expectation) is written
    message: str

    def __str__(self) -> str:
        where = f"{self.source}: " if self.source is not None else ""
        return where + (f"case {self.case}: " if self.case else "") + self.message


@dataclass(slots=True)
class CaseResult:
    case: Case
    fired: Counter[str]
    problems: list[Problem]
    events: int = 0
    lost: int = 0
    error: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"record": "case", "case": self.case.name, "source": str(self.case.source),
                "trace": display_name(self.case.trace), "ok": self.ok, "events": self.events,
                "fired": dict(sorted(self.fired.items())),
                "expected": {e.rule: e.text for e in self.case.expect},
                "negative": [r for r, _ in self.case.negative],
                "missed": [r for r, _ in self.case.missed], "error": self.error,
                "problems": [p.message for p in self.problems]}


@dataclass(slots=True)
class RuleResult:
    rule: str
    positive: list[tuple[str, bool]] = field(default_factory=list)   # (case, passed)
    negative: list[tuple[str, bool]] = field(default_factory=list)
    #: cases where the rule is a known gap (should fire, does not)
    missed: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    waived: str | None = None
    status: str = "pass"          # pass, fail, untested, waived

    def to_dict(self) -> dict[str, Any]:
        return {"record": "rule", "rule": self.rule, "status": self.status,
                "positive": _tally(self.positive), "negative": _tally(self.negative),
                "missed": self.missed, "waived": self.waived,
                "problems": [str(p) for p in self.problems]}


def _tally(results: list[tuple[str, bool]]) -> dict[str, int]:
    return {"passed": sum(ok for _, ok in results), "cases": len(results)}


@dataclass(slots=True)
class FamilyResult:
    """Detection by family: attack cases caught by a rule of their own family (the rule file
    they belong to), and alerts of any rule on the benign cases."""

    family: str
    attacks: int = 0
    detected: int = 0
    any_alert: int = 0
    benign: int = 0
    benign_alerts: int = 0
    undetected: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float | None:
        return self.detected / self.attacks if self.attacks else None

    def to_dict(self) -> dict[str, Any]:
        return {"record": "family", "family": self.family, "attacks": self.attacks,
                "detected": self.detected, "any_alert": self.any_alert,
                "rate": None if self.rate is None else round(self.rate, 4),
                "benign": self.benign, "benign_alerts": self.benign_alerts,
                "undetected": self.undetected}


def family_results(results: list[CaseResult], rule_family: dict[str, str]) -> list[FamilyResult]:
    """One row per family (sorted), then a ``total`` row."""
    rows: dict[str, FamilyResult] = {}
    total = FamilyResult("total")
    for res in results:
        case = res.case
        row = rows.setdefault(case.family, FamilyResult(case.family))
        fired = {r for r, n in res.fired.items() if n}
        for r in (row, total):
            if case.is_attack:
                r.attacks += 1
                if any(rule_family.get(rule) == case.family for rule in fired):
                    r.detected += 1
                else:
                    r.undetected.append(case.name)
                if fired:
                    r.any_alert += 1
            else:
                r.benign += 1
                r.benign_alerts += sum(res.fired.values())
    return [rows[k] for k in sorted(rows)] + [total]


def rule_families(ruleset: "RuleSet") -> dict[str, str]:
    """rule id -> family: the stem of the file that defines the rule."""
    return {rid: Path(ruleset.rule(rid).rule.source.path).stem for rid in ruleset.rule_ids}


@dataclass(slots=True)
class Report:
    cases: list[CaseResult]
    rules: list[RuleResult]
    diagnostics: Diagnostics
    strict: bool
    seconds: float
    families: list[FamilyResult] = field(default_factory=list)

    @property
    def total(self) -> FamilyResult:
        return self.families[-1] if self.families else FamilyResult("total")

    @property
    def detection_ok(self) -> bool:
        """The corpus gate of --strict: at least DETECTION_FLOOR of the attack cases detected
        by a rule of their family, and no alert at all on a benign case."""
        t = self.total
        return (t.rate is None or t.rate >= DETECTION_FLOOR) and t.benign_alerts == 0

    @property
    def ok(self) -> bool:
        return (not self.diagnostics.errors and all(c.ok for c in self.cases)
                and all(r.status != "fail" for r in self.rules)
                and (not self.strict or self.detection_ok))

    def summary(self) -> dict[str, Any]:
        statuses = Counter(r.status for r in self.rules)
        return {"record": "summary", "ok": self.ok, "strict": self.strict,
                "cases": len(self.cases), "cases_failed": sum(not c.ok for c in self.cases),
                "rules": len(self.rules), "rules_by_status": dict(sorted(statuses.items())),
                "errors": len(self.diagnostics.errors), "warnings": len(self.diagnostics.warnings),
                "attacks": self.total.attacks, "detected": self.total.detected,
                "detection_rate": None if self.total.rate is None else round(self.total.rate, 4),
                "benign": self.total.benign, "benign_alerts": self.total.benign_alerts,
                "events": sum(c.events for c in self.cases), "seconds": round(self.seconds, 3)}


def run_case(case: Case, ruleset: "RuleSet") -> CaseResult:
    """Replay the case's trace alone (fresh process table and rule state) and compare."""
    t0 = time.perf_counter()
    result = CaseResult(case, Counter(), [])
    if not case.trace.is_file():
        result.error = f"trace {display_name(case.trace)} not found"
        result.problems.append(Problem(None, case.name, case.source, result.error))
        return result
    replayer = Replayer(ruleset, session=case.session)
    try:
        stats = replayer.feed_trace(case.trace)
    except TraceError as err:
        result.error = str(err)
        result.problems.append(Problem(None, case.name, case.source, f"cannot replay: {err}"))
        return result
    finally:
        replayer.close()
        result.seconds = time.perf_counter() - t0
    result.events, result.lost = stats.events, stats.lost
    result.fired = Counter(hit.alert.rule for hit in replayer.alerts)
    _compare(case, result, ruleset)
    return result


def _compare(case: Case, result: CaseResult, ruleset: "RuleSet") -> None:
    enabled = set(ruleset.rule_ids)
    for exp in case.expect:
        if exp.rule not in enabled:
            continue                  # unknown (a diagnostic) or disabled (not checked)
        n = result.fired.get(exp.rule, 0)
        if not exp.holds(n):
            result.problems.append(Problem(exp.rule, case.name, exp.source,
                                           f"{exp.rule} fired {_times(n)}, expected {exp.text}"))
    for rule, n in sorted(result.fired.items()):
        if case.expected(rule) is not None:
            continue
        where = next((s for r, s in (*case.negative, *case.missed) if r == rule), case.source)
        if case.is_negative(rule):
            what = "on a negative case"
        elif case.is_missed(rule):
            what = "on a known gap: the gap is closed, move the rule to `expect`"
        else:
            what = "not expected"
        result.problems.append(Problem(rule, case.name, where, f"{rule} fired {_times(n)}, {what}"))


def _times(n: int) -> str:
    return "once" if n == 1 else f"{n} times"


def check_rule_ids(suite: Suite, ruleset: "RuleSet") -> None:
    """Every rule id a case or waiver names must exist (enabled or not)."""
    for case in suite.cases:
        for exp in case.expect:
            if exp.rule not in ruleset:
                suite.diagnostics.error(exp.source, f"case {case.name}: unknown rule {exp.rule!r}")
        for rule, src in (*case.negative, *case.missed):
            if rule not in ruleset:
                suite.diagnostics.error(src, f"case {case.name}: unknown rule {rule!r}")
    for waiver in suite.waivers:
        if waiver.rule not in ruleset:
            suite.diagnostics.error(waiver.source, f"waiver of unknown rule {waiver.rule!r}")


def run_suite(suite: Suite, ruleset: "RuleSet", *, strict: bool = False) -> Report:
    """Run every case and judge every enabled rule: pass, fail, untested or waived."""
    t0 = time.perf_counter()
    check_rule_ids(suite, ruleset)
    results = [run_case(case, ruleset) for case in suite.cases]
    waivers = {w.rule: w for w in suite.waivers}
    rules = []
    for rule_id in ruleset.rule_ids:
        rr = RuleResult(rule_id)
        for res in results:
            case = res.case
            failed = [p for p in res.problems if p.rule == rule_id or (p.rule is None and (
                case.is_positive(rule_id) or case.is_negative(rule_id) or case.is_missed(rule_id)))]
            rr.problems.extend(failed)
            if case.is_positive(rule_id):
                rr.positive.append((case.name, not failed))
            if case.is_negative(rule_id):
                rr.negative.append((case.name, not failed))
            if case.is_missed(rule_id):
                rr.missed.append(case.name)
        waiver = waivers.get(rule_id)
        covered = bool(rr.positive) and bool(rr.negative)
        if waiver is not None:
            rr.waived = waiver.reason
            if covered:
                suite.diagnostics.warning(waiver.source, f"{rule_id} has a positive and a negative "
                                                         "case: the waiver is not needed")
        if rr.problems:
            rr.status = "fail"
        elif not covered and waiver is not None:
            rr.status = "waived"
        elif not covered and strict:
            rr.status = "fail"
            missing = " and ".join(kind for kind, cases in (("positive", rr.positive),
                                                            ("negative", rr.negative)) if not cases)
            rr.problems.append(Problem(rule_id, None, None, f"{rule_id} has no {missing} case"))
        elif not rr.positive and not rr.negative:
            rr.status = "untested"
        rules.append(rr)
    families = family_results(results, rule_families(ruleset))
    return Report(results, rules, suite.diagnostics, strict, time.perf_counter() - t0, families)


__all__ = ["BENIGN_FAMILY", "DETECTION_FLOOR", "Case", "CaseResult", "Expectation",
           "FamilyResult", "Problem", "Report", "RuleResult", "Suite",
           "Waiver", "bundled_cases_dir", "case_files", "load_suite", "run_case", "run_suite"]
