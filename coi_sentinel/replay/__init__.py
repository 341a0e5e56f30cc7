"""Replay: recorded traces (and audit logs) through the same pipeline and rule engine as live,
and rule test cases that say which alerts a trace must raise.

    from coi_sentinel.replay import replay
    result = replay(["shell.jsonl.gz"], load_ruleset(None))
    for hit in result.alerts:
        print(hit.trace, hit.line, hit.alert)

Module map: replayer (one stream of traces through a Pipeline and an Engine, with the traces'
own timestamps), cases (case files: load, run, report per rule). docs/rule-tests.md.
"""

from .replayer import ReplayedAlert, Replayer, ReplayResult, TraceStats, replay, wall_offset_ns

__all__ = ["ReplayedAlert", "Replayer", "ReplayResult", "TraceStats", "replay", "wall_offset_ns"]
