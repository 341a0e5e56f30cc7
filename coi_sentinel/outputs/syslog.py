"""Syslog in RFC 5424 over a unix datagram socket, UDP, TCP or TLS (RFC 5425).

A message is ``<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD] MSG``: PRI from the facility
(default ``local0``) and the alert's severity (``coi_sentinel.severity``: critical -> 2 ...
info -> 6), TIMESTAMP the event's time (RFC 3339, microseconds: RFC 5424 allows six digits),
MSGID ``alert``, structured data ``[coi@32473 rule=... severity=... priority=... container=...]``
(32473 is the enterprise number RFC 5612 sets aside for examples), MSG the alert's JSON after a
UTF-8 BOM. TCP and TLS frame each message with its length (RFC 6587 octet counting), which
rsyslog, syslog-ng and most SIEM collectors read.
"""

from __future__ import annotations

import os
import socket
import ssl
from typing import Any

from .base import DeliveryError, Output, Record
from .spec import OutputSpec

APP_NAME = "coi-sentinel"
SD_ID = "coi@32473"
BOM = b"\xef\xbb\xbf"
MAX_UDP = 65_000


def _sd_value(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _field(text: str, limit: int) -> str:
    """A header field: printable US-ASCII without spaces, '-' when empty."""
    clean = "".join(c for c in text if 33 <= ord(c) <= 126)[:limit]
    return clean or "-"


class SyslogOutput(Output):
    batch_size = 64

    def __init__(self, spec: OutputSpec) -> None:
        super().__init__(spec)
        self.retries = 2
        self.facility: int = spec.opt("facility", 16)
        self.app_name = _field(spec.opt("app_name", APP_NAME), 48)
        self.timeout: float = spec.opt("timeout", 5.0)
        self.transport = spec.transport
        if self.transport in ("udp", "unix"):
            self.batch_size = 1         # one datagram each: a failed one is retried alone
        self._sock: socket.socket | None = None
        self._procid = _field(str(spec.opt("procid", os.getpid())), 128)

    # one message
    def render(self, record: Record) -> Any:
        body = super().render(record)
        d = record.data
        sev = record.severity
        pri = self.facility * 8 + sev.syslog
        ts = d["time"][:26] + "Z"           # ...HH:MM:SS.nnnnnnnnnZ cut to microseconds (5424)
        sd = (f'[{SD_ID} rule="{_sd_value(d["rule"])}" severity="{sev.label}" '
              f'priority="{sev.falco}" container="{_sd_value(str(d.get("container", "")))}"]')
        head = f"<{pri}>1 {ts} {_field(d['hostname'], 255)} {self.app_name} {self._procid} alert {sd} "
        return head.encode() + BOM + body

    def _connect(self) -> socket.socket:
        t = self.transport
        if t == "unix":
            s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            s.connect(self.spec.target)
            return s
        host, _, port = self.spec.target.rpartition(":")
        host = host.strip("[]")
        if t == "udp":
            info = socket.getaddrinfo(host, int(port), type=socket.SOCK_DGRAM)[0]
            s = socket.socket(info[0], socket.SOCK_DGRAM)
            s.connect(info[4])
            return s
        s = socket.create_connection((host, int(port)), timeout=self.timeout)
        if t == "tls":
            ctx = ssl.create_default_context(cafile=self.spec.opt("ca", None))
            if not self.spec.opt("verify", True):
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            s = ctx.wrap_socket(s, server_hostname=host)
        return s

    def deliver(self, payloads: list[Any]) -> None:
        if self._sock is None:
            self._sock = self._connect()
        if self.transport in ("udp", "unix"):
            for msg in payloads:
                if len(msg) > MAX_UDP and self.transport == "udp":
                    raise DeliveryError(f"message of {len(msg)} bytes is too big for UDP "
                                        "(use format=falco or tcp)", retry=False)
                self._sock.send(msg)
        else:
            self._sock.sendall(b"".join(b"%d " % len(m) + m for m in payloads))

    def reset(self) -> None:
        self.shut()

    def shut(self) -> None:
        if self._sock is not None:
            try:
                if isinstance(self._sock, ssl.SSLSocket):
                    self._sock.settimeout(1.0)
                    self._sock.unwrap()             # close_notify: a clean end for the receiver
            except (OSError, ssl.SSLError):
                pass
            finally:
                self._sock.close()
                self._sock = None
