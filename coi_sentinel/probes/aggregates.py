"""Reads the kernel's aggregation maps (file_aggs, net_aggs, conn_aggs) and turns them into
summary events: FILE_WRITE (opens/writes/bytes of one process on one path), NET_SEND (bytes a
process sent on one socket) and CONNECT_REPEAT (repeats of one connect).

The kernel keeps cumulative counters and never sends per-write records. User space reports
deltas: when a process exits (its keys are known from its FILE_OPEN and CONNECT events), on a
timer sweep over the whole maps (long-lived processes, and keys whose FILE_OPEN was dropped),
and when the kernel sends the final total of a socket on close. Totals are exact: the first
FILE_OPEN counts as one open, and the sum of all deltas equals what the kernel counted.
"""

from __future__ import annotations

import ctypes
import ipaddress
import logging
import os
from typing import Iterator

from ..events import model
from ..events.decode import Decoder, cstr, sock_addr
from ..events.structs import path_hash
from ..events.proctable import ProcessTable
from ..events.types import FILE_KIND_FAILED, FILE_KIND_LABELS, FILE_KIND_SENSITIVE, FILE_KIND_WRITE

log = logging.getLogger(__name__)

FileKeyT = tuple[int, int, int]            # (tgid, kind | failed, path hash)
NetKeyT = tuple[int, int]                  # (tgid, fd)
ConnKeyT = tuple[int, int, int, int, bytes]  # (tgid, ret, family, port, addr16)
_FAMILY_NUM = {"inet": 2, "inet6": 10}


def _kind_of(ev: model.FileOpenEvent) -> int:
    kind = FILE_KIND_SENSITIVE if ev.kind == "sensitive" else FILE_KIND_WRITE
    return kind | (FILE_KIND_FAILED if ev.errno else 0)


class Aggregates:
    def __init__(self, bpf, decoder: Decoder, table: ProcessTable) -> None:
        self.files = bpf[b"file_aggs"]
        self.nets = bpf[b"net_aggs"]
        self.conns = bpf[b"conn_aggs"]
        self.decoder = decoder
        self.table = table
        self._file_keys: dict[int, set[FileKeyT]] = {}
        self._net_keys: dict[int, set[int]] = {}
        self._reported_file: dict[FileKeyT, tuple[int, int, int]] = {}
        self._reported_net: dict[NetKeyT, tuple[int, int]] = {}
        self._conn_keys: dict[int, set[ConnKeyT]] = {}
        self._reported_conn: dict[ConnKeyT, int] = {}

    # ---- what the stream tells us ----
    def note_file_open(self, ev: model.FileOpenEvent) -> None:
        if ev.kind == "truncate":
            return      # no open: the entry's counts are its opens' (file.bpf.c)
        key = (ev.pid, _kind_of(ev), path_hash(ev.path.encode("utf-8", "surrogateescape")))
        self._file_keys.setdefault(ev.pid, set()).add(key)
        self._reported_file[key] = (1, 0, 0)   # the FILE_OPEN itself reported the first open

    def note_connect(self, ev: model.ConnectEvent) -> None:
        if ev.errno in (0, 115):
            self._net_keys.setdefault(ev.pid, set()).add(ev.fd)
            self._reported_net.pop((ev.pid, ev.fd), None)
        fam = _FAMILY_NUM.get(ev.family)
        if fam is not None:
            key = (ev.pid, -ev.errno, fam, ev.dport, _packed(ev.daddr))
            self._conn_keys.setdefault(ev.pid, set()).add(key)
            self._reported_conn[key] = 1   # the CONNECT itself

    def note_accept(self, ev: model.AcceptEvent) -> None:
        """An accepted socket is counted like a connected one (io.bpf.c): summarise it too."""
        if not ev.errno and ev.fd >= 0:
            self._net_keys.setdefault(ev.pid, set()).add(ev.fd)
            self._reported_net.pop((ev.pid, ev.fd), None)

    def socket_closed(self, ev: model.NetSendEvent) -> model.NetSendEvent | None:
        """The kernel's final total of a socket -> the delta not yet reported (None if nothing)."""
        calls0, bytes0 = self._reported_net.pop((ev.pid, ev.fd), (0, 0))
        keys = self._net_keys.get(ev.pid)
        if keys is not None:
            keys.discard(ev.fd)
        if ev.bytes <= bytes0 and ev.calls <= calls0:
            return None
        return model.NetSendEvent(
            ev.ts_ns, ev.pid, ev.tid, ev.ppid, ev.uid, ev.gid, ev.comm, ev.cgroup_id, ev.scope_id,
            ev.container, ev.fd, ev.bytes - bytes0, ev.calls - calls0, ev.family, ev.daddr,
            ev.dport, ev.first_ts_ns)

    # ---- summaries ----
    def _header(self, ts: int, tgid: int, uid: int, cgroup_id: int, scope_id: int) -> tuple:
        p = self.table.get(tgid)
        return (ts, tgid, tgid, p.ppid if p else 0, uid, 0, p.comm if p else "", cgroup_id, scope_id,
                self.decoder.resolve(scope_id))

    def _file_summary(self, key: FileKeyT, v) -> model.FileWriteEvent | None:
        o0, w0, b0 = self._reported_file.get(key, (0, 0, 0))
        if v.opens <= o0 and v.writes <= w0 and v.bytes <= b0:
            return None
        self._reported_file[key] = (v.opens, v.writes, v.bytes)
        tgid, kind, _hash = key
        return model.FileWriteEvent(
            *self._header(v.last_ts, tgid, v.uid, v.cgroup_id, v.scope_id),
            cstr(bytes(v.path)),
            FILE_KIND_LABELS.get(kind & ~FILE_KIND_FAILED, str(kind)),
            v.opens - o0, v.writes - w0, v.bytes - b0, bool(kind & FILE_KIND_FAILED), v.first_ts)

    def _net_summary(self, key: NetKeyT, v) -> model.NetSendEvent | None:
        c0, b0 = self._reported_net.get(key, (0, 0))
        if v.bytes <= b0 and v.calls <= c0:
            return None
        self._reported_net[key] = (v.calls, v.bytes)
        fam, daddr, dport = sock_addr(v.sock.family, v.sock.port, bytes(v.sock.addr))
        return model.NetSendEvent(
            *self._header(v.last_ts, key[0], v.uid, v.cgroup_id, v.scope_id),
            key[1], v.bytes - b0, v.calls - c0, fam, daddr, dport, v.first_ts)

    def _conn_summary(self, key: ConnKeyT, v) -> model.ConnectRepeatEvent | None:
        c0 = self._reported_conn.get(key, 0)
        if v.count <= c0:
            return None
        self._reported_conn[key] = v.count
        tgid, ret, family, port, addr = key
        fam, daddr, dport = sock_addr(family, port, addr)
        return model.ConnectRepeatEvent(
            *self._header(v.last_ts, tgid, v.uid, v.cgroup_id, v.scope_id),
            fam, daddr, dport, -ret if ret < 0 else 0, v.count - c0, v.first_ts)

    def flush_pid(self, tgid: int) -> list[model.Event]:
        """Final summaries of a process that exited; its map entries are removed."""
        out: list[model.Event] = []
        for key in self._file_keys.pop(tgid, ()):
            k = self.files.Key(key[0], key[1], key[2])
            try:
                v = self.files[k]
            except KeyError:
                self._reported_file.pop(key, None)
                continue
            ev = self._file_summary(key, v)
            if ev is not None:
                out.append(ev)
            self._delete(self.files, k)
            self._reported_file.pop(key, None)
        for fd in self._net_keys.pop(tgid, ()):
            k = self.nets.Key(tgid, fd)
            try:
                v = self.nets[k]
            except KeyError:
                self._reported_net.pop((tgid, fd), None)
                continue
            ev = self._net_summary((tgid, fd), v)
            if ev is not None:
                out.append(ev)
            self._delete(self.nets, k)
            self._reported_net.pop((tgid, fd), None)
        for key in self._conn_keys.pop(tgid, ()):
            k = self.conns.Key(key[0], key[1], key[2], key[3], (ctypes.c_uint8 * 16)(*key[4]))
            try:
                v = self.conns[k]
            except KeyError:
                self._reported_conn.pop(key, None)
                continue
            ev = self._conn_summary(key, v)
            if ev is not None:
                out.append(ev)
            self._delete(self.conns, k)
            self._reported_conn.pop(key, None)
        out.sort(key=lambda e: e.ts_ns)
        return out

    def sweep(self, final: bool = False) -> list[model.Event]:
        """Summaries of everything that changed since the last report. Entries of processes that
        are gone are removed (all entries when ``final``)."""
        out: list[model.Event] = []
        for k, v in _items(self.files):
            key = (k.tgid, k.kind, k.path_hash)
            ev = self._file_summary(key, v)
            if ev is not None:
                out.append(ev)
            if final or not self._alive(k.tgid):
                self._delete(self.files, k)
                self._reported_file.pop(key, None)
                keys = self._file_keys.get(k.tgid)
                if keys is not None:
                    keys.discard(key)
        for k, v in _items(self.nets):
            key = (k.tgid, k.fd)
            ev = self._net_summary(key, v)
            if ev is not None:
                out.append(ev)
            if final or not self._alive(k.tgid):
                self._delete(self.nets, k)
                self._reported_net.pop(key, None)
        for k, v in _items(self.conns):
            ckey = (k.tgid, k.ret, k.family, k.port, bytes(k.addr))
            ev = self._conn_summary(ckey, v)
            if ev is not None:
                out.append(ev)
            if final or not self._alive(k.tgid):
                self._delete(self.conns, k)
                self._reported_conn.pop(ckey, None)
                keys = self._conn_keys.get(k.tgid)
                if keys is not None:
                    keys.discard(ckey)
        out.sort(key=lambda e: e.ts_ns)
        return out

    def _alive(self, tgid: int) -> bool:
        p = self.table.get(tgid)
        if p is not None and p.exited:
            return False
        return os.path.exists(f"/proc/{tgid}")

    @staticmethod
    def _delete(table, key) -> None:
        try:
            del table[key]
        except KeyError:
            pass


def _packed(addr: str) -> bytes:
    try:
        return ipaddress.ip_address(addr).packed.ljust(16, b"\0")
    except ValueError:
        return b"\0" * 16


def _items(table) -> Iterator[tuple]:
    """All entries of a BPF hash (batched when the kernel supports it). Copies, so entries can
    be deleted while iterating."""
    try:
        return iter(list(table.items_lookup_batch()))
    except Exception:  # bcc raises bare Exception when batch ops are unsupported
        return iter(list(table.items()))


