"""Sessions on the real daemon: `coi-sentinel run/list/shutdown/kill/clean` end to end."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import time

import pytest

from incus_support import AGENT_UID, DEBIAN, require_incus

pytestmark = pytest.mark.incus


def one_error_line(err: str) -> str:
    # the tests' config turns monitoring off, which `run` rightly warns about on every run
    lines = [line for line in err.splitlines() if line.strip() and "is NOT monitored" not in line]
    assert len(lines) == 1, err
    assert lines[0].startswith("coi-sentinel: error: "), err
    return lines[0]


def test_headless_run_writes_as_host_user_and_prints_uid(env):
    r = env.run("run", "--", "sh", "-c", "echo hi > /workspace/out; id -u")
    assert r.code == 0, r.err
    assert r.out == f"{AGENT_UID}\n"
    out = env.ws / "out"
    assert out.read_text() == "hi\n"
    st = out.stat()
    assert (st.st_uid, st.st_gid) == (env.ws.stat().st_uid, env.ws.stat().st_gid)
    assert env.containers() == []


def test_headless_exit_code_and_stderr_stream(env):
    r = env.run("run", "--", "sh", "-c", "echo to-out; echo to-err >&2; exit 42")
    assert r.code == 42
    assert r.out == "to-out\n"
    assert "to-err" in r.err


def test_host_home_is_not_visible(env):
    ssh = env.home / ".ssh"
    ssh.mkdir()
    (ssh / "id_ed25519").write_text("SENTINEL-PRIVATE-KEY\n")
    (env.home / "notes.txt").write_text("SENTINEL-HOME-FILE\n")
    script = (f"test ! -e {env.home}; test ! -e {ssh}; test ! -e /root/.ssh/id_ed25519; "
              "! grep -rqs SENTINEL / --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev; "
              "echo checked")
    r = env.run("run", "--", "sh", "-c", script)
    assert (r.code, r.out) == (0, "checked\n"), r.err


def test_protected_paths_are_read_only(env):
    hooks = env.ws / ".git/hooks"
    hooks.mkdir(parents=True)
    (env.ws / ".git/config").write_text("[core]\n")
    for p in (env.ws / ".git", hooks, env.ws / ".git/config"):
        os.chown(p, AGENT_UID, AGENT_UID)
    r = env.run("run", "--", "sh", "-c",
                "touch /workspace/.git/hooks/pre-commit; a=$?; "
                "echo evil >> /workspace/.git/config; b=$?; "
                "touch /workspace/.git/other; c=$?; echo $a $b $c")
    assert r.code == 0, r.err
    a, b, c = r.out.split()
    assert a != "0" and b != "0" and c == "0", (r.out, r.err)
    assert "Read-only file system" in r.err
    assert list(hooks.iterdir()) == []
    assert (env.ws / ".git/config").read_text() == "[core]\n"
    assert (env.ws / ".git/other").exists()


def test_two_slots_list_and_shutdown(env):
    procs = [env.popen("run", "--", "sleep", "120") for _ in range(2)]
    try:
        running = env.wait_sessions(2, procs=tuple(procs))
        names = sorted(s["name"] for s in running)
        assert [n.rsplit("-", 1)[1] for n in names] == ["1", "2"]
        assert all(s["tool"] == "shell" and not s["orphan"] for s in running)
        r = env.run("list")
        assert r.code == 0 and all(n in r.out for n in names)
        r = env.run("shutdown")
        assert r.code == 0, r.err
        codes = [p.wait(timeout=60) for p in procs]
        assert codes == [4, 4]          # documented: the session was shut down while CMD ran
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert env.containers() == []


def test_clean_orphans_after_kill_9_of_run(env):
    p = env.popen("run", "--", "sleep", "300")
    try:
        [s] = env.wait_sessions(1, procs=(p,))
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
    [s] = env.sessions()
    assert s["orphan"] is True and s["state"] == "Running"
    r = env.run("clean", "--orphans", "-w", str(env.ws))
    assert r.code == 0, r.err
    assert f"removed {s['name']} (orphan" in r.out
    assert env.containers() == []


def test_persistent_session_is_kept_then_cleaned(env):
    r = env.run("run", "--persistent", "--", "sh", "-c", "echo kept > /root/x 2>/dev/null; true")
    assert r.code == 0, r.err
    [s] = env.sessions()
    assert s["state"] == "Stopped" and s["persistent"] is True
    r = env.run("clean", "-w", str(env.ws))
    assert "(stopped)" in r.out
    assert env.containers() == []


STATE_PROFILE = """\
name: statetest
description: a test agent with a state directory
command: [sh]
state_dir: .state
resume_args: []
"""


def test_resume_restores_state_and_does_not_follow_planted_links(env, tmp_path):
    env.profile("statetest", STATE_PROFILE)
    secret = tmp_path / "host-secret"
    secret.write_text("HOST-ONLY\n")
    plant = ("mkdir -p ~/.state/sub && echo v1 > ~/.state/file && echo deep > ~/.state/sub/f && "
             f"ln -s {secret} ~/.state/hostlink && ln -s /etc ~/.state/etclink && "
             "ln -s ../../../../ ~/.state/sub/up && mkfifo ~/.state/fifo && echo planted")
    r = env.run("run", "--tool", "statetest", "--", "sh", "-c", plant)
    assert (r.code, r.out) == (0, "planted\n"), r.err
    saved_root = env.home / ".local/state/coi-sentinel/sessions"
    [saved] = [p for p in saved_root.iterdir() if not p.name.startswith(".")]
    files = sorted(str(p.relative_to(saved / "state")) for p in (saved / "state").rglob("*"))
    assert files == ["file", "sub", "sub/f"]
    for p in (saved / "state").rglob("*"):
        assert not p.is_symlink()
        if p.is_file():
            assert stat.S_IMODE(p.stat().st_mode) & 0o077 == 0
    assert secret.read_text() == "HOST-ONLY\n"
    meta = json.loads((saved / "meta.json").read_text())
    assert meta["skipped"] == {"fifo": 1, "symlink": 3}
    r = env.run("run", "--tool", "statetest", "--resume", "--",
                "sh", "-c", "cat ~/.state/file ~/.state/sub/f; stat -c '%u %a' ~/.state/file")
    assert (r.code, r.out) == (0, f"v1\ndeep\n{AGENT_UID} 600\n"), r.err


def test_state_dir_replaced_by_symlink_is_not_saved(env, tmp_path):
    env.profile("statetest", STATE_PROFILE)
    r = env.run("run", "--tool", "statetest", "--", "sh", "-c", "ln -s /etc ~/.state; echo ok")
    assert r.code == 0, r.err
    assert "not saved" in r.err
    saved_root = env.home / ".local/state/coi-sentinel/sessions"
    assert not saved_root.exists() or [p for p in saved_root.iterdir()] == []


CRED_PROFILE = """\
name: credtest
description: a test agent with credentials
command: [sh]
credentials:
  - .creds/token
  - path: .settings.json
    merge: json
    settings: {forced: true, nested: {b: 2}}
  - .absent-on-host
env: [COI_TEST_FORWARDED]
"""


def test_credentials_are_staged_0600_and_settings_merged(env):
    env.profile("credtest", CRED_PROFILE)
    (env.home / ".creds").mkdir()
    (env.home / ".creds/token").write_text("TOKEN-123\n")
    (env.home / ".settings.json").write_text(json.dumps({"host": "kept", "nested": {"a": 1}}))
    os.chmod(env.home / ".creds/token", 0o644)
    script = ("stat -c '%a %u %g' ~/.creds/token ~/.settings.json ~/.creds; cat ~/.creds/token; "
              "cat ~/.settings.json; test ! -e ~/.absent-on-host && echo absent; "
              "echo fwd=$COI_TEST_FORWARDED; cat /proc/*/cmdline 2>/dev/null | "
              "grep -c forwarded-secret-valu[e] || true")
    environ = env.env
    r = subprocess.run(env.argv("run", "--tool", "credtest", "--", "sh", "-c", script),
                       cwd=env.ws, env={**environ, "COI_TEST_FORWARDED": "forwarded-secret-value"},
                       capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[:3] == ["600 1000 1000", "600 1000 1000", "700 1000 1000"]
    assert lines[3] == "TOKEN-123"
    settings = json.loads("\n".join(lines[4:lines.index("absent")]))
    assert settings == {"host": "kept", "nested": {"a": 1, "b": 2}, "forced": True}
    assert "fwd=forwarded-secret-value" in lines
    assert lines[-1] == "0"        # the value is in the environment, on no command line


def test_bad_input_gives_one_line_and_leaves_nothing(env, tmp_path):
    cases = [
        (("run", "--tool", "no-such-tool", "--", "true"), "unknown tool 'no-such-tool'"),
        (("run", "-w", str(tmp_path / "missing"), "--", "true"), "does not exist"),
        (("run", "--image", "coi/no-such-image", "--", "true"), "is not in the Incus image store"),
        (("run", "--tool", "claude", "--", "true"), "install check failed"),
        (("attach", "coi-00000000-1"), "coi-00000000-1"),
    ]
    for args, expected in cases:
        r = env.run(*args)
        assert r.code == 1, (args, r.err)
        assert expected in one_error_line(r.err), args
        assert env.containers() == []


def test_name_clash_and_slot_limit(env):
    p = env.popen("run", "--slot", "3", "--", "sleep", "120")
    try:
        [s] = env.wait_sessions(1, procs=(p,))
        assert s["name"].endswith("-3")
        r = env.run("run", "--slot", "3", "--", "true")
        assert r.code == 1 and "already exists" in one_error_line(r.err)
        env.config(image="coi/busybox", monitoring=False, max_slots=1)
        q = env.popen("run", "--", "sleep", "120")      # slot 1 is free: fits
        env.wait_sessions(2, procs=(p, q))
        r = env.run("run", "--", "true")
        assert r.code == 1 and "all 1 session slots" in one_error_line(r.err)
        q.terminate()
        assert q.wait(timeout=60) == 4
    finally:
        p.terminate()
        p.wait(timeout=60)
    assert env.containers() == []


def test_ctrl_c_during_start_up_leaves_nothing(env):
    p = env.popen("run", "--", "sleep", "120")
    deadline = time.monotonic() + 60
    while not env.containers() and time.monotonic() < deadline:
        time.sleep(0.02)             # the container exists: start-up is under way
    p.send_signal(signal.SIGINT)
    assert p.wait(timeout=60) == 130
    assert env.containers() == []


def test_container_dying_mid_session(env):
    from coi_sentinel.host import incus

    p = env.popen("run", "--", "sleep", "120")
    try:
        [s] = env.wait_sessions(1, procs=(p,))
        client = incus.connect()
        op = client.api.instances[s["name"]].state.put(json={"action": "stop", "force": True})
        client.operations.wait_for_operation(op.json()["operation"])
        code = p.wait(timeout=60)
        err = p.stderr.read()
    finally:
        if p.poll() is None:
            p.kill()
    assert code == 1
    assert "stopped during the session" in one_error_line(err)
    assert env.containers() == []


def test_workspace_config_cannot_weaken_protection(env):
    (env.ws / ".coi-sentinel.toml").write_text('protected_paths = []\nnetwork = "open"\n')
    env.config(image="coi/busybox", monitoring=False, network="none")
    r = env.run("run", "--", "true")
    assert r.code == 1
    line = one_error_line(r.err)
    assert "would weaken protection" in line and "network" in line and "trusted_workspaces" in line
    env.config(image="coi/busybox", monitoring=False, network="none",
               trusted_workspaces=[str(env.ws)])
    r = env.run("run", "--", "sh", "-c", "test -e /sys/class/net/eth0 && echo nic || echo no-nic")
    assert (r.code, r.out) == (0, "nic\n"), r.err


def test_network_none_has_no_nic(env):
    r = env.run("run", "--network", "none", "--", "sh", "-c", "ls /sys/class/net")
    assert (r.code, r.out.split()) == (0, ["lo"]), r.err


def test_debian_session_image_has_the_tools(env):
    require_incus(DEBIAN)
    env.config(image=DEBIAN, monitoring=False)
    r = env.run("run", "--", "sh", "-c",
                "id -un; command -v bash git python3 tmux >/dev/null && echo tools; "
                "test -e /etc/ssl/certs/ca-certificates.crt && echo certs")
    assert (r.code, r.out) == (0, "code\ntools\ncerts\n"), r.err


def test_image_list_marks_current_images(env):
    r = env.run("image", "list", "--json")
    assert r.code == 0, r.err
    images = {a: i for i in json.loads(r.out) for a in i["aliases"]}
    assert images["coi/busybox"]["status"] == "current"
    r = env.run("image", "build", "--variant", "busybox")
    assert (r.code, r.out.split(":")[1].split("(")[0].strip()) == (0, "up to date"), r.err


def test_preserve_path_mounts_at_the_host_path(env):
    r = env.run("run", "--preserve-path", "--", "sh", "-c",
                "pwd; echo x > here; ls -A /workspace | wc -l")
    assert (r.code, r.out.split()) == (0, [os.path.realpath(env.ws), "0"]), r.err
    assert (env.ws / "here").read_text() == "x\n"


def test_raw_idmap_maps_only_the_agent(env):
    env.config(image="coi/busybox", monitoring=False, idmap="raw")
    r = env.run("run", "--", "sh", "-c", "id -u > /workspace/by-agent; echo ok")
    assert (r.code, r.out) == (0, "ok\n"), r.err
    assert (env.ws / "by-agent").stat().st_uid == AGENT_UID


def test_workspace_of_another_owner_needs_a_subuid_line(env):
    os.chown(env.ws, 4242, 4242)
    r = env.run("run", "--", "true")
    assert r.code == 1
    line = one_error_line(r.err)
    assert "root:4242:1" in line and "/etc/subuid" in line
    assert env.containers() == []


CRED_IN_STATE_PROFILE = """\
name: credtest
description: a test agent whose credential lies inside its state directory (as claude's)
command: [sh]
credentials:
  - path: .state/token
state_dir: .state
resume_args: []
"""


def test_resume_keeps_the_freshly_staged_credential_and_saves_no_copy(env):
    """Issue 17: --resume restored the saved copy of a credential over the one just staged,
    and the saved state kept a second copy of the secret on the host."""
    env.profile("credtest", CRED_IN_STATE_PROFILE)
    token = env.home / ".state/token"
    token.parent.mkdir()
    token.write_text("OLD\n")
    r = env.run("run", "--tool", "credtest", "--", "sh", "-c", "cat ~/.state/token; echo conv > ~/.state/history")
    assert (r.code, r.out) == (0, "OLD\n"), r.err
    saved_root = env.home / ".local/state/coi-sentinel/sessions"
    [saved] = [p for p in saved_root.iterdir() if not p.name.startswith(".")]
    assert sorted(p.name for p in (saved / "state").iterdir()) == ["history"]
    (saved / "state/token").write_text("STALE\n")       # as a state saved before the fix
    token.write_text("NEW\n")                            # the user logged in again
    r = env.run("run", "--tool", "credtest", "--resume", "--", "sh", "-c", "cat ~/.state/token ~/.state/history")
    assert (r.code, r.out) == (0, "NEW\nconv\n"), r.err
    assert not (saved / "state/token").exists()          # the old copy is gone from the host
    assert env.containers() == []
