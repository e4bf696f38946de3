"""Shim that lets Nova load ibmvirt's drivers.

Nova loads ``compute_driver`` only as ``nova.virt.<value>``, so this package is
installed into Nova's own ``nova/virt`` tree (there is deliberately no
``nova/__init__.py`` in this distribution). ``compute_driver =
ibmvirt.DPMDriver`` resolves here; the driver module is imported on first use
so that a DPM host never imports pypowervm and vice versa.
"""

import importlib

_DRIVERS = {
    "DPMDriver": "ibmvirt.dpm.driver",
    "PowerVMDriver": "ibmvirt.powervm.driver",
}


def __getattr__(name):
    module = _DRIVERS.get(name)
    if module is None:
        raise AttributeError(name)
    try:
        return getattr(importlib.import_module(module), name)
    except ModuleNotFoundError as exc:
        if not (exc.name and (module + ".").startswith(exc.name + ".")):
            raise
        raise ImportError(
            f"compute_driver = ibmvirt.{name}: this version of ibmvirt does not "
            f"ship {module}; available: {', '.join('ibmvirt.' + d for d in _DRIVERS)}"
        ) from exc
