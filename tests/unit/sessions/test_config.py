import pytest

from coi_sentinel.errors import ConfigError
from coi_sentinel.sessions import config

pytestmark = pytest.mark.unit


@pytest.fixture
def files(tmp_path):
    user = tmp_path / "user.toml"
    ws = tmp_path / "ws"
    ws.mkdir()

    def write(user_text=None, ws_text=None):
        if user_text is not None:
            user.write_text(user_text)
        if ws_text is not None:
            (ws / config.WORKSPACE_FILE).write_text(ws_text)
        return config.load(ws, user_file=user)

    write.ws = ws
    write.user = user
    return write


def test_defaults_without_files(files):
    cfg = files()
    assert cfg == config.Config()
    assert cfg.protected_paths == (".git/hooks", ".git/config", ".vscode", ".husky")
    assert cfg.monitoring and cfg.network == "bridge" and not cfg.persistent


def test_user_then_workspace_then_overrides(files, tmp_path):
    cfg = files('tool = "claude"\nmax_slots = 3\nenv = ["A"]\n', 'tool = "aider"\npersistent = true\n')
    assert (cfg.tool, cfg.max_slots, cfg.persistent, cfg.env) == ("aider", 3, True, ("A",))
    assert cfg.source_of("tool").endswith(config.WORKSPACE_FILE)
    assert cfg.source_of("max_slots") == str(files.user)
    cfg = config.load(files.ws, user_file=files.user, overrides={"tool": "codex", "image": None})
    assert cfg.tool == "codex" and cfg.source_of("tool") == "command line"
    assert cfg.image == "coi/debian12"


@pytest.mark.parametrize("ws_text, named", [
    ("monitoring = false\n", "monitoring = false"),
    ('protected_paths = [".vscode"]\n', "protected_paths without"),
    ('env = ["AWS_SECRET_ACCESS_KEY"]\n', "env AWS_SECRET_ACCESS_KEY"),
    ('incus_profile = "privileged"\n', "incus_profile"),
    ('idmap = "shift"\n', "idmap"),
    ('[limits]\nmemory = "64GiB"\n', "limits"),
    ('[[mounts]]\nsource = "/etc"\npath = "/host-etc"\n', "outside the workspace"),
    ('[[mounts]]\nsource = "../sibling"\npath = "/s"\n', "outside the workspace"),
])
def test_workspace_cannot_weaken(files, ws_text, named):
    with pytest.raises(ConfigError) as err:
        files("", ws_text)
    assert "would weaken protection" in str(err.value) and named in str(err.value)
    assert "trusted_workspaces" in err.value.hint


def test_workspace_network_may_only_tighten(files):
    assert files('network = "bridge"\n', 'network = "none"\n').network == "none"
    with pytest.raises(ConfigError, match="network = 'bridge'"):
        files('network = "none"\n', 'network = "bridge"\n')


def test_workspace_may_add_protected_paths_and_mounts_inside(files):
    (files.ws / "data").mkdir()
    listed = ", ".join(f'"{p}"' for p in config.DEFAULT_PROTECTED + (".github",))
    cfg = files("", f'protected_paths = [{listed}]\n[[mounts]]\nsource = "data"\npath = "/data"\n')
    assert cfg.protected_paths == config.DEFAULT_PROTECTED + (".github",)
    assert cfg.mounts == (config.Mount(str((files.ws / "data").resolve()), "/data", True),)


def test_trusted_workspace_may_weaken(files):
    ws = files.ws
    cfg = files(f'trusted_workspaces = ["{ws}"]\n', "monitoring = false\nprotected_paths = []\n")
    assert cfg.monitoring is False and cfg.protected_paths == ()


def test_workspace_cannot_trust_itself(files):
    with pytest.raises(ConfigError, match="may only be set in"):
        files("", f'trusted_workspaces = ["{files.ws}"]\nmonitoring = false\n')


@pytest.mark.parametrize("text, msg", [
    ("nope = 1\n", "unknown key 'nope'"),
    ("max_slots = \"3\"\n", "max_slots must be a int"),
    ("monitoring = 1\n", "monitoring must be a bool"),
    ("max_slots = true\n", "max_slots must be a int"),
    ('network = "open-sesame"\n', "network must be one of"),
    ('prefix = "Bad"\n', "prefix"),
    ('protected_paths = ["/etc"]\n', "relative to the workspace"),
    ('protected_paths = ["../x"]\n', "relative to the workspace"),
    ("max_slots = 0\n", "1-999"),
    ("this is not toml\n", "user.toml"),
    ('[[mounts]]\nsource = "/x"\n', "mounts[0]"),
])
def test_bad_user_config(files, text, msg):
    with pytest.raises(ConfigError, match=msg.replace("[", r"\[").replace("]", r"\]")):
        files(text)
