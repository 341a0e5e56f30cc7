"""First contact (issue 17): the license pyproject names is there, and setup-incus.sh takes
Incus from where each distribution has it instead of adding Debian backports everywhere."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


def test_the_apache_license_is_shipped() -> None:
    text = (REPO / "LICENSE").read_text()
    assert text.lstrip().startswith("Apache License\n") and "Version 2.0, January 2004" in text
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    # an SPDX expression and the file (the table form is deprecated by setuptools, refused
    # from 2027-02-18)
    assert project["license"] == "Apache-2.0" and project["license-files"] == ["LICENSE"]


@pytest.mark.parametrize("os_release,source", [
    ('ID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n', "bookworm-backports"),
    ('ID=debian\nVERSION_ID="13"\nVERSION_CODENAME=trixie\n', "archive"),
    ('ID=ubuntu\nVERSION_ID="24.04"\nVERSION_CODENAME=noble\n', "archive"),
    ('ID=ubuntu\nVERSION_ID="22.04"\nVERSION_CODENAME=jammy\n', None),
    ('ID=fedora\nVERSION_ID=40\n', None),
])
def test_setup_incus_picks_the_distribution_s_source(tmp_path: Path, os_release: str, source: str | None) -> None:
    f = tmp_path / "os-release"
    f.write_text(os_release)
    res = subprocess.run(["bash", str(REPO / "scripts/setup-incus.sh"), "distro"], capture_output=True,
                         text=True, timeout=30, env={"COI_OS_RELEASE": str(f), "PATH": "/usr/bin:/bin"})
    if source is None:
        assert res.returncode == 1 and res.stdout == ""
        assert "Ubuntu 24.04" in res.stderr            # the refusal says what is supported
    else:
        assert res.returncode == 0, res.stderr
        assert res.stdout == source + "\n"

