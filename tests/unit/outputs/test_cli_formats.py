"""`replay --format falco` and `--alerts-to` through the CLI entry point, on the recorded
corpus (no kernel): the same code path `watch` uses for its alerts."""

from __future__ import annotations

import orjson
import pytest
from output_support import WebhookReceiver

from coi_sentinel.cli.main import main
from coi_sentinel.replay.cases import bundled_cases_dir

pytestmark = pytest.mark.unit

TRACE = bundled_cases_dir() / "traces" / "c2_beacon.jsonl.gz"
FALCO_KEYS = {"time": str, "rule": str, "priority": str, "source": str, "hostname": str,
              "output": str, "tags": list, "output_fields": dict}


def _run(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def test_replay_format_falco_prints_exactly_falcos_alert(capsys) -> None:
    code, out, _err = _run(capsys, "replay", "--format", "falco", TRACE)
    assert code == 3
    lines = [orjson.loads(x) for x in out.splitlines()]
    assert len(lines) == 1
    (alert,) = lines
    assert set(alert) == set(FALCO_KEYS)
    assert all(type(alert[k]) is t for k, t in FALCO_KEYS.items())
    assert (alert["rule"], alert["priority"], alert["source"]) == ("c2_port_connect", "Notice", "syscall")
    assert alert["hostname"] == "vm"                        # the recording host (trace header)
    assert alert["time"].startswith("2026-11-27T02:20:45.")  # the recorded wall clock
    assert alert["output_fields"]["net.dport"] == 4444


def test_replay_alerts_to_a_webhook_and_reports_it(capsys, tmp_path) -> None:
    with WebhookReceiver(fail_first=1) as recv:
        code, _out, err = _run(capsys, "replay", "--json", "--alerts-to", f"{recv.url}?backoff=0.01&name=hook",
                               TRACE)
        got = recv.alerts()
    assert code == 3
    summary = orjson.loads(err.strip().splitlines()[-1])
    assert summary["outputs"]["hook"]["delivered"] == 1 and summary["outputs"]["hook"]["lost"] == 0
    assert [g["rule"] for g in got] == ["c2_port_connect"] and got[0]["hostname"] == "vm"


def test_bad_output_url_is_a_usage_line(capsys) -> None:
    code, _out, err = _run(capsys, "replay", "--alerts-to", "gopher://x", TRACE)
    assert code == 1 and "unknown output 'gopher'" in err and len(err.strip().splitlines()) == 1
