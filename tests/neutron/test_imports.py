"""The Neutron side runs in Neutron processes: it must not pull in Nova (the
two cannot share a process; an agent host need not have Nova's code paths)."""

from __future__ import annotations

import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]
MODULES = [
    "ibmvirt.neutron.ml2.pvm_sea",
    "ibmvirt.neutron.ml2.pvm_sriov",
    "ibmvirt.neutron.ml2.dpm",
    "ibmvirt.neutron.agent.sea",
    "ibmvirt.neutron.agent.sriov",
    "ibmvirt.neutron.agent.dpm",
    "ibmvirt.cmd.powervm_sea_agent",
    "ibmvirt.cmd.powervm_sriov_agent",
    "ibmvirt.cmd.dpm_agent",
]


def test_neutron_side_imports_no_nova():
    code = (
        "import importlib, sys\n"
        f"for m in {MODULES!r}: importlib.import_module(m)\n"
        "print(sorted(m for m in sys.modules if m == 'nova' or m.startswith('nova.')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert out.stdout.strip() == "[]", out.stdout
