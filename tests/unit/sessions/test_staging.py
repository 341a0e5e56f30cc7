import json
import os

import pytest

from coi_sentinel.errors import StagingError
from coi_sentinel.sessions import profiles, staging

pytestmark = pytest.mark.unit

PROFILE = """\
name: t
command: [t]
credentials:
  - .t/token
  - path: .t/settings.json
    merge: json
    settings: {forced: {enabled: true}}
  - path: .only-settings.json
    merge: json
    settings: {made: 1}
  - .missing
"""


class MemoryFiles:
    """staging.FileAPI over a dict: path -> (data, mode, uid, gid); directories as None data."""

    def __init__(self, existing=None):
        self.files = dict(existing or {})
        self.calls = []

    def read(self, path):
        entry = self.files.get(path)
        return None if entry is None else entry[0]

    def mkdir(self, path, mode, uid, gid):
        self.calls.append(("mkdir", path))
        self.files.setdefault(path, (None, mode, uid, gid))

    def write(self, path, data, mode, uid, gid):
        self.calls.append(("write", path))
        self.files[path] = (data, mode, uid, gid)


@pytest.fixture
def profile():
    return profiles.parse(PROFILE, "t.yaml")


@pytest.fixture
def home(tmp_path):
    (tmp_path / ".t").mkdir()
    (tmp_path / ".t/token").write_bytes(b"secret\n")
    (tmp_path / ".t/settings.json").write_text(json.dumps({"host": 1, "forced": {"off": 0}}))
    return tmp_path


def test_plan_reads_existing_files_only(profile, home):
    plan = staging.plan(profile, home)
    assert [s.rel for s in plan] == [".t/token", ".t/settings.json", ".only-settings.json"]
    assert plan[0].data == b"secret\n"


def test_push_writes_0600_as_agent_and_merges_json(profile, home):
    existing = {"/home/code/.t/settings.json": (b'{"image": "default", "host": 0}', 0o644, 0, 0)}
    files = MemoryFiles(existing)
    written = staging.push(files, staging.plan(profile, home), "/home/code", 1000, 1000)
    assert written == ["/home/code/.t/token", "/home/code/.t/settings.json",
                       "/home/code/.only-settings.json"]
    data, mode, uid, gid = files.files["/home/code/.t/token"]
    assert (data, mode, uid, gid) == (b"secret\n", 0o600, 1000, 1000)
    assert files.files["/home/code/.t"][1:] == (0o700, 1000, 1000)
    merged = json.loads(files.files["/home/code/.t/settings.json"][0])
    assert merged == {"image": "default", "host": 1, "forced": {"off": 0, "enabled": True}}
    assert json.loads(files.files["/home/code/.only-settings.json"][0]) == {"made": 1}
    assert files.calls.count(("mkdir", "/home/code/.t")) == 1


def test_deep_merge():
    assert staging.deep_merge({"a": {"b": 1, "c": 2}, "d": 1}, {"a": {"b": 3}, "e": [1]}) == \
        {"a": {"b": 3, "c": 2}, "d": 1, "e": [1]}
    assert staging.deep_merge({"a": {"b": 1}}, {"a": 5}) == {"a": 5}


def test_required_missing_file(home):
    p = profiles.parse("name: t\ncommand: [t]\ncredentials:\n  - {path: .nope, optional: false}\n", "t.yaml")
    with pytest.raises(StagingError, match="needs ~/.nope"):
        staging.plan(p, home)


def test_bad_json_on_host_is_one_clear_error(profile, home):
    (home / ".t/settings.json").write_text("{not json")
    with pytest.raises(StagingError, match=r"~/.t/settings.json is not valid JSON"):
        staging.plan(profile, home)


def test_not_a_regular_file(profile, home):
    os.unlink(home / ".t/token")
    os.mkfifo(home / ".t/token")
    with pytest.raises(StagingError, match="not a regular file"):
        staging.plan(profile, home)


def test_too_large(profile, home):
    (home / ".t/token").write_bytes(b"x" * (staging.MAX_BYTES + 1))
    with pytest.raises(StagingError, match="larger than"):
        staging.plan(profile, home)
