"""Project hygiene: packaging, CLI help, README and Vagrantfile promises."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from coi_sentinel.cli.main import COMMANDS, cli

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]


def test_every_python_package_is_listed_in_pyproject():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "coi_sentinel").rglob("__init__.py")}
    assert found <= listed, f"missing from pyproject packages: {sorted(found - listed)}"


def test_asset_folders_are_mapped_into_the_wheel():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    for name in ("bpf", "rules", "sessions"):
        assert cfg["package-dir"][f"coi_sentinel.data.{name}"] == name


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_help_with_examples(name):
    res = CliRunner().invoke(cli, [name, "--help"])
    assert res.exit_code == 0, res.output
    assert "Examples:" in res.output or "Example:" in res.output, f"{name} --help has no examples"


def test_top_level_help_lists_commands_and_needs_no_bcc():
    code = ("import sys; from coi_sentinel.cli.main import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
            "assert 'bcc' not in sys.modules, 'help imported bcc'\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    for name in COMMANDS:
        assert name in res.stdout


def test_unknown_command_is_a_usage_error():
    res = subprocess.run([sys.executable, "-m", "coi_sentinel.cli.main", "no-such-command"],
                         capture_output=True, text=True)
    assert res.returncode == 2
    assert "No such command" in res.stderr


def test_readme_gives_the_two_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", readme, re.S)
    assert blocks, "README has no sh blocks"
    setup = blocks[0].strip().splitlines()
    main_cmd = [line for line in setup if not line.startswith("#")]
    assert len(main_cmd) == 2, main_cmd
    test_cmd = main_cmd[1]
    assert "scripts/test.sh" in test_cmd
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_cmd.replace("sudo ", "") in ci
    for line in main_cmd:
        for script in re.findall(r"(scripts/[\w.-]+)", line):
            assert (ROOT / script).is_file(), script


def test_vagrantfile_provisions_with_an_existing_script():
    text = (ROOT / "vagrant" / "Vagrantfile").read_text()
    scripts = re.findall(r"(scripts/[\w.-]+\.sh)", text)
    assert scripts, "Vagrantfile names no provisioning script"
    for s in scripts:
        assert (ROOT / s).is_file(), s
    assert "ubuntu-24.04" in text
