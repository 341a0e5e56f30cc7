"""Root tier of the network policy: the real nftables of this kernel, and netns test hosts
(tests/netlab.py). Every test gets its own lab, its own session names and, where it needs the
whole table to itself, its own table; teardown fails the test if anything was left behind."""

from __future__ import annotations

import secrets

import pytest

from netlab import Lab, require_network


@pytest.fixture
def lab():
    require_network()
    lab = Lab().start()
    yield lab
    left = lab.close()
    assert not left, f"lab left behind: {left}"


@pytest.fixture
def unplugged_lab():
    """A lab whose container veth does not exist yet (``lab.plug_container()`` makes it)."""
    require_network()
    lab = Lab().start(container_link=False)
    yield lab
    left = lab.close()
    assert not left, f"lab left behind: {left}"


class Tracked:
    """A Firewall plus the sessions a test used, removed (and checked) at teardown."""

    def __init__(self, table: str | None = None) -> None:
        from coi_sentinel.network import Firewall

        self.fw = Firewall(table) if table else Firewall()
        self.names: list[str] = []

    def session(self, prefix: str = "nt") -> str:
        name = f"{prefix}-{secrets.token_hex(4)}-1"
        self.names.append(name)
        return name

    def leftovers(self) -> list[str]:
        from coi_sentinel.network import session_key

        state = self.fw.state()
        keys = {session_key(n) for n in self.names}
        return [k for k in state.sessions if k in keys]


@pytest.fixture
def fw():
    """The production table ``inet coi_sentinel``, shared with parallel tests (unique names)."""
    require_network()
    t = Tracked()
    yield t
    for name in t.names:
        t.fw.remove(name)
    left = t.leftovers()
    assert not left, f"sessions left in inet {t.fw.table}: {left}"


@pytest.fixture
def private_fw():
    """A table of this test's own (``coi_sentinel_t<hex>``), for whole-table assertions."""
    require_network()
    t = Tracked(f"coi_sentinel_t{secrets.token_hex(4)}")
    yield t
    import nftables

    n = nftables.Nftables()
    rc, _out, _err = n.cmd(f"list table inet {t.fw.table}")
    if rc == 0:
        n.cmd(f"delete table inet {t.fw.table}")
        pytest.fail(f"table inet {t.fw.table} left behind")
    from coi_sentinel.network.nft import LOCK_DIR

    lock = LOCK_DIR / f"nft.inet.{t.fw.table}.lock"
    assert not lock.exists(), f"the lock file of a removed table is left behind: {lock}"
