"""Threshold rules: counts and sums over a sliding window, per group, with bounded state."""

from __future__ import annotations

from typing import Any

import pytest

from coi_sentinel.rules import Limits
from coi_sentinel.rules.state import DistinctState, ThresholdState

pytestmark = pytest.mark.unit

S = 1_000_000_000


def thr_rule(by: str = "container.name", window: str = "1s", above: str = "2", total: str = "",
             events: str = "[fork]", condition: str = "evt.type = fork", extra: str = "",
             distinct: str = "") -> str:
    sum_line = f"\n    sum: {total}" if total else ""
    sum_line += f"\n    distinct: {distinct}" if distinct else ""
    return f"""\
- rule: thr
  description: too many
  severity: high
  events: {events}
  condition: {condition}
  threshold:
    by: [{by}]
    window: {window}{sum_line}
    above: {above}
  output: "n=%threshold.value count=%threshold.count window=%threshold.window where=%container.name"
  tags: [T1499]
  false_positives: none
{extra}"""


@pytest.mark.parametrize("third, fires", [(S - 1, True), (S, True), (S + 1, False)])
def test_count_window_edges(rules: Any, run: Any, ev: Any, third: int, fires: bool) -> None:
    r = run(rules.load(thr_rule()))
    t0 = 100 * S
    got = r.feed(ev.fork(1, 2, ts=t0), ev.fork(1, 3, ts=t0 + S // 2), ev.fork(1, 4, ts=t0 + third))
    assert got == (["thr"] if fires else [])


def test_fires_once_then_starts_again(rules: Any, run: Any, ev: Any) -> None:
    r = run(rules.load(thr_rule()))
    got = r.feed(*(ev.fork(1, 10 + i) for i in range(7)))
    assert got == ["thr", "thr"]                      # at the 3rd and the 6th
    assert r.alerts[0].output == "n=3 count=3 window=1s where=agent-1"
    assert r.alerts[0].value == 3 and r.alerts[0].kind == "threshold"


def test_groups_are_counted_apart(rules: Any, run: Any, ev: Any) -> None:
    r = run(rules.load(thr_rule()))
    events = []
    for i in range(2):
        ev.container = "a"
        events.append(ev.fork(1, 10 + i))
        ev.container = "b"
        events.append(ev.fork(1, 20 + i))
    assert r.feed(*events) == []
    ev.container = "b"
    assert r.feed(ev.fork(1, 30)) == ["thr"]
    assert r.alerts[0].output.endswith("where=b")


def test_sum_of_bytes(rules: Any, run: Any, ev: Any) -> None:
    r = run(rules.load(thr_rule(events="[net_send]", condition="net.bytes_out > 0", total="net.bytes_out",
                                above="50MB", window="30s")))
    t0 = 10 * S
    got = r.feed(ev.send(1, "1.2.3.4", 443, 30_000_000, ts=t0), ev.send(1, "1.2.3.4", 443, 20_000_000, ts=t0 + S))
    assert got == []                                   # exactly 50 MB is not above
    assert r.feed(ev.send(1, "1.2.3.4", 443, 1, ts=t0 + 2 * S)) == ["thr"]
    assert r.alerts[0].value == 50_000_001
    # an old transfer leaves the window
    got = r.feed(ev.send(1, "1.2.3.4", 443, 40_000_000, ts=t0 + 100 * S),
                 ev.send(1, "1.2.3.4", 443, 40_000_000, ts=t0 + 131 * S))
    assert got == []


def test_excepted_events_are_not_counted(rules: Any, run: Any, ev: Any) -> None:
    extra = "  exceptions:\n    - name: builder\n      fields: [proc.comm]\n      values: [make]\n"
    r = run(rules.load(thr_rule(extra=extra)))
    assert r.feed(*(ev.fork(1, 10 + i, comm="make") for i in range(5))) == []
    assert r.feed(*(ev.fork(1, 20 + i) for i in range(3))) == ["thr"]


def test_group_limit_evicts_the_least_recent(rules: Any, run: Any, ev: Any) -> None:
    r = run(rules.load(thr_rule()), limits=Limits(threshold_groups=2))
    for name in ("a", "b", "c"):
        ev.container = name
        r.feed(ev.fork(1, 2), ev.fork(1, 3))
    st = r.engine.stats()["thresholds"]["thr"]
    assert (st["groups"], st["evicted_groups"]) == (2, 1)
    ev.container = "a"
    assert r.feed(ev.fork(1, 4)) == []                  # a's two forks were forgotten
    ev.container = "c"
    assert r.feed(ev.fork(1, 4)) == ["thr"]


def test_count_keeps_at_most_above_plus_one_entries() -> None:
    st = ThresholdState(10 * S, 3, True, Limits())
    for i in range(3):
        assert st.add("g", i, 1) is None
    assert st.stats()["entries"] == 3
    assert st.add("g", 3, 1) == (4, 4)
    assert st.stats()["entries"] == 0


def test_sum_entries_are_coalesced_keeping_the_total() -> None:
    st = ThresholdState(10 * S, 100, False, Limits(threshold_entries=3))
    for i in range(5):
        assert st.add("g", i * S, 10) is None
    assert st.stats() == {"groups": 1, "entries": 3, "evicted_groups": 0, "coalesced": 2}
    assert st.add("g", 6 * S, 51) == (101, 6)
    # a merged entry leaves the window with the later time of the two it merged
    st = ThresholdState(2 * S, 25, False, Limits(threshold_entries=1))
    st.add("g", 0, 10)
    st.add("g", S, 10)                       # merged: 20 at time S
    # unmerged, the 10 at time 0 would have left the window (total 20); merged, it stays: errs
    # towards firing
    assert st.add("g", 2 * S + S // 2, 10) == (30, 3)


def test_sweep_drops_idle_groups(rules: Any, run: Any, ev: Any) -> None:
    r = run(rules.load(thr_rule()))
    r.feed(ev.fork(1, 2, ts=10 * S))
    assert r.engine.stats()["thresholds"]["thr"]["groups"] == 1
    r.feed(ev.exec(5, "/bin/x", ts=15 * S))
    assert r.engine.stats()["thresholds"]["thr"]["groups"] == 0


def test_global_group_without_by(rules: Any, run: Any, ev: Any) -> None:
    text = thr_rule().replace("    by: [container.name]\n", "")
    r = run(rules.load(text))
    events = []
    for name in ("a", "b", "c"):
        ev.container = name
        events.append(ev.fork(1, 2))
    assert r.feed(*events) == ["thr"]


def test_distinct_values_per_group(rules: Any, run: Any, ev: Any) -> None:
    r = run(rules.load(thr_rule(by="net.dip", events="[connect]", condition="evt.type = connect",
                                distinct="net.dport", window="10s")))
    t0 = 10 * S
    # one port again and again counts once; another host is another group
    got = r.feed(*(ev.connect(1, "1.2.3.4", 80, ts=t0 + i) for i in range(10)),
                 ev.connect(1, "1.2.3.4", 81, ts=t0 + 20), ev.connect(1, "5.6.7.8", 82, ts=t0 + 30))
    assert got == []
    assert r.feed(ev.connect(1, "1.2.3.4", 82, ts=t0 + 40)) == ["thr"]
    assert r.alerts[0].value == 3 and r.alerts[0].output.startswith("n=3 count=12 ")


def test_distinct_values_leave_the_window_by_their_latest_time() -> None:
    st = DistinctState(10 * S, 2, Limits())
    assert st.add("g", 0, "a") is None
    assert st.add("g", S, "b") is None
    assert st.add("g", 9 * S, "a") is None          # a seen again: it counts from 9 s now
    assert st.add("g", 10 * S + S // 2, "c") == (3, 4)   # a (9 s) and b (1 s) are in the window
    assert st.stats()["entries"] == 0
    st = DistinctState(10 * S, 2, Limits())
    for t, v in ((0, "a"), (S, "b"), (12 * S, "c")):
        assert st.add("g", t, v) is None              # a and b left before c came
    assert st.stats()["entries"] == 1
    st = DistinctState(10 * S, 2, Limits())
    for t, v in ((0, "a"), (S, "b"), (9 * S, "a"), (12 * S, "c")):
        assert st.add("g", t, v) is None              # a stays (seen at 9 s), b has left
    assert st.stats()["entries"] == 2


def test_distinct_and_sum_together_are_refused(rules: Any) -> None:
    with pytest.raises(Exception, match="both 'sum' and 'distinct'"):
        rules.load(thr_rule(total="net.bytes_out", distinct="net.dport", events="[net_send]",
                            condition="net.bytes_out > 0"))
