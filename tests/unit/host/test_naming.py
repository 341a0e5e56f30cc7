import os
from pathlib import Path

import pytest

from coi_sentinel.errors import ConfigError, SlotLimit
from coi_sentinel.host import naming

pytestmark = pytest.mark.unit


def test_name_is_prefix_hash_slot(tmp_path):
    name = naming.container_name("coi", tmp_path, 3)
    prefix, h, slot = name.split("-")
    assert (prefix, slot) == ("coi", "3")
    assert h == naming.workspace_hash(tmp_path) and len(h) == 8
    assert naming.parse_name(name) == naming.ParsedName("coi", h, 3)


def test_hash_is_of_the_real_path(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    assert naming.workspace_hash(link) == naming.workspace_hash(real)
    assert naming.workspace_hash(f"{real}/.") == naming.workspace_hash(real)
    other = tmp_path / "other"
    other.mkdir()
    assert naming.workspace_hash(other) != naming.workspace_hash(real)


@pytest.mark.parametrize("prefix", ["", "Coi", "1coi", "co_i", "a" * 17, "coi-x"])
def test_bad_prefix(prefix, tmp_path):
    with pytest.raises(ConfigError):
        naming.container_name(prefix, tmp_path, 1)


@pytest.mark.parametrize("slot", [0, 1000, -1])
def test_bad_slot(slot, tmp_path):
    with pytest.raises(ConfigError):
        naming.container_name("coi", tmp_path, slot)


@pytest.mark.parametrize("name", ["coi-1234567-1", "coi-123456789-1", "coi-1234567g-1",
                                  "coi-12345678-0", "coi-12345678", "x_y-12345678-1"])
def test_parse_rejects_foreign_names(name):
    assert naming.parse_name(name) is None


def test_free_slot_skips_taken_and_other_workspaces(tmp_path):
    taken = {naming.container_name("coi", tmp_path, s) for s in (1, 2, 4)}
    taken.add(naming.container_name("coi", tmp_path / "elsewhere", 3))
    assert naming.free_slot("coi", tmp_path, taken, 10) == 3


def test_slot_limit(tmp_path):
    taken = {naming.container_name("coi", tmp_path, s) for s in (1, 2)}
    with pytest.raises(SlotLimit) as err:
        naming.free_slot("coi", tmp_path, taken, 2)
    assert "all 2 session slots" in str(err.value)
    assert err.value.workspace == os.path.realpath(tmp_path)


def test_user_home_under_sudo(monkeypatch, tmp_path):
    import pwd

    from coi_sentinel.host import paths

    if os.geteuid() != 0:
        pytest.skip("the sudo case only applies to root")
    monkeypatch.setenv("HOME", pwd.getpwuid(0).pw_dir)
    monkeypatch.setenv("SUDO_USER", pwd.getpwuid(65534).pw_name)
    assert paths.user_home() == Path(pwd.getpwuid(65534).pw_dir)
    monkeypatch.setenv("HOME", str(tmp_path))          # HOME kept (sudo -E): it wins
    assert paths.user_home() == tmp_path
    monkeypatch.delenv("SUDO_USER")
    monkeypatch.setenv("HOME", pwd.getpwuid(0).pw_dir)
    assert paths.user_home() == Path(pwd.getpwuid(0).pw_dir)
