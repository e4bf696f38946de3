"""[DEFAULT] hypervisor_inspector = powervm/dpm in a ceilometer.conf."""

from __future__ import annotations

import subprocess
import sys

READ = (
    "import sys\n"
    "from ceilometer import service\n"
    "{prelude}"
    "conf = service.prepare_service(['x', '--config-file', sys.argv[1]], [])\n"
    "print(conf.hypervisor_inspector)\n"
)


def _read(tmp_path, prelude: str) -> subprocess.CompletedProcess:
    cfg = tmp_path / "ceilometer.conf"
    cfg.write_text("[DEFAULT]\nhypervisor_inspector = powervm\n")
    return subprocess.run(
        [sys.executable, "-c", READ.format(prelude=prelude), str(cfg)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_plain_ceilometer_27_refuses_other_inspectors(tmp_path):
    result = _read(tmp_path, "")
    assert result.returncode != 0
    assert "Valid values are [libvirt], but found 'powervm'" in result.stdout + result.stderr


def test_our_polling_entry_accepts_them(tmp_path):
    prelude = "from ibmvirt.telemetry import registration\nregistration.allow_inspectors()\n"
    result = _read(tmp_path, prelude)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "powervm"


def test_the_console_script_is_installed():
    import importlib.metadata as md

    (ep,) = [
        e
        for e in md.entry_points(group="console_scripts")
        if e.name == "ibmvirt-ceilometer-polling"
    ]
    assert ep.value == "ibmvirt.cmd.ceilometer_polling:main"
