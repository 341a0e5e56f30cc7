import pytest

from coi_sentinel.errors import ConfigError
from coi_sentinel.sessions import config

pytestmark = pytest.mark.unit


def test_defaults_without_files(files):
    cfg = files()
    assert cfg == config.Config()
    assert cfg.protected_paths == (".git/hooks", ".git/config", ".vscode", ".husky", ".venv")
    assert cfg.monitoring and cfg.network == "restricted" and not cfg.persistent


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
    assert config.NETWORK_MODES == ("none", "allowlist", "restricted", "open")
    assert files('network = "open"\n', 'network = "none"\n').network == "none"
    assert files("", 'network = "allowlist"\n').network == "allowlist"
    for user, ws in (("none", "allowlist"), ("allowlist", "restricted"), ("restricted", "open")):
        with pytest.raises(ConfigError, match=f"network = '{ws}'"):
            files(f'network = "{user}"\n', f'network = "{ws}"\n')


USER_NET = ('network = "allowlist"\nnetwork_allow_domains = ["PyPI.org.", "files.example"]\n'
            'network_allow_cidrs = ["198.51.100.0/24"]\nnetwork_needs = ["10.123.45.1:3128"]\n'
            'network_block_ports = [2222, 25]\n')


def test_network_keys_are_canonical(files):
    cfg = files(USER_NET)
    assert cfg.network_allow_domains == ("pypi.org", "files.example")
    assert cfg.network_allow_cidrs == ("198.51.100.0/24",)
    assert cfg.network_needs == ("10.123.45.1:3128/tcp",)
    assert cfg.network_block_ports == (25, 2222)
    assert cfg.network_bridge == ""


def test_workspace_may_narrow_the_network_lists(files):
    cfg = files(USER_NET, 'network_allow_domains = ["pypi.org"]\nnetwork_allow_cidrs = ["198.51.100.7/32"]\n'
                          'network_needs = []\nnetwork_block_ports = [25, 2222, 4000]\n')
    assert cfg.network_allow_domains == ("pypi.org",)
    assert cfg.network_allow_cidrs == ("198.51.100.7/32",)
    assert cfg.network_block_ports == (25, 2222, 4000)


@pytest.mark.parametrize("ws_text, named", [
    ('network_allow_domains = ["pypi.org", "evil.example"]\n', "network_allow_domains evil.example"),
    ('network_allow_cidrs = ["10.0.0.0/8"]\n', "network_allow_cidrs 10.0.0.0/8"),
    ('network_allow_cidrs = ["198.51.0.0/16"]\n', "network_allow_cidrs 198.51.0.0/16"),
    ('network_needs = ["10.123.45.1:22"]\n', "network_needs 10.123.45.1:22/tcp"),
    ("network_block_ports = [25]\n", "network_block_ports without 2222"),
    ('network_bridge = "br-lan"\n', "network_bridge = 'br-lan'"),
])
def test_workspace_cannot_widen_the_network(files, ws_text, named):
    with pytest.raises(ConfigError) as err:
        files(USER_NET, ws_text)
    assert "would weaken protection" in str(err.value) and named in str(err.value)


def test_old_bridge_mode_names_its_successors(files):
    with pytest.raises(ConfigError) as err:
        files('network = "bridge"\n')
    assert "network must be one of none, allowlist, restricted, open" in str(err.value)
    assert "restricted" in err.value.hint


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
    ('network_allow_domains = ["bad_name.example"]\n', "invalid domain"),
    ('network_allow_domains = ["192.0.2.1"]\n', "put it in allow_cidrs"),
    ('network_allow_cidrs = ["198.51.100.1/24"]\n', "has host bits set"),
    ('network_needs = ["10.123.45.1"]\n', "invalid service"),
    ("network_block_ports = [0]\n", "network_block_ports must be a list of ports"),
    ('network_block_ports = ["22"]\n', "network_block_ports must be a list of ports"),
    ('network_bridge = "a bridge"\n', "invalid interface name"),
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
