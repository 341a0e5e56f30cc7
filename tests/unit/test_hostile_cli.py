"""Each hostile input of issue 17, through the real command: one line on stderr naming the
file (and line), exit 1 or 2, no traceback, quickly (the bound here only catches a hang; the
commands take well under 2 s, interpreter start-up included)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from coi_sentinel.events import codec, model
from coi_sentinel.trace import make_header

pytestmark = pytest.mark.unit

RULE = """\
- rule: r
  description: d
  severity: high
  events: [exec]
  condition: {condition}
  output: "hit %proc.name"
  tags: [T1059]
  false_positives: none
"""


def _rules(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    if name == "deep":
        path.write_text(RULE.format(condition="'" + "(" * 5000 + "proc.name = x" + ")" * 5000 + "'"))
    elif name == "nots":
        path.write_text(RULE.format(condition="not " * 5000 + "proc.name = x"))
    elif name == "bomb":
        macros = "- macro: m0\n  condition: proc.name = x\n" + "".join(
            f"- macro: m{k}\n  condition: m{k - 1} or m{k - 1} or proc.name = y{k}\n" for k in range(1, 30))
        path.write_text(macros + RULE.format(condition="m29"))
    elif name == "huge":
        with open(path, "wb") as f:
            f.write(b"- list: x\n  items: [" + b"a," * 3_000_000 + b"a]\n")
    elif name == "control":
        path.write_bytes(b"- rule: r\x1f\n")
    elif name == "backref":
        path.write_text(RULE.format(condition="\"proc.args regex '(a)\\\\1'\""))
    return path


def _run(*args: str, stdin=None) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.monotonic()
    res = subprocess.run([sys.executable, "-m", "coi_sentinel.cli.main", *args], stdin=stdin,
                         capture_output=True, text=True, timeout=60)
    return res, time.monotonic() - t0


@pytest.mark.parametrize("name,says", [
    ("deep", ":5: the condition nests deeper than 64 levels"),
    ("nots", ":5: the condition nests deeper than 64 levels"),
    ("bomb", "clauses (at most 20000) with its macros inlined"),
    ("huge", ":1: the file is larger than 512 KiB"),
    ("control", ":1: invalid YAML: special characters are not allowed (character U+001F)"),
    ("backref", ":5: bad regular expression '(a)\\\\1' for proc.args: invalid escape sequence"),
])
@pytest.mark.parametrize("command", ["lint", "replay"])
def test_hostile_rule_files(tmp_path: Path, name: str, says: str, command: str) -> None:
    path = _rules(tmp_path, name)
    if command == "lint":
        res, took = _run("rules", "lint", "--only", str(path))
        errors = [line.replace(": error: ", ": ", 1) for line in res.stdout.splitlines()
                  if ": error: " in line]
        assert len(errors) == 1 and says in errors[0], res.stdout
    else:
        trace = tmp_path / "t.jsonl"
        trace.write_bytes(orjson.dumps(make_header("test")) + b"\n")
        res, took = _run("replay", "--no-bundled", "--rules", str(path), str(trace))
        assert res.stderr.count("\n") == 1 and says in res.stderr, res.stderr
        assert res.stderr.startswith(f"coi-sentinel: error: {path}:")
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert took < 20


def _trace(tmp_path: Path, event_line: bytes) -> Path:
    path = tmp_path / "t.jsonl"
    path.write_bytes(orjson.dumps(make_header("test")) + b"\n" + event_line + b"\n")
    return path


EXEC = codec.to_dict(model.ExecEvent(ts_ns=1, pid=2, tid=2, ppid=1, uid=0, gid=0, comm="sh",
                                     cgroup_id=3, scope_id=3, container="c", filename="/bin/sh",
                                     argv=("sh",), argc=1, errno=0, fd=-100, flags=0))


@pytest.mark.parametrize("line,says", [
    (orjson.dumps({**EXEC, "pid": "abc"}), ":2: exec event: field 'pid' must be an integer, not the string 'abc'"),
    (orjson.dumps({**EXEC, "argv": "sh"}), ":2: exec event: field 'argv' must be a list of strings"),
    (b"x" * (2 << 20), ":2: line longer than 1 MiB: not a trace line"),
    (b"\0\0\0", ":2: not JSON"),
])
def test_hostile_traces(tmp_path: Path, line: bytes, says: str) -> None:
    path = _trace(tmp_path, line)
    res, took = _run("replay", str(path))
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert res.stderr.count("\n") == 1 and res.stderr.startswith(f"coi-sentinel: error: {path}")
    assert says in res.stderr, res.stderr
    assert took < 20


@pytest.mark.parametrize("target", ["/dev/zero", "/dev/urandom", "/proc/self/fd/0"])
def test_replay_refuses_what_is_not_a_regular_file(target: str) -> None:
    res, took = _run("replay", target, stdin=subprocess.DEVNULL)
    assert res.returncode == 1 and res.stderr.count("\n") == 1 and "not a regular file" in res.stderr
    assert took < 20
