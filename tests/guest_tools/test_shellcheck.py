"""shellcheck passes on every guest tools script (and on the test stubs).

shellcheck is required: `make test` installs Debian's shellcheck package when it
is missing (apt-get install -y shellcheck). Without it these tests fail.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.guest_tools.fakeguest import _PRELUDE, STUBS, TOOLS

SCRIPTS = [
    "usr/sbin/ibmvirt-dpm-netconfig",
    "usr/sbin/ibmvirt-dpm-setmac",
    "usr/lib/ibmvirt-dpm/dpm-guest-common.sh",
    "install.sh",
    "build-tarball.sh",
]


def shellcheck() -> str:
    path = shutil.which("shellcheck")
    assert path, (
        "shellcheck is not installed; install Debian's package: apt-get install -y shellcheck"
    )
    return path


def run_shellcheck(files: list[Path]) -> subprocess.CompletedProcess:
    # --external-sources follows the `source` of the shared library;
    # severity style: every finding counts.
    return subprocess.run(
        [shellcheck(), "--external-sources", "--shell=bash", "--severity=style"]
        + [str(f) for f in files],
        capture_output=True,
        text=True,
        cwd="/",
    )


def test_every_script_is_checked() -> None:
    shell_files = set()
    for path in TOOLS.rglob("*"):
        if path.is_file() and (
            path.suffix == ".sh" or path.read_bytes().startswith(b"#!/bin/bash")
        ):
            shell_files.add(str(path.relative_to(TOOLS)))
    assert shell_files == set(SCRIPTS)


def test_shellcheck_passes_on_the_guest_tools() -> None:
    result = run_shellcheck([TOOLS / s for s in SCRIPTS])

    assert result.returncode == 0, result.stdout + result.stderr


def test_shellcheck_passes_on_the_test_stubs(tmp_path: Path) -> None:
    stubs = []
    for name, body in STUBS.items():
        path = tmp_path / name
        path.write_text(_PRELUDE.replace("@ROOT@", "/fake/root") + body)
        stubs.append(path)

    result = run_shellcheck(stubs)

    assert result.returncode == 0, result.stdout + result.stderr
