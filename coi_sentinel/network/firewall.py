"""Per-session network policy in the ``inet coi_sentinel`` table: the API of this layer.

Order of calls for one session (see docs/network.md)::

    fw = Firewall()
    ifname = host_ifname(name)              # give it to Incus as the NIC's host_name
    fw.prepare(name, ifname)                # before start: every packet of ifname is dropped
    ...start the container...
    applied = fw.apply(name, policy)        # one transaction: drop -> the policy
    hosts_file(applied.resolution, name)    # allowlist: the container's /etc/hosts
    fw.refresh(name, policy)                # allowlist: every policy.refresh_interval seconds
    fw.block(name, "203.0.113.9", 4444)     # response engine, at run time
    fw.remove(name)                         # on stop
    fw.cleanup_orphans(live_names)          # crash recovery, `clean --orphans`

Every change is one libnftables JSON batch, i.e. one kernel transaction.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from ..errors import NetworkError
from . import links, ruleset
from .live import SessionState, TableState, parse_table, session_view
from .naming import FAMILY, TABLE, Names, check_ifname, session_key
from .nft import LOCK_DIR, Nft
from .policy import Address, Policy, Resolution, Resolver, parse_address, resolve, check_port

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Applied:
    """What :meth:`Firewall.apply` installed."""

    session: str
    key: str
    interface: str
    mode: str
    #: allowlist: the addresses put in the allow sets (write them to /etc/hosts)
    resolution: Resolution


class Firewall:
    """The session policies in one nftables table (``inet coi_sentinel`` unless told otherwise).

    Holds a libnftables context; no module-level state. Thread-safe; safe across processes for
    read-then-write changes (see :mod:`.nft`). Needs root (CAP_NET_ADMIN).
    """

    def __init__(self, table: str = TABLE, *, lock_dir: Path = LOCK_DIR) -> None:
        self.table = table
        self._nft = Nft(table, lock_dir=lock_dir)

    # --- reading ----------------------------------------------------------------------

    def state(self) -> TableState:
        with self._nft.locked():
            return self._listed()

    def _listed(self) -> TableState:
        """Under the lock, at the end of a change or for a read: the table's state; when there
        is no table its lock file goes (nothing of a session is left in the lock directory)."""
        listed = self._nft.list_table()
        if listed is None:
            self._nft.forget_lock()
        return parse_table(listed)

    def _session(self, state: TableState, session: str) -> SessionState | None:
        return state.sessions.get(session_key(session))

    def sessions(self) -> list[dict]:
        """Every session with objects in the table: name, key, mode, interface."""
        out = []
        for key, s in sorted(self.state().sessions.items()):
            out.append({"session": s.session or key, "key": key, "mode": s.mode or "unknown",
                        "interface": s.device})
        return out

    def show(self, session: str) -> dict:
        """The live policy of a session: mode, interface, rules, sets and counters."""
        s = self._session(self.state(), session)
        if s is None:
            raise NetworkError(f"no network policy for session {session!r} in {FAMILY} {self.table}",
                               session=session, hint="see `coi-sentinel net list`")
        return session_view(s, f"{FAMILY} {self.table}",
                            interface_present=bool(s.device) and links.interface_exists(s.device))

    # --- the life of a session ----------------------------------------------------------

    def hooks_missing_devices(self) -> bool:
        """Whether the kernel hooks an interface that does not exist yet (Linux 6.16 or later).

        Probed with one transaction that adds a scratch table with such a hook and deletes it
        again, so nothing is left behind whatever the answer. It takes no file lock (nor
        makes a lock file): the transaction is atomic and touches only its own scratch table.
        """
        probe = f"{self.table}_probe"
        obj = {"family": FAMILY, "table": probe}
        batch = {"nftables": [
            ruleset.table_cmd("add", probe),
            {"add": {"chain": {**obj, "name": "probe", "type": "filter", "hook": "ingress",
                               "dev": "coiprobe0none", "prio": 0, "policy": "accept"}}},
            ruleset.table_cmd("delete", probe),
        ]}
        with self._nft.in_process():
            try:
                self._nft.run(batch, what="probe hook on a missing interface")
            except NetworkError as err:
                if "No such file or directory" in str(err):
                    return False
                raise
        return True

    def prepare(self, session: str, ifname: str) -> None:
        """Drop every packet the container sends on ``ifname`` (its host-side veth) until
        :meth:`apply`. Call it before the container starts: on Linux 6.16 or later the
        interface need not exist yet, and the hook attaches the moment it appears."""
        names, ifname = Names.of(session), check_ifname(ifname)
        with self._nft.locked():
            current = self._session(parse_table(self._nft.list_table()), session)
            replace = self._must_replace_hook(current, names, ifname)
            try:
                self._nft.run(ruleset.prepare_batch(self.table, names, ifname, replace_hook=replace),
                              what=f"prepare {session} on {ifname}", session=session)
            except NetworkError as err:
                if "No such file or directory" in str(err) and not links.interface_exists(ifname):
                    raise NetworkError(
                        f"this kernel cannot hook {ifname} before it exists", session=session,
                        hint="Linux 6.16 or later can; otherwise call prepare() right after the "
                             "container starts, before the agent runs") from err
                raise
        log.info("network: %s prepared on %s (everything dropped)", session, ifname)

    def apply(self, session: str, policy: Policy, *, ifname: str | None = None,
              resolution: Resolution | None = None, resolver: Resolver | None = None,
              host_addresses: Iterable[Address] | None = None) -> Applied:
        """Install ``policy`` for the session and switch its interface to it, atomically.

        ``ifname`` defaults to the interface given to :meth:`prepare`. For ``allowlist`` the
        domains are resolved on the host (``resolver``, default getaddrinfo) unless a
        ``resolution`` is given. ``host_addresses`` defaults to every address of the host.
        Applying again replaces the policy; run-time blocks and counters are kept.
        """
        names = Names.of(session)
        if policy.mode == "allowlist" and resolution is None:
            resolution = resolve(policy.allow_domains, resolver)
            for domain in resolution.failed:
                log.warning("network: %s: allowlist domain %s does not resolve; it stays blocked",
                            session, domain)
        resolution = resolution or Resolution()
        hosts = list(host_addresses) if host_addresses is not None else links.local_addresses()
        with self._nft.locked():
            current = self._session(parse_table(self._nft.list_table()), session)
            if ifname is None:
                if current is None or not current.device:
                    raise NetworkError(f"session {session} has no interface: call prepare() first "
                                       "or pass ifname", session=session)
                ifname = current.device
            check_ifname(ifname)
            replace = self._must_replace_hook(current, names, ifname)
            self._nft.run(ruleset.apply_batch(self.table, names, ifname, policy, resolution=resolution,
                                              host_addresses=hosts, replace_hook=replace),
                          what=f"apply {policy.mode} policy of {session}", session=session)
        log.info("network: %s: %s policy applied on %s", session, policy.mode, ifname)
        return Applied(session, names.key, ifname, policy.mode, resolution)

    def refresh(self, session: str, policy: Policy, *, resolver: Resolver | None = None,
                host_addresses: Iterable[Address] | None = None) -> Resolution:
        """Resolve the allowlist again and renew the timeouts of its addresses; update the
        host's addresses. Returns the new resolution (rewrite /etc/hosts if it changed).
        A domain that fails to resolve keeps its old addresses until they time out."""
        names = Names.of(session)
        resolution = resolve(policy.allow_domains, resolver) if policy.mode == "allowlist" else Resolution()
        hosts = list(host_addresses) if host_addresses is not None else links.local_addresses()
        with self._nft.locked():
            current = self._session(parse_table(self._nft.list_table()), session)
            if current is None:
                raise NetworkError(f"no network policy for session {session!r}", session=session)
            batch = ruleset.refresh_batch(self.table, names, resolution, policy.dns_ttl,
                                          current.elements("allow4"), current.elements("allow6"))
            batch["nftables"] += ruleset.host_elements(self.table, names, hosts)
            self._nft.run(batch, what=f"refresh {session}", session=session)
        return resolution

    def block(self, session: str, address: str | Address, port: int | None = None, *,
              timeout: int | None = None) -> None:
        """Drop everything the session sends to ``address`` (to ``port``, TCP and UDP, if
        given), from now on or for ``timeout`` seconds. Works in every mode."""
        names = Names.of(session)
        addr = address if isinstance(address, (ipaddress.IPv4Address, ipaddress.IPv6Address)) \
            else parse_address(address)
        if port is not None:
            check_port(port)
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 1):
            raise NetworkError(f"invalid block timeout {timeout!r} (whole seconds, at least 1)")
        suffix = f"deny{addr.version}" if port is None else f"denyport{addr.version}"
        value = str(addr) if port is None else f"{addr} . {port}"
        with self._nft.locked():
            current = self._session(parse_table(self._nft.list_table()), session)
            if current is None:
                raise NetworkError(f"no network policy for session {session!r}", session=session)
            present = value in current.elements(suffix)
            self._nft.run(ruleset.block_batch(self.table, names, addr, port, timeout, present=present),
                          what=f"block {value} for {session}", session=session)
        log.info("network: %s: blocked %s%s", session, value,
                 f" for {timeout} s" if timeout else "")

    def unblock(self, session: str, address: str | Address, port: int | None = None) -> bool:
        """Undo :meth:`block`; False if it was not blocked."""
        names = Names.of(session)
        addr = address if isinstance(address, (ipaddress.IPv4Address, ipaddress.IPv6Address)) \
            else parse_address(address)
        suffix = f"deny{addr.version}" if port is None else f"denyport{addr.version}"
        value = str(addr) if port is None else f"{addr} . {port}"
        with self._nft.locked():
            current = self._session(parse_table(self._nft.list_table()), session)
            if current is None or value not in current.elements(suffix):
                return False
            self._nft.run(ruleset.unblock_batch(self.table, names, addr, port),
                          what=f"unblock {value} for {session}", session=session)
        return True

    def remove(self, session: str) -> bool:
        """Delete every chain, set and counter of the session (and the table once it is
        empty). False if the session had nothing in the table."""
        key = session_key(session)
        with self._nft.locked():
            removed = self._remove_keys(self._listed(), {key})
        if removed:
            log.info("network: %s: policy removed", session)
        return bool(removed)

    def cleanup_orphans(self, live_sessions: Iterable[str]) -> list[str]:
        """Remove the objects of every session not in ``live_sessions`` (crash recovery).
        Returns the names of the sessions removed. Include sessions being started."""
        live = {session_key(s) for s in live_sessions}
        with self._nft.locked():
            state = self._listed()
            removed = self._remove_keys(state, set(state.sessions) - live)
        for name in removed:
            log.info("network: removed the policy of orphaned session %s", name)
        return removed

    # --- helpers ------------------------------------------------------------------------

    @staticmethod
    def _must_replace_hook(current: SessionState | None, names: Names, ifname: str) -> bool:
        return current is not None and names.hook in current.chains and current.device != ifname

    def _remove_keys(self, state: TableState, keys: set[str]) -> list[str]:
        """Under the lock: delete the objects of ``keys`` in one batch, and the table if that
        leaves it empty."""
        gone = [state.sessions[k] for k in sorted(keys) if k in state.sessions]
        if not gone:
            return []
        remaining = set(state.sessions) - {s.key for s in gone}
        drop_table = not remaining and not state.foreign
        batch = ruleset.remove_batch(self.table,
                                     [c for s in gone for c in sorted(s.chains)],
                                     [n for s in gone for n in s.set_names()],
                                     [n for s in gone for n in s.counter_names()],
                                     drop_table=drop_table)
        self._nft.run(batch, what="remove " + ", ".join(s.session or s.key for s in gone))
        if drop_table:
            self._nft.forget_lock()
        return [s.session or s.key for s in gone]


class DomainRefresher:
    """Calls :meth:`Firewall.refresh` every ``policy.refresh_interval`` seconds in a thread;
    ``on_change(resolution)`` runs when the allowed addresses changed (rewrite /etc/hosts)."""

    def __init__(self, firewall: Firewall, session: str, policy: Policy, *,
                 resolver: Resolver | None = None, interval: float | None = None,
                 on_change: Callable[[Resolution], None] | None = None,
                 initial: Resolution | None = None) -> None:
        self.firewall, self.session, self.policy = firewall, session, policy
        self.resolver, self.on_change = resolver, on_change
        self.interval = interval if interval is not None else policy.refresh_interval
        self.last = initial
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"coi-net-refresh-{session}", daemon=True)

    def start(self) -> "DomainRefresher":
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def refresh_once(self) -> Resolution:
        res = self.firewall.refresh(self.session, self.policy, resolver=self.resolver)
        changed = self.last is None or res.as_dict()["addresses"] != self.last.as_dict()["addresses"]
        self.last = res
        if changed and self.on_change is not None:
            self.on_change(res)
        return res

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.refresh_once()
            except NetworkError as err:
                self.errors += 1
                log.warning("network: %s: refresh failed: %s", self.session, err)
