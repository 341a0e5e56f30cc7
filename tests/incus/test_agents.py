"""The real agents in real sessions: `run --tool T -- T --version` in the image
`image build --tool T` made (coi/T), monitored, with the version the lock pins.

The images are built by scripts/setup-incus.sh (step `agents`, COI_AGENT_TOOLS); a test skips
with the command to build the one it needs when its image is missing or stale.
"""

from __future__ import annotations

import json
import re

import pytest

from agent_support import require_agent_image
from incus_support import incus_missing
from support import require_bpf

pytestmark = [pytest.mark.incus, pytest.mark.bpf]

#: what each agent prints for --version, around the version the lock pins
VERSION_OUTPUT = {
    "claude": r"^{v} \(Claude Code\)$",
    "codex": r"^codex-cli {v}$",
    "opencode": r"^{v}$",
    "aider": r"^aider {v}$",
}


@pytest.mark.parametrize("tool", sorted(VERSION_OUTPUT))
def test_run_tool_prints_the_pinned_version(env, tool):
    require_bpf()
    version = require_agent_image(tool)
    env.config(monitoring=True)            # no image: the profile's own, coi/TOOL
    r = env.run("run", "--tool", tool, "--", tool, "--version", timeout=300)
    assert r.code == 0, r.err
    lines = [line for line in r.out.splitlines() if line.strip()]
    pattern = VERSION_OUTPUT[tool].format(v=re.escape(version))
    assert any(re.match(pattern, line) for line in lines), (pattern, r.out, r.err)
    assert "alert" not in r.err, r.err


def test_image_list_shows_the_tools_and_versions(env):
    from coi_sentinel.sessions import images

    built = []
    for tool in sorted(VERSION_OUTPUT):
        if incus_missing(f"coi/{tool}") is None:
            built.append(tool)
    if not built:
        pytest.skip("no agent image: `sudo coi-sentinel image build --tool all`")
    r = env.run("image", "list", "--json")
    assert r.code == 0, r.err
    rows = {a: row for row in json.loads(r.out) for a in row["aliases"]}
    for tool in built:
        row = rows[f"coi/{tool}"]
        v = images.tool_variant(tool)
        if row["status"] == "current":
            assert row["tools"] == dict(t.split("=") for t in v.agents.tool_versions().split(","))
    text = env.run("image", "list").out
    assert any(line.startswith(f"coi/{built[0]} ") and f"{built[0]}=" in line
               for line in text.splitlines()), text


def test_missing_tool_image_names_the_build_command(env):
    """A profile whose image is not built: one line naming `image build --tool`."""
    env.profile("ghost", "name: ghost\ncommand: [ghost]\ninstall_check: [sh, -c, 'command -v ghost']\n"
                "install_hint: run `sudo coi-sentinel image build --tool ghost`\n"
                "image:\n  npm: [ghost-agent@1.0.0]\n")
    env.config(monitoring=False)
    r = env.run("run", "--tool", "ghost", "--", "ghost", "--version")
    assert r.code == 1
    assert "image 'coi/ghost' is not in the Incus image store" in r.err
    assert "coi-sentinel image build --tool ghost" in r.err


def test_install_check_failure_names_the_build_command(env):
    """The image exists but lacks the tool: the install check fails before the agent starts."""
    env.config(image="coi/busybox", monitoring=False)
    r = env.run("run", "--tool", "claude", "--", "claude", "--version")
    assert r.code == 1
    assert "claude: install check failed in image coi/busybox" in r.err
    assert "coi-sentinel image build --tool claude" in r.err
