"""Syslog output against a real rsyslog (Debian's rsyslogd), started by the test with a
private config in tmp_path: its own loopback ports, unix socket, work directory and pid file.
It writes every message it parses as RFC 5424 fields to a file the test reads."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import orjson
import pytest

from coi_sentinel.outputs import OutputSet

pytestmark = pytest.mark.unit

BOM = "\ufeff"
OFFSET = 1_764_720_000_000_000_000          # ts_ns + this = a wall-clock time in 2025

CONFIG = """\
global(workDirectory="{dir}")
module(load="imtcp")
module(load="imudp")
module(load="imuxsock" SysSock.Use="off")
input(type="imtcp" port="{tcp}" address="127.0.0.1")
input(type="imudp" port="{udp}" address="127.0.0.1")
input(type="imuxsock" Socket="{sock}" UseSpecialParser="off" ParseHostname="on")
template(name="fields" type="list") {{
  property(name="inputname") constant(value="|")
  property(name="pri") constant(value="|")
  property(name="protocol-version") constant(value="|")
  property(name="timereported" dateFormat="rfc3339") constant(value="|")
  property(name="hostname") constant(value="|")
  property(name="app-name") constant(value="|")
  property(name="procid") constant(value="|")
  property(name="msgid") constant(value="|")
  property(name="structured-data") constant(value="|")
  property(name="msg" droplastlf="on") constant(value="\\n")
}}
action(type="omfile" file="{out}" template="fields")
"""


TLS_CONFIG = """\
global(workDirectory="{dir}" DefaultNetstreamDriver="gtls"
       DefaultNetstreamDriverCAFile="{cert}" DefaultNetstreamDriverCertFile="{cert}"
       DefaultNetstreamDriverKeyFile="{key}")
module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.AuthMode="anon")
input(type="imtcp" port="{tcp}" address="127.0.0.1")
module(load="imudp")
input(type="imudp" port="{udp}" address="127.0.0.1")
template(name="fields" type="list") {{
  property(name="inputname") constant(value="|")
  property(name="pri") constant(value="|")
  property(name="protocol-version") constant(value="|")
  property(name="timereported" dateFormat="rfc3339") constant(value="|")
  property(name="hostname") constant(value="|")
  property(name="app-name") constant(value="|")
  property(name="procid") constant(value="|")
  property(name="msgid") constant(value="|")
  property(name="structured-data") constant(value="|")
  property(name="msg" droplastlf="on") constant(value="\\n")
}}
action(type="omfile" file="{out}" template="fields")
"""
GTLS = Path("/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so")


def _free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Rsyslog:
    def __init__(self, root: Path, tls: tuple[Path, Path] | None = None) -> None:
        self.root = root
        self.tcp = _free_port(socket.SOCK_STREAM)
        self.udp = _free_port(socket.SOCK_DGRAM)
        self.sock = root / "log.sock"
        self.out = root / "out.log"
        self.conf = root / "rsyslog.conf"
        if tls is None:
            text = CONFIG.format(dir=root, tcp=self.tcp, udp=self.udp, sock=self.sock, out=self.out)
        else:
            text = TLS_CONFIG.format(dir=root, tcp=self.tcp, udp=self.udp, out=self.out, cert=tls[0], key=tls[1])
            self.sock.touch()                       # no unix input here
        self.conf.write_text(text)
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "Rsyslog":
        exe = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
        errors = self.root / "stderr.txt"
        with open(errors, "wb") as err:
            self.proc = subprocess.Popen([exe, "-n", "-f", str(self.conf), "-i", str(self.root / "rsyslog.pid")],
                                         stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:          # a UDP probe came through: every input is open
            assert self.proc.poll() is None, errors.read_text()
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                    u.sendto(b"<14>1 - - probe - ready - ready", ("127.0.0.1", self.udp))
                if self.sock.exists() and "probe" in self.text():
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError("rsyslogd did not start listening within 10 s")

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def text(self) -> str:
        return self.out.read_text(encoding="utf-8") if self.out.exists() else ""

    def alerts(self, n: int, timeout: float = 10.0) -> list[list[str]]:
        """The first ``n`` alert lines (msgid ``alert``) as their ten fields."""
        deadline = time.monotonic() + timeout
        while True:
            rows = [line.split("|", 9) for line in self.text().splitlines()]
            rows = [r for r in rows if len(r) == 10 and r[7] == "alert"]
            if len(rows) >= n or time.monotonic() > deadline:
                return rows


@pytest.fixture
def rsyslog(tmp_path: Path):
    if shutil.which("rsyslogd") is None and not os.path.exists("/usr/sbin/rsyslogd"):
        pytest.skip("needs rsyslogd (Debian package rsyslog; scripts/setup.sh installs it)")
    root = tmp_path / "rsyslog"
    root.mkdir()
    with Rsyslog(root) as r:
        yield r


@pytest.mark.parametrize("transport", ["tcp", "udp", "unix"])
def test_rsyslog_receives_rfc5424(rsyslog: Rsyslog, make_alerts, transport: str) -> None:
    alerts = make_alerts(3, "critical") + make_alerts(2, "medium", rule="noisy")
    target = (f"syslog:{rsyslog.sock}" if transport == "unix" else
              f"syslog+{transport}://127.0.0.1:{rsyslog.tcp if transport == 'tcp' else rsyslog.udp}")
    outs = OutputSet.from_options([f"{target}?facility=auth&format=falco&name=s"])
    for a in alerts:
        outs.emit(a, hostname="agent-host", wall_offset_ns=OFFSET)
    assert outs.wait_idle(10)
    outs.close()
    assert outs.status()["s"]["delivered"] == 5 and outs.status()["s"]["lost"] == 0
    rows = rsyslog.alerts(5)
    assert len(rows) == 5
    by_input = {"tcp": "imtcp", "udp": "imudp", "unix": "imuxsock"}[transport]
    for row, alert in zip(rows, alerts):
        inputname, pri, version, ts, host, app, procid, msgid, sd, msg = row
        assert inputname == by_input and version == "1"
        assert int(pri) == 4 * 8 + alert.severity.syslog        # auth facility; crit 2, warning 4
        assert (host, app, procid, msgid) == ("agent-host", "coi-sentinel", str(os.getpid()), "alert")
        assert sd == (f'[coi@32473 rule="{alert.rule}" severity="{alert.severity.label}" '
                      f'priority="{alert.severity.falco}" container="agent-1"]')
        if transport != "unix":                                  # imuxsock stamps its own time
            assert ts == alert.time(OFFSET)[:26] + "Z"           # microseconds, as 5424 allows
        assert msg.startswith(BOM)
        body = orjson.loads(msg[1:])
        assert body["rule"] == alert.rule and body["priority"] == alert.severity.falco
        assert body["output_fields"]["proc.pid"] == alert.process.pid


def test_rsyslog_receives_rfc5424_over_tls(tmp_path: Path, make_alerts) -> None:
    """RFC 5425: the same messages over TLS, the receiver's certificate checked against the CA
    given in the URL (a self-signed one made for the test)."""
    if shutil.which("rsyslogd") is None or not GTLS.exists():
        pytest.skip("needs rsyslogd with its TLS driver (Debian packages rsyslog, rsyslog-gnutls)")
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("needs the openssl command to make a test certificate")
    root = tmp_path / "rsyslog"
    root.mkdir()
    cert, key = root / "cert.pem", root / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True, timeout=30)
    alerts = make_alerts(3, "high")
    with Rsyslog(root, tls=(cert, key)) as rs:
        outs = OutputSet.from_options([f"syslog+tls://127.0.0.1:{rs.tcp}?ca={cert}&name=s"])
        for a in alerts:
            outs.emit(a, hostname="agent-host", wall_offset_ns=OFFSET)
        assert outs.wait_idle(10)
        outs.close()
        rows = rs.alerts(3)
    assert outs.status()["s"]["delivered"] == 3 and outs.status()["s"]["lost"] == 0
    assert [r[0] for r in rows] == ["imtcp"] * 3
    assert [orjson.loads(r[9][1:])["process"]["pid"] for r in rows] == [100, 101, 102]
    assert all(int(r[1]) == 16 * 8 + 3 for r in rows)           # local0, error


def test_syslog_tls_refuses_an_unknown_certificate(tmp_path: Path, make_alerts) -> None:
    """Without the CA the receiver's certificate is not trusted: nothing is sent, the alert is
    counted lost (unreachable) after the retries, never silently dropped."""
    if shutil.which("rsyslogd") is None or not GTLS.exists() or shutil.which("openssl") is None:
        pytest.skip("needs rsyslogd with its TLS driver (rsyslog, rsyslog-gnutls) and openssl")
    root = tmp_path / "rsyslog"
    root.mkdir()
    cert, key = root / "cert.pem", root / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True, timeout=30)
    with Rsyslog(root, tls=(cert, key)) as rs:
        outs = OutputSet.from_options([f"syslog+tls://127.0.0.1:{rs.tcp}?name=s"])
        outs.emit(make_alerts(1)[0])
        assert outs.wait_idle(10)
        outs.close()
        assert rs.alerts(1, timeout=0.2) == []
    st = outs.status()["s"]
    assert st["lost_by_reason"] == {"unreachable": 1} and "CERTIFICATE_VERIFY_FAILED" in st["last_error"]
