"""Let Ceilometer 27 accept ``hypervisor_inspector = powervm`` and ``dpm``.

Ceilometer 27 still loads the inspector named by ``[DEFAULT]
hypervisor_inspector`` from the ``ceilometer.compute.virt`` entry points, but
the option only allows ``libvirt`` (it is deprecated for removal), so any
other value fails when the agent reads it. Adding our names to the option's
choices before the configuration is read is all it takes;
ibmvirt-ceilometer-polling does that and then runs ceilometer-polling.
"""

from __future__ import annotations

from ceilometer.compute.virt import inspector as virt_inspector

INSPECTORS = {
    "powervm": "IBM PowerVM through NovaLink (ibmvirt)",
    "dpm": "IBM Z / LinuxONE in DPM mode through the HMC (ibmvirt)",
}


def allow_inspectors() -> None:
    """Add powervm and dpm to the choices of [DEFAULT] hypervisor_inspector."""
    opt = next(o for o in virt_inspector.OPTS if o.name == "hypervisor_inspector")
    for name, why in INSPECTORS.items():
        opt.type.choices.setdefault(name, why)
