"""Sequence rules: order, window edges, out-of-order arrival, scopes, by-keys, bounded state."""

from __future__ import annotations

from typing import Any

import pytest

from coi_sentinel.rules import Limits
from coi_sentinel.rules.state import REORDER_SLACK_NS, SequenceState

pytestmark = pytest.mark.unit

S = 1_000_000_000


def seq_rule(scope: str = "process", window: str = "10s", step1: str = "proc.name = reader",
             step2: str = "net.dport = 443", by1: str = "", by2: str = "", extra: str = "") -> str:
    b1 = f"\n        by: [{by1}]" if by1 else ""
    b2 = f"\n        by: [{by2}]" if by2 else ""
    return f"""\
- rule: seq
  description: read then connect
  severity: high
  sequence:
    scope: {scope}
    window: {window}
    steps:
      - name: first
        events: [exec, file_open]
        condition: {step1}{b1}
      - name: second
        events: [connect]
        condition: {step2}{b2}
  output: "file=%file.path dest=%net.dip proc=%proc.name"
  tags: [T1048]
  false_positives: none
{extra}"""


@pytest.fixture
def seq(rules: Any, run: Any) -> Any:
    def make(**kw: Any) -> Any:
        return run(rules.load(seq_rule(**kw)))
    return make


def test_fires_in_order_in_the_same_process(seq: Any, ev: Any) -> None:
    r = seq()
    assert r.feed(ev.exec(10, "/bin/reader"), ev.connect(10, "1.2.3.4", 443)) == ["seq"]
    a = r.alerts[0]
    assert [e.type.label for e in a.events] == ["exec", "connect"]
    assert a.kind == "sequence" and a.ts_ns == a.events[-1].ts_ns


def test_does_not_fire_out_of_order_or_in_another_process(seq: Any, ev: Any) -> None:
    r = seq()
    assert r.feed(ev.connect(10, "1.2.3.4", 443), ev.exec(10, "/bin/reader")) == []
    assert r.feed(ev.exec(20, "/bin/reader"), ev.connect(21, "1.2.3.4", 443)) == []


@pytest.mark.parametrize("gap, fires", [(10 * S - 1, True), (10 * S, True), (10 * S + 1, False)])
def test_window_edges(seq: Any, ev: Any, gap: int, fires: bool) -> None:
    r = seq()
    got = r.feed(ev.exec(10, "/bin/reader", ts=5 * S), ev.connect(10, "1.2.3.4", 443, ts=5 * S + gap))
    assert got == (["seq"] if fires else [])


def test_equal_timestamps_count_as_in_order(seq: Any, ev: Any) -> None:
    r = seq()
    assert r.feed(ev.exec(10, "/bin/reader", ts=5 * S), ev.connect(10, "1.2.3.4", 443, ts=5 * S)) == ["seq"]


def test_late_arrival_of_an_earlier_step_within_the_slack(seq: Any, ev: Any) -> None:
    r = seq()
    # the connect (high-priority ring) is delivered before the exec that happened first
    assert r.feed(ev.connect(10, "1.2.3.4", 443, ts=20 * S), ev.exec(10, "/bin/reader", ts=19 * S)) == ["seq"]
    assert [e.type.label for e in r.alerts[0].events] == ["exec", "connect"]


def test_late_arrival_beyond_the_slack_is_lost(seq: Any, ev: Any) -> None:
    r = seq()
    late = 20 * S + REORDER_SLACK_NS + 2 * S
    got = r.feed(ev.connect(10, "1.2.3.4", 443, ts=20 * S),
                 ev.exec(99, "/bin/other", ts=late),            # time moves on: the connect expires
                 ev.exec(10, "/bin/reader", ts=19 * S))
    assert got == []
    assert r.engine.stats()["sequences"]["seq"]["expired"] >= 1


def test_events_are_consumed_one_alert_per_chain(seq: Any, ev: Any) -> None:
    r = seq()
    assert r.feed(ev.exec(10, "/bin/reader"), ev.connect(10, "1.2.3.4", 443), ev.connect(10, "1.2.3.4", 443)) == ["seq"]
    assert r.feed(ev.exec(10, "/bin/reader"), ev.connect(10, "1.2.3.4", 443)) == ["seq"]


def test_output_takes_each_field_from_the_latest_step_that_has_it(seq: Any, ev: Any) -> None:
    r = seq(step1="file.path endswith .aws/credentials")
    r.feed(ev.exec(10, "/usr/bin/cat"), ev.open(10, "/h/.aws/credentials", comm="cat"),
           ev.exec(10, "/usr/bin/curl"), ev.connect(10, "203.0.113.7", 443, comm="curl"))
    assert [a.output for a in r.alerts] == ["file=/h/.aws/credentials dest=203.0.113.7 proc=curl"]


def tree(ev: Any) -> tuple:
    """agent 100 -> shell 200 -> (cat 201, curl 202, python 203 -> child 204); shell 300 -> curl 301"""
    return (ev.fork(100, 200, comm="agent"), ev.exec(200, "/bin/bash", ppid=100),
            ev.fork(200, 201, ppid=100), ev.fork(200, 202, ppid=100), ev.fork(200, 203, ppid=100),
            ev.fork(203, 204, ppid=200), ev.fork(100, 300, comm="agent"), ev.fork(300, 301, ppid=100))


def test_tree_scope_siblings_and_descendants(rules: Any, run: Any, ev: Any) -> None:
    rs = rules.load(seq_rule(scope="tree"))
    r = run(rs)
    r.feed(*tree(ev))
    assert r.feed(ev.exec(201, "/bin/reader", ppid=200), ev.connect(202, "1.2.3.4", 443, ppid=200)) == ["seq"]
    assert r.feed(ev.exec(203, "/bin/reader", ppid=200), ev.connect(204, "1.2.3.4", 443, ppid=203)) == ["seq"]
    assert r.feed(ev.exec(203, "/bin/reader", ppid=200), ev.connect(203, "1.2.3.4", 443, ppid=200)) == ["seq"]
    # another command of the agent: a cousin, not in the tree
    assert r.feed(ev.exec(201, "/bin/reader", ppid=200), ev.connect(301, "1.2.3.4", 443, ppid=300)) == []


def test_container_scope(rules: Any, run: Any, ev: Any) -> None:
    r = run(rules.load(seq_rule(scope="container")))
    assert r.feed(ev.exec(10, "/bin/reader"), ev.connect(99, "1.2.3.4", 443)) == ["seq"]
    first = ev.exec(10, "/bin/reader")
    ev.container, ev.scope_id = "other", 43
    assert r.feed(first, ev.connect(99, "1.2.3.4", 443)) == []


def test_by_fields_must_be_equal(rules: Any, run: Any, ev: Any) -> None:
    r = run(rules.load(seq_rule(scope="container", by1="proc.name", by2="proc.comm",
                                step1="proc.name in (reader, writer)")))
    assert r.feed(ev.exec(10, "/bin/reader"), ev.connect(11, "1.2.3.4", 443, comm="writer")) == []
    assert r.feed(ev.exec(12, "/bin/writer"), ev.connect(13, "1.2.3.4", 443, comm="writer")) == ["seq"]


def test_three_steps_in_order(rules: Any, run: Any, ev: Any) -> None:
    text = seq_rule().replace("  output:", """      - name: third
        events: [exit]
        condition: evt.exit_code = 0
  output:""")
    r = run(rules.load(text))
    got = r.feed(ev.exec(10, "/bin/reader"), ev.exit(10), ev.connect(10, "1.2.3.4", 443), ev.exit(10))
    assert got == ["seq"]
    assert [e.type.label for e in r.alerts[0].events] == ["exec", "connect", "exit"]


def test_exceptions_silence_any_step(rules: Any, run: Any, ev: Any) -> None:
    extra = "  exceptions:\n    - name: trusted\n      fields: [proc.comm]\n      values: [trusted]\n"
    r = run(rules.load(seq_rule(extra=extra)))
    assert r.feed(ev.exec(10, "/bin/reader", comm="trusted"), ev.connect(10, "1.2.3.4", 443)) == []
    assert r.feed(ev.exec(11, "/bin/reader"), ev.connect(11, "1.2.3.4", 443, comm="trusted")) == []
    assert r.feed(ev.exec(12, "/bin/reader"), ev.connect(12, "1.2.3.4", 443)) == ["seq"]


def test_key_limit_evicts_the_oldest_partial_match(rules: Any, run: Any, ev: Any) -> None:
    r = run(rules.load(seq_rule()), limits=Limits(sequence_keys=2))
    r.feed(ev.exec(1, "/bin/reader"), ev.exec(2, "/bin/reader"), ev.exec(3, "/bin/reader"))
    st = r.engine.stats()["sequences"]["seq"]
    assert (st["keys"], st["evicted_keys"], st["evicted_events"]) == (2, 1, 1)
    assert r.engine.stats()["evictions"] == 2
    assert r.feed(ev.connect(1, "1.2.3.4", 443)) == []          # pid 1's read was evicted
    assert r.feed(ev.connect(3, "1.2.3.4", 443)) == ["seq"]


def test_per_step_limit_keeps_the_newest(rules: Any, run: Any, ev: Any) -> None:
    r = run(rules.load(seq_rule(window="1s")), limits=Limits(sequence_per_step=2))
    t0 = 50 * S
    r.feed(ev.exec(1, "/bin/reader", ts=t0), ev.exec(1, "/bin/reader", ts=t0 + 1),
           ev.exec(1, "/bin/reader", ts=t0 + 2))
    assert r.engine.stats()["sequences"]["seq"]["evicted_events"] == 1
    # the oldest (t0) is gone: a connect at t0 + 1s + 1 is out of the window of the others too
    assert r.feed(ev.connect(1, "1.2.3.4", 443, ts=t0 + S + 1)) == ["seq"]
    assert r.alerts[0].events[0].ts_ns == t0 + 2


def test_sweep_forgets_expired_state(rules: Any, run: Any, ev: Any) -> None:
    r = run(rules.load(seq_rule(window="1s")))
    r.feed(ev.exec(1, "/bin/reader", ts=10 * S), ev.exec(2, "/bin/reader", ts=10 * S))
    assert r.engine.stats()["sequences"]["seq"]["keys"] == 2
    r.feed(ev.exec(3, "/bin/other", ts=10 * S + S + REORDER_SLACK_NS + 2 * S))
    st = r.engine.stats()["sequences"]["seq"]
    assert (st["keys"], st["expired"]) == (0, 2)
    assert r.engine.state_bytes() < 1000


class _E:
    def __init__(self, ts: int) -> None:
        self.ts_ns = ts


def test_state_chain_search_directly() -> None:
    st = SequenceState(3, 100, Limits())
    a, b, c, b2 = _E(10), _E(20), _E(30), _E(25)
    assert st.feed([0], a, "p", "k") is None
    assert st.feed([1], b, "p", "k") is None
    assert st.feed([1], b2, "p", "k") is None
    chain = st.feed([2], c, "p", "k")
    assert chain is not None and [e for e, _ in chain] == [a, b2, c]       # the latest fitting step 2
    assert st.stats()["events"] == 1                                      # b is left
    # one event matching two steps is not used twice
    st = SequenceState(2, 100, Limits())
    x = _E(5)
    assert st.feed([0, 1], x, "p", "k") is None
    y = _E(6)
    chain = st.feed([0, 1], y, "p", "k")
    assert chain is not None and [e for e, _ in chain] == [x, y]
    # lookup keys: the chain is found under another key
    st = SequenceState(2, 100, Limits())
    st.feed([0], _E(1), "p", "parent")
    assert st.feed([1], _E(2), "p", "child", ["grand", "parent"]) is not None


def _swept_plainly(st: SequenceState, now: int) -> dict:
    """What a sweep must leave: every entry tested against its step's limit, empty keys gone."""
    last, out = st.nsteps - 1, {}
    for key, bucket in st.buckets.items():
        newest = max(bucket.newest, now)
        steps = [[e.ts for e in held if e.ts >= newest - REORDER_SLACK_NS - (st.window_ns if j < last else 0)]
                 for j, held in enumerate(bucket.steps)]
        if any(steps):
            out[key] = steps
    return out


@pytest.mark.parametrize("seed", range(6))
def test_sweep_passing_young_buckets_leaves_what_a_full_sweep_leaves(seed: int) -> None:
    """The sweep skips a key whose oldest entries are within their limits; what it leaves (and
    counts as expired) is what testing every entry leaves, late arrivals and chains included."""
    import random

    rnd = random.Random(seed)
    second = 1_000_000_000
    st = SequenceState(3, 5 * second, Limits(sequence_per_step=4))
    now = 0
    for _round in range(60):
        for _ in range(rnd.randrange(0, 12)):
            now += rnd.randrange(0, second // 2)
            ts = now - rnd.randrange(0, 3 * second) if rnd.random() < 0.2 else now     # late ones too
            steps = sorted(rnd.sample(range(3), rnd.choice((1, 1, 2))), reverse=True)
            st.feed(steps, _E(ts), "p", rnd.randrange(6), [rnd.randrange(6)])
        now += rnd.randrange(0, 3 * second)
        want = _swept_plainly(st, now)
        held = sum(len(s) for b in st.buckets.values() for s in b.steps)
        expired = st.expired
        st.sweep(now)
        got = {k: [[e.ts for e in s] for s in b.steps] for k, b in st.buckets.items()}
        assert got == want
        assert st.expired - expired == held - sum(len(s) for b in st.buckets.values() for s in b.steps)


class _PlainExpiry(SequenceState):
    """A sequence state expiring as before time bounds were kept: every call walks the steps."""

    def _expire(self, bucket: Any, ts: int) -> None:
        if ts > bucket.newest:
            bucket.newest = ts
        last = self.nsteps - 1
        for j, held in enumerate(bucket.steps):
            if held:
                limit = bucket.newest - REORDER_SLACK_NS - (self.window_ns if j < last else 0)
                if held[0].ts < limit:
                    keep = [e for e in held if e.ts >= limit]
                    self.expired += len(held) - len(keep)
                    held[:] = keep


@pytest.mark.parametrize("seed", range(6))
def test_expiry_passing_young_buckets_leaves_what_walking_leaves(seed: int) -> None:
    """A feed expires a key's old entries only when its time bounds say some may be old: the
    chains, what is held, and the counts are those of walking the steps every time."""
    import random

    rnd = random.Random(seed)
    second = 1_000_000_000
    states = [SequenceState(3, 5 * second, Limits(sequence_per_step=4)),
              _PlainExpiry(3, 5 * second, Limits(sequence_per_step=4))]
    now = 0
    for _round in range(80):
        for _ in range(rnd.randrange(0, 12)):
            now += rnd.randrange(0, second)
            ts = now - rnd.randrange(0, 3 * second) if rnd.random() < 0.2 else now     # late ones too
            steps = sorted(rnd.sample(range(3), rnd.choice((1, 1, 2))))
            event, store, lookup = _E(ts), rnd.randrange(6), [rnd.randrange(6)]
            a, b = (st.feed(steps, event, "p", store, lookup) for st in states)
            assert a == b
        if rnd.random() < 0.3:
            now += rnd.randrange(0, 8 * second)
            for st in states:
                st.sweep(now)
        held = [{k: [[e.ts for e in s] for s in bk.steps] for k, bk in st.buckets.items()} for st in states]
        assert held[0] == held[1]
        assert states[0].stats() == states[1].stats()
