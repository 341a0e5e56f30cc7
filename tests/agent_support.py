"""Helpers of the tests that run the real agents (not a test module)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from incus_support import AGENT_UID, incus_missing


def require_agent_image(tool: str) -> str:
    """The version of ``tool`` the lock pins; skips, naming the build command, when the image
    coi/TOOL is missing or was built from another recipe."""
    from coi_sentinel.sessions import images, profiles, recipes
    from coi_sentinel.host import incus

    why = incus_missing(f"coi/{tool}")
    if why:
        pytest.skip(f"{why}; build it with `sudo coi-sentinel image build --tool {tool}`")
    v = images.tool_variant(tool)
    client = incus.connect()
    target = incus.raw_get(client, f"images/aliases/{v.alias}")["target"]
    if images.image_recipe(client, target) != v.recipe():
        pytest.skip(f"image {v.alias} is stale (its recipe or the lock changed): "
                    f"`sudo coi-sentinel image build --tool {tool}`")
    [(_tool, _pkg, version)] = recipes.packages_for([profiles.get(tool)]).tool_packages
    return version


BROKEN = "def add(a, b):\n    return a - b\n"
FIXED = "def add(a, b):\n    return a + b\n"


def task_repo(ws: Path) -> None:
    """The small task: a git repository whose `make test` fails until add() is fixed."""
    (ws / "calc.py").write_text(BROKEN)
    (ws / "test_calc.py").write_text("from calc import add\n\nassert add(2, 3) == 5, add(2, 3)\n"
                                     "print('tests passed')\n")
    (ws / "Makefile").write_text("test:\n\tpython3 test_calc.py\n")
    git = ["git", "-c", "safe.directory=*", "-C", str(ws), "-c", "user.name=Test",
           "-c", "user.email=test@example.invalid"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "init"], check=True)
    for key, value in (("user.name", "Agent"), ("user.email", "agent@example.invalid")):
        subprocess.run([*git[:5], "config", key, value], check=True)
    for root, dirs, files in os.walk(ws):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), AGENT_UID, AGENT_UID)


def git_log(ws: Path) -> list[str]:
    out = subprocess.run(["git", "-c", "safe.directory=*", "-C", str(ws), "log", "--format=%an|%s"],
                         capture_output=True, text=True, check=True).stdout
    return out.splitlines()
