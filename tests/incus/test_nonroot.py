"""No sudo for users: a member of the daemon's group runs, lists, watches and kills their own
monitored sessions without root, and cannot act on another user's session through the daemon
(docs/daemon.md, "Without root").

The test makes two users and removes them at the end: ``owner``, whose uid is the one this
host maps into containers (``root:1000:1`` in /etc/subuid, written by scripts/setup-incus.sh:
an unprivileged user's workspace is mapped to the agent only for such a uid; an existing user
of that uid is left alone, ``useradd -o``), and ``other``, any uid. Both are in the daemon's
group, which also owns the Incus socket. The daemon is this worker's, started by root.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from incus_support import Env, require_incus

pytestmark = pytest.mark.incus

GROUP = "incus-admin"
#: the uid setup-incus.sh maps into containers (COI_IDMAP_UID)
MAPPED_UID = 1000


def _incus_socket_missing() -> str | None:
    from coi_sentinel.host import incus

    sock = Path(incus.socket_path())
    try:
        gid = grp.getgrnam(GROUP).gr_gid
    except KeyError:
        return f"group {GROUP} does not exist (scripts/setup-incus.sh daemon makes it)"
    st = sock.stat()
    if st.st_gid != gid or st.st_mode & 0o060 != 0o060:
        return (f"the Incus socket {sock} is not usable by group {GROUP} "
                "(run: bash scripts/setup-incus.sh daemon)")
    if subprocess.run(["which", "useradd"], capture_output=True).returncode != 0:
        return "useradd is missing"
    return None


class User:
    def __init__(self, name: str, uid: int, gid: int) -> None:
        self.name, self.uid, self.gid = name, uid, gid


def _add_user(prefix: str, *args: str) -> User:
    name = f"{prefix}{secrets.token_hex(3)}"
    subprocess.run(["useradd", "-M", "-N", "-s", "/usr/sbin/nologin", "-G", GROUP, *args, name],
                   check=True, capture_output=True)
    pw = pwd.getpwnam(name)
    return User(name, pw.pw_uid, pw.pw_gid)


def _del_user(user: User) -> str | None:
    """Remove ``user``; why not, when it could not be (a process of theirs left behind)."""
    r = subprocess.run(["userdel", user.name], capture_output=True, text=True)
    return None if r.returncode == 0 else f"userdel {user.name}: {r.stderr.strip()}"


@pytest.fixture
def users():
    require_incus()
    why = _incus_socket_missing()
    if why:
        pytest.skip(why)
    made = []
    try:
        try:
            mapped_gid = pwd.getpwuid(MAPPED_UID).pw_gid
        except KeyError:
            mapped_gid = None
        owner_args = ["-o", "-u", str(MAPPED_UID)]
        if mapped_gid is not None:      # the primary group the daemon gives the audit folder
            owner_args += ["-g", str(mapped_gid)]
        else:
            owner_args += ["-g", "users"]
        made.append(_add_user("coinro", *owner_args))
        made.append(_add_user("coinrx"))
        yield made[0], made[1]
    finally:
        left = [why for u in made if (why := _del_user(u))]
        if left:
            pytest.fail(f"users left behind: {left}")


class UserEnv(Env):
    """An Env whose CLI runs as ``user`` (not root), its home and workspace in a folder the
    user can reach (pytest's tmp_path is root's, 0700)."""

    def __init__(self, root: Path, user: User) -> None:
        super().__init__(root)
        self.user = user
        for path in [self.home, *self.home.rglob("*")]:
            os.chown(path, user.uid, user.gid)

    @property
    def env(self) -> dict[str, str]:
        env = super().env
        env.update(USER=self.user.name, LOGNAME=self.user.name)
        env.pop("SUDO_USER", None)
        return env

    def _as_user(self) -> dict:
        return {"user": self.user.uid, "group": self.user.gid,
                "extra_groups": [grp.getgrnam(GROUP).gr_gid]}

    def run(self, *args: str, timeout: float = 120, cwd: Path | None = None):
        from incus_support import Result

        p = subprocess.run(self.argv(*args), cwd=cwd or self.ws, env=self.env, capture_output=True,
                           text=True, timeout=timeout, stdin=subprocess.DEVNULL, **self._as_user())
        return Result(p.returncode, p.stdout, p.stderr)

    def popen(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(self.argv(*args), cwd=self.ws, env=self.env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, **self._as_user())

    def python(self, code: str) -> dict:
        """Run ``code`` as the user; it prints one JSON object, returned."""
        p = subprocess.run([sys.executable, "-c", code], env=self.env, capture_output=True,
                           text=True, timeout=60, cwd="/", **self._as_user())
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout)


#: run as the other user: every way through the daemon to the owner's session, and what it said
TRESPASS = """
import json, sys
from coi_sentinel.daemon import protocol as P
from coi_sentinel.daemon.client import DaemonClient
from coi_sentinel.host import paths
name = sys.argv[1] if len(sys.argv) > 1 else {name!r}
out = {{}}
def ask(key, op, **fields):
    try:
        with DaemonClient.connect() as c:
            out[key] = ["ok", c.request(op, **fields)]
    except P.DaemonError as err:
        out[key] = [err.code, str(err)]
for op in ("pause", "resume", "kill", "processes", "settle", "unregister"):
    ask(op, op, name=name)
ask("register", "register", name=name, cgroup={cgroup!r}, audit=str(paths.audit_log(name)),
    tool="shell", network="restricted")
ask("net-remove", "network", do="remove", name=name)
ask("net-apply", "network", do="apply", name=name, policy={{"mode": "open"}}, ifname=None)
ask("net-block", "network", do="block", name=name, address="10.123.45.1", port=None)
try:
    with DaemonClient.connect() as c:
        c.request("subscribe", scopes=[name], what=["events"])
        out["subscribe"] = ["ok", None]
except P.DaemonError as err:
    out["subscribe"] = [err.code, str(err)]
with DaemonClient.connect() as c:
    out["status"] = [s["name"] for s in c.request("status")["scopes"]]
print(json.dumps(out))
"""


def _policies() -> list[str]:
    from coi_sentinel.errors import NetworkError
    from coi_sentinel.network import Firewall

    try:
        return [s["session"] for s in Firewall().sessions()]
    except NetworkError:
        return []


def _scope_state(env: Env, name: str) -> str | None:
    from coi_sentinel.daemon.client import DaemonClient

    with DaemonClient.connect(env.socket) as c:
        scope = {s["name"]: s for s in c.request("status")["scopes"]}.get(name)
    return None if scope is None else scope["state"]


def _wait(what: str, check, timeout: float = 90.0, run: subprocess.Popen | None = None,
          env: Env | None = None):
    """Wait for ``check``; if ``run`` (a `coi-sentinel run` in the background) ends first, or
    the time is up, fail with what it printed, the scope's state and the daemon's log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if run is not None and run.poll() is not None:
            raise AssertionError(f"{what}: `run` ended first ({run.returncode}): "
                                 f"{run.communicate()[1][-3000:]}\n{_daemon_state(env)}")
        time.sleep(0.2)
    raise AssertionError(f"{what} did not happen within {timeout} s\n{_daemon_state(env)}")


def _daemon_state(env: Env | None) -> str:
    if env is None:
        return ""
    from coi_sentinel.daemon.client import DaemonClient, log_path

    try:
        with DaemonClient.connect(env.socket) as c:
            scopes = c.request("status")["scopes"]
    except Exception as err:    # noqa: BLE001 - a diagnostic, whatever went wrong
        scopes = repr(err)
    log = log_path(env.socket)
    tail = log.read_text(errors="replace")[-4000:] if log.exists() else "(no daemon log)"
    return f"scopes: {scopes}\npolicies: {_policies()}\ndaemon log:\n{tail}"


def test_a_group_member_runs_lists_watches_and_kills_their_session_without_root(users):
    from coi_sentinel.daemon import peers
    from coi_sentinel.daemon.client import DaemonClient, ensure_daemon
    from coi_sentinel.host import cgroups, incus, naming, paths
    from coi_sentinel.sessions.session import delete_container

    owner, other = users
    base = Path(tempfile.mkdtemp(prefix="coi-nonroot-"))
    os.chmod(base, 0o755)
    env = UserEnv(base, owner)
    (env.home / ".config/coi-sentinel/config.toml").write_text(
        'image = "coi/busybox"\nmonitoring = true\n')       # network: restricted (the default)
    intruder = UserEnv(Path(tempfile.mkdtemp(prefix="coi-nonroot-", dir=base)), other)
    name = naming.container_name("coi", env.ws, 1)
    audit_folder = paths.user_audit_dir(owner.uid)
    ensure_daemon(env.socket)             # root starts the worker's daemon; users never do
    p = None
    try:
        # a headless monitored session, start to end, as the owner
        r = env.run("run", "--", "sh", "-c", "echo hi; id -u")
        assert r.code == 0, r.err
        assert r.out.split() == ["hi", "1000"], r.out
        audit = audit_folder / f"{name}.jsonl"
        st = audit.stat()             # written by the daemon, readable by the owner, not theirs
        assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (0, owner.gid, 0o640)
        records = [json.loads(line) for line in audit.read_text().splitlines()]
        assert {"record": "monitor", "event": "start"}.items() <= records[1].items()
        assert records[0]["cgroup"].endswith(f"lxc.payload.{name}")
        # the container's own start (Incus making /dev links from the host) raises nothing
        assert not [r for r in records if r.get("record") in ("alert", "action")], records
        assert "report:" in r.err and "not written" not in r.err, r.err
        assert name not in _policies()                      # the daemon removed the nft policy

        # a long session: the owner lists and watches it; the other user reaches nothing
        p = env.popen("run", "--", "sh", "-c", "echo started; sleep 600")
        _wait("the session to run", lambda: [s for s in env.sessions() if s["state"] == "Running"],
              run=p, env=env)
        with DaemonClient.connect(env.socket) as c:
            scope = {s["name"]: s for s in c.request("status")["scopes"]}[name]
        assert scope["owner_uid"] == owner.uid and scope["state"] == "running"
        token = incus.raw_get(incus.connect(), f"instances/{name}")["config"]["user.coi.keeper"]
        assert peers.process_uid(int(token.split(":")[1])) == owner.uid     # `run` is not root
        assert name in _policies()
        w = env.run("watch", "--container", name, "--json", "--duration", "1")
        assert w.code == 0, w.err
        cgroup = str(cgroups.container_cgroup(name))
        seen = intruder.python(TRESPASS.format(name=name, cgroup=cgroup))
        for op in ("pause", "resume", "kill", "processes", "settle", "unregister", "register",
                   "net-remove", "net-apply", "net-block", "subscribe"):
            assert seen[op][0] == "denied", (op, seen[op])
        assert f"belongs to uid {owner.uid}" in seen["kill"][1]
        assert seen["status"] == []
        with DaemonClient.connect(env.socket) as c:          # nothing happened to it
            assert {s["name"]: s for s in c.request("status")["scopes"]}[name]["state"] == "running"

        # the owner kills it: container, scope and policy go
        k = env.run("kill", name)
        assert k.code == 0, k.err
        p.wait(timeout=60)
        assert name not in env.containers()
        with DaemonClient.connect(env.socket) as c:
            assert name not in {s["name"] for s in c.request("status")["scopes"]}
        _wait("the policy to go", lambda: name not in _policies(), 10)

        # the owner's run dies (SIGKILL): the daemon pauses the orphan; once its container is
        # deleted behind everyone's back, the daemon forgets it and removes its policy itself
        p = env.popen("run", "--", "sh", "-c", "sleep 600")
        _wait("the second session", lambda: name in _policies() and _scope_state(env, name) == "running",
              run=p, env=env)
        p.kill()
        p.wait()
        _wait("the orphan", lambda: _scope_state(env, name) == "orphan", 20)
        delete_container(incus.connect(), name)
        _wait("the daemon to forget the orphan", lambda: _scope_state(env, name) is None, 20)
        _wait("the daemon to remove its policy", lambda: name not in _policies(), 20)

        # an interactive session: its keeper (the user's process) owns it, detached
        d = env.run("run", "-d")
        assert d.code == 0, d.err
        info = {s["name"]: s for s in env.sessions()}[name]
        assert (info["mode"], info["state"], info["orphan"]) == ("interactive", "Running", False)
        assert _scope_state(env, name) == "running"
        k = env.run("kill", name)
        assert k.code == 0, k.err
        _wait("the keeper's session to end", lambda: _scope_state(env, name) is None
              and name not in _policies(), 30)
    finally:
        if p is not None and p.poll() is None:
            p.kill()
            p.wait()
        client = incus.connect()
        for left in env.containers():
            delete_container(client, left)
        env.remove_policies()
        for f in audit_folder.glob(f"{name}*"):
            f.unlink()
        for folder in (audit_folder, audit_folder.parent, audit_folder.parent.parent):
            if folder.is_dir() and not [x for x in folder.iterdir() if x.name != ".head.key"]:
                shutil.rmtree(folder)
        shutil.rmtree(base)
