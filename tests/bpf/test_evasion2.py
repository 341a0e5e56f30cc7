"""Syscall alternatives, second part (docs/events.md, "Syscall alternatives"): a file emptied
with truncate(2) and no open, an owner changed with the chown family, a secret read through a
link made in scope. Each workload is a real program (coreutils, Python, perl) making the real
system calls in a scoped cgroup; each test asserts the records, and the detection tests the
bundled rules' alerts on those live records."""

from __future__ import annotations

import os
import shutil
import textwrap
import uuid
from collections import Counter
from pathlib import Path

import pytest

from coi_sentinel.events import model

pytestmark = pytest.mark.bpf

NOBODY = "setpriv --reuid=65534 --regid=65534 --clear-groups"


def py_body(body: str) -> str:
    return textwrap.dedent(body)


def rule_counts(watched, run) -> Counter:
    return Counter(a.rule for a in watched.alerts(run.events))


@pytest.fixture
def var_log_file():
    """A log file of this test's own under /var/log (removed afterwards)."""
    path = Path("/var/log") / f"coi-test-{uuid.uuid4().hex[:10]}.log"
    path.write_text("Dec  4 04:00:00 host sshd[1]: Accepted publickey for root\n")
    yield path
    path.unlink(missing_ok=True)


# ---- truncate --------------------------------------------------------------------------------

def test_truncate_with_no_open_and_ftruncate_are_truncate_records(watched, py, tmp_path):
    """truncate(path) opens nothing; ftruncate of an fd opened with write intent in scope is
    reported once per (process, path), and not at all when its open had O_TRUNC or the fd's open
    was not seen as a write."""
    for name in ("abs", "rel", "appended", "trunc", "readonly"):
        (tmp_path / name).write_text("x" * 64)
    body = """
        import os, sys
        d = sys.argv[1]
        os.truncate(d + '/abs', 0)
        os.chdir(d)
        os.truncate('rel', 3)
        fd = os.open('appended', os.O_WRONLY | os.O_APPEND)
        os.ftruncate(fd, 0)
        os.ftruncate(fd, 0)                  # the same (process, path): no second record
        t = os.open(d + '/trunc', os.O_WRONLY | os.O_TRUNC)
        os.ftruncate(t, 0)                   # its open said so already
        r = os.open(d + '/readonly', os.O_RDONLY)
        try:
            os.ftruncate(r, 0)               # EINVAL, and no write open seen: not looked at
        except OSError:
            pass
        try:
            os.truncate(d + '/missing', 0)
        except OSError:
            pass
        print(fd)
    """
    run = watched.run([py, "-c", py_body(body), str(tmp_path)])
    assert run.returncode == 0, run.stderr
    fd = int(run.stdout)
    got = sorted((e.path, e.fd, e.dirfd, e.flags, e.errno)
                 for e in run.of(model.FileOpenEvent, pid=run.pid, kind="truncate"))
    assert got == sorted([
        (str(tmp_path / "abs"), -1, -100, os.O_WRONLY | os.O_TRUNC, 0),
        (str(tmp_path / "rel"), -1, -100, os.O_WRONLY | os.O_TRUNC, 0),
        (str(tmp_path / "appended"), fd, fd, os.O_WRONLY | os.O_TRUNC, 0),
        (str(tmp_path / "missing"), -1, -100, os.O_WRONLY | os.O_TRUNC, 2),
    ])
    assert (tmp_path / "rel").read_text() == "xxx"
    assert run.lost == 0


# Atomic Red Team T1070.002 ("clear Linux logs") and GTFOBins-style variants: each empties the
# log its own way; every one must raise system_log_tampering.
LOG_WIPES = {
    "coreutils truncate -s0": "truncate -s0 {f}",
    "shell : >": "sh -c ': > {f}'",
    "echo >": "sh -c 'echo > {f}'",
    "cp /dev/null": "cp /dev/null {f}",
    "shred -u": "shred -u {f}",
    "python os.truncate": "{py} -c 'import os; os.truncate(\"{f}\", 0)'",
    "perl truncate": "perl -e 'truncate(\"{f}\", 0) or die'",
    "python append-open + ftruncate": "{py} -c 'import os; fd = os.open(\"{f}\", os.O_WRONLY | "
                                      "os.O_APPEND); os.ftruncate(fd, 0)'",
}


def test_every_way_of_wiping_a_system_log_raises_system_log_tampering(watched, py, var_log_file):
    raised = {}
    for name, cmd in LOG_WIPES.items():
        if not var_log_file.exists():
            var_log_file.write_text("line\n")
        run = watched.run(["sh", "-c", cmd.format(f=var_log_file, py=py)])
        assert run.returncode == 0, (name, run.stderr)
        raised[name] = rule_counts(watched, run)["system_log_tampering"] >= 1
    assert raised == dict.fromkeys(LOG_WIPES, True)


def test_a_refused_truncate_of_a_system_log_is_reported(watched, py, var_log_file):
    """As uid 65534 truncate(2) fails (EACCES): the attempt is the signal."""
    run = watched.run(["sh", "-c", f"{NOBODY} {py} -c 'import os; os.truncate(\"{var_log_file}\", 0)'"])
    assert run.returncode != 0
    recs = [(e.path, e.errno) for e in run.of(model.FileOpenEvent, kind="truncate")]
    assert recs == [(str(var_log_file), 13)]
    assert rule_counts(watched, run)["system_log_tampering"] == 1
    assert var_log_file.stat().st_size > 0


def test_copytruncate_of_an_apps_own_log_in_a_workspace_and_a_build_raise_nothing(watched, py,
                                                                                    tmp_path):
    """logrotate's copytruncate done by an application to its own log in its workspace (cp,
    then truncate in place: coreutils and truncate(2)), next to a C build: the truncates are
    seen and no rule fires."""
    (tmp_path / "logs").mkdir()
    (tmp_path / "main.c").write_text("int main(void) { return 0; }\n")
    (tmp_path / "Makefile").write_text("app: main.c\n\tcc -O0 -o app main.c\n")
    script = f"""
        set -e
        cd {tmp_path}
        make -s
        for i in 1 2 3; do echo "request $i" >> logs/app.log; done
        cp logs/app.log logs/app.log.1 && truncate -s0 logs/app.log
        echo "request 4" >> logs/app.log
        cp logs/app.log logs/app.log.2
        {py} -c 'import os; os.truncate("logs/app.log", 0)'
    """
    run = watched.run(["sh", "-c", textwrap.dedent(script)])
    assert run.returncode == 0, run.stderr
    log = str(tmp_path / "logs" / "app.log")
    truncs = [e.path for e in run.of(model.FileOpenEvent, kind="truncate")]
    assert truncs == [log, log], truncs
    assert watched.alerts(run.events) == []


# ---- chown -----------------------------------------------------------------------------------

def test_the_chown_family_is_a_priv_record_with_the_owner_and_the_path(watched, py, tmp_path):
    for name in ("plain", "written", "viadir", "readonly"):
        (tmp_path / name).write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "plain")
    body = """
        import os, sys
        d = sys.argv[1]
        os.chown(d + '/plain', 1000, 1000)                       # chown
        os.lchown(d + '/link', 1001, -1)                         # lchown
        dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
        os.chown('viadir', 0, 1002, dir_fd=dfd)                  # fchownat(dirfd, name)
        w = os.open(d + '/written', os.O_WRONLY | os.O_APPEND)
        os.fchown(w, 1003, 1003)                                 # fchown: the write open's path
        r = os.open(d + '/readonly', os.O_RDONLY)
        os.fchown(r, 1004, -1)                                   # its open was not seen
        try:
            os.chown(d + '/missing', 0, 0)
        except OSError:
            pass
    """
    run = watched.run([py, "-c", py_body(body), str(tmp_path)])
    assert run.returncode == 0, run.stderr
    unchanged = 2**32 - 1
    got = sorted((e.detail, e.arg0, e.arg1, e.errno)
                 for e in run.of(model.PrivEvent, pid=run.pid, op="chown"))
    assert got == sorted([
        (str(tmp_path / "plain"), 1000, 1000, 0),
        (str(tmp_path / "link"), 1001, unchanged, 0),
        (str(tmp_path / "viadir"), 0, 1002, 0),
        (str(tmp_path / "written"), 1003, 1003, 0),
        ("", 1004, unchanged, 0),
        (str(tmp_path / "missing"), 0, 0, 2),
    ])
    assert (tmp_path / "link").lstat().st_uid == 1001


def test_chown_of_system_files_raises_system_file_owner_changed(watched, py, tmp_path):
    """Refused (uid 65534: EPERM), so nothing changes; coreutils chown and chgrp, and Python.
    A chown -R of a workspace by root is seen and raises nothing."""
    (tmp_path / "build" / "sub").mkdir(parents=True)
    (tmp_path / "build" / "sub" / "a.o").write_text("o")
    attempts = {
        "chown /etc/shadow": f"{NOBODY} chown 65534 /etc/shadow",
        "chgrp /etc/ld.so.conf": f"{NOBODY} chgrp 65534 /etc/ld.so.conf",
        "python chown /etc/passwd": f"{NOBODY} {py} -c 'import os; os.chown(\"/etc/passwd\", 65534, -1)'",
    }
    for name, cmd in attempts.items():
        run = watched.run(["sh", "-c", cmd])
        assert run.returncode != 0, name
        recs = run.of(model.PrivEvent, op="chown")
        assert recs and all(e.errno == 1 for e in recs), (name, recs)
        assert rule_counts(watched, run)["system_file_owner_changed"] == 1, name
    benign = watched.run(["chown", "-R", "1000:1000", str(tmp_path / "build")])
    assert benign.returncode == 0, benign.stderr
    # fts dups each directory fd (F_DUPFD_CLOEXEC) and calls fchownat(copy, name): the copy
    # has the directory's path too
    paths = sorted(e.detail for e in benign.of(model.PrivEvent, op="chown"))
    assert paths == sorted([str(tmp_path / "build"), str(tmp_path / "build" / "sub"),
                            str(tmp_path / "build" / "sub" / "a.o")])
    assert watched.alerts(benign.events) == []


# ---- a secret read through a link ----------------------------------------------------------

def test_a_link_made_to_a_secret_raises_secret_file_linked(watched, py, tmp_path):
    """ln -s /etc/shadow x; cat x: the read of x matches no sensitive path, the link does.
    Relative symlink text is joined to the link's directory; hard links too."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_rsa").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    (home / ".ssh" / "id_rsa.pub").write_text("ssh-ed25519 AAAA\n")
    (home / ".aws").mkdir()
    (home / ".aws" / "credentials").write_text("[default]\n")
    work = tmp_path / "work"
    work.mkdir()
    up = "../" * len(work.parts[1:])
    attacks = {
        "ln -s /etc/shadow; cat": f"ln -s /etc/shadow {work}/x && cat {work}/x > /dev/null",
        "relative symlink": f"cd {work} && ln -s {up}etc/shadow y && cat y > /dev/null",
        "hard link to a key": f"ln {home}/.ssh/id_rsa {work}/notes.txt",
        "python symlink": f"{py} -c 'import os; os.symlink(\"../home/.aws/credentials\", "
                          f"\"{work}/cfg\")'",
    }
    for name, cmd in attacks.items():
        run = watched.run(["sh", "-c", cmd])
        assert run.returncode == 0, (name, run.stderr)
        assert rule_counts(watched, run)["secret_file_linked"] == 1, name
    benign = f"""
        set -e
        cd {work}
        ln -s {home}/.ssh/id_rsa.pub key.pub
        ln -s /etc/hostname h
        touch libfoo.so.1 && ln -sf libfoo.so.1 libfoo.so
    """
    run = watched.run(["sh", "-c", textwrap.dedent(benign)])
    assert run.returncode == 0, run.stderr
    assert len(run.of(model.LinkEvent)) == 3
    assert watched.alerts(run.events) == []
    shutil.rmtree(work)
