"""Per-session network policy: one nftables table (``inet coi_sentinel``), per-session chains,
sets and counters on the ingress of the container's host-side veth, changed by one atomic
libnftables JSON batch at a time. See docs/network.md.

The session layer and the response engine use :class:`Firewall`; :class:`Policy` says what a
session may reach; :func:`hosts_file` makes the allowlist container's /etc/hosts;
:func:`host_ifname` and the ``host_veth_*`` functions name or find the veth.
"""

from __future__ import annotations

from .firewall import Applied, DomainRefresher, Firewall
from .links import HostInterface, host_veth_of_container, host_veth_of_index, host_veth_of_pid, local_addresses
from .naming import TABLE, host_ifname, session_key
from .policy import MODES, Policy, Resolution, Service, hosts_file, resolve
from .ranges import C2_PORTS, METADATA

__all__ = ["Applied", "C2_PORTS", "DomainRefresher", "Firewall", "HostInterface", "METADATA", "MODES",
           "Policy", "Resolution", "Service", "TABLE", "host_ifname", "host_veth_of_container",
           "host_veth_of_index", "host_veth_of_pid", "hosts_file", "local_addresses", "resolve",
           "session_key"]
