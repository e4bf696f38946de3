"""Virtual adapters and slots shared by vSCSI, vFC and network adapters:
free-slot allocation, adapter elements with location codes and device names,
and queries over the VIOS mapping lists.
"""

from __future__ import annotations

from lxml import etree

from ibmvirt.emulators.novalink import errors, schema
from ibmvirt.emulators.novalink import xmlutil as x
from ibmvirt.emulators.novalink.emulator import Emulator
from ibmvirt.emulators.novalink.store import Resource

FIRST_SERVER_SLOT = 11
FIRST_CLIENT_SLOT = 2


def items(el: etree._Element | None, container: str, item: str) -> list[etree._Element]:
    if el is None:
        return []
    c = el.find(x.q(container))
    return [] if c is None else c.findall(x.q(item))


def mappings(v: etree._Element) -> list[etree._Element]:
    return items(v, "VirtualSCSIMappings", "VirtualSCSIMapping")


def storage_key(stg: etree._Element | None) -> tuple[str, str] | None:
    """Identity of a mapping's backing storage: (type, name-or-udid)."""
    if stg is None or not len(stg):
        return None
    item = stg[0]
    kind = x.local(item)
    if kind == "VirtualDisk":
        return kind, item.findtext(x.q("DiskName")) or item.findtext(x.q("UniqueDeviceID")) or ""
    if kind == "VirtualOpticalMedia":
        return kind, item.findtext(x.q("MediaName")) or ""
    if kind == "PhysicalVolume":
        return kind, item.findtext(x.q("VolumeName")) or item.findtext(x.q("UniqueDeviceID")) or ""
    if kind == "LogicalUnit":
        return kind, item.findtext(x.q("UniqueDeviceID")) or item.findtext(x.q("UnitName")) or ""
    return kind, ""


def mapped_storage(emu: Emulator) -> dict[tuple[str, str, str], int]:
    """(vios uuid, storage type, name) -> number of mappings, over all VIOSes."""
    out: dict[tuple[str, str, str], int] = {}
    for v in emu.store.list("VirtualIOServer"):
        for m in mappings(v.elem):
            key = storage_key(m.find(x.q("Storage")))
            if key:
                k = (v.uuid, *key)
                out[k] = out.get(k, 0) + 1
    return out


class Slots:
    """Free virtual slots of one partition."""

    def __init__(self, used: set[int], first: int, limit: int) -> None:
        self.used, self.first, self.limit = set(used), first, limit

    def take(self, wanted: int | None, who: str) -> int:
        if wanted is not None:
            if wanted in self.used:
                raise errors.bad_request(f"{who}: virtual slot {wanted} is already in use")
            self.used.add(wanted)
            return wanted
        for s in range(self.first, self.limit):
            if s not in self.used:
                self.used.add(s)
                return s
        raise errors.bad_request(
            f"{who}: no free virtual slot below {self.limit}; raise MaximumVirtualIOSlots"
        )


def int_of(el: etree._Element | None, tag: str) -> int | None:
    if el is None:
        return None
    t = el.findtext(x.q(tag))
    return int(t) if t and t.strip().lstrip("-").isdigit() else None


def server_slots_in_use(v: etree._Element) -> set[int]:
    used: set[int] = set()
    for section, item in (
        ("VirtualSCSIMappings", "VirtualSCSIMapping"),
        ("VirtualFibreChannelMappings", "VirtualFibreChannelMapping"),
    ):
        for m in items(v, section, item):
            s = int_of(m.find(x.q("ServerAdapter")), "VirtualSlotNumber")
            if s is not None:
                used.add(s)
    for t in items(v, "TrunkAdapters", "TrunkAdapter"):
        s = int_of(t, "VirtualSlotNumber")
        if s is not None:
            used.add(s)
    return used


def client_slots_in_use(emu: Emulator, client_uuid: str) -> set[int]:
    used: set[int] = set()
    for v in emu.store.list("VirtualIOServer"):
        for section, item in (
            ("VirtualSCSIMappings", "VirtualSCSIMapping"),
            ("VirtualFibreChannelMappings", "VirtualFibreChannelMapping"),
        ):
            for m in items(v.elem, section, item):
                link = m.find(x.q("AssociatedLogicalPartition"))
                href = link.get("href") if link is not None else None
                if href and href.rstrip("/").upper().endswith(client_uuid.upper()):
                    s = int_of(m.find(x.q("ClientAdapter")), "VirtualSlotNumber")
                    if s is not None:
                        used.add(s)
    c = emu.store.find("LogicalPartition", client_uuid)
    if c is not None:
        for kind in ("ClientNetworkAdapter", "VirtualNICDedicated"):
            for adapter in emu.store.list(kind, parent=c):
                s = int_of(adapter.elem, "VirtualSlotNumber")
                if s is not None:
                    used.add(s)
    return used


def client_of(emu: Emulator, m: etree._Element, who: str) -> Resource | None:
    link = m.find(x.q("AssociatedLogicalPartition"))
    if link is None or not link.get("href"):
        return None
    uuid = link.get("href").split("?")[0].rstrip("/").rsplit("/", 1)[-1]
    client = emu.store.find("LogicalPartition", uuid) or emu.store.find("VirtualIOServer", uuid)
    if client is None:
        raise errors.bad_request(
            f"{who}: AssociatedLogicalPartition {uuid} is not a partition on this system"
        )
    # Stored as the real server renders it, whatever form the client sent
    # (pypowervm builds a ROOT link; real responses show it under the system).
    link.set("href", emu.base + client.ms_path)
    return client


def build_adapter(
    parent: etree._Element, tag: str, side: str, fields: list[tuple[str, str, str]]
) -> etree._Element:
    """Replace ``tag`` under a mapping with a server-built adapter element."""
    el = parent.find(x.q(tag))
    if el is not None:
        parent.remove(el)
    el = etree.Element(x.q(tag), kb="CUR", kxe="false", schemaVersion="V1_0")
    md = etree.SubElement(el, x.q("Metadata"))
    etree.SubElement(md, x.q("Atom"))
    x.sub(el, "AdapterType", side)
    for name, value, kb in fields:
        x.sub(el, name, value, kb=kb)
    schema.insert_ordered(parent, el)
    return el


def location_code(emu: Emulator, part: Resource, slot: int) -> str:
    assert emu.ms is not None
    mtms = emu.ms.elem.find(x.q("MachineTypeModelAndSerialNumber"))
    mt = mtms.findtext(x.q("MachineType")) if mtms is not None else "8408"
    model = mtms.findtext(x.q("Model")) if mtms is not None else "E8E"
    serial = mtms.findtext(x.q("SerialNumber")) if mtms is not None else "0000000"
    return f"U{mt}.{model}.{serial}-V{part.field('PartitionID')}-C{slot}"


def slot_fields(emu: Emulator, part: Resource, slot: int) -> list[tuple[str, str, str]]:
    """The fields every virtual adapter of ``part`` in ``slot`` starts with
    (name, value, kb), in schema order."""
    loc = location_code(emu, part, slot)
    return [
        ("DynamicReconfigurationConnectorName", loc, "CUD"),
        ("LocationCode", loc, "ROR"),
        ("LocalPartitionID", part.field("PartitionID") or "0", "CUR"),
        ("RequiredAdapter", "false", "CUD"),
        ("VariedOn", "true", "CUD"),
        ("VirtualSlotNumber", str(slot), "COD"),
    ]


def next_name(v: Resource, prefix: str, existing: list[etree._Element], path: str) -> str:
    used = set()
    for m in existing:
        el = m.find(path)
        if el is not None and el.text:
            used.add(el.text)
    i = 0
    while f"{prefix}{i}" in used:
        i += 1
    return f"{prefix}{i}"
