"""VirtualIOServer partitions, seeded from the two VIOSes of the captured
``fake_vios_feed.txt`` (so each has its own real FC ports and WWPNs), with
the captured mappings, volumes and network adapters removed: those come
from the inventory and from client requests instead.
"""

from __future__ import annotations

import hashlib
import uuid as uuidlib
from typing import Any

from lxml import etree

from ibmvirt.emulators.novalink import captures, errors, schema
from ibmvirt.emulators.novalink import xmlutil as x
from ibmvirt.emulators.novalink.emulator import Emulator, Kind
from ibmvirt.emulators.novalink.state import lpar, partition, power, system
from ibmvirt.emulators.novalink.store import Resource

# Sections emptied from the captured template (filled from the inventory).
_EMPTIED = (
    "MediaRepositories",
    "PhysicalVolumes",
    "StoragePools",
    "SharedEthernetAdapters",
    "TrunkAdapters",
    "VirtualFibreChannelMappings",
    "VirtualSCSIMappings",
    "ClientNetworkAdapters",
)


def add_update_hook(emu: Emulator, hook: Any) -> None:
    """Run ``hook(emu, vios, old_elem, new_elem)`` on every VIOS update.

    Hooks validate (raise RestError) and complete the new element with what the
    server owns (adapters, slots, device names) for their group.
    """
    emu.kind("VirtualIOServer").update_hooks.append(hook)


def add_after_update(emu: Emulator, hook: Any) -> None:
    """Run ``hook(emu, vios)`` after a VIOS update has been applied."""
    emu.kind("VirtualIOServer").after_update.append(hook)


def template(index: int, base: str) -> etree._Element:
    """A fresh copy of captured VIOS number ``index`` (0 or 1)."""
    vioses = captures.contents("fake_vios_feed.txt")
    return captures.rebase(vioses[index % len(vioses)], base)


def management_template(base: str) -> etree._Element:
    """A fresh copy of the NovaLink partition a real NovaLink lists among its
    VIOSes when it hosts I/O itself (first entry of
    ``fake_vios_hosting_vios_feed.txt``: PartitionType AIX/Linux,
    IsManagementPartition true, File I/O mappings), without its partition
    profile's adapters (they describe the captured host's clients)."""
    el = captures.rebase(captures.contents("fake_vios_hosting_vios_feed.txt")[0], base)
    x.remove_all(el.find(x.q("PartitionIOConfiguration")), ["ProfileVirtualIOAdapters"])
    return el


def is_management_io(res: Resource) -> bool:
    """The NovaLink partition served as an I/O server (inventory
    ``management_partition.io_server``): the only VIOS that maps File I/O and
    RBD storage, and not an SSP node or a migration target for shared disks."""
    return res.kind == "VirtualIOServer" and res.field("IsManagementPartition") == "true"


def seed(emu: Emulator, spec: dict[str, Any], index: int, management: bool = False) -> Resource:
    """Create a running VIOS (RMC active) from an inventory entry; with
    ``management``, the NovaLink partition itself as an I/O server."""
    el = management_template(emu.base) if management else template(index, emu.base)
    for name in _EMPTIED:
        c = el.find(x.q(name))
        if c is not None:
            for kid in list(c):
                c.remove(kid)
    schema.set_field(el, "PartitionName", spec["name"], kb="CUR")
    schema.set_field(el, "IsManagementPartition", "true" if management else "false")
    # vNIC hosting (the server serves vNICs backed through any VIOS): the flags
    # of fake_vios_hosting_vios_feed.txt, set; pypowervm's set_vnic_back_devs
    # only picks VIOSes showing them. The older VIOS template has neither.
    capable = bool(spec.get("vnic_capable", True)) and not management
    for tag in ("IsVNICCapable", "VNICFailOverCapable"):
        schema.set_field(el, tag, "true" if capable else "false", kb="CUD")
    _set_fc_ports(emu, el, spec)
    for tag in ("PartitionID", "PartitionUUID", "PartitionState"):
        c = el.find(x.q(tag))
        if c is not None:
            el.remove(c)
    mem_mb = int(spec.get("memory_mb", 4096))
    mem = el.find(x.q(partition.MEM_CFG))
    for tag in ("DesiredMemory", "MinimumMemory", "MaximumMemory"):
        schema.set_field(mem, tag, str(mem_mb), kb="CUD")
    units = float(spec.get("proc_units", 1.0))
    shared = x.find_path(el, f"{partition.PROC_CFG}/{partition.SHARED}")
    if shared is not None and x.text(el, f"{partition.PROC_CFG}/HasDedicatedProcessors") == "false":
        vps = max(1, int(spec.get("vcpus", 2)))
        for tag, v in (
            ("DesiredProcessingUnits", units),
            ("MinimumProcessingUnits", units),
            ("MaximumProcessingUnits", units),
        ):
            schema.set_field(shared, tag, f"{v:.2f}", kb="CUD")
        for tag in (
            "DesiredVirtualProcessors",
            "MinimumVirtualProcessors",
            "MaximumVirtualProcessors",
        ):
            schema.set_field(shared, tag, str(vps), kb="CUD")
    assert emu.ms is not None
    seed_name = f"{emu.ms.field('SystemName')}/{spec['name']}"
    uuid = (spec.get("uuid") or str(uuidlib.uuid5(uuidlib.NAMESPACE_DNS, seed_name))).upper()
    res = lpar.finish_partition(emu, el, "VirtualIOServer", uuid, partition.RUNNING, "active")
    s = partition.Sizing(res.elem)
    system.reserve(emu, s.mem, s.units, spec["name"])
    emu.store.add(res)
    system.add_partition_link(emu, res)
    return res


def _set_fc_ports(emu: Emulator, el: etree._Element, spec: dict[str, Any]) -> None:
    """Give each captured FC port the inventory's name/WWPN, or a WWPN unique to
    this host and VIOS (two emulators from one template must not share WWPNs)."""
    assert emu.ms is not None
    overrides = spec.get("fc_ports") or []
    for i, port in enumerate(el.iter(x.q("PhysicalFibreChannelPort"))):
        want = overrides[i] if i < len(overrides) else {}
        seed = f"{emu.ms.field('SystemName')}/{spec['name']}/{i}"
        wwpn = want.get("wwpn") or "10000090FA" + hashlib.sha256(seed.encode()).hexdigest()[:6]
        schema.set_field(port, "WWPN", wwpn.replace(":", "").upper(), kb="CUR")
        if want.get("name"):
            schema.set_field(port, "PortName", want["name"], kb="CUR")
        x.remove_all(port, ["PhysicalVolumes"])


def _update(emu: Emulator, res: Resource, new: etree._Element) -> None:
    old = res.elem
    for hook in emu.kind("VirtualIOServer").update_hooks:
        hook(emu, res, old, new)
    name = partition.name_of(new)
    if name != partition.name_of(old):
        partition.check_unique_name(emu, name, exclude=res)
    res.elem = new
    after_update(emu, res)


def after_update(emu: Emulator, res: Resource) -> None:
    """Let other types follow a VIOS change (also one the server made itself)."""
    for hook in emu.kind("VirtualIOServer").after_update:
        hook(emu, res)


def _quick(emu: Emulator, res: Resource) -> dict[str, Any]:
    return lpar.quick(emu, res)


def _delete(emu: Emulator, res: Resource) -> None:
    raise errors.RestError(
        405,
        f"VirtualIOServer {partition.name_of(res.elem)!r} cannot be deleted through this API",
        errors.UNSUPPORTED,
    )


def register(emu: Emulator) -> None:
    emu.register(
        Kind(
            "VirtualIOServer",
            parents=("ManagedSystem",),
            update=_update,
            quick=_quick,
            delete=_delete,
            detail_fields=("VirtualSCSIMappings", "VirtualFibreChannelMappings"),
            on_read=power.show_computed,
        )
    )


def section(vios: etree._Element, name: str) -> etree._Element:
    """A VIOS group section element (created empty, with its group, if missing)."""
    el = vios.find(x.q(name))
    if el is None:
        group = {
            "VirtualSCSIMappings": "ViosSCSIMapping",
            "VirtualFibreChannelMappings": "ViosFCMapping",
            "PhysicalVolumes": "ViosStorage",
            "MediaRepositories": "ViosStorage",
            "StoragePools": "ViosStorage",
            "SharedEthernetAdapters": "ViosNetwork",
            "TrunkAdapters": "ViosNetwork",
        }.get(name)
        attrs = {"kb": "CUD", "kxe": "false"}
        if group:
            attrs["group"] = group
        el = etree.Element(x.q(name), attrib=attrs)
        schema.insert_ordered(vios, el)
    return el
