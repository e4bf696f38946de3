"""Per-type state and behaviour. ``build`` populates an Emulator from an inventory."""

from __future__ import annotations

from typing import Any

from ibmvirt.emulators.novalink.emulator import Emulator
from ibmvirt.emulators.novalink.state import (
    console,
    fc,
    lpar,
    mgmt_io,
    migration,
    monitor,
    network,
    pool,
    power,
    san,
    scsi,
    scsibus,
    sriov,
    ssp,
    storage,
    system,
    upload,
    vios,
    vnc,
    vopt_removal,
    vterm,
)

#: Registration order matters where a module extends a type another registers
#: (vnc, console and the storage modules extend LogicalPartition,
#: ManagedSystem and VirtualIOServer).
_MODULES = (
    system,
    lpar,
    power,
    vios,
    storage,
    scsi,
    upload,
    ssp,
    fc,
    network,
    sriov,
    monitor,
    migration,
    console,
    scsibus,
    pool,
    mgmt_io,
    san,
    vopt_removal,
    vterm,
    vnc,
)


def register_all(emu: Emulator) -> None:
    """Register every object type, job and web route the emulator serves."""
    for mod in _MODULES:
        mod.register(emu)


def build(emu: Emulator, inv: dict[str, Any]) -> None:
    """Create the host, partitions and devices described by a normalised inventory."""
    register_all(emu)
    system.build(emu, inv["host"])
    mgmt = dict(inv["management_partition"], management=True, state="running")
    if mgmt.get("io_server"):
        # NovaLink hosting I/O itself: served as a VirtualIOServer (mgmt_io.py).
        vios.seed(emu, mgmt, 0, management=True)
    else:
        lpar.seed_lpar(emu, mgmt)
    for i, spec in enumerate(inv["vioses"]):
        vios.seed(emu, spec, i)
    for spec in inv["lpars"]:
        lpar.seed_lpar(emu, spec)
    for hook in emu.seed_hooks:
        hook(emu, inv)
