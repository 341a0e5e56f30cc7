"""Netlink look-ups: a container's host-side veth (pyroute2), and the host's own addresses
(one address dump on a plain netlink socket: importing pyroute2 costs a fifth of a second, and
every session start reads the addresses, before its agent's first instruction).

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
import struct
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


#: netlink (linux/netlink.h, linux/rtnetlink.h, linux/if_addr.h)
_RTM_NEWADDR, _RTM_GETADDR = 20, 22
_NLMSG_ERROR, _NLMSG_DONE = 2, 3
_NLM_F_REQUEST, _NLM_F_DUMP = 0x1, 0x300
_IFA_ADDRESS, _IFA_LOCAL = 1, 2
_NLMSG = struct.Struct("=IHHII")        # nlmsghdr: len, type, flags, seq, pid
_IFADDRMSG = struct.Struct("=BBBBI")    # ifaddrmsg: family, prefixlen, flags, scope, index
_RTATTR = struct.Struct("=HH")          # rtattr: len, type


def _align(n: int) -> int:
    return (n + 3) & ~3


def _address_of(msg: bytes) -> bytes | None:
    """Our end of one RTM_NEWADDR payload: IFA_LOCAL (on point-to-point links IFA_ADDRESS is
    the peer's), else IFA_ADDRESS."""
    attrs: dict[int, bytes] = {}
    off = _IFADDRMSG.size
    while off + _RTATTR.size <= len(msg):
        length, kind = _RTATTR.unpack_from(msg, off)
        if length < _RTATTR.size:
            break
        attrs[kind] = msg[off + _RTATTR.size:off + length]
        off += _align(length)
    return attrs.get(_IFA_LOCAL) or attrs.get(_IFA_ADDRESS)


def _dump_addresses() -> list[bytes]:
    """Every address of the caller's network namespace, raw (4 or 16 bytes), by one
    RTM_GETADDR dump."""
    found: list[bytes] = []
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                       socket.NETLINK_ROUTE) as sock:
        sock.bind((0, 0))
        request = _IFADDRMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
        sock.sendall(_NLMSG.pack(_NLMSG.size + len(request), _RTM_GETADDR,
                                 _NLM_F_REQUEST | _NLM_F_DUMP, 1, 0) + request)
        while True:
            data = sock.recv(65536)
            off = 0
            while off + _NLMSG.size <= len(data):
                length, kind, _flags, _seq, _pid = _NLMSG.unpack_from(data, off)
                if length < _NLMSG.size:
                    raise OSError("malformed netlink message")
                body = data[off + _NLMSG.size:off + length]
                if kind == _NLMSG_DONE:
                    return found
                if kind == _NLMSG_ERROR:
                    code = -struct.unpack_from("=i", body)[0]
                    if code:
                        raise OSError(code, os.strerror(code))
                elif kind == _RTM_NEWADDR:
                    family = body[0]
                    value = _address_of(body)
                    if value is not None and len(value) == (4 if family == socket.AF_INET else 16):
                        found.append(value)
                off += _align(length)


def local_addresses() -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Every address of the host's network namespace (all interfaces), scope ids dropped."""
    try:
        raw = _dump_addresses()
    except OSError as err:
        raise NetworkError(f"cannot read the host's addresses: {err}") from err
    return sorted({ipaddress.ip_address(value) for value in raw}, key=lambda a: (a.version, a))
