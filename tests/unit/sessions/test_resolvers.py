"""Resolvers of a session (network_dns): config, policy needs, resolv.conf."""

import pytest

from coi_sentinel.errors import ConfigError
from coi_sentinel.network.policy import Service
from coi_sentinel.sessions import config as config_mod
from coi_sentinel.sessions import network as net

pytestmark = pytest.mark.unit


def _cfg(tmp_path, ws_text=None, **overrides):
    user = tmp_path / "user.toml"
    user.write_text("")
    ws = None
    if ws_text is not None:
        ws = tmp_path / "ws"
        ws.mkdir(exist_ok=True)
        (ws / ".coi-sentinel.toml").write_text(ws_text)
    return config_mod.load(ws, user_file=user, overrides=overrides)


def test_network_dns_is_canonical_and_checked(tmp_path):
    (tmp_path / "user.toml").write_text('network_dns = ["192.0.2.53", " 192.0.2.53", "2001:db8::53"]\n')
    cfg = config_mod.load(None, user_file=tmp_path / "user.toml")
    assert cfg.network_dns == ("192.0.2.53", "2001:db8::53")
    (tmp_path / "bad.toml").write_text('network_dns = ["resolver.example"]\n')
    with pytest.raises(ConfigError) as err:
        config_mod.load(None, user_file=tmp_path / "bad.toml")
    assert str(tmp_path / "bad.toml") in str(err.value) and "resolver.example" in str(err.value)


def test_workspace_adding_a_resolver_is_a_weakening(tmp_path):
    with pytest.raises(ConfigError) as err:
        _cfg(tmp_path, 'network_dns = ["10.0.0.53"]\n')
    assert "network_dns 10.0.0.53" in str(err.value)


@pytest.mark.parametrize("mode", ["restricted", "open"])
def test_resolvers_are_needs_on_port_53(tmp_path, mode):
    cfg = _cfg(tmp_path, network=mode)
    policy = net.policy_of(cfg, ("10.123.45.1", "fd42::1"))
    assert set(policy.needs) >= {Service.parse("10.123.45.1:53/udp"), Service.parse("10.123.45.1:53/tcp"),
                                 Service.parse("[fd42::1]:53/udp"), Service.parse("[fd42::1]:53/tcp")}
    assert len(policy.needs) == 4


def test_allowlist_and_none_get_no_resolver(tmp_path):
    allow = _cfg(tmp_path, network="allowlist")
    assert net.policy_of(allow, ("10.123.45.1",)).needs == ()
    assert net.resolvers_of(None, allow, []) == ()
    assert net.resolvers_of(None, _cfg(tmp_path, network="none"), []) == ()


def test_configured_resolvers_win_and_a_plain_bridge_has_none(tmp_path):
    (tmp_path / "u.toml").write_text('network_dns = ["192.0.2.53"]\n')
    cfg = config_mod.load(None, user_file=tmp_path / "u.toml")
    assert net.resolvers_of(None, cfg, []) == ("192.0.2.53",)
    (tmp_path / "b.toml").write_text('network_bridge = "br-test"\n')
    assert net.resolvers_of(None, config_mod.load(None, user_file=tmp_path / "b.toml"), []) == ()


def test_resolv_conf_names_the_servers():
    text = net.resolv_conf("restricted", ("10.123.45.1",))
    assert "nameserver 10.123.45.1\n" in text and text.startswith("# Written by coi-sentinel")
