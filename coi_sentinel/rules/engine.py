"""The rule engine: a pipeline sink that turns events into alerts.

    ruleset = load_ruleset(None)
    engine = Engine(ruleset, on_alert=print, table=pipeline.table)
    pipeline.add_sink(engine)           # or engine.attach(pipeline)

For each event the engine calls the compiled match function of its type (one dict lookup and
one call; types no rule uses cost nothing more), then for each condition that held: an event
rule alerts at once, a sequence step goes to the rule's :class:`SequenceState`, a threshold
event to its :class:`ThresholdState`. Alerts go to every callback, in order.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from typing import TYPE_CHECKING, Any, Callable, Hashable, Iterable

from ..events.model import Event
from ..events.proctable import Process, ProcessTable
from .alert import Alert, ProcessInfo
from .context import EvalContext, SessionLookup
from .index import shape
from .resolve import FieldUse
from .state import DistinctState, Limits, SequenceState, ThresholdState

if TYPE_CHECKING:
    from ..pipeline import Pipeline
    from .ruleset import CompiledRule, RuleSet

log = logging.getLogger(__name__)

AlertCallback = Callable[[Alert], None]

_UNSET = object()

#: how often (in event time) expired sequence and threshold state is dropped
SWEEP_INTERVAL_NS = 1_000_000_000


class Engine:
    def __init__(self, ruleset: "RuleSet", on_alert: AlertCallback | Iterable[AlertCallback] | None = None, *,
                 table: ProcessTable | None = None, sessions: SessionLookup | None = None,
                 limits: Limits | None = None) -> None:
        self.ruleset = ruleset
        self.callbacks: list[AlertCallback] = (
            [] if on_alert is None else [on_alert] if callable(on_alert) else list(on_alert))
        #: the table ancestry is read from; without one the engine keeps its own (see feed())
        self.table = table if table is not None else ProcessTable()
        self.ctx = EvalContext(self.table, sessions)
        self.limits = limits or Limits()
        self._fns = dict(ruleset.match_fns)
        self._sequences: dict[int, SequenceState] = {}
        self._thresholds: dict[int, ThresholdState | DistinctState] = {}
        self._ids = {c.index: c.id for c in ruleset.rules}
        #: stateful rules that are the same but for their id, output, severity, action... share
        #: one state (fed once, every one of them alerts): rule index -> the first one's index
        self._leader: dict[int, int] = {}
        #: the first one's index -> all of them, in rule order
        self._members: dict[int, list["CompiledRule"]] = {}
        leaders: dict[Hashable, int] = {}
        for c in ruleset.rules:
            if c.rule.sequence is None and c.rule.threshold is None:
                continue
            lead = leaders.setdefault(_state_signature(c), c.index)
            self._leader[c.index] = lead
            self._members.setdefault(lead, []).append(c)
            if lead != c.index:
                continue
            if c.rule.sequence is not None:
                seq = c.rule.sequence
                self._sequences[c.index] = SequenceState(len(seq.steps), seq.window_ns, self.limits)
            else:
                th = c.rule.threshold
                assert th is not None
                if th.distinct_field is not None:
                    self._thresholds[c.index] = DistinctState(th.window_ns, th.above, self.limits)
                else:
                    self._thresholds[c.index] = ThresholdState(th.window_ns, th.above, th.sum_field is None,
                                                               self.limits)
        #: (rule, step, kind, state leader) per match id: looked up once, not per hit
        self._matchers = [(rule, step, rule.kind, self._leader.get(rule.index, rule.index))
                          for rule, step in ruleset.matchers]
        #: sequence rule index -> (scope, the state it shares, the rules alerting from it)
        self._seq_of: dict[int, tuple[str, SequenceState, list["CompiledRule"]]] = {
            index: (self._members[lead][0].rule.sequence.scope, self._sequences[lead],  # type: ignore[union-attr]
                    self._members[lead])
            for index, lead in self._leader.items() if lead in self._sequences}
        self.events = 0
        #: events whose evaluation raised (logged, then skipped)
        self.failures = 0
        self.alerts: Counter[str] = Counter()
        self._sweep_at = 0
        self._lineage_of: Event | None = None
        self._lineage_pids: list[int] = []
        self._about_of: Event | None = None
        self._about: tuple[Any, ...] = (None,)
        #: event class -> id of a tuple of FieldUse -> their getters, or id of a FieldUse -> its
        #: getter (FieldUse hashes slowly; both live as long as the rule set)
        self._getters: defaultdict[type, dict[int, Any]] = defaultdict(dict)

    # ---- wiring ----
    def add_callback(self, callback: AlertCallback) -> None:
        self.callbacks.append(callback)

    def attach(self, pipeline: "Pipeline") -> None:
        """Read ancestry from the pipeline's table and receive its events."""
        self.table = pipeline.table
        self.ctx.table = pipeline.table
        pipeline.add_sink(self)

    def feed(self, event: Event) -> None:
        """Standalone use (tests, tools): update the engine's own table, then evaluate."""
        self(event, self.table.apply(event))

    # ---- evaluation ----
    def __call__(self, event: Event, process: Process) -> None:
        self.events += 1
        ts = event.ts_ns
        if ts > self._sweep_at:
            self._sweep(ts)
        fn = self._fns.get(type(event))
        if fn is None:
            return
        try:
            hits = fn(event, process, self.ctx)
            if hits:
                self._dispatch(hits, event, process)
        except Exception as err:  # an odd event (or a session lookup) must not stop monitoring
            self._failed(event, err)

    def _dispatch(self, hits: list[int], event: Event, process: Process) -> None:
        """Event rules alert in the order of their hits, a threshold is fed once per state, and
        then each sequence once with every step the event matched."""
        matchers = self._matchers
        if len(hits) == 1:                  # the common case: one condition held
            rule, step, kind, _ = matchers[hits[0]]
            if kind == "sequence":
                self._sequence(rule, [step], event, process)
            elif kind == "event":
                self._emit(rule, [(event, process)])
            else:
                self._threshold(rule, event, process)
            return
        seq_steps: dict[int, tuple["CompiledRule", list[int]]] = {}
        thresholds: set[int] = set()
        for mid in hits:
            rule, step, kind, lead = matchers[mid]
            if kind == "sequence":
                entry = seq_steps.get(lead)
                if entry is None:
                    seq_steps[lead] = (rule, [step])
                else:
                    entry[1].append(step)
            elif kind == "event":
                self._emit(rule, [(event, process)])
            elif lead not in thresholds:        # once for rules sharing a state
                thresholds.add(lead)
                self._threshold(rule, event, process)
        for rule, steps in seq_steps.values():
            steps.sort()
            self._sequence(rule, steps, event, process)

    def _sweep(self, now: int) -> None:
        """Once per second of event time: forget state that can no longer match."""
        for seq in self._sequences.values():
            seq.sweep(now)
        for thr in self._thresholds.values():
            thr.sweep(now)
        self._sweep_at = now + SWEEP_INTERVAL_NS

    def _failed(self, event: Event, err: Exception) -> None:
        self.failures += 1
        if self.failures <= 10:
            log.warning("rules: evaluating a %s event failed (%d so far): %r", event.type.label, self.failures, err)

    def _sequence(self, rule: "CompiledRule", steps: list[int], event: Event, process: Process) -> None:
        scope, state, members = self._seq_of[rule.index]
        conditions = rule.conditions
        groups: Iterable[tuple[tuple[Any, ...], list[int]]]
        if len(steps) == 1:
            groups = ((self._by_values(conditions[steps[0]].by, event, process), steps),)
        else:
            by_steps: dict[tuple[Any, ...], list[int]] = {}
            for step in steps:
                by_steps.setdefault(self._by_values(conditions[step].by, event, process), []).append(step)
            groups = by_steps.items()
        for by, group in groups:
            if scope == "process":
                chain = state.feed(group, event, process, (event.pid, by))
            elif scope == "container":
                chain = state.feed(group, event, process, (event.scope_id or event.container, by))
            else:  # tree: stored under the parent; found from the process itself or an ancestor
                parent = process.ppid or event.ppid
                chain = state.feed(group, event, process, (parent or event.pid, by),
                                   [(pid, by) for pid in self._lineage(event, process)])
            if chain is not None:
                for member in members:
                    self._emit(member, chain)
                return

    def _lineage(self, event: Event, process: Process) -> list[int]:
        """The pid of the event's process and of its ancestors (computed once per event)."""
        if self._lineage_of is not event:
            self._lineage_of = event
            self._lineage_pids = [event.pid] + [a.pid for a in self.ctx.ancestors(process)]
        return self._lineage_pids

    def _threshold(self, rule: "CompiledRule", event: Event, process: Process) -> None:
        th = rule.rule.threshold
        assert th is not None
        if rule.threshold_distinct is not None:
            value = self._value(rule.threshold_distinct, event, process)
            if value is None:
                return
        elif rule.threshold_sum is None:
            value = 1
        else:
            value = self._value(rule.threshold_sum, event, process)
            if not isinstance(value, int) or value <= 0:
                return
        key = self._by_values(rule.threshold_by, event, process)
        lead = self._leader[rule.index]
        fired = self._thresholds[lead].add(key, event.ts_ns, value)
        if fired is not None:
            total, count = fired
            window = _duration_text(th.window_ns)
            for member in self._members[lead]:
                self._emit(member, [(event, process)], value=total,
                           pseudo={"threshold.value": total, "threshold.count": count, "threshold.window": window})

    def _by_values(self, uses: tuple[FieldUse, ...], event: Event, process: Process) -> tuple[Any, ...]:
        if not uses:
            return ()
        of_class = self._getters[type(event)]
        getters = of_class.get(id(uses))
        if getters is None:
            getters = of_class[id(uses)] = tuple(self.ruleset.getter(u, event.type) for u in uses)
        ctx = self.ctx
        if len(getters) == 1:       # the common case: one field (a pid, a path)
            g = getters[0]
            return (None if g is None else g(event, process, ctx),)
        return tuple([None if g is None else g(event, process, ctx) for g in getters])

    def _value(self, use: FieldUse, event: Event, process: Process) -> Any:
        of_class = self._getters[type(event)]
        getter = of_class.get(id(use), _UNSET)
        if getter is _UNSET:
            getter = of_class[id(use)] = self.ruleset.getter(use, event.type)
        return None if getter is None else getter(event, process, self.ctx)

    def _emit(self, rule: "CompiledRule", chain: list[tuple[Event, Process]], *, value: int | None = None,
              pseudo: dict[str, Any] | None = None) -> None:
        event, process = chain[-1]

        def value_of(use: FieldUse) -> Any:
            for ev, proc in reversed(chain):      # the latest step that has the field
                if use.fdef.available(ev.type):
                    return self._value(use, ev, proc)
            return None

        try:
            output, fields = rule.output.render_fields(value_of, pseudo)
        except Exception as err:  # a field helper failing on odd data must not lose the alert
            log.warning("rule %s: cannot render its output: %s", rule.id, err)
            output, fields = rule.output.text, {}
        if self._about_of is not event or self._about[0] is not process:
            # several rules firing on one event describe its process once
            self._about_of = event
            self._about = (process, self.ctx.session(event), ProcessInfo.of(process),
                           tuple(ProcessInfo.of(a) for a in self.ctx.ancestors(process)))
        _, session, info, ancestry = self._about
        alert = Alert(
            rule=rule.id, severity=rule.severity, output=output, ts_ns=event.ts_ns,
            events=tuple(ev for ev, _ in chain), process=info, ancestry=ancestry,
            container=event.container, scope_id=event.scope_id, session_id=session.id,
            session_tool=session.tool,
            tags=rule.rule.tags, action=rule.rule.action, source=str(rule.rule.source), kind=rule.kind,
            value=value, output_fields=fields,
        )
        self.alerts[rule.id] += 1
        for callback in self.callbacks:
            try:
                callback(alert)
            except Exception as err:  # one failing consumer must not starve the others
                log.error("rules: alert callback %r failed on %s: %r", callback, rule.id, err)

    # ---- introspection ----
    def stats(self) -> dict[str, Any]:
        """Counters and state sizes (for status output and the bench)."""
        seq = {self._ids[i]: s.stats() for i, s in self._sequences.items()}
        thr = {self._ids[i]: s.stats() for i, s in self._thresholds.items()}
        return {
            "events": self.events,
            "failures": self.failures,
            "alerts": dict(self.alerts),
            "sequences": seq,
            "thresholds": thr,
            "evictions": sum(s["evicted_keys"] + s["evicted_events"] for s in seq.values())
                         + sum(s["evicted_groups"] for s in thr.values()),
        }

    def state_bytes(self) -> int:
        """Approximate memory held by sequence and threshold state."""
        return (sum(s.approx_bytes() for s in self._sequences.values())
                + sum(s.approx_bytes() for s in self._thresholds.values()))


def _state_signature(c: "CompiledRule") -> Hashable:
    """What a sequence or threshold rule's state depends on: equal for rules that differ only
    in what they say when they fire (then they share one state); unique when it cannot hash."""
    seq, th = c.rule.sequence, c.rule.threshold
    try:
        sig = (tuple((cond.events, shape(cond.node), cond.by) for cond in c.conditions),
               None if seq is None else (seq.scope, seq.window_ns, len(seq.steps)),
               None if th is None else (th.window_ns, th.above, c.threshold_by, c.threshold_sum,
                                        c.threshold_distinct))
        hash(sig)
    except TypeError:
        return ("unique", c.index)
    return sig


def _duration_text(ns: int) -> str:
    for unit, size in (("h", 3_600_000_000_000), ("m", 60_000_000_000), ("s", 1_000_000_000),
                       ("ms", 1_000_000), ("us", 1_000)):
        if ns % size == 0:
            return f"{ns // size}{unit}"
    return f"{ns}ns"


__all__ = ["Engine", "AlertCallback"]
