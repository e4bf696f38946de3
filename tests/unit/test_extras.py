"""The extras an operator installs cover what their console scripts import.

``pip install 'ibmvirt[sandbox]'`` must give ``ibmvirt-sandbox demo`` every
module it imports (it once failed with ModuleNotFoundError: testtools,
wsgi_intercept, which only the test extra brought). Building a fresh venv per
extra takes minutes; instead this imports the sandbox in a subprocess, maps
each third-party module it loaded to its distribution, and checks that the
distribution is in the requirement closure of ibmvirt's dependencies plus
the extra, read from pyproject.toml and the installed packages' metadata.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

SANDBOX_MODULES = [
    "ibmvirt.cmd.sandbox",
    "ibmvirt.sandbox.demo",
    "ibmvirt.sandbox.demo_powervm",
    "ibmvirt.sandbox.dpm",
    "ibmvirt.sandbox.powervm",
    "ibmvirt.cmd.hmc_emulator",
    "ibmvirt.cmd.novalink_emulator",
]


#: Imported only because they are installed here (the [cloud] extra's services
#: bring them and entry-point plugins load them); absent from an operator's
#: sandbox install, and then not imported. configparser: a backport
#: distribution that also owns a name of the standard library's.
PRESENT_ONLY_WITH_CLOUD = {"oauthlib", "oslo-vmware", "suds-community", "wsme", "configparser"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _closure(extras: set[str]) -> set[str]:
    """Distributions ibmvirt with ``extras`` pulls in (installed metadata)."""
    todo = [Requirement(r) for r in PROJECT["dependencies"]]
    for extra in extras:
        todo += [Requirement(r) for r in PROJECT["optional-dependencies"][extra]]
    seen: set[tuple[str, str]] = set()
    while todo:
        req = todo.pop()
        name = _norm(req.name)
        if name == "ibmvirt":
            for extra in req.extras - extras:
                extras = extras | {extra}
                todo += [Requirement(r) for r in PROJECT["optional-dependencies"][extra]]
            continue
        # A package is visited once per extra asked of it (oslo.service[threading]).
        wanted = {e for e in req.extras | {""} if (name, e) not in seen}
        if not wanted:
            continue
        seen.update((name, e) for e in wanted)
        try:
            requires = metadata.requires(req.name) or []
        except metadata.PackageNotFoundError:
            continue
        for text in requires:
            sub = Requirement(text)
            if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in wanted):
                todo.append(sub)
    return {name for name, _ in seen}


def _imported_distributions(modules: list[str]) -> set[str]:
    code = (
        "import importlib, json, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "print(json.dumps(sorted({n.split('.')[0] for n in sys.modules})))\n"
    )
    env = {"OS_NOVA_DISABLE_EVENTLET_PATCHING": "1", "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, check=True, cwd=ROOT, env=env
    )
    top = json.loads(out.stdout.decode().strip().splitlines()[-1])
    by_module = metadata.packages_distributions()
    dists = set()
    for mod in top:
        if mod in sys.stdlib_module_names:
            continue  # a backport distribution of a standard module (configparser)
        for dist in by_module.get(mod, []):
            dists.add(_norm(dist))
    return dists - {"ibmvirt"}


def test_sandbox_extra_covers_the_sandbox_imports():
    imported = _imported_distributions(SANDBOX_MODULES) - PRESENT_ONLY_WITH_CLOUD
    missing = imported - _closure({"sandbox"})
    assert not missing, (
        f"ibmvirt-sandbox imports {sorted(missing)}, which pip install 'ibmvirt[sandbox]' "
        "does not bring: add them to the sandbox extra in pyproject.toml"
    )


def test_base_install_does_not_bring_either_hypervisor_client():
    """A DPM host needs no pypowervm, a PowerVM host no zhmcclient."""
    base = _closure(set())
    assert "pypowervm" not in base and "zhmcclient" not in base
    assert "pypowervm" in _closure({"powervm"}) and "zhmcclient" not in _closure({"powervm"})
    assert "zhmcclient" in _closure({"dpm"}) and "pypowervm" not in _closure({"dpm"})


def test_dependencies_are_ranges_and_pins_live_in_constraints():
    reqs = PROJECT["dependencies"] + [
        r for extra in PROJECT["optional-dependencies"].values() for r in extra
    ]
    pinned = [r for r in reqs if "==" in r]
    assert not pinned, f"exact pins belong in constraints.txt, not pyproject.toml: {pinned}"
    constraints = {
        _norm(line.split("==")[0])
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if "==" in line
    }
    unpinned = {_norm(Requirement(r).name) for r in reqs} - constraints - {"ibmvirt"}
    assert not unpinned, f"constraints.txt pins no version of {sorted(unpinned)}"
