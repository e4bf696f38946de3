"""vSCSI mappings: the VIOS update hook that completes client mappings with
server-created adapters, slots, device names and LUAs, and resolves the backing
storage (virtual disk, optical media, physical volume, logical unit).
"""

from __future__ import annotations

from typing import Any

from lxml import etree

from ibmvirt.emulators.novalink import errors, schema
from ibmvirt.emulators.novalink import xmlutil as x
from ibmvirt.emulators.novalink.emulator import Emulator
from ibmvirt.emulators.novalink.state import mgmt_io, partition, slots, storage, vios
from ibmvirt.emulators.novalink.store import Resource

TARGET_DEV = {
    "VirtualDisk": ("LogicalVolumeVirtualTargetDevice", "vtscsi"),
    "VirtualOpticalMedia": ("VirtualOpticalTargetDevice", "vtopt"),
    "PhysicalVolume": ("PhysicalVolumeVirtualTargetDevice", "vtscsi"),
    "LogicalUnit": ("SharedStoragePoolLogicalUnitVirtualTargetDevice", "vtscsi"),
}


def resolve_storage(emu: Emulator, v: Resource, item: etree._Element, who: str) -> etree._Element:
    """The server's full element for a client's storage reference (or refuse),
    carrying the client's device attributes: the real server tags the mapped
    device with the ``Tag`` (and emulate-model flag) the client sent, which is
    how drivers mark a volume's mapping (pypowervm ``PV.bld(..., tag=...)``)."""
    out = _server_storage(emu, v, item, who)
    for attr in ("Tag", "EmulateModel"):
        value = item.findtext(x.q(attr))
        if value is not None:
            schema.set_field(out, attr, value, kb="CUD")
    return out


def _server_storage(emu: Emulator, v: Resource, item: etree._Element, who: str) -> etree._Element:
    kind = x.local(item)
    vname = partition.name_of(v.elem)
    if kind == "VirtualDisk" and mgmt_io.is_file_or_rbd(item):
        return mgmt_io.resolve(emu, v, item, who)
    if kind == "VirtualDisk":
        name = item.findtext(x.q("DiskName"))
        udid = item.findtext(x.q("UniqueDeviceID"))
        for vg in storage.vgs_of(emu, v):
            for d in storage.vdisks(vg.elem):
                if (name and d.findtext(x.q("DiskName")) == name) or (
                    udid and d.findtext(x.q("UniqueDeviceID")) == udid
                ):
                    return _strip_links(d)
        raise errors.bad_request(f"{who}: no virtual disk {name or udid!r} on VIOS {vname!r}")
    if kind == "VirtualOpticalMedia":
        name = item.findtext(x.q("MediaName"))
        for vg in storage.vgs_of(emu, v):
            for m in storage.vopts(vg.elem):
                if m.findtext(x.q("MediaName")) == name:
                    return x.deep(m)
        raise errors.bad_request(
            f"{who}: no virtual optical media {name!r} in the repository of VIOS {vname!r}"
        )
    if kind == "PhysicalVolume":
        name = item.findtext(x.q("VolumeName"))
        udid = item.findtext(x.q("UniqueDeviceID"))
        for p in slots.items(v.elem, "PhysicalVolumes", "PhysicalVolume"):
            if (udid and p.findtext(x.q("UniqueDeviceID")) == udid) or (
                not udid and name and p.findtext(x.q("VolumeName")) == name
            ):
                return x.deep(p)
        raise errors.bad_request(
            f"{who}: no physical volume {name or udid!r} on VIOS {vname!r}; run LUARecovery or "
            "iSCSI discovery first"
        )
    if kind == "LogicalUnit":
        udid = item.findtext(x.q("UniqueDeviceID"))
        name = item.findtext(x.q("UnitName"))
        for lu in emu.store.list("LogicalUnit"):
            if (udid and lu.field("UniqueDeviceID") == udid) or (
                not udid and name and lu.field("UnitName") == name
            ):
                return _lu_ref(lu.elem)
        raise errors.bad_request(f"{who}: no logical unit {name or udid!r} in the storage pool")
    raise errors.bad_request(f"{who}: unsupported backing storage type {kind}")


def _strip_links(el: etree._Element) -> etree._Element:
    out = x.deep(el)
    for c in list(out):
        if isinstance(c.tag, str) and x.local(c) == "VolumeGroup":
            out.remove(c)
    return out


def _lu_ref(el: etree._Element) -> etree._Element:
    out = etree.Element(x.q("LogicalUnit"), schemaVersion="V1_0")
    md = etree.SubElement(out, x.q("Metadata"))
    etree.SubElement(md, x.q("Atom"))
    for c in el:
        if isinstance(c.tag, str) and x.local(c) in (
            "ThinDevice",
            "UniqueDeviceID",
            "UnitCapacity",
            "LogicalUnitType",
            "InUse",
            "ClonedFrom",
            "UnitName",
        ):
            out.append(x.deep(c))
    return out


def scsi_hook(emu: Emulator, v: Resource, old: etree._Element, new: etree._Element) -> None:
    """Complete new vSCSI mappings and refuse invalid ones."""
    if new.find(x.q("VirtualSCSIMappings")) is None:
        return
    vname = partition.name_of(v.elem)
    old_maps = slots.mappings(old)
    old_by_sig = {_sig(m): m for m in old_maps}
    sslots = slots.Slots(slots.server_slots_in_use(old), slots.FIRST_SERVER_SLOT, 2000)
    kept_sslots = set()
    for m in slots.mappings(new):
        if _sig(m) in old_by_sig and _sig(m)[0] is not None:
            kept_sslots.add(_sig(m)[0])
    sslots.used = (sslots.used - {_sig(m)[0] for m in old_maps}) | kept_sslots
    client_slot_cache: dict[str, slots.Slots] = {}
    all_new = slots.mappings(new)
    for idx, m in enumerate(all_new):
        sig = _sig(m)
        if sig in old_by_sig and sig[0] is not None:
            m.getparent().replace(m, x.deep(old_by_sig[sig]))
            continue
        who = f"vSCSI mapping on VIOS {vname!r}"
        client = slots.client_of(emu, m, who)
        stg = m.find(x.q("Storage"))
        if stg is not None and len(stg):
            full = resolve_storage(emu, v, stg[0], who)
            stg.replace(stg[0], full)
        if client is None:
            continue
        cname = partition.name_of(client.elem)
        # Reuse the server adapter of an existing mapping to the same client slot.
        wanted_cslot = slots.int_of(m.find(x.q("ClientAdapter")), "VirtualSlotNumber")
        sibling = None
        for other in list(old_maps) + all_new[:idx]:
            if other is m:
                continue
            if (
                slots.client_of(emu, other, who) is client
                and wanted_cslot is not None
                and slots.int_of(other.find(x.q("ClientAdapter")), "VirtualSlotNumber")
                == wanted_cslot
                and slots.int_of(other.find(x.q("ServerAdapter")), "VirtualSlotNumber")
            ):
                sibling = other
                break
        if sibling is not None:
            sa = x.deep(sibling.find(x.q("ServerAdapter")))
            ca = x.deep(sibling.find(x.q("ClientAdapter")))
            for tag, el in (("ServerAdapter", sa), ("ClientAdapter", ca)):
                cur = m.find(x.q(tag))
                if cur is not None:
                    m.replace(cur, el)
                else:
                    schema.insert_ordered(m, el)
            sslot = slots.int_of(sa, "VirtualSlotNumber")
            cslot = wanted_cslot
        else:
            # A new client adapter is a hot plug (DLPAR) into a running client;
            # more storage on an existing adapter pair is not.
            partition.check_hotplug(client, "add a virtual SCSI adapter to")
            cache = client_slot_cache.get(client.uuid)
            if cache is None:
                cache = client_slot_cache[client.uuid] = client_slots(emu, client)
            cslot = cache.take(wanted_cslot, f"{who} for {cname!r}")
            sslot = sslots.take(None, who)
            vhost = slots.next_name(
                v, "vhost", old_maps + all_new[:idx], f"{x.q('ServerAdapter')}/{x.q('AdapterName')}"
            )
            slots.build_adapter(
                m,
                "ClientAdapter",
                "Client",
                slots.slot_fields(emu, client, cslot)
                + [
                    ("RemoteLogicalPartitionID", v.field("PartitionID") or "0", "CUR"),
                    ("RemoteSlotNumber", str(sslot), "CUA"),
                    ("ServerLocationCode", slots.location_code(emu, v, sslot), "CUR"),
                ],
            )
            slots.build_adapter(
                m,
                "ServerAdapter",
                "Server",
                slots.slot_fields(emu, v, sslot)
                + [
                    ("AdapterName", vhost, "CUR"),
                    ("RemoteLogicalPartitionID", client.field("PartitionID") or "0", "CUR"),
                    ("RemoteSlotNumber", str(cslot), "CUA"),
                    ("ServerLocationCode", slots.location_code(emu, client, cslot), "CUR"),
                    ("UniqueDeviceID", "1e" + slots.location_code(emu, v, sslot), "ROR"),
                ],
            )
        if stg is not None and len(stg):
            kind = x.local(stg[0])
            sa = m.find(x.q("ServerAdapter"))
            name = slots.storage_key(stg)[1]
            bdn = sa.find(x.q("BackingDeviceName"))
            if bdn is None:
                bdn = etree.Element(x.q("BackingDeviceName"), kb="CUR", kxe="false")
                schema.insert_ordered(sa, bdn)
            bdn.text = (
                stg[0].findtext(x.q("DiskName"))
                or stg[0].findtext(x.q("MediaName"))
                or stg[0].findtext(x.q("VolumeName"))
                or name
            )
            td_tag, prefix = TARGET_DEV[kind]
            td = m.find(x.q("TargetDevice"))
            given_name = given_lua = None
            if td is not None and len(td):
                given_name = td[0].findtext(x.q("TargetName"))
                given_lua = td[0].findtext(x.q("LogicalUnitAddress"))
                m.remove(td)
            luas = {
                (
                    o.find(f"{x.q('TargetDevice')}/*/{x.q('LogicalUnitAddress')}") is not None
                    and o.find(f"{x.q('TargetDevice')}/*/{x.q('LogicalUnitAddress')}").text
                )
                for o in old_maps + all_new[:idx]
                if slots.int_of(o.find(x.q("ServerAdapter")), "VirtualSlotNumber") == sslot
            }
            lua = given_lua
            n = 1
            while lua is None or (lua in luas and given_lua is None):
                lua = _lua(v, n)
                n += 1
            tname = given_name or slots.next_name(
                v,
                prefix,
                old_maps + all_new[:idx],
                f"{x.q('TargetDevice')}/*/{x.q('TargetName')}",
            )
            td = etree.Element(x.q("TargetDevice"), kb="CUR", kxe="false")
            dev = etree.SubElement(td, x.q(td_tag), schemaVersion="V1_0")
            dmd = etree.SubElement(dev, x.q("Metadata"))
            etree.SubElement(dmd, x.q("Atom"))
            x.sub(dev, "LogicalUnitAddress", lua, kb="CUR")
            x.sub(dev, "TargetName", tname, kb="CUR")
            x.sub(dev, "UniqueDeviceID", _target_udid(v, tname, sslot, lua))
            schema.insert_ordered(m, td)


def _lua(v: Resource, n: int) -> str:
    """The n-th logical unit address on a server adapter. The NovaLink
    partition's Linux SCSI target numbers LUNs (``lun1``), where a VIOS
    gives a SCSI LUN in hex, as their captured mappings show."""
    return f"lun{n}" if vios.is_management_io(v) else f"0x8{n:01x}00000000000000"


def _target_udid(v: Resource, tname: str, sslot: int | None, lua: str) -> str:
    """A target device's UDID: on the NovaLink partition the adapter's
    0x30000000 + slot and the LUN (``30000010-lun1`` for slot 16, as
    captured), on a VIOS derived from the device name."""
    if vios.is_management_io(v):
        return f"{0x30000000 + (sslot or 0):08x}-{lua}"
    return "09" + storage.serial_of(f"{v.uuid}/{tname}")[:16]


def client_slots(emu: Emulator, client: Resource) -> slots.Slots:
    """The free virtual slots of a client partition (up to its maximum)."""
    limit = int(client.field("PartitionIOConfiguration/MaximumVirtualIOSlots", "64") or 64)
    return slots.Slots(slots.client_slots_in_use(emu, client.uuid), slots.FIRST_CLIENT_SLOT, limit)


def _sig(m: etree._Element) -> tuple[int | None, Any, str | None]:
    """Identity of a mapping: (server slot, storage, target name)."""
    sslot = slots.int_of(m.find(x.q("ServerAdapter")), "VirtualSlotNumber")
    tname = m.findtext(f"{x.q('TargetDevice')}/*/{x.q('TargetName')}")
    return sslot, slots.storage_key(m.find(x.q("Storage"))), tname


def register(emu: Emulator) -> None:
    vios.add_update_hook(emu, scsi_hook)
