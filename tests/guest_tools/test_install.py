"""install.sh puts the tools into an image root; build-tarball.sh packs them reproducibly."""

from __future__ import annotations

import hashlib
import re
import shutil
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.guest_tools.fakeguest import BASH, REPO, TOOLS

UNIT = "ibmvirt-dpm-netconfig.service"
INSTALLED = {
    "usr/sbin/ibmvirt-dpm-netconfig": 0o755,
    "usr/sbin/ibmvirt-dpm-setmac": 0o755,
    "usr/lib/ibmvirt-dpm/dpm-guest-common.sh": 0o644,
    f"usr/lib/systemd/system/{UNIT}": 0o644,
    "usr/lib/udev/rules.d/80-ibmvirt-dpm-setmac.rules": 0o644,
}
WANTS_LINK = f"etc/systemd/system/multi-user.target.wants/{UNIT}"


def install(root: Path, installer: Path = TOOLS / "install.sh") -> subprocess.CompletedProcess:
    return subprocess.run(
        [BASH, str(installer), str(root)],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
        check=False,
    )


def tree(root: Path) -> dict[str, tuple[int, str]]:
    """{path: (mode, sha256 or link target)} of everything under root."""
    result = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            result[rel] = (0, "-> " + str(path.readlink()))
        elif path.is_file():
            mode = stat.S_IMODE(path.stat().st_mode)
            result[rel] = (mode, hashlib.sha256(path.read_bytes()).hexdigest())
    return result


def version() -> str:
    return re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M)[1]


def test_installs_files_with_modes_and_enables_the_unit(tmp_path: Path) -> None:
    root = tmp_path / "image"
    root.mkdir()

    result = install(root)

    assert result.returncode == 0, result.stderr
    for rel, mode in INSTALLED.items():
        path = root / rel
        assert stat.S_IMODE(path.stat().st_mode) == mode, rel
        assert path.read_bytes() == (TOOLS / rel).read_bytes()
    link = root / WANTS_LINK
    assert str(link.readlink()) == f"/usr/lib/systemd/system/{UNIT}"
    assert (root / str(link.readlink()).lstrip("/")).is_file()
    assert f"enabled {UNIT}" in result.stdout


def test_install_again_changes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "image"
    root.mkdir()
    install(root)
    before = tree(root)

    assert install(root).returncode == 0
    assert tree(root) == before


def test_install_needs_an_existing_root(tmp_path: Path) -> None:
    assert install(tmp_path / "missing").returncode == 1
    result = subprocess.run([BASH, str(TOOLS / "install.sh")], capture_output=True, text=True)
    assert result.returncode == 2
    assert "usage:" in result.stderr


def test_udev_rule_runs_the_installed_setmac_for_qeth_interfaces(tmp_path: Path) -> None:
    root = tmp_path / "image"
    root.mkdir()
    install(root)
    rules = (root / "usr/lib/udev/rules.d/80-ibmvirt-dpm-setmac.rules").read_text()
    (rule,) = [line for line in rules.splitlines() if line and not line.startswith("#")]

    keys = dict(re.findall(r'(\w+\+?)=="?([^"]*)"?', rule))
    assert keys == {"ACTION": "add", "SUBSYSTEM": "net", "DRIVERS": "qeth"}
    (run,) = re.findall(r'RUN\+="([^"]+)"', rule)
    program, argument = run.split(" ")
    assert argument == "%p"
    assert (root / program.lstrip("/")).stat().st_mode & 0o111


def unit_settings(text: str) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    section = ""
    for line in text.splitlines():
        if line.startswith("["):
            section = line.strip("[]")
        elif "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            settings.setdefault(f"{section}.{key}", []).extend(value.split())
    return settings


def test_unit_is_a_oneshot_before_cloud_init_logging_to_journal_and_console(
    tmp_path: Path,
) -> None:
    root = tmp_path / "image"
    root.mkdir()
    install(root)
    unit = unit_settings((root / f"usr/lib/systemd/system/{UNIT}").read_text())

    assert unit["Service.Type"] == ["oneshot"]
    assert unit["Service.RemainAfterExit"] == ["yes"]
    assert "cloud-init-local.service" in unit["Unit.Before"]
    assert "network-pre.target" in unit["Unit.Before"]
    assert unit["Unit.DefaultDependencies"] == ["no"]
    assert unit["Service.StandardOutput"] == ["journal+console"]
    assert unit["Service.StandardError"] == ["journal+console"]
    assert unit["Install.WantedBy"] == ["multi-user.target"]
    (exec_start,) = unit["Service.ExecStart"]
    assert (root / exec_start.lstrip("/")).stat().st_mode & 0o111


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_systemd_accepts_the_installed_unit(tmp_path: Path) -> None:
    root = tmp_path / "image"
    root.mkdir()
    install(root)

    result = subprocess.run(
        ["systemd-analyze", "--man=no", f"--root={root}", "verify", UNIT],
        capture_output=True,
        text=True,
    )

    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def build(outdir: Path, epoch: str | None = "1700000000") -> Path:
    env = {"PATH": "/usr/bin:/bin"}
    if epoch is not None:
        env["SOURCE_DATE_EPOCH"] = epoch
    result = subprocess.run(
        [BASH, str(TOOLS / "build-tarball.sh"), str(outdir)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return Path(result.stdout.strip())


def test_tarball_is_reproducible_and_installs_the_same_tree(tmp_path: Path) -> None:
    first = build(tmp_path / "a")
    second = build(tmp_path / "b")

    assert first.name == f"ibmvirt-dpm-guest-tools-{version()}.tar.gz"
    assert first.read_bytes() == second.read_bytes()

    with tarfile.open(first) as tar:
        members = tar.getmembers()
        prefix = f"ibmvirt-dpm-guest-tools-{version()}"
        names = [m.name for m in members]
        assert names == sorted(names)
        assert {m.name.removeprefix(prefix + "/") for m in members if m.isfile()} == set(
            INSTALLED
        ) | {"install.sh"}
        assert {(m.uid, m.gid, m.mtime) for m in members} == {(0, 0, 1700000000)}
        modes = {m.name.removeprefix(prefix + "/"): m.mode for m in members if m.isfile()}
        assert modes == {**INSTALLED, "install.sh": 0o755}
        tar.extractall(tmp_path / "unpacked", filter="data")

    from_tarball = tmp_path / "from-tarball"
    from_source = tmp_path / "from-source"
    from_tarball.mkdir()
    from_source.mkdir()
    assert install(from_tarball, tmp_path / "unpacked" / prefix / "install.sh").returncode == 0
    install(from_source)
    assert tree(from_tarball) == tree(from_source)


def test_tarball_without_source_date_epoch_is_still_reproducible(tmp_path: Path) -> None:
    assert build(tmp_path / "a", None).read_bytes() == build(tmp_path / "b", None).read_bytes()


def test_scripts_also_run_from_the_source_tree(tmp_path: Path) -> None:
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/cmdline").write_text("ro quiet\n")

    result = subprocess.run(
        [BASH, str(TOOLS / "usr/sbin/ibmvirt-dpm-netconfig")],
        capture_output=True,
        text=True,
        env={"PATH": "", "IBMVIRT_DPM_ROOT": str(tmp_path)},
    )

    assert result.returncode == 0, result.stderr
    assert "no DPM NIC records in the kernel command line; nothing to configure" in result.stderr
