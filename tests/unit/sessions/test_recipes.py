"""Agent image recipes: profiles + sessions/agents.lock -> what image build --tool installs."""

import dataclasses

import pytest

from coi_sentinel.errors import ProfileError
from coi_sentinel.sessions import config as config_mod
from coi_sentinel.sessions import images, profiles, recipes

pytestmark = pytest.mark.unit


def test_shipped_lock_pins_every_shipped_agent(tmp_path):
    lock = recipes.load_lock()
    every = profiles.load_all(tmp_path / "none")
    packs = recipes.packages_for([every[n] for n in ("claude", "codex", "opencode", "aider")], lock)
    assert dict(packs.npm) == {"@anthropic-ai/claude-code": lock.npm["@anthropic-ai/claude-code"],
                               "@openai/codex": lock.npm["@openai/codex"],
                               "opencode-ai": lock.npm["opencode-ai"]}
    assert dict(packs.pip) == {"aider-chat": lock.pip["aider-chat"]}
    assert {"nodejs", "python3-venv"} <= set(packs.apt)
    assert packs.tool_versions() == (f"claude={lock.npm['@anthropic-ai/claude-code']},"
                                     f"codex={lock.npm['@openai/codex']},"
                                     f"opencode={lock.npm['opencode-ai']},"
                                     f"aider={lock.pip['aider-chat']}")


def test_changed_lock_changes_the_recipe(tmp_path):
    claude = profiles.load_all(tmp_path / "none")["claude"]
    lock = recipes.load_lock()
    bumped = dataclasses.replace(lock, npm={**lock.npm, "@anthropic-ai/claude-code": "9.9.9"})
    a = recipes.packages_for([claude], lock)
    b = recipes.packages_for([claude], bumped)
    assert a.fingerprint() != b.fingerprint()
    va = images.Variant("claude", "coi/claude", "debian", "bookworm", ("nodejs",), a)
    vb = dataclasses.replace(va, agents=b)
    assert va.recipe() != vb.recipe() and va.recipe() == dataclasses.replace(va).recipe()


def test_tool_variants(tmp_path):
    claude = images.tool_variant("claude", user_dir=tmp_path / "none")
    assert claude.alias == "coi/claude" and "nodejs" in claude.packages
    assert set(images.DEBIAN_PACKAGES) <= set(claude.packages)
    aider = images.tool_variant("aider", user_dir=tmp_path / "none")
    assert aider.commands == ("aider",) and "python3-venv" in aider.packages
    every = images.tool_variant("all", user_dir=tmp_path / "none")
    assert every.alias == "coi/agents"
    assert every.agents.tools == ("aider", "claude", "codex", "opencode")
    assert images.variant_named("claude").recipe() == images.tool_variant("claude").recipe()
    assert images.variant_named("nope") is None


def test_user_profile_extends_the_recipe_with_pinned_packages(tmp_path):
    (tmp_path / "claude.yaml").write_text(
        "name: claude\ncommand: [claude]\nimage:\n  apt: [nodejs, make, ripgrep]\n"
        "  npm: ['@anthropic-ai/claude-code', typescript@5.6.3]\n  pip: [ruff==0.8.0]\n")
    packs = recipes.packages_for([profiles.get("claude", tmp_path)])
    assert ("typescript", "5.6.3") in packs.npm and ("ruff", "0.8.0") in packs.pip
    assert {"make", "ripgrep", "python3-venv"} <= set(packs.apt)
    assert packs.tool_packages[0][:2] == ("claude", "@anthropic-ai/claude-code")


@pytest.mark.parametrize("image, where", [
    ("image: [nodejs]\n", "x.yaml:3: image must be a mapping"),
    ("image:\n  npm: ['bad name']\n", "x.yaml:4: 'bad name' is not a npm package name"),
    ("image:\n  apt: [Node_JS]\n", "is not a apt package name"),
    ("image:\n  brew: [x]\n", "image must be a mapping with apt, npm, pip"),
])
def test_recipe_errors_name_file_and_line(tmp_path, image, where):
    (tmp_path / "x.yaml").write_text("name: x\ncommand: [a]\n" + image)
    with pytest.raises(ProfileError) as err:
        profiles.load_all(tmp_path)
    assert where in str(err.value)


def test_unpinned_package_names_the_profile_and_the_lock(tmp_path):
    (tmp_path / "x.yaml").write_text("name: x\ncommand: [a]\nimage:\n  npm: [left-pad]\n")
    with pytest.raises(ProfileError) as err:
        recipes.packages_for([profiles.get("x", tmp_path)])
    assert f"{tmp_path / 'x.yaml'}:3: npm package 'left-pad' has no version" in str(err.value)
    assert "agents.lock" in str(err.value)


@pytest.mark.parametrize("text, where", [
    ("npm: {a: 1.2}\n", "version must be a string"),
    ("npm: [a]\n", "must map package names to versions"),
    ("brew: {}\n", "the lock is a mapping with npm and pip"),
    ("npm: {a: '1'\n", "lock:"),
])
def test_lock_errors_name_the_file(tmp_path, text, where):
    path = tmp_path / "agents.lock"
    path.write_text(text)
    with pytest.raises(ProfileError) as err:
        recipes.load_lock(path)
    assert str(path) in str(err.value) and where in str(err.value)


def test_npm_and_pip_specs_split():
    assert recipes.split_npm("@openai/codex@0.1.0") == ("@openai/codex", "0.1.0")
    assert recipes.split_npm("@openai/codex") == ("@openai/codex", None)
    assert recipes.split_npm("opencode-ai@1.0") == ("opencode-ai", "1.0")
    assert recipes.split_pip("aider-chat==0.86.2") == ("aider-chat", "0.86.2")
    assert recipes.split_pip("aider-chat") == ("aider-chat", None)


def test_tool_image_is_the_default_only(tmp_path):
    claude = profiles.load_all(tmp_path / "none")["claude"]
    shell = profiles.load_all(tmp_path / "none")["shell"]
    cfg = config_mod.load(None, user_file=tmp_path / "none.toml")
    assert config_mod.with_tool_image(cfg, claude).image == "coi/claude"
    assert config_mod.with_tool_image(cfg, shell).image == cfg.image
    chosen = config_mod.load(None, user_file=tmp_path / "none.toml", overrides={"image": "my/img"})
    assert config_mod.with_tool_image(chosen, claude).image == "my/img"


def test_postinstall_scripts_are_found_for_top_level_packages_only(tmp_path):
    mods = tmp_path / "node_modules"
    for rel, scripts in [("@a/b", {"postinstall": "node install.cjs"}), ("c", {"install": "x"}),
                         ("c/dist", {"postinstall": "nested"}), ("d", {"test": "t"})]:
        (mods / rel).mkdir(parents=True)
        (mods / rel / "package.json").write_text(
            '{"name": "n", "scripts": %s}' % str(scripts).replace("'", '"'))
    found = images._postinstall_scripts(mods)
    assert found == [(str(mods / "@a/b"), "node install.cjs"), (str(mods / "c"), "x")]
