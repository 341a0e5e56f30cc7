"""The [response] table and `rules` key of the session config: parsing, merging, workspace trust."""

import pytest

from coi_sentinel.errors import ConfigError
from coi_sentinel.network.ranges import C2_PORTS, METADATA
from coi_sentinel.respond.policy import Action
from coi_sentinel.sessions import config
from coi_sentinel.respond.settings import DropWatch, ResponseSettings

pytestmark = pytest.mark.unit


def test_defaults_pause_high_kill_critical_and_kill_in_the_kernel(files):
    r = files().response
    policy = r.policy()
    assert policy.decide("x", "high", None) is Action.PAUSE
    assert policy.decide("x", "critical", None) is Action.KILL
    assert policy.decide("x", "medium", None) is Action.ALERT
    assert r.max_drops == 0 and r.stall_seconds == 10
    k = r.kernel_policy()
    assert k["memfd_exec"] is True and k["blocked"] == list(METADATA)
    assert k["shell_socket"] is True and k["unlinked_exec"] is True and k["uring_connect"] is True
    assert k["compat_syscall"] is True
    assert sorted(k["blocked_ports"]) == sorted(C2_PORTS)


def test_user_table_and_rules_relative_to_the_config(files, tmp_path):
    cfg = files('rules = ["mine.yaml", "/abs/dir"]\n'
                '[response]\ncritical = "pause"\nmax_drops = 50\nkill_ports = [4444, 4444, 1337]\n'
                '[response.rules]\nreverse_shell_socket_dup = "kill-process"\n')
    assert cfg.rules == (str(tmp_path / "mine.yaml"), "/abs/dir")
    r = cfg.response
    assert r.action_of_severity("critical") is Action.PAUSE
    assert r.action_of_severity("high") is Action.PAUSE            # untouched default
    assert r.max_drops == 50 and r.kill_ports == (1337, 4444)
    assert r.policy().decide("reverse_shell_socket_dup", "critical", None) is Action.KILL_PROCESS
    assert r.policy().decide("other", "critical", "alert") is Action.ALERT   # the rule's own


def test_workspace_table_is_merged_over_the_users_and_may_tighten(files):
    cfg = files('[response]\nhigh = "alert"\nmax_drops = 100\n[response.rules]\na = "block"\n',
                '[response]\nhigh = "pause"\nmax_drops = 10\nstall_seconds = 5\n'
                '[response.rules]\nb = "kill"\n')
    r = cfg.response
    assert r.action_of_severity("high") is Action.PAUSE and r.max_drops == 10
    assert r.stall_seconds == 5 and dict(r.by_rule) == {"a": "block", "b": "kill"}


@pytest.mark.parametrize("ws_text, named", [
    ('[response]\ncritical = "pause"\n', "response.critical = 'pause'"),
    ('[response]\nhigh = "alert"\n', "response.high = 'alert'"),
    ('[response]\nmax_drops = 1\n', "response.max_drops = 1"),
    ('[response]\nstall_seconds = 60\n', "response.stall_seconds = 60"),
    ('[response]\nkill_memfd_exec = false\n', "response.kill_memfd_exec = false"),
    ('[response]\nkill_metadata = false\n', "response.kill_metadata = false"),
    ('[response]\nkill_ports = [4444]\n', "response.kill_ports without 1337"),
    ('[response.rules]\nreverse_shell_socket_dup = "pause"\n', "response.rules.reverse_shell_socket_dup"),
    ('rules = ["quiet.yaml"]\n', "rules (rule files"),
])
def test_workspace_cannot_weaken_the_response(files, ws_text, named):
    with pytest.raises(ConfigError) as err:
        files("", ws_text)
    assert "would weaken protection" in str(err.value) and named in str(err.value)


def test_a_workspace_rule_override_may_match_the_users(files):
    cfg = files('[response.rules]\nx = "pause"\n', '[response.rules]\nx = "pause"\ny = "kill"\n')
    assert dict(cfg.response.by_rule) == {"x": "pause", "y": "kill"}


def test_trusted_workspace_may_weaken_the_response(files):
    files.user.write_text(f'trusted_workspaces = ["{files.ws}"]\n')
    cfg = files(None, '[response]\ncritical = "alert"\n')
    assert cfg.response.action_of_severity("critical") is Action.ALERT


@pytest.mark.parametrize("text, msg", [
    ('[response]\ncritical = "nuke"\n', "unknown action 'nuke'"),
    ('[response]\nsevere = "pause"\n', "unknown key response.'severe'"),
    ('[response]\nmax_drops = -1\n', "response.max_drops must be 0 or more"),
    ('[response]\nmax_drops = true\n', "response.max_drops has the wrong type"),
    ('[response]\nstall_seconds = 0\n', "stall_seconds must be 1-600"),
    ('[response]\nkill_ports = [0]\n', "kill_ports must be a list of ports"),
    ('[response.rules]\nx = 3\n', "response.rules.x must be an action name"),
    ('response = "pause"\n', "response must be a dict"),
    ('rules = [""]\n', "rules must be a list of rule files"),
])
def test_bad_response_config(files, text, msg):
    with pytest.raises(ConfigError) as err:
        files(text)
    assert msg in str(err.value)


def test_settings_round_trip_to_the_audit_log_form():
    r = ResponseSettings().merged({"critical": "pause", "rules": {"a": "kill"}})
    d = r.to_dict()
    assert d["critical"] == "pause" and d["rules"] == {"a": "kill"} and d["kill_memfd_exec"]


def test_drop_watch_counts_from_the_last_resume():
    w = DropWatch(limit=5)
    assert w.over(5) is None
    assert w.over(6) == 6
    w.reset(6)                       # resumed: the old losses do not count again
    assert w.over(11) is None and w.over(12) == 6
    strict = DropWatch(limit=0, base=3)
    assert strict.over(3) is None and strict.over(4) == 1
