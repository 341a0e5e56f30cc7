"""`coi-sentinel net` output, fed from the recorded kernel listing instead of the kernel (the
root tier runs the same commands against the real table)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from coi_sentinel.cli import net as net_cli
from coi_sentinel.cli.main import cli
from coi_sentinel.errors import NetworkError
from coi_sentinel.network.live import parse_table, session_view

pytestmark = pytest.mark.unit
LISTING = json.loads((Path(__file__).resolve().parents[2] / "fixtures/network/listing.json").read_text())


class RecordedFirewall:
    """Answers from listing.json; what Firewall.show/sessions compute from a live listing."""

    def __init__(self) -> None:
        self.state = parse_table(LISTING)

    def show(self, name):
        for s in self.state.sessions.values():
            if s.session == name:
                return session_view(s, "inet coi_sentinel", interface_present=False)
        raise NetworkError(f"no network policy for session {name!r} in inet coi_sentinel")

    def sessions(self):
        return [{"session": s.session, "key": k, "mode": s.mode, "interface": s.device}
                for k, s in sorted(self.state.sessions.items())]


@pytest.fixture
def recorded(monkeypatch):
    monkeypatch.setattr(net_cli, "_firewall", RecordedFirewall)


def test_show_text_fits_80_columns_and_says_what_is_there(recorded):
    res = CliRunner().invoke(cli, ["net", "show", "coi-aaaa1111-1"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert all(len(line) <= 80 for line in lines)
    assert "mode       restricted" in lines
    assert "interface  coi0000000001 (absent)" in lines
    assert any(line.split() == ["c2port", "0", "0"] for line in lines)
    assert "  denyport4  203.0.113.9 . 4444 (expires in 599 s)" in lines
    assert "  need4      10.123.45.1 . tcp . 3128" in lines
    assert any(line.split()[:2] == ["policy", "drop"] and "c2 or miner port" in line for line in lines)


def test_show_json_is_the_view(recorded):
    res = CliRunner().invoke(cli, ["net", "show", "Odd.Name", "--json"])
    assert res.exit_code == 0, res.output
    view = json.loads(res.output)
    assert view["state"] == "pending" and view["interface"] == "coi0000000002"
    assert view["key"].startswith("odd_name-") and view["counters"]["pending"] == {"packets": 0, "bytes": 0}


def test_list(recorded):
    res = CliRunner().invoke(cli, ["net", "list"])
    assert res.exit_code == 0
    assert res.output.splitlines()[0].split() == ["SESSION", "MODE", "INTERFACE"]
    assert any(line.split() == ["coi-aaaa1111-1", "restricted", "coi0000000001"] for line in res.output.splitlines())
    rows = json.loads(CliRunner().invoke(cli, ["net", "list", "--json"]).output)
    assert {r["mode"] for r in rows} == {"restricted", "pending"}


def test_an_unknown_session_is_a_one_line_error_exit_1(recorded, capsys):
    from coi_sentinel.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(["net", "show", "nosuch"])
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("coi-sentinel: error: no network policy for session 'nosuch'") and err.count("\n") == 1
