import pytest

from coi_sentinel.errors import ProfileError, UnknownTool
from coi_sentinel.sessions import profiles

pytestmark = pytest.mark.unit


def test_shipped_profiles_load(tmp_path):
    all_ = profiles.load_all(tmp_path / "none")
    assert {"shell", "claude", "opencode", "codex", "aider"} <= set(all_)
    claude = all_["claude"]
    assert claude.command == ("claude",) and claude.state_dir == ".claude"
    assert claude.resume_args == ("--continue",)
    merged = [c for c in claude.credentials if c.merge == "json"]
    assert {c.path for c in merged} == {".claude.json", ".claude/settings.json"}
    assert "ANTHROPIC_API_KEY" in claude.env
    assert all_["shell"].credentials == () and all_["shell"].install_check
    for p in all_.values():
        assert p.install_hint, p.name


def test_user_profile_overrides_and_adds(tmp_path):
    (tmp_path / "shell.yaml").write_text("name: shell\ncommand: [bash]\n")
    (tmp_path / "mine.yaml").write_text("name: mine\ncommand: myagent --fast\n")
    all_ = profiles.load_all(tmp_path)
    assert all_["shell"].command == ("bash",)
    assert all_["mine"].command == ("myagent --fast",)
    assert profiles.get("mine", tmp_path).source == str(tmp_path / "mine.yaml")


def test_unknown_tool_lists_known(tmp_path):
    with pytest.raises(UnknownTool) as err:
        profiles.get("nope", tmp_path)
    assert "known: aider, claude, codex, opencode, shell" in str(err.value)


@pytest.mark.parametrize("text, where", [
    ("name: x\ncommand: [a]\nbogus: 1\n", "x.yaml:3: unknown key 'bogus'"),
    ("name: x\ncommand: [a]\nname: y\n", "x.yaml:3: duplicate key 'name'"),
    ("name: x\n", "x.yaml:1: missing key 'command'"),
    ("name: x\ncommand: []\n", "x.yaml:2: command is empty"),
    ("name: x\ncommand: [a]\nenv: [BAD-NAME]\n", "x.yaml:3: 'BAD-NAME' is not a variable name"),
    ("name: x\ncommand: [a]\ncredentials:\n  - /etc/shadow\n", "x.yaml:3: '/etc/shadow' must be a path relative"),
    ("name: x\ncommand: [a]\ncredentials:\n  - ../.ssh/id_rsa\n", "must be a path relative"),
    ("name: x\ncommand: [a]\ncredentials:\n  - {path: a, merge: toml}\n", "merge must be one of"),
    ("name: x\ncommand: [a]\ncredentials:\n  - {path: a, settings: {k: 1}}\n", "needs merge: json"),
    ("name: x\ncommand: [a]\nstate_dir: /abs\n", "x.yaml:3: '/abs' must be a path relative"),
    ("name: x\ncommand: [a\n", "x.yaml:"),
    ("- a\n- b\n", "x.yaml:1: a profile must be a mapping"),
])
def test_profile_errors_name_file_and_line(tmp_path, text, where):
    (tmp_path / "x.yaml").write_text(text)
    with pytest.raises(ProfileError) as err:
        profiles.load_all(tmp_path)
    assert where in str(err.value)


def test_name_must_match_file(tmp_path):
    (tmp_path / "a.yaml").write_text("name: b\ncommand: [x]\n")
    with pytest.raises(ProfileError, match="does not match the file name"):
        profiles.load_all(tmp_path)
