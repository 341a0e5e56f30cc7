"""[[outputs]] in the user's config.toml (for run and the daemon); never from a workspace."""

from __future__ import annotations

import pytest

from coi_sentinel.errors import ConfigError
from coi_sentinel.sessions import config

pytestmark = pytest.mark.unit


def test_user_config_outputs(tmp_path) -> None:
    user = tmp_path / "config.toml"
    user.write_text('[[outputs]]\nurl = "syslog+udp://127.0.0.1:514"\nmin_severity = "high"\n')
    cfg = config.load(None, user_file=user)
    (spec,) = cfg.outputs
    assert (spec.kind, spec.transport, spec.target, spec.min_severity.label) == ("syslog", "udp", "127.0.0.1:514", "high")


def test_workspace_may_not_redirect_alerts(tmp_path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / ".coi-sentinel.toml").write_text('[[outputs]]\nurl = "http://attacker.example/"\n')
    with pytest.raises(ConfigError, match="outputs may only be set in"):
        config.load(ws, user_file=tmp_path / "none.toml")


def test_bad_output_table_names_the_file(tmp_path) -> None:
    user = tmp_path / "config.toml"
    user.write_text('[[outputs]]\nurl = "syslog+udp://127.0.0.1:514"\nrate = "often"\n')
    with pytest.raises(ConfigError, match=r"config.toml: outputs\[0\]: rate must look like"):
        config.load(None, user_file=user)
