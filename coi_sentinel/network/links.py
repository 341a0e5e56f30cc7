"""Netlink look-ups with pyroute2: a container's host-side veth, and the host's own addresses.

Incus names the host end of a container's NIC ``vethXXXXXXXX`` (random, new on every start)
unless the NIC has a ``host_name``. From the container's side it is ``eth0``, whose
``IFLA_LINK`` is the ifindex of its peer in the host's namespace; the peer's ``IFLA_LINK``
points back at ``eth0``. Both ends are checked, so an unrelated interface that happens to have
that index is never taken for the session's.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from ..errors import NetworkError

log = logging.getLogger(__name__)

#: where LXC puts a container's processes (cgroup2; on hybrid hosts under ``unified``)
CGROUP_ROOTS = (Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup"))


@dataclass(frozen=True, slots=True)
class HostInterface:
    name: str
    index: int
    kind: str | None          # "veth", "bridge", ...
    master: str | None        # the bridge it is a port of
    peer_index: int | None    # IFLA_LINK: the other end's ifindex in its namespace


def _iproute():
    try:
        from pyroute2 import IPRoute
    except ImportError as err:
        raise NetworkError("pyroute2 is not installed",
                           hint="apt-get install python3-pyroute2; make the venv with "
                                "--system-site-packages") from err
    return IPRoute()


def _describe(ipr, link) -> HostInterface:
    info = link.get_attr("IFLA_LINKINFO")
    kind = info.get_attr("IFLA_INFO_KIND") if info is not None else None
    master_index = link.get_attr("IFLA_MASTER")
    master = None
    if master_index:
        found = ipr.link("get", index=master_index)
        master = found[0].get_attr("IFLA_IFNAME") if found else None
    return HostInterface(link.get_attr("IFLA_IFNAME"), link["index"], kind, master,
                         link.get_attr("IFLA_LINK"))


def host_interface(*, name: str | None = None, index: int | None = None) -> HostInterface:
    """An interface of the host's (the caller's) network namespace, by name or index."""
    if (name is None) == (index is None):
        raise ValueError("give exactly one of name, index")
    try:
        with _iproute() as ipr:
            links = ipr.link("get", ifname=name) if name is not None else ipr.link("get", index=index)
            return _describe(ipr, links[0])
    except NetworkError:
        raise
    except Exception as err:   # pyroute2 raises NetlinkError (an OSError subclass) and others
        raise NetworkError(f"no host interface {name or f'with index {index}'}: {err}") from err


def host_veth_of_index(peer_index: int, *, container_index: int | None = None) -> HostInterface:
    """The host-side veth whose ifindex is ``peer_index`` (the ``iflink`` of the container's
    eth0). With ``container_index``, also check that the veth points back at it."""
    found = host_interface(index=peer_index)
    if found.kind != "veth":
        raise NetworkError(f"host interface {found.name} (index {peer_index}) is a {found.kind}, not a veth")
    if container_index is not None and found.peer_index != container_index:
        raise NetworkError(f"host interface {found.name} is not the peer of interface {container_index}")
    return found


def host_veth_of_pid(pid: int, ifname: str = "eth0") -> HostInterface:
    """The host-side veth of interface ``ifname`` in the network namespace of process ``pid``."""
    ns_path = f"/proc/{pid}/ns/net"
    if not os.path.exists(ns_path):
        raise NetworkError(f"process {pid} does not exist")
    try:
        from pyroute2 import NetNS
    except ImportError as err:
        raise NetworkError("pyroute2 is not installed", hint="apt-get install python3-pyroute2") from err
    try:
        ns = NetNS(ns_path)
    except Exception as err:
        raise NetworkError(f"cannot enter the network namespace of process {pid}: {err}",
                           hint="run as root") from err
    try:
        links = ns.link("get", ifname=ifname)
        link = links[0]
        peer, own = link.get_attr("IFLA_LINK"), link["index"]
    except Exception as err:
        raise NetworkError(f"process {pid} has no interface {ifname}: {err}") from err
    finally:
        ns.close()
    if not peer:
        raise NetworkError(f"{ifname} of process {pid} has no peer (not a veth)")
    return host_veth_of_index(peer, container_index=own)


def container_pid(container: str, roots: tuple[Path, ...] = CGROUP_ROOTS) -> int:
    """A process of an LXC/Incus container, from its cgroup ``lxc.payload.<name>``."""
    if "/" in container or container in ("", ".", ".."):
        raise NetworkError(f"invalid container name {container!r}")
    for root in roots:
        base = root / f"lxc.payload.{container}"
        if not base.is_dir():
            continue
        for procs in sorted(base.rglob("cgroup.procs"), key=lambda p: len(p.parts)):
            try:
                pids = procs.read_text().split()
            except OSError:
                continue
            if pids:
                return int(pids[0])
    raise NetworkError(f"container {container} has no running process (is it started?)")


def host_veth_of_container(container: str, ifname: str = "eth0") -> HostInterface:
    """The host-side veth of a running container's ``ifname``."""
    return host_veth_of_pid(container_pid(container), ifname)


def interface_exists(name: str) -> bool:
    """Whether the host's namespace has an interface of that name."""
    try:
        socket.if_nametoindex(name)
    except OSError:
        return False
    return True


def local_addresses() -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Every address of the host's network namespace (all interfaces), scope ids dropped."""
    out: set = set()
    try:
        with _iproute() as ipr:
            for msg in ipr.get_addr():
                # on point-to-point links IFA_ADDRESS is the peer's and IFA_LOCAL ours
                value = msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS")
                if value:
                    out.add(ipaddress.ip_address(value.split("%", 1)[0]))
    except NetworkError:
        raise
    except Exception as err:
        raise NetworkError(f"cannot read the host's addresses: {err}") from err
    return sorted(out, key=lambda a: (a.version, a))
