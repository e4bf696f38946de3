"""Per-type state and behaviour. ``build`` populates an Emulator from an inventory."""

from __future__ import annotations

from typing import Any

from ibmvirt.emulators.novalink.emulator import Emulator


def register_all(emu: Emulator) -> None:
    """Register every object type, job and web route the emulator serves."""
    from ibmvirt.emulators.novalink.state import lpar, system, vios

    system.register(emu)
    lpar.register(emu)
    vios.register(emu)
    for optional in (
        "storage",
        "scsi",
        "upload",
        "ssp",
        "fc",
        "network",
        "sriov",
        "monitor",
        "migration",
        "console",
        "scsibus",
        "pool",
        "mgmt_io",
        "san",
        "vopt_removal",
        "vterm",
        "vnc",
    ):
        try:
            mod = __import__(f"ibmvirt.emulators.novalink.state.{optional}", fromlist=["x"])
        except ModuleNotFoundError as exc:
            if exc.name != f"ibmvirt.emulators.novalink.state.{optional}":
                raise
            continue
        mod.register(emu)


def build(emu: Emulator, inv: dict[str, Any]) -> None:
    """Create the host, partitions and devices described by a normalised inventory."""
    from ibmvirt.emulators.novalink.state import lpar, system, vios

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
