"""A session's network policy (:mod:`coi_sentinel.network`) in the life of the session.

For every mode but ``none`` (docs/sessions.md, "Network"):

1. the instance body gives the container's one NIC a pinned host-side name,
   ``host_name = host_ifname(session)``: the Incus profile's NIC, copied, or a bridged NIC on
   ``network_bridge`` (:func:`plan_nic`);
2. after the container is created and before ``incus start``, :meth:`SessionNetwork.prepare`
   hooks that name and drops everything, so the veth is filtered from the moment it exists
   (on a kernel older than 6.16 that cannot hook a missing device, the hook goes in right
   after start instead, in the same transaction as the policy);
3. after start, before the monitor and the agent's first exec, :meth:`SessionNetwork.apply`
   switches the hook to the policy in one transaction, and checks that Incus gave the veth the
   pinned name. In ``allowlist`` mode it then writes the container's ``/etc/hosts`` (the
   allowed domains as resolved on the host) and a ``/etc/resolv.conf`` without a server, and a
   :class:`~coi_sentinel.network.DomainRefresher` thread keeps the sets and ``/etc/hosts``
   fresh. In ``restricted`` and ``open`` it writes a ``/etc/resolv.conf`` naming the session's
   resolvers (:func:`resolvers_of`: ``network_dns``, else the bridge's own DNS server), which
   the policy lets through on port 53 (:func:`policy_of`);
4. once the container is stopped or deleted (never before: a running container without its
   policy would be unfiltered), :meth:`SessionNetwork.remove`, or :func:`remove_policy` from
   ``kill``, ``shutdown`` and ``clean``; :func:`sweep` removes, for ``clean --orphans``, the
   policies whose container is gone.

The firewall's session name is the container's name, so anything that knows the container
(the response engine) can call ``Firewall().block(name, address, port)``. nftables is imported
only when a policy is made, removed or swept. Without root, the daemon makes, refreshes and
removes the policy (:class:`coi_sentinel.daemon.network.DaemonFirewall`): the steps and their
order are the same.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Mapping

from ..errors import NetworkError, SentinelError, SessionError
from ..host import incus, naming

if TYPE_CHECKING:
    from ..network import Applied, DomainRefresher, Firewall, Policy, Resolution
    from ..network.policy import Resolver
    from .config import Config

log = logging.getLogger(__name__)

#: what the container's /etc/resolv.conf says in allowlist mode (no ``nameserver`` line)
RESOLV_CONF = ("# Written by coi-sentinel (network mode allowlist): no DNS server.\n"
               "# The allowed names are in /etc/hosts.\n")


def resolv_conf(mode: str, resolvers: Iterable[str]) -> str:
    """The container's /etc/resolv.conf in ``restricted`` and ``open``."""
    lines = [f"# Written by coi-sentinel (network mode {mode}).\n"]
    lines += [f"nameserver {r}\n" for r in resolvers]
    return "".join(lines) + "options timeout:2 attempts:2\n"


# ---------------------------------------------------------------- policy and NIC from the config
def policy_of(config: "Config", resolvers: Iterable[str] = ()) -> "Policy | None":
    """The :class:`~coi_sentinel.network.Policy` of a session's config; None for ``none``.

    The allowed domains and CIDRs count only in ``allowlist`` mode; the extra blocked ports
    are added to the C2 ports, never in place of them. ``resolvers`` (restricted and open):
    DNS on port 53, UDP and TCP, is a need, so a resolver on the host or the bridge answers."""
    if config.network == "none":
        return None
    from ..network import C2_PORTS, Policy

    allowlist = config.network == "allowlist"
    dns: list[str] = []
    if not allowlist:
        for r in resolvers:
            host = f"[{r}]" if ":" in r else r
            dns += [f"{host}:53/udp", f"{host}:53/tcp"]
    return Policy(mode=config.network,
                  allow_domains=config.network_allow_domains if allowlist else (),
                  allow_cidrs=config.network_allow_cidrs if allowlist else (),
                  needs=tuple(dict.fromkeys(config.network_needs + tuple(dns))),
                  block_ports=C2_PORTS + config.network_block_ports)


def resolvers_of(client, config: "Config", nics: Iterable["ProfileNic"]) -> tuple[str, ...]:
    """The DNS servers of a session in ``restricted`` and ``open``: ``network_dns`` when set,
    else the IPv4 address of the Incus bridge network of the profile's NIC when that network
    runs a DNS server (``dns.mode`` not ``none``: `setup-incus.sh` with COI_EGRESS=nat), else
    none (the sealed set-up: the image's empty resolv.conf stays)."""
    if config.network in ("none", "allowlist"):
        return ()
    if config.network_dns:
        return config.network_dns
    if config.network_bridge:
        return ()
    for nic in nics:
        network = nic.device.get("network")
        if not network:
            continue
        cfg = incus.raw_get(client, f"networks/{network}").get("config") or {}
        if cfg.get("dns.mode", "managed") == "none":
            continue
        address = cfg.get("ipv4.address", "")
        if address and address not in ("none", "auto"):
            return (address.split("/")[0],)
    return ()


@dataclass(frozen=True, slots=True)
class ProfileNic:
    """A NIC device of the session's Incus profile."""

    key: str                     # the device's name in the profile ("eth0")
    device: Mapping[str, str]
    bridged: bool                # a veth on a bridge: nictype=bridged, or network= a bridge


def profile_nics(client, profile: str) -> list[ProfileNic]:
    """The NIC devices of an Incus profile, each with whether it is a veth on a bridge."""
    devices = (incus.raw_get(client, f"profiles/{profile}").get("devices") or {})
    out = []
    for key, dev in sorted(devices.items()):
        if dev.get("type") != "nic":
            continue
        if dev.get("network"):
            kind = incus.raw_get(client, f"networks/{dev['network']}").get("type")
            bridged = kind == "bridge"
        else:
            bridged = dev.get("nictype") == "bridged"
        out.append(ProfileNic(key, dict(dev), bridged))
    return out


@dataclass(frozen=True, slots=True)
class NicPlan:
    """The session's NIC: instance devices that replace the profile's NIC devices, and the
    host-side veth name pinned on the one that stays (None: the session has no NIC)."""

    devices: Mapping[str, Mapping[str, str]]
    ifname: str | None = None
    device: str | None = None     # the instance device that carries ``ifname``


def plan_nic(config: "Config", name: str, nics: Iterable[ProfileNic]) -> NicPlan:
    """The NIC devices of session ``name``: none at all (mode ``none``), a bridged NIC on
    ``network_bridge``, or the profile's one NIC, each with ``host_name`` pinned."""
    from ..network import host_ifname

    nics = list(nics)
    off = {n.key: {"type": "none"} for n in nics}
    if config.network == "none":
        return NicPlan(off)
    ifname = host_ifname(name)
    if config.network_bridge:
        off.pop("eth0", None)
        return NicPlan({**off, "eth0": {"type": "nic", "nictype": "bridged",
                                        "parent": config.network_bridge, "name": "eth0",
                                        "host_name": ifname}}, ifname, "eth0")
    if not nics:
        log.info("Incus profile %s has no NIC: session %s has no network", config.incus_profile, name)
        return NicPlan({})
    if len(nics) > 1:
        raise SessionError(f"Incus profile {config.incus_profile!r} has {len(nics)} NICs "
                           f"({', '.join(n.key for n in nics)}); the network policy covers one",
                           hint="keep one NIC in the profile, or set network_bridge")
    nic = nics[0]
    if not nic.bridged:
        raise SessionError(f"NIC {nic.key} of Incus profile {config.incus_profile!r} is not on a "
                           "bridge; the network policy filters a bridged NIC's host-side veth",
                           hint="use a bridge network (nictype=bridged), or network_bridge")
    return NicPlan({nic.key: {**nic.device, "host_name": ifname}}, ifname, nic.key)


def open_firewall() -> "Firewall":
    """The ``inet coi_sentinel`` table (NetworkError, with a hint, without nftables). Without
    root, the daemon's: every change is a request to it (docs/daemon.md, "Without root")."""
    if os.geteuid() != 0:
        from ..daemon.network import DaemonFirewall

        return DaemonFirewall()         # type: ignore[return-value] - the same methods
    from ..network import Firewall

    return Firewall()


# ---------------------------------------------------------------- one session
class SessionNetwork:
    """The policy of one session, from prepare to remove. ``name`` is the container's name and
    the policy's session name in the firewall."""

    def __init__(self, name: str, policy: "Policy", ifname: str, device: str = "eth0", *,
                 firewall: "Firewall | None" = None, resolver: "Resolver | None" = None,
                 nameservers: tuple[str, ...] = ()) -> None:
        self.name = name
        self.nameservers = nameservers
        self.policy = policy
        self.ifname = ifname
        self.device = device
        self.resolver = resolver
        self.applied: Applied | None = None
        self.refresher: DomainRefresher | None = None
        self._firewall = firewall
        self._touched = False         # something of this session may be in the table
        self._prepared = False        # hooked before start

    @property
    def mode(self) -> str:
        return self.policy.mode

    @property
    def firewall(self) -> "Firewall":
        if self._firewall is None:
            self._firewall = open_firewall()
        return self._firewall

    def prepare(self) -> None:
        """Before ``incus start`` (the container exists already, so a concurrent
        ``clean --orphans`` counts the session as live): drop everything the veth will send."""
        fw = self.firewall
        if not fw.hooks_missing_devices():
            log.warning("network: this kernel cannot hook %s before it exists (Linux 6.16 can): "
                        "the policy of %s goes in right after start, before the agent runs",
                        self.ifname, self.name)
            return
        self._touched = True
        fw.prepare(self.name, self.ifname)
        self._prepared = True

    def apply(self, client) -> "Applied":
        """After start, before the agent's first exec: the policy in place of "drop everything";
        then check that the container's veth is the hooked one; allowlist: /etc/hosts, no DNS,
        and the refresher."""
        fw = self.firewall
        self._touched = True
        if self._prepared and self.name not in {s["session"] for s in fw.sessions()}:
            raise NetworkError(f"the network policy of {self.name} was removed during start-up "
                               "(by `clean --orphans`?); the agent does not start", session=self.name)
        applied = fw.apply(self.name, self.policy, ifname=None if self._prepared else self.ifname,
                           resolver=self.resolver)
        self.applied = applied
        self._check_veth(client)
        if self.policy.mode == "allowlist":
            self._write_dns(client, applied.resolution)
            from ..network import DomainRefresher

            self.refresher = DomainRefresher(fw, self.name, self.policy, resolver=self.resolver,
                                             on_change=self._on_change,
                                             initial=applied.resolution).start()
        elif self.nameservers:
            incus.InstanceFiles(client, self.name).write(
                "/etc/resolv.conf", resolv_conf(self.policy.mode, self.nameservers).encode(),
                0o644, 0, 0)
        return applied

    def _check_veth(self, client) -> None:
        """Incus must have given the NIC the pinned name, or the hook filters nothing."""
        from ..network.links import interface_exists

        cfg = incus.raw_get(client, f"instances/{self.name}").get("config") or {}
        actual = cfg.get(f"volatile.{self.device}.host_name")
        if actual != self.ifname or not interface_exists(self.ifname):
            raise NetworkError(f"the veth of {self.name} is {actual!r}, not {self.ifname} as "
                               "pinned: its network policy would filter nothing", session=self.name,
                               hint="the NIC must accept host_name (a bridged NIC)")

    def _write_hosts(self, client, resolution: "Resolution") -> None:
        from ..network import hosts_file

        files = incus.InstanceFiles(client, self.name)
        files.write("/etc/hosts", hosts_file(resolution, hostname=self.name).encode(), 0o644, 0, 0)

    def _write_dns(self, client, resolution: "Resolution") -> None:
        self._write_hosts(client, resolution)
        incus.InstanceFiles(client, self.name).write("/etc/resolv.conf", RESOLV_CONF.encode(),
                                                     0o644, 0, 0)

    def _on_change(self, resolution: "Resolution") -> None:
        """The refresher's thread: the allowed addresses changed, so /etc/hosts follows (over a
        client of its own; the session's is busy streaming the agent's exec)."""
        try:
            self._write_hosts(incus.connect(), resolution)
        except SentinelError as err:
            log.warning("network: %s: /etc/hosts not updated: %s", self.name, err)

    def block(self, address: str, port: int | None = None, *, timeout: int | None = None) -> None:
        """Drop what the session sends to ``address`` (``port``: TCP and UDP), in every mode."""
        self.firewall.block(self.name, address, port, timeout=timeout)

    def stop(self) -> None:
        """Stop the refresher (the policy stays)."""
        if self.refresher is not None:
            refresher, self.refresher = self.refresher, None
            refresher.stop()

    def remove(self) -> bool:
        """Once the container is stopped or gone: every object of the session leaves the
        table. False if there was nothing."""
        self.stop()
        if not self._touched:
            return False
        return self.firewall.remove(self.name)


# ---------------------------------------------------------------- from outside a session
def _firewall_if_available() -> "Firewall | None":
    if os.geteuid() != 0:
        return open_firewall()
    try:
        import nftables  # noqa: F401 - without it no policy can have been made here
    except ImportError:
        log.debug("python3-nftables is not installed: no network policy to clean")
        return None
    return open_firewall()


def remove_policy(name: str) -> list[str]:
    """A :data:`~coi_sentinel.sessions.session.Cleaner`: the policy of a session whose
    container was just stopped or deleted."""
    fw = _firewall_if_available()
    if fw is None or not fw.remove(name):
        return []
    return [f"network policy of {name}"]


def sweep(live: set[str], workspace: str | None) -> list[str]:
    """A :data:`~coi_sentinel.sessions.session.Sweeper` for ``clean --orphans``: remove the
    policy of every session whose container no longer exists (``live``: every instance now),
    only the sessions of ``workspace`` when given."""
    fw = _firewall_if_available()
    if fw is None:
        return []
    if workspace is None:
        removed = fw.cleanup_orphans(live)
    else:
        wanted = naming.workspace_hash(workspace)
        removed = []
        for s in fw.sessions():
            parsed = naming.parse_name(s["session"])
            if parsed is not None and parsed.hash8 == wanted and s["session"] not in live \
                    and fw.remove(s["session"]):
                removed.append(s["session"])
    return [f"network policy of {name} (its container is gone)" for name in removed]
