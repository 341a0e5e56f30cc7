"""Audit logs are as readable as their folder: a user's folder kept by the daemon (root's,
group the user's, 2750) gives 0640 logs and heads whatever the umask; the head key stays 0600."""

import os

import pytest

from coi_sentinel.audit.log import AuditLog, file_mode

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("mode,want", [(0o700, 0o600), (0o2750, 0o640), (0o750, 0o640), (0o710, 0o600)])
def test_file_mode_follows_the_folder(tmp_path, mode, want):
    d = tmp_path / "audit"
    d.mkdir()
    os.chmod(d, mode)
    assert file_mode(d) == want


def test_a_log_in_a_shared_folder_is_group_readable_but_not_its_key(tmp_path):
    d = tmp_path / "audit"
    d.mkdir()
    os.chmod(d, 0o2750)
    old = os.umask(0o077)
    try:
        log = AuditLog(d / "s-1.jsonl")
        log.write_record({"record": "monitor", "event": "start"}, sync=True)
        log.rotate()
        log.close()
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in d.iterdir()}
    assert modes.pop(".head.key") == 0o600
    assert modes and set(modes.values()) == {0o640}, modes


def test_a_private_folder_keeps_private_logs(tmp_path):
    d = tmp_path / "audit"
    log = AuditLog(d / "s-1.jsonl")
    log.write_record({"record": "monitor", "event": "start"}, sync=True)
    log.close()
    assert {p.stat().st_mode & 0o777 for p in d.iterdir()} == {0o600}
