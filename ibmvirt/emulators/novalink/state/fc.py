"""Fibre Channel and iSCSI: physical FC ports, hdisk discovery jobs
(LUARecovery, ISCSIDiscovery), WWPN generation and vFC (NPIV) mappings.

Volumes a storage back end "exports" to the host are listed per VIOS under
``discoverable_volumes`` in the inventory (or added at run time through the
control endpoint, ``POST /_emulator/volumes``). A discovery job that names one
of them (by LUN and a VIOS initiator WWPN, by device id, or by iSCSI IQN) makes
it appear as a PhysicalVolume on that VIOS.
"""

from __future__ import annotations

from typing import Any

from lxml import etree

from ibmvirt.emulators.novalink import errors, schema
from ibmvirt.emulators.novalink import xmlutil as x
from ibmvirt.emulators.novalink.emulator import Emulator
from ibmvirt.emulators.novalink.jobs import Job
from ibmvirt.emulators.novalink.state import ids, partition, slots, storage, vios
from ibmvirt.emulators.novalink.store import Resource

# LUARecovery status codes (pypowervm.tasks.hdisk._fc.LUAStatus)
LUA_DEVICE_AVAILABLE = "3"
LUA_INCORRECT_ITL = "6"
LUA_NOT_INTEREST = "5"
ISCSI_SUCCESS = "0"
ISCSI_NO_OBJS_FOUND = "21"  # ISCSIStatus.ISCSI_ERR_NO_OBJS_FOUND


def fc_ports(v: etree._Element) -> list[etree._Element]:
    return list(v.iter(x.q("PhysicalFibreChannelPort")))


def _wwpn(s: str | None) -> str:
    return (s or "").replace(":", "").upper()


def volumes(v: Resource) -> list[dict[str, Any]]:
    return v.ext.setdefault("discoverable", [])


def ensure_pv(emu: Emulator, v: Resource, vol: dict[str, Any]) -> tuple[str, str]:
    """Add the volume as a PhysicalVolume (once); returns (hdisk name, udid)."""
    udid = vol.get("udid") or storage.pv_udid(vol.get("udid_seed") or vol["name"])
    section = vios.section(v.elem, "PhysicalVolumes")
    for p in section.findall(x.q("PhysicalVolume")):
        if p.findtext(x.q("UniqueDeviceID")) == udid:
            return p.findtext(x.q("VolumeName")) or "", udid
    names = {p.findtext(x.q("VolumeName")) for p in section.findall(x.q("PhysicalVolume"))}
    name = vol.get("name")
    if not name or name in names:
        n = 0
        while f"hdisk{n}" in names:
            n += 1
        name = f"hdisk{n}"
    section.append(
        storage.pv_element(name, int(vol.get("size_gb", 10)) * 1024, udid, in_use=False, fc=True)
    )
    v.bump("ViosStorage")
    return name, udid


def lua_recovery(emu: Emulator, job: Job) -> dict[str, str]:
    v = job.target
    assert v is not None
    try:
        doc = x.parse(job.params.get("inputXML", ""))
    except etree.XMLSyntaxError as exc:
        raise errors.JobFailure(f"LUARecovery inputXML is not well-formed: {exc}") from exc
    port_wwpns = {_wwpn(p.findtext(x.q("WWPN"))) for p in fc_ports(v.elem)}
    found = None
    status = LUA_NOT_INTEREST
    for dev in doc.iter("device"):
        device_id = dev.findtext("deviceID")
        for itl in dev.iter("itl"):
            init, lun = _wwpn(itl.findtext("Iwwpn")), (itl.findtext("lua") or "").lower()
            if init not in port_wwpns:
                status = LUA_INCORRECT_ITL
                continue
            for vol in volumes(v):
                want_lun = vol.get("lun")
                lun_ok = want_lun is None or _lua(int(want_lun)) == lun
                tgt_ok = not vol.get("target_wwpn") or _wwpn(vol["target_wwpn"]) == _wwpn(
                    itl.findtext("Twwpn")
                )
                id_ok = not device_id or device_id in (vol.get("device_id"), vol.get("udid"))
                if lun_ok and tgt_ok and id_ok:
                    found = vol
                    break
            if found:
                break
    job.pause(1.0)
    with emu.lock:
        if found:
            name, udid = ensure_pv(emu, v, found)
            status = LUA_DEVICE_AVAILABLE
        else:
            name = udid = ""
    out = etree.Element("XML_LIST")
    dl = etree.SubElement(etree.SubElement(out, "deviceList"), "device")
    etree.SubElement(dl, "status").text = status
    if found:
        etree.SubElement(dl, "pvName").text = name
        etree.SubElement(dl, "udid").text = udid
    msg = etree.SubElement(etree.SubElement(dl, "msg"), "msgText")
    msg.text = "device available" if found else "no device matched the ITLs"
    if found:
        emu.publish("MODIFY_URI", v, "Other")
    return {"OutputXML": etree.tostring(out).decode()}


def _lua(lun: int) -> str:
    """pypowervm's LUN formatting (tasks.hdisk._fc.normalize_lun)."""
    h = f"{lun:x}"
    return h + "00000000" if len(h) == 8 else h + "000000000000"


def iscsi_discovery(emu: Emulator, job: Job) -> dict[str, str]:
    """A VIOS's own inventory volumes with an IQN (no portal, no CHAP); the
    SAN's targets are ``san.py``'s, which calls this for the rest."""
    v = job.target
    assert v is not None
    iqn = job.params.get("targetIQN", "")
    iqns = [i.strip() for i in iqn.strip("[]").split(",") if i.strip()]
    lun = job.params.get("targetLUN")
    job.pause(1.0)
    for vol in volumes(v):
        if vol.get("iqn") in iqns and (lun is None or str(vol.get("lun", lun)) == str(lun)):
            with emu.lock:
                name, udid = ensure_pv(emu, v, vol)
            emu.publish("MODIFY_URI", v, "Other")
            return {
                "RETURN_CODE": ISCSI_SUCCESS,
                "DEV_OUTPUT": repr([f"{vol['iqn']} {name} {udid}"]),
            }
    return {"RETURN_CODE": ISCSI_NO_OBJS_FOUND, "DEV_OUTPUT": "[]"}


def iscsi_initiator(emu: Emulator, job: Job) -> dict[str, str]:
    v = job.target
    assert v is not None
    return {"InitiatorName": f"iqn.2026-01.com.ibm.emulated:{partition.name_of(v.elem)}"}


def remove_device(emu: Emulator, job: Job) -> dict[str, str]:
    """RemoveDevice (and ISCSIRemove by device name): drop an hdisk that nothing maps."""
    v = job.target
    assert v is not None
    name = job.params.get("devName") or job.params.get("deviceName") or ""
    with emu.lock:
        section = vios.section(v.elem, "PhysicalVolumes")
        for p in section.findall(x.q("PhysicalVolume")):
            if p.findtext(x.q("VolumeName")) == name:
                if slots.mapped_storage(emu).get((v.uuid, "PhysicalVolume", name)):
                    raise errors.JobFailure(
                        f"{name} on {partition.name_of(v.elem)!r} is mapped; "
                        "remove the mapping first"
                    )
                section.remove(p)
                v.bump("ViosStorage")
    return {"RETURN_CODE": "0"}


def get_next_wwpns(emu: Emulator, job: Job) -> dict[str, str]:
    try:
        n = int(job.params.get("numberPairsRequested", "1"))
    except ValueError as exc:
        raise errors.JobFailure("numberPairsRequested must be an integer") from exc
    if not 1 <= n <= 8:
        raise errors.JobFailure("numberPairsRequested must be between 1 and 8")
    return {"wwpnList": ",".join(ids.new_wwpns(emu, 2 * n))}


# ---- vFC mappings (VIOS update hook) ----------------------------------------------------
def vfc_maps(v: etree._Element) -> list[etree._Element]:
    return slots.items(v, "VirtualFibreChannelMappings", "VirtualFibreChannelMapping")


def _fc_sig(m: etree._Element) -> tuple[Any, ...]:
    return (
        slots.int_of(m.find(x.q("ServerAdapter")), "VirtualSlotNumber"),
        m.findtext(f"{x.q('ClientAdapter')}/{x.q('WWPNs')}"),
    )


def vfc_hook(emu: Emulator, v: Resource, old: etree._Element, new: etree._Element) -> None:
    if new.find(x.q("VirtualFibreChannelMappings")) is None:
        return
    vname = partition.name_of(v.elem)
    old_maps = vfc_maps(old)
    old_by_sig = {_fc_sig(m): m for m in old_maps if _fc_sig(m)[0] is not None}
    new_maps = vfc_maps(new)
    keep = set()
    used_server = slots.server_slots_in_use(old) - {s[0] for s in old_by_sig}
    sslots = slots.Slots(used_server, slots.FIRST_SERVER_SLOT, 2000)
    ports = {_wwpn(p.findtext(x.q("WWPN"))): p for p in fc_ports(new)}
    by_name = {p.findtext(x.q("PortName")): p for p in fc_ports(new)}
    for m in new_maps:
        sig = _fc_sig(m)
        if sig in old_by_sig:
            keep.add(sig)
            sslots.used.add(sig[0])
            m.getparent().replace(m, x.deep(old_by_sig[sig]))
    for idx, m in enumerate(vfc_maps(new)):
        if _fc_sig(m) in keep:
            continue
        who = f"vFC mapping on VIOS {vname!r}"
        client = slots.client_of(emu, m, who)
        if client is None:
            raise errors.bad_request(f"{who} needs an AssociatedLogicalPartition")
        port_el = m.find(x.q("Port"))
        port = None
        if port_el is not None:
            port = ports.get(_wwpn(port_el.findtext(x.q("WWPN"))))
            if port is None:
                port = by_name.get(port_el.findtext(x.q("PortName")))
            if port is None:
                raise errors.bad_request(
                    f"{who}: physical FC port {port_el.findtext(x.q('PortName')) or ''} "
                    f"{port_el.findtext(x.q('WWPN')) or ''} is not on this VIOS"
                )
            avail = int(port.findtext(x.q("AvailablePorts")) or 0)
            if avail <= 0:
                raise errors.refused(
                    f"{who}: FC port {port.findtext(x.q('PortName'))} has no free NPIV ports",
                    errors.IN_USE,
                )
            schema.set_field(port, "AvailablePorts", str(avail - 1))
            m.replace(port_el, _port_copy(port, "Port"))
        ca = m.find(x.q("ClientAdapter"))
        wanted = slots.int_of(ca, "VirtualSlotNumber")
        wwpns = ca.findtext(x.q("WWPNs")) if ca is not None else None
        if not wwpns:
            wwpns = " ".join(ids.new_wwpns(emu, 2))
        limit = int(client.field("PartitionIOConfiguration/MaximumVirtualIOSlots", "64") or 64)
        cslots = slots.Slots(
            slots.client_slots_in_use(emu, client.uuid), slots.FIRST_CLIENT_SLOT, limit
        )
        cslot = cslots.take(wanted, f"{who} for {partition.name_of(client.elem)!r}")
        sslot = sslots.take(None, who)
        vname_adapter = slots.next_name(
            v,
            "vfchost",
            old_maps + vfc_maps(new)[:idx],
            f"{x.q('ServerAdapter')}/{x.q('AdapterName')}",
        )
        slots.build_adapter(
            m,
            "ClientAdapter",
            "Client",
            slots.slot_fields(emu, client, cslot)
            + [
                ("ConnectingPartitionID", v.field("PartitionID") or "0", "CUR"),
                ("ConnectingVirtualSlotNumber", str(sslot), "CUR"),
                ("WWPNs", wwpns.upper(), "CUR"),
            ],
        )
        fields = slots.slot_fields(emu, v, sslot) + [
            ("AdapterName", vname_adapter, "CUR"),
            ("ConnectingPartitionID", client.field("PartitionID") or "0", "CUR"),
            ("ConnectingVirtualSlotNumber", str(cslot), "CUR"),
            ("UniqueDeviceID", "1d" + slots.location_code(emu, v, sslot), "CUR"),
        ]
        if port is not None:
            fields.append(("MapPort", port.findtext(x.q("PortName")) or "", "CUR"))
        sa = slots.build_adapter(m, "ServerAdapter", "Server", fields)
        if port is not None:
            schema.insert_ordered(sa, _port_copy(port, "PhysicalPort"))
    # Ports of removed mappings become free again.
    for sig, m in old_by_sig.items():
        if sig not in keep:
            name = m.findtext(f"{x.q('Port')}/{x.q('PortName')}")
            if name and name in by_name:
                p = by_name[name]
                schema.set_field(
                    p, "AvailablePorts", str(int(p.findtext(x.q("AvailablePorts")) or 0) + 1)
                )


def _port_copy(port: etree._Element, tag: str) -> etree._Element:
    """A physical port as mappings show it (no disk list), under another tag."""
    out = x.deep(port)
    out.tag = x.q(tag)
    x.remove_all(out, ["PhysicalVolumes"])
    return out


def add_volume(emu: Emulator, body: Any) -> tuple[int, Any]:
    """Control route: make a volume discoverable on a VIOS."""
    if not isinstance(body, dict) or "vios" not in body:
        raise ValueError("volume needs at least 'vios' (name) and 'name' or 'udid_seed'")
    v = next(
        (o for o in emu.store.list("VirtualIOServer") if partition.name_of(o.elem) == body["vios"]),
        None,
    )
    if v is None:
        raise ValueError(f"no VIOS named {body['vios']!r}")
    vol = {
        k: body[k]
        for k in ("name", "size_gb", "lun", "target_wwpn", "iqn", "udid_seed", "device_id")
        if k in body
    }
    vol.setdefault("udid_seed", f"{body['vios']}/{vol.get('name') or vol.get('iqn')}")
    vol["udid"] = storage.pv_udid(vol["udid_seed"])
    volumes(v).append(vol)
    return 201, {"volume": vol}


def present_lun(emu: Emulator, body: Any) -> tuple[int, Any]:
    """Control route: a SAN zoned to this host presents a LUN to the given
    initiator WWPNs; every VIOS with a physical FC port among them can then
    discover it (the same disk, one udid, on each: multipath)."""
    if not isinstance(body, dict) or not body.get("wwpns") or "udid_seed" not in body:
        raise ValueError("san/present needs 'wwpns' (initiators) and 'udid_seed'")
    wwpns = {str(w).upper() for w in body["wwpns"]}
    out = []
    for v in emu.store.list("VirtualIOServer"):
        ports = {p.findtext("{*}WWPN") for p in v.elem.iter("{*}PhysicalFibreChannelPort")}
        if not wwpns & {p.upper() for p in ports if p}:
            continue
        vol = {k: body[k] for k in ("size_gb", "lun", "target_wwpn", "udid_seed") if k in body}
        vol["udid"] = storage.pv_udid(vol["udid_seed"])
        known = volumes(v)
        if not any(k.get("udid") == vol["udid"] for k in known):
            known.append(vol)
        out.append(partition.name_of(v.elem))
    return 200, {"vioses": sorted(out)}


def register(emu: Emulator) -> None:
    emu.jobs.register("VirtualIOServer", "LUARecovery", lambda j: lua_recovery(emu, j))
    emu.jobs.register("VirtualIOServer", "RemoveDevice", lambda j: remove_device(emu, j))
    emu.jobs.register("VirtualIOServer", "GetInitiatorName", lambda j: iscsi_initiator(emu, j))
    emu.jobs.register("ManagedSystem", "GetNextWWPNs", lambda j: get_next_wwpns(emu, j))
    vios.add_update_hook(emu, vfc_hook)
    emu.control_routes["/volumes"] = lambda body: add_volume(emu, body)
    emu.control_routes["/san/present"] = lambda body: present_lun(emu, body)

    def seed(e: Emulator, inv: dict[str, Any]) -> None:
        for spec in inv["vioses"]:
            v = next(
                o
                for o in e.store.list("VirtualIOServer")
                if partition.name_of(o.elem) == spec["name"]
            )
            vols = []
            for vol in spec.get("discoverable_volumes", []):
                vol = dict(vol)
                vol["udid"] = storage.pv_udid(vol.get("udid_seed") or vol["name"])
                vols.append(vol)
            v.ext["discoverable"] = vols

    emu.seed_hooks.append(seed)
