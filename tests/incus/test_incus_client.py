"""The standard-library Incus client (host.incus_rest) and its exec streams (host.websocket)
against the real daemon: what `run` relies on before its agent's first instruction."""

from __future__ import annotations

import sys
import threading
import uuid

import pytest

from incus_support import BUSYBOX, require_incus

pytestmark = pytest.mark.incus


@pytest.fixture(scope="module")
def box():
    require_incus()
    from coi_sentinel.host import incus
    from coi_sentinel.sessions.session import delete_container

    client = incus.connect()
    name = f"coi-client-{uuid.uuid4().hex[:8]}"
    body = {"name": name, "type": "container", "ephemeral": True, "profiles": ["default"],
            "source": {"type": "image", "alias": BUSYBOX}}
    with incus.api_call(f"create {name}"):
        client.operations.wait_for_operation(client.api.instances.post(json=body).json()["operation"])
    try:
        with incus.api_call(f"start {name}"):
            op = client.api.instances[name].state.put(json={"action": "start", "timeout": 30})
            client.operations.wait_for_operation(op.json()["operation"])
        yield client, name
    finally:
        delete_container(client, name)


def run(client, name, command):
    from coi_sentinel.sessions import streams

    out, err = [], []
    code = streams.exec_stream(client, name, command, environment={"HOME": "/root"}, uid=1000,
                               gid=1000, cwd="/", stdout=out.append, stderr=err.append)
    return code, b"".join(out), b"".join(err)


def test_exec_streams_both_outputs_the_exit_code_and_a_closed_stdin(box):
    client, name = box
    assert run(client, name, ["sh", "-c", "echo out; echo err >&2; exit 7"]) == (7, b"out\n", b"err\n")
    # stdin is at its end at once: cat returns and the command goes on
    assert run(client, name, ["sh", "-c", "cat; echo after"]) == (0, b"after\n", b"")
    # more than one websocket message, each byte once and in order
    code, out, _ = run(client, name, ["sh", "-c", "seq 1 100000"])
    assert code == 0 and out == b"".join(b"%d\n" % i for i in range(1, 100001))


def test_a_missing_command_and_a_missing_object_are_translated(box):
    from coi_sentinel.errors import IncusError
    from coi_sentinel.host import incus

    client, name = box
    with pytest.raises(IncusError, match="Command not found"):
        run(client, name, ["no-such-command-here"])
    with pytest.raises(IncusError, match="(?i)not found") as info:
        incus.raw_get(client, "instances/coi-no-such-instance-x")
    assert isinstance(info.value.__cause__, incus.not_found())
    assert incus.InstanceFiles(client, name).read("/no/such/file") is None


def test_files_round_trip_and_threads_share_one_client(box):
    from coi_sentinel.host import incus

    client, name = box
    files = incus.InstanceFiles(client, name)
    files.write("/tmp/coi-client-test", b"\x00binary\xff" * 1000, 0o600, 0, 0)
    assert files.read("/tmp/coi-client-test") == b"\x00binary\xff" * 1000
    seen, errors = [], []

    def reader():
        try:
            for _ in range(10):
                seen.append(incus.raw_get(client, f"instances/{name}")["name"])
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and seen == [name] * 40


def test_neither_pylxd_nor_ws4py_is_imported_on_the_way():
    import subprocess

    require_incus()
    code = ("import sys\nfrom coi_sentinel.host import incus\nfrom coi_sentinel.sessions import streams\n"
            "c = incus.connect()\nincus.raw_get(c, 'instances')\n"
            "print([m for m in ('pylxd', 'ws4py', 'requests', 'pyroute2') if m in sys.modules])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_client_never_holds_a_connection_that_carried_no_request():
    """incusd's accept loop waits for the first bytes of every connection (STARTTLS or not):
    a connection left open before its first request stops every other client of the daemon."""
    require_incus()
    import subprocess

    from coi_sentinel.host import incus

    client = incus.connect()            # made: nothing may stay open
    assert client._idle == []
    # another client is served at once, while ours exists
    subprocess.run(["incus", "query", "/1.0"], capture_output=True, check=True, timeout=10)
    incus.raw_get(client, "instances")  # one request: its connection is kept for the next
    assert len(client._idle) == 1
    subprocess.run(["incus", "query", "/1.0"], capture_output=True, check=True, timeout=10)
    client.close()


def test_an_exec_in_a_container_deleted_while_frozen_ends(box):
    """A session paused on an alert is frozen at the cgroup (the guardian writes cgroup.freeze;
    Incus still says Running) and may be killed in that state. An exec asked of it while
    frozen (a keeper staging the session) then never ends in Incus; the client notices the
    container is gone and gives up instead of waiting for ever (a keeper stayed behind so,
    holding its user)."""
    from coi_sentinel.errors import IncusError
    from coi_sentinel.host import incus
    from coi_sentinel.host.cgroups import container_cgroup, container_cgroup_path
    from coi_sentinel.sessions.session import delete_container

    client, _ = box
    name = f"coi-frozen-{uuid.uuid4().hex[:8]}"
    body = {"name": name, "type": "container", "ephemeral": True, "profiles": ["default"],
            "source": {"type": "image", "alias": BUSYBOX}}
    with incus.api_call(f"create {name}"):
        client.operations.wait_for_operation(client.api.instances.post(json=body).json()["operation"])
    ended: list = []
    try:
        with incus.api_call(f"start {name}"):
            op = client.api.instances[name].state.put(json={"action": "start", "timeout": 30})
            client.operations.wait_for_operation(op.json()["operation"])
        (container_cgroup(name) / "cgroup.freeze").write_text("1")
        asked = threading.Event()

        def sink(data: bytes) -> None:
            pass

        def exec_it() -> None:
            from coi_sentinel.sessions import streams

            asked.set()
            try:
                ended.append(streams.exec_stream(
                    incus.connect(), name, ["sh", "-c", "sleep 600"], environment={},
                    uid=0, gid=0, cwd="/", stdout=sink, stderr=sink))
            except IncusError as err:
                ended.append(err)

        t = threading.Thread(target=exec_it, daemon=True)
        t.start()
        assert asked.wait(30)
        t.join(3)                   # the exec is asked of a frozen container: it waits
        assert t.is_alive() and not ended, ended
    finally:
        delete_container(client, name)
    t.join(30)
    assert not t.is_alive(), "the exec still waits on a deleted container"
    # the exec ends with an error: the container is gone, or Incus' helper that was starting
    # the command in the frozen cgroup was killed with what the container left behind
    assert len(ended) == 1 and isinstance(ended[0], IncusError), ended
    # LXC leaves a frozen container's cgroup behind, frozen and empty: the deletion removes it
    assert not container_cgroup_path(name).exists()
