"""The session commands' help: present, with examples, and cheap (no pylxd, no bcc)."""

import subprocess
import sys

import pytest
from click.testing import CliRunner

from coi_sentinel.cli.main import COMMANDS, cli

pytestmark = pytest.mark.unit

SESSION_COMMANDS = ["run", "list", "attach", "kill", "shutdown", "clean", "image", "image build",
                    "image list"]


@pytest.mark.parametrize("command", SESSION_COMMANDS)
def test_help_has_examples(command):
    r = CliRunner().invoke(cli, [*command.split(), "--help"])
    assert r.exit_code == 0, r.output
    assert "Examples:" in r.output
    assert all(len(line) <= 100 for line in r.output.splitlines())


def test_registered():
    assert {"run", "list", "attach", "kill", "shutdown", "clean", "image"} <= set(COMMANDS)


def test_help_imports_neither_pylxd_nor_bcc():
    code = ("import sys\nfrom coi_sentinel.cli.main import main\n"
            "for c in ('run', 'list', 'image'):\n"
            "    try:\n        main([c, '--help'])\n    except SystemExit:\n        pass\n"
            "bad = [m for m in ('pylxd', 'bcc', 'ws4py') if m in sys.modules]\n"
            "print(bad)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_run_usage_errors_exit_2():
    r = CliRunner().invoke(cli, ["run", "--slot", "0", "--", "true"])
    assert r.exit_code == 2
