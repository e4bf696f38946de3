"""Virtual networking: virtual switches, client network adapters (CNAs,
including trunk adapters on the management partition), network bridges (SEA
with load groups and trunk adapters, as pypowervm's network bridger edits
them) and SR-IOV vNICs.

Rules, as on the real server: a VLAN ID is 1..4094; a MAC address is unique;
a CNA needs an existing virtual switch and a free slot; a VLAN can be bridged by
one trunk adapter per virtual switch; a vNIC needs a free logical port on the
backing SR-IOV physical port; adapters are hot-plugged into a running
partition only with an active RMC connection.
"""

from __future__ import annotations

import uuid as uuidlib
from typing import Any

from lxml import etree

from ibmvirt.emulators.novalink import errors, schema
from ibmvirt.emulators.novalink import xmlutil as x
from ibmvirt.emulators.novalink.emulator import Emulator, Kind
from ibmvirt.emulators.novalink.state import ids, partition, slots, sriov, vios
from ibmvirt.emulators.novalink.store import Resource

MAX_VLANS_PER_TRUNK = 20


def _vid(value: str | None, who: str, field: str) -> int:
    try:
        vid = int(value or "")
    except ValueError as exc:
        raise errors.bad_request(f"{who}: {field} {value!r} is not a VLAN ID") from exc
    if not 1 <= vid <= 4094:
        raise errors.bad_request(f"{who}: {field} {vid} is outside 1..4094")
    return vid


def _tagged(el: etree._Element) -> list[int]:
    """Tagged VLANs of an adapter ("0" or empty means none, as clients send it)."""
    text = (el.findtext(x.q("TaggedVLANIDs")) or "").replace(",", " ")
    return [int(v) for v in text.split() if v.strip() and v.strip() != "0"]


def _link_uuid(el: etree._Element | None) -> str | None:
    if el is None:
        return None
    href = el.get("href") or (el[0].get("href") if len(el) else None)
    return href.split("?")[0].rstrip("/").rsplit("/", 1)[-1] if href else None


def _check_tagged(el: etree._Element, pvid: int, who: str) -> list[int]:
    tagged = _tagged(el)
    for t in tagged:
        _vid(str(t), who, "TaggedVLANIDs")
    dupes = sorted({t for t in tagged if tagged.count(t) > 1})
    if dupes:
        raise errors.bad_request(f"{who}: TaggedVLANIDs lists VLAN(s) {dupes} more than once")
    if pvid in tagged:
        raise errors.bad_request(f"{who}: the PortVLANID {pvid} cannot also be a tagged VLAN")
    return tagged


# ---- virtual switches --------------------------------------------------------------------------
def vswitch_element(name: str, switch_id: int) -> etree._Element:
    el = x.container("VirtualSwitch")
    x.sub(el, "SwitchID", str(switch_id))
    x.sub(el, "SwitchMode", "Veb", kb="CUD")
    x.sub(el, "SwitchName", name, kb="CUD")
    x.sub(el, "VirtualNetworks", None, kb="CUD")
    return el


def _vswitch_create(emu: Emulator, parent: Resource | None, el: etree._Element) -> Resource:
    """pypowervm's cna.crt_cna(..., crt_vswitch=True) creates a switch by name."""
    assert parent is not None
    name = el.findtext(x.q("SwitchName")) or ""
    if not name:
        raise errors.bad_request("VirtualSwitch needs a SwitchName")
    if any(s.field("SwitchName") == name for s in emu.store.list("VirtualSwitch")):
        raise errors.bad_request(
            f"A virtual switch named {name!r} already exists", errors.DUPLICATE_NAME
        )
    ids = {int(s.field("SwitchID", "0") or 0) for s in emu.store.list("VirtualSwitch")}
    sid = next(i for i in range(0, 16) if i not in ids) if len(ids) < 16 else None
    if sid is None:
        raise errors.bad_request("The system already has its maximum of 16 virtual switches")
    out = vswitch_element(name, sid)
    mode = el.findtext(x.q("SwitchMode"))
    if mode:
        schema.set_field(out, "SwitchMode", mode, kb="CUD")
    uuid = str(uuidlib.uuid5(uuidlib.NAMESPACE_DNS, f"{parent.uuid}/vswitch/{name}"))
    x.set_atom(out, uuid)
    return Resource("VirtualSwitch", uuid, out, parent=parent, rootable=False)


def _vswitch_by_uuid(emu: Emulator, uuid: str | None) -> Resource | None:
    return emu.store.find("VirtualSwitch", uuid) if uuid else None


def _vswitch_by_id(emu: Emulator, sid: int) -> Resource | None:
    return next(
        (s for s in emu.store.list("VirtualSwitch") if int(s.field("SwitchID", "-1")) == sid), None
    )


# ---- virtual networks (one per VLAN and virtual switch, created on first use) -------------
def ensure_vnet(emu: Emulator, vs: Resource, vlan: int, tagged: bool) -> Resource:
    """The VirtualNetwork for ``vlan`` on ``vs``, created (and linked) on first use."""
    assert emu.ms is not None
    for vn in emu.store.list("VirtualNetwork"):
        if vn.field("NetworkVLANID") == str(vlan) and vn.field("VswitchID") == vs.field("SwitchID"):
            return vn
    uuid = str(uuidlib.uuid5(uuidlib.NAMESPACE_DNS, f"{vs.uuid}/vlan/{vlan}"))
    el = x.container("VirtualNetwork")
    x.set_atom(el, uuid)
    etree.SubElement(
        el, x.q("AssociatedSwitch"), kb="COD", kxe="false", href=emu.base + vs.path, rel="related"
    )
    x.sub(el, "NetworkName", f"VLAN{vlan}-{vs.field('SwitchName')}", kb="CUR")
    x.sub(el, "NetworkVLANID", str(vlan), kb="COD")
    x.sub(el, "VswitchID", vs.field("SwitchID"))
    x.sub(el, "TaggedNetwork", "true" if tagged else "false", kb="COD")
    vn = emu.store.add(Resource("VirtualNetwork", uuid, el, parent=emu.ms, rootable=False))
    links = vs.elem.find(x.q("VirtualNetworks"))
    etree.SubElement(links, x.q("link"), href=emu.base + vn.path, rel="related")
    vs.bump()
    return vn


def _vnet_links(parent: etree._Element, hrefs: list[str]) -> None:
    for c in list(parent):
        parent.remove(c)
    for h in hrefs:
        etree.SubElement(parent, x.q("link"), href=h, rel="related")


# ---- client network adapters ------------------------------------------------------------------
def _cna_create(emu: Emulator, parent: Resource | None, el: etree._Element) -> Resource:
    assert parent is not None
    who = f"ClientNetworkAdapter on {partition.name_of(parent.elem)!r}"
    partition.check_hotplug(parent, "add a network adapter to")
    pvid = _vid(el.findtext(x.q("PortVLANID")), who, "PortVLANID")
    tagged = _check_tagged(el, pvid, who)
    vs = _vswitch_by_uuid(emu, _link_uuid(el.find(x.q("AssociatedVirtualSwitch"))))
    if vs is None:
        raise errors.bad_request(
            f"{who}: AssociatedVirtualSwitch does not name a virtual switch of this system"
        )
    mac = el.findtext(x.q("MACAddress"))
    mac = ids.check_mac(emu, mac, who) if mac else ids.new_mac(emu)
    limit = int(parent.field("PartitionIOConfiguration/MaximumVirtualIOSlots", "64") or 64)
    wanted = slots.int_of(el, "VirtualSlotNumber")
    used = slots.client_slots_in_use(emu, parent.uuid)
    if parent.kind == "VirtualIOServer":
        used |= slots.server_slots_in_use(parent.elem)
    slot = slots.Slots(used, slots.FIRST_CLIENT_SLOT, max(limit, 64)).take(wanted, who)
    for tag in ("UseNextAvailableSlotID", "UseNextAvailableHighSlotID"):
        c = el.find(x.q(tag))
        if c is not None:
            el.remove(c)
    loc = slots.location_code(emu, parent, slot)
    schema.set_field(el, "DynamicReconfigurationConnectorName", loc, kb="CUD")
    schema.set_field(el, "LocationCode", loc)
    schema.set_field(el, "LocalPartitionID", parent.field("PartitionID") or "0", kb="CUR")
    schema.set_field(el, "VirtualSlotNumber", str(slot), kb="COD")
    if el.find(x.q("Enabled")) is None:
        schema.set_field(el, "Enabled", "true", kb="UOD")
    schema.set_field(el, "MACAddress", mac, kb="CUR")
    schema.set_field(el, "PortVLANID", str(pvid), kb="CUR")
    schema.set_field(el, "VirtualSwitchID", vs.field("SwitchID"))
    if el.find(x.q("TaggedVLANSupported")) is None:
        schema.set_field(el, "TaggedVLANSupported", "true" if tagged else "false", kb="CUA")
    if parent.field("IsManagementPartition") == "true" and el.find(x.q("DeviceName")) is None:
        # The NovaLink partition runs Linux: its adapters are ibmveth devices
        # (the NovaLink partition in fake_vios_hosting_vios_feed.txt shows
        # ibmveth3), unless the client named one (OVS: tap...).
        n = len(emu.store.list("ClientNetworkAdapter", parent=parent))
        schema.set_field(el, "DeviceName", f"ibmveth{n + 1}")
    vnets = [ensure_vnet(emu, vs, pvid, False)] + [ensure_vnet(emu, vs, t, True) for t in tagged]
    links = el.find(x.q("VirtualNetworks"))
    if links is None:
        links = etree.Element(x.q("VirtualNetworks"), kb="CUR", kxe="false")
        schema.insert_ordered(el, links)
    _vnet_links(links, [emu.base + vn.path for vn in vnets])
    uuid = str(uuidlib.uuid5(uuidlib.NAMESPACE_URL, f"{parent.uuid}/cna/{mac}"))
    x.set_atom(el, uuid)
    res = Resource("ClientNetworkAdapter", uuid, el, parent=parent, rootable=False)
    _link_on_partition(emu, parent, res, add=True)
    return res


def _cna_update(emu: Emulator, res: Resource, new: etree._Element) -> None:
    who = (
        f"ClientNetworkAdapter {res.field('MACAddress')} on {partition.name_of(res.parent.elem)!r}"
    )
    _check_tagged(new, _vid(new.findtext(x.q("PortVLANID")), who, "PortVLANID"), who)
    mac = new.findtext(x.q("MACAddress"))
    if mac and mac.upper() != (res.field("MACAddress") or "").upper():
        raise errors.bad_request(
            f"{who}: the MAC address of an adapter cannot change", errors.CREATE_ONLY_FIELD
        )
    res.elem = new


def _cna_delete(emu: Emulator, res: Resource) -> None:
    assert res.parent is not None
    partition.check_hotplug(res.parent, "remove a network adapter from")
    _link_on_partition(emu, res.parent, res, add=False)


def _link_on_partition(emu: Emulator, part: Resource, cna: Resource, add: bool) -> None:
    section = part.elem.find(x.q("ClientNetworkAdapters"))
    if section is None:
        section = etree.Element(x.q("ClientNetworkAdapters"), kb="CUD", kxe="false")
        schema.insert_ordered(part.elem, section)
    href = emu.base + cna.path
    for ln in list(section):
        if ln.get("href", "").endswith(cna.uuid):
            section.remove(ln)
    if add:
        etree.SubElement(section, x.q("link"), href=href, rel="related")
    part.bump()


# ---- network bridges -----------------------------------------------------------------------------
def _trunk(
    emu: Emulator,
    v: Resource,
    pvid: int,
    tagged: list[int],
    vs: Resource,
    slot: int,
    dev: str,
    primary: bool,
) -> etree._Element:
    el = etree.Element(x.q("TrunkAdapter"), schemaVersion="V1_0")
    md = etree.SubElement(el, x.q("Metadata"))
    etree.SubElement(md, x.q("Atom"))
    loc = slots.location_code(emu, v, slot)
    x.sub(el, "DynamicReconfigurationConnectorName", loc, kb="CUD")
    x.sub(el, "LocationCode", loc)
    x.sub(el, "RequiredAdapter", "true", kb="CUD")
    x.sub(el, "VariedOn", "true", kb="CUD")
    x.sub(el, "VirtualSlotNumber", str(slot), kb="COD")
    x.sub(el, "AllowedOperatingSystemMACAddresses", "ALL", kb="CUD")
    x.sub(el, "MACAddress", ids.new_mac(emu), kb="CUR")
    x.sub(el, "PortVLANID", str(pvid), kb="CUR")
    x.sub(el, "QualityOfServicePriorityEnabled", "false", kb="CUD")
    if tagged:
        x.sub(el, "TaggedVLANIDs", " ".join(map(str, tagged)), kb="CUA")
    x.sub(el, "TaggedVLANSupported", "true" if tagged or not primary else "false", kb="CUA")
    etree.SubElement(el, x.q("AssociatedVirtualSwitch"), kb="CUD", kxe="false").append(
        etree.Element(x.q("link"), href=emu.base + vs.path, rel="related")
    )
    x.sub(el, "VirtualSwitchID", vs.field("SwitchID"))
    x.sub(el, "DeviceName", dev)
    x.sub(el, "TrunkPriority", "1", kb="CUD")
    return el


def seed_network(emu: Emulator, inv: dict[str, Any]) -> None:
    net = inv.get("network") or {}
    assert emu.ms is not None
    names = net.get("vswitches") or ["ETHERNET0"]
    for i, name in enumerate(names):
        uuid = str(uuidlib.uuid5(uuidlib.NAMESPACE_DNS, f"{emu.ms.uuid}/vswitch/{name}"))
        el = vswitch_element(name, i)
        x.set_atom(el, uuid)
        emu.store.add(Resource("VirtualSwitch", uuid, el, parent=emu.ms, rootable=False))
    seas = net.get("sea") or []
    # One SEA (a dict, as the shipped inventories have it) or several.
    for index, sea in enumerate([seas] if isinstance(seas, dict) else seas):
        _seed_sea(emu, sea, names[0], index)


def _seed_sea(emu: Emulator, sea: dict[str, Any], default_switch: str, index: int) -> None:
    """A NetworkBridge with one SEA on one VIOS (device names follow the
    VIOS's AIX numbering: ent0-ent3 physical, then trunk and SEA pairs)."""
    assert emu.ms is not None
    v = next(
        (o for o in emu.store.list("VirtualIOServer") if partition.name_of(o.elem) == sea["vios"]),
        None,
    )
    if v is None:
        raise ValueError(f"network.sea.vios {sea['vios']!r} is not one of the inventory VIOSes")
    vs = next(
        (
            s
            for s in emu.store.list("VirtualSwitch")
            if s.field("SwitchName") == sea.get("vswitch", default_switch)
        ),
        None,
    )
    if vs is None:
        raise ValueError(f"network.sea.vswitch {sea.get('vswitch')!r} is not in network.vswitches")
    on_vios = sum(
        1
        for nb in emu.store.list("NetworkBridge")
        for s in slots.items(nb.elem, "SharedEthernetAdapters", "SharedEthernetAdapter")
        if _link_uuid(s.find(x.q("AssignedVirtualIOServer"))) == v.uuid
    )
    trunk_dev, sea_dev = f"ent{4 + 2 * on_vios}", f"ent{5 + 2 * on_vios}"
    pvid = int(sea.get("pvid", 1))
    slot = slots.Slots(slots.server_slots_in_use(v.elem), 2, 2000).take(None, "SEA")
    primary = _trunk(emu, v, pvid, [], vs, slot, trunk_dev, True)
    nb = x.container("NetworkBridge")
    x.sub(nb, "FailoverEnabled", "false", kb="CUD")
    x.sub(nb, "LoadBalancingEnabled", "false", kb="CUD")
    x.sub(nb, "LoadGroups", None, kb="CUD")
    x.sub(nb, "PortVLANID", str(pvid), kb="COR")
    seas = x.sub(nb, "SharedEthernetAdapters", None, kb="CUD")
    s = x.sub_container(seas, "SharedEthernetAdapter")
    x.link(s, "AssignedVirtualIOServer", emu.base + v.ms_path)
    bdc = x.sub(s, "BackingDeviceChoice", None, kb="CUD")
    eth = x.sub_container(bdc, "EthernetBackingDevice")
    x.sub(eth, "AdapterID", "1")
    x.sub(eth, "Description", "4-Port Gigabit Ethernet PCI-Express Adapter", kb="CUD")
    x.sub(eth, "DeviceName", sea.get("backing_device", "ent0"))
    x.sub(eth, "DeviceType", "physicalEthernetAdpter")
    x.sub(s, "HighAvailabilityMode", "disabled", kb="CUD")
    x.sub(s, "DeviceName", sea_dev, kb="CUD")
    x.sub(s, "JumboFramesEnabled", "false", kb="UOD")
    x.sub(s, "PortVLANID", str(pvid))
    x.sub(s, "QualityOfServiceMode", "disabled", kb="CUD")
    x.sub(s, "QueueSize", "8192", kb="UOD")
    x.sub(s, "ThreadModeEnabled", "true", kb="CUD")
    tas = x.sub(s, "TrunkAdapters", None, kb="CUD")
    tas.append(primary)
    x.sub(s, "IsPrimary", "true", kb="CUD")
    ipi = x.sub(s, "IPInterface", None, kb="CUD")
    x.sub(ipi, "InterfaceName", "en" + sea_dev[3:], kb="CUD")
    x.sub(ipi, "IPAddress", sea.get("ip", "192.0.2.11"), kb="CUD")
    x.sub(ipi, "SubnetMask", "255.255.255.0", kb="CUD")
    x.sub(ipi, "State", "Active", kb="CUD")
    dev_key = v.uuid if not on_vios else f"{v.uuid}/{sea_dev}"
    x.sub(s, "UniqueDeviceID", "10" + uuidlib.uuid5(uuidlib.NAMESPACE_DNS, dev_key).hex[:16])
    x.sub(s, "LargeSend", "true", kb="CUD")
    schema.set_field(s, "ConfigurationState", "Configured", kb="CUD")
    x.sub(nb, "UniqueDeviceID", "0")
    x.sub(nb, "VirtualNetworks", None)
    key = f"{emu.ms.uuid}/nb/{v.uuid}" + (f"/{index}" if index else "")
    uuid = str(uuidlib.uuid5(uuidlib.NAMESPACE_DNS, key))
    x.set_atom(nb, uuid)
    res = Resource("NetworkBridge", uuid, nb, parent=emu.ms, rootable=False)
    _derive_load_groups(emu, res)
    emu.store.add(res)
    _mirror_to_vios(emu)  # its trunk's slot is taken before the next SEA's


def _sea_trunks(sea: etree._Element) -> list[etree._Element]:
    return slots.items(sea, "TrunkAdapters", "TrunkAdapter")


def _derive_load_groups(emu: Emulator, nb: Resource) -> None:
    """Load groups follow the primary SEA's trunk adapters, primary first."""
    lgs = nb.elem.find(x.q("LoadGroups"))
    for c in list(lgs):
        lgs.remove(c)
    seas = slots.items(nb.elem, "SharedEthernetAdapters", "SharedEthernetAdapter")
    if not seas:
        return
    all_hrefs: list[str] = []
    for ta in _sea_trunks(seas[0]):
        lg = x.sub_container(lgs, "LoadGroup")
        x.sub(lg, "PortVLANID", ta.findtext(x.q("PortVLANID")), kb="CUR")
        lg_tas = x.sub(lg, "TrunkAdapters", None, kb="CUD")
        for sea in seas:
            for other in _sea_trunks(sea):
                if other.findtext(x.q("PortVLANID")) == ta.findtext(x.q("PortVLANID")):
                    lg_tas.append(x.deep(other))
        lg_links = x.sub(lg, "VirtualNetworks", None, kb="CUD")
        hrefs = []
        for ta2 in lg_tas:
            vs = _vswitch_by_id(emu, int(ta2.findtext(x.q("VirtualSwitchID")) or 0))
            if vs is None:
                continue
            for vid in [int(ta2.findtext(x.q("PortVLANID")) or 0), *_tagged(ta2)]:
                href = (
                    emu.base
                    + ensure_vnet(
                        emu, vs, vid, vid != int(ta2.findtext(x.q("PortVLANID")) or 0)
                    ).path
                )
                if href not in hrefs:
                    hrefs.append(href)
        _vnet_links(lg_links, hrefs)
        all_hrefs.extend(h for h in hrefs if h not in all_hrefs)
    _vnet_links(nb.elem.find(x.q("VirtualNetworks")), all_hrefs)


def _device_names_on(emu: Emulator, v: Resource) -> set[str]:
    """Ethernet device names taken on a VIOS: its physical ports (ent0-ent3)
    and every SEA and trunk adapter of any network bridge on it."""
    names = {f"ent{i}" for i in range(0, 4)}
    for nb in emu.store.list("NetworkBridge"):
        for sea in slots.items(nb.elem, "SharedEthernetAdapters", "SharedEthernetAdapter"):
            if _link_uuid(sea.find(x.q("AssignedVirtualIOServer"))) == v.uuid:
                names.add(sea.findtext(x.q("DeviceName")) or "")
                names.update(ta.findtext(x.q("DeviceName")) or "" for ta in _sea_trunks(sea))
    return names


def _mirror_to_vios(emu: Emulator) -> None:
    """VIOS ViosNetwork view: its SEAs and trunk adapters."""
    for v in emu.store.list("VirtualIOServer"):
        seas_el = vios.section(v.elem, "SharedEthernetAdapters")
        tas_el = vios.section(v.elem, "TrunkAdapters")
        for c in list(seas_el) + list(tas_el):
            c.getparent().remove(c)
        for nb in emu.store.list("NetworkBridge"):
            for sea in slots.items(nb.elem, "SharedEthernetAdapters", "SharedEthernetAdapter"):
                if _link_uuid(sea.find(x.q("AssignedVirtualIOServer"))) == v.uuid:
                    seas_el.append(x.deep(sea))
                    for ta in _sea_trunks(sea):
                        tas_el.append(x.deep(ta))
        v.bump("ViosNetwork")


def _nb_update(emu: Emulator, res: Resource, new: etree._Element) -> None:
    who = "NetworkBridge"
    old_seas = slots.items(res.elem, "SharedEthernetAdapters", "SharedEthernetAdapter")
    new_seas = slots.items(new, "SharedEthernetAdapters", "SharedEthernetAdapter")
    if len(old_seas) != len(new_seas):
        raise errors.bad_request(f"{who}: adding or removing SEAs is not supported")
    vlan_owner: dict[tuple[int, int], str] = {}
    # VLANs bridged by other network bridges, per vswitch.
    for other in emu.store.list("NetworkBridge"):
        if other is res:
            continue
        for ta in other.elem.iter(x.q("TrunkAdapter")):
            sid = int(ta.findtext(x.q("VirtualSwitchID")) or 0)
            for vid in [int(ta.findtext(x.q("PortVLANID")) or 0), *_tagged(ta)]:
                vlan_owner[(sid, vid)] = f"network bridge {other.uuid}"
    for old_sea, sea in zip(old_seas, new_seas, strict=True):
        v_uuid = _link_uuid(old_sea.find(x.q("AssignedVirtualIOServer")))
        v = emu.store.get("VirtualIOServer", v_uuid or "")
        old_tas = {ta.findtext(x.q("DeviceName")): ta for ta in _sea_trunks(old_sea)}
        used_slots = slots.server_slots_in_use(v.elem) | {
            int(ta.findtext(x.q("VirtualSlotNumber")) or 0) for ta in old_tas.values()
        }
        slot_pool = slots.Slots(used_slots, 2, 2000)
        dev_names = _device_names_on(emu, v) | set(old_tas)
        seen: dict[tuple[int, int], str] = {}
        tas = _sea_trunks(sea)
        if not tas:
            raise errors.bad_request(f"{who}: a SEA needs its primary trunk adapter")
        primary_dev = _sea_trunks(old_sea)[0].findtext(x.q("DeviceName"))
        if tas[0].findtext(x.q("DeviceName")) != primary_dev:
            raise errors.bad_request(f"{who}: the primary trunk adapter cannot be removed")
        for ta in tas:
            tw = f"{who}: trunk adapter"
            pvid = _vid(ta.findtext(x.q("PortVLANID")), tw, "PortVLANID")
            tagged = _tagged(ta)
            if len(tagged) > MAX_VLANS_PER_TRUNK:
                raise errors.bad_request(
                    f"{tw} has {len(tagged)} tagged VLANs; at most {MAX_VLANS_PER_TRUNK} are "
                    "allowed per trunk adapter"
                )
            sid = int(ta.findtext(x.q("VirtualSwitchID")) or 0)
            vs = _vswitch_by_id(emu, sid)
            if vs is None:
                raise errors.bad_request(f"{tw}: VirtualSwitchID {sid} does not exist")
            for vid in [pvid, *tagged]:
                _vid(str(vid), tw, "VLAN")
                key = (sid, vid)
                if key in seen or key in vlan_owner:
                    raise errors.refused(
                        f"{tw}: VLAN {vid} on virtual switch {sid} is already bridged by "
                        f"{seen.get(key) or vlan_owner[key]}",
                        errors.IN_USE,
                    )
                seen[key] = f"trunk adapter with PVID {pvid}"
            dev = ta.findtext(x.q("DeviceName"))
            if dev in old_tas:
                continue
            # New trunk adapter: the server creates it on the VIOS.
            n = 0
            while f"ent{n}" in dev_names:
                n += 1
            dev_names.add(f"ent{n}")
            fresh = _trunk(emu, v, pvid, tagged, vs, slot_pool.take(None, tw), f"ent{n}", False)
            ta.getparent().replace(ta, fresh)
    res.elem = new
    _derive_load_groups(emu, res)
    _mirror_to_vios(emu)


# ---- SR-IOV vNICs ---------------------------------------------------------------------
def _vnic_create(emu: Emulator, parent: Resource | None, el: etree._Element) -> Resource:
    """Each backing device takes a logical port on its physical port; the
    server creates that port on the hosting VIOS and links it from the device."""
    assert parent is not None and emu.ms is not None
    who = f"vNIC on {partition.name_of(parent.elem)!r}"
    partition.check_hotplug(parent, "add a vNIC to")
    details = el.find(x.q("Details"))
    if details is None:
        raise errors.bad_request(f"{who}: the Details element is required")
    pvid_text = details.findtext(x.q("PortVLANID"))
    pvid = 0 if pvid_text in (None, "", "0") else _vid(pvid_text, who, "PortVLANID")
    mac = details.findtext(x.q("MACAddress"))
    mac = ids.check_mac(emu, mac, who) if mac else ids.new_mac(emu)
    schema.set_field(details, "MACAddress", mac, kb="CUR")
    schema.set_field(details, "PortVLANID", str(pvid), kb="CUR")
    backings = list(el.iter(x.q("VirtualNICSRIOVBackingDevice")))
    if not backings:
        raise errors.bad_request(f"{who}: at least one SR-IOV backing device is required")
    # Check every backing device before anything is allocated.
    plan: list[tuple[etree._Element, Resource, sriov.Port, int, int]] = []
    for b in backings:
        port = sriov.find_port(
            emu,
            b.findtext(x.q("RelatedSRIOVAdapterID")),
            b.findtext(x.q("RelatedSRIOVPhysicalPortID")),
            who,
        )
        if any(p.elem is port.elem for _b, _v, p, _c, _m in plan):
            raise errors.refused(
                f"{who}: two backing devices on {port.label}; use a different physical "
                "port for each backing device",
                errors.IN_USE,
            )
        v_uuid = _link_uuid(b.find(x.q("AssociatedVirtualIOServer")))
        v = emu.store.find("VirtualIOServer", v_uuid) if v_uuid else None
        if v_uuid and v is None:
            raise errors.bad_request(f"{who}: hosting VIOS {v_uuid} does not exist")
        if v is None:
            v = emu.store.list("VirtualIOServer")[0]
        # No capacity asked: the platform uses the port's minimum granularity.
        cap_text = b.findtext(x.q("CurrentCapacityPercentage"))
        cap = sriov.percent(cap_text) if cap_text else port.granularity
        max_text = b.findtext(x.q("MaxCapacityPercentage"))
        max_cap = sriov.percent(max_text) if max_text else sriov.percent("100")
        sriov.check_room(emu, port, cap, who)
        _failover_priority(b, who)
        plan.append((b, v, port, cap, max_cap))
    limit = int(parent.field("PartitionIOConfiguration/MaximumVirtualIOSlots", "64") or 64)
    used_slots = slots.client_slots_in_use(emu, parent.uuid) | _vnic_slots(emu, parent)
    slot = slots.Slots(used_slots, slots.FIRST_CLIENT_SLOT, limit).take(
        slots.int_of(el, "VirtualSlotNumber"), who
    )
    # The device with the highest failover priority (lowest number) carries
    # the traffic; among equals the first listed.
    active = min(range(len(plan)), key=lambda i: (_failover_priority(plan[i][0], who), i))
    for i, (b, v, port, cap, max_cap) in enumerate(plan):
        lp = sriov.add_backing_port(emu, v, port, cap, max_cap, details, mac)
        schema.set_field(b, "IsActive", "true" if i == active else "false")
        schema.set_field(b, "Status", "OPERATIONAL")
        schema.set_field(b, "CurrentCapacityPercentage", sriov.fmt_percent(cap), kb="COD")
        schema.set_field(b, "MaxCapacityPercentage", sriov.fmt_percent(max_cap), kb="COD")
        for tag, href, kb in (
            ("AssociatedVirtualIOServer", emu.base + v.ms_path, "COR"),
            ("RelatedSRIOVLogicalPort", emu.base + lp.path, "ROR"),
        ):
            x.remove_all(b, [tag])
            schema.insert_ordered(b, x.related(tag, href, kb))
        schema.set_field(b, "DesiredCapacityPercentage", sriov.fmt_percent(cap))
        schema.set_field(b, "DesiredMaxCapacityPercentage", sriov.fmt_percent(max_cap))
    for tag in ("UseNextAvailableSlotID", "UseNextAvailableHighSlotID"):
        c = el.find(x.q(tag))
        if c is not None:
            el.remove(c)
    schema.set_field(el, "VirtualSlotNumber", str(slot), kb="CUR")
    loc = slots.location_code(emu, parent, slot)
    schema.set_field(el, "DynamicReconfigurationConnectorName", loc, kb="CUD")
    schema.set_field(el, "LocationCode", loc)
    schema.set_field(el, "LocalPartitionID", parent.field("PartitionID") or "0", kb="CUR")
    # The vNIC's capacity is that of its active (first) backing device.
    schema.set_field(details, "DesiredCapacityPercentage", sriov.fmt_percent(plan[0][3]), kb="ROO")
    uuid = str(uuidlib.uuid5(uuidlib.NAMESPACE_URL, f"{parent.uuid}/vnic/{mac}"))
    x.set_atom(el, uuid)
    return Resource("VirtualNICDedicated", uuid, el, parent=parent, rootable=False)


#: FailOverPriority of a backing device the client does not set (*guess*: the
#: HMC's documented default; no capture shows a vNIC without one).
DEFAULT_FAILOVER_PRIORITY = 50


def _failover_priority(b: etree._Element, who: str) -> int:
    """1 (tried first) .. 100, as pypowervm documents VNICBackDev.failover_pri;
    anything else is refused (*guess*: the text and code of the refusal)."""
    text = b.findtext(x.q("FailOverPriority"))
    if text in (None, ""):
        return DEFAULT_FAILOVER_PRIORITY
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 100:
        raise errors.bad_request(
            f"{who}: FailOverPriority {text!r} is not between 1 (highest) and 100 (lowest)"
        )
    return value


def _vnic_slots(emu: Emulator, part: Resource) -> set[int]:
    return {
        int(v.field("VirtualSlotNumber") or 0)
        for v in emu.store.list("VirtualNICDedicated", parent=part)
    }


def _vnic_delete(emu: Emulator, res: Resource) -> None:
    assert res.parent is not None
    partition.check_hotplug(res.parent, "remove a vNIC from")
    _release_vnic_ports(emu, res)


def _release_vnic_ports(emu: Emulator, res: Resource) -> None:
    """The vNIC is going: its backing logical ports on the VIOSes go with it."""
    for ln in res.elem.iter(x.q("RelatedSRIOVLogicalPort")):
        sriov.release_backing_port(emu, ln.get("href"))


def register(emu: Emulator) -> None:
    emu.register(
        Kind("VirtualSwitch", rootable=False, parents=("ManagedSystem",), create=_vswitch_create)
    )
    emu.register(Kind("VirtualNetwork", rootable=False, parents=("ManagedSystem",)))
    emu.register(
        Kind(
            "ClientNetworkAdapter",
            rootable=False,
            parents=("LogicalPartition", "VirtualIOServer"),
            create=_cna_create,
            update=_cna_update,
            delete=_cna_delete,
        )
    )
    emu.register(
        Kind("NetworkBridge", rootable=False, parents=("ManagedSystem",), update=_nb_update)
    )
    emu.register(
        Kind(
            "VirtualNICDedicated",
            rootable=False,
            parents=("LogicalPartition",),
            create=_vnic_create,
            delete=_vnic_delete,
            on_cascade=_release_vnic_ports,
        )
    )
    emu.seed_hooks.append(seed_network)
