"""SR-IOV Ethernet logical ports (``SRIOVEthernetLogicalPort``).

A logical port is a slice of one physical port of an SR-IOV adapter. A client
assigns one directly to a partition (``LogicalPartition|VirtualIOServer/{p}/
SRIOVEthernetLogicalPort``); the server also creates one on the hosting VIOS
for every vNIC backing device (see ``network.py``), which the vNIC links as
``RelatedSRIOVLogicalPort``.

Every logical port is counted on its physical port of the ManagedSystem:
``ConfiguredEthernetLogicalPorts`` and ``AllocatedCapacity`` (the sum of the
ports' configured capacities). A port is refused when its adapter is missing,
not in SR-IOV mode or not running, when the physical port is full
(``ConfiguredMaxEthernetLogicalPorts``), when the capacity would pass 100 %,
or when the capacity is not a multiple of the port's minimum granularity.

Server-assigned values follow the real capture ``sriov_lp_feed.txt``: logical
port IDs 0x27004000 + n per adapter, DRC name ``PHB 4096+n``, location code
``<physical port>-S<n>``; a vNIC's port reports device name ``unavailable``.
"""

from __future__ import annotations

import uuid as uuidlib
from dataclasses import dataclass
from typing import Any

from lxml import etree

from ibmvirt.emulators.novalink import errors, schema
from ibmvirt.emulators.novalink import xmlutil as x
from ibmvirt.emulators.novalink.emulator import Emulator, Kind
from ibmvirt.emulators.novalink.state import ids, partition
from ibmvirt.emulators.novalink.store import Resource

KIND = "SRIOVEthernetLogicalPort"
NOT_VNIC = "NOT_VNIC"
DEDICATED_VNIC = "DEDICATED_VNIC"
_LPID_BASE = 0x27004000  # sriov_lp_feed.txt: 654327809 == 0x27004001
_DRC_BASE = 4096  # sriov_lp_feed.txt: logical port 0x27004002 is "PHB 4098"
_FULL = 10000  # capacities are kept in hundredths of a percent


# ---- physical ports on the ManagedSystem -----------------------------------------------
@dataclass
class Port:
    """One SR-IOV physical port, found by (SRIOVAdapterID, PhysicalPortID)."""

    adapter: etree._Element
    elem: etree._Element
    aid: str
    pid: str

    def num(self, tag: str, default: int = 0) -> int:
        text = self.elem.findtext(x.q(tag))
        return int(text) if text not in (None, "") else default

    @property
    def granularity(self) -> int:
        return percent(self.elem.findtext(x.q("MinimumEthernetCapacityGranularity")) or "2.0%")

    @property
    def label(self) -> str:
        return f"SR-IOV port {self.aid}/{self.pid}"


def percent(text: str | None) -> int:
    """``"2.0%"``/``"2.00%"``/``"2"`` -> hundredths of a percent (200)."""
    value = float((text or "").strip().rstrip("%"))
    return round(value * 100)


def fmt_percent(hundredths: int) -> str:
    """Hundredths -> the server's spelling (``"2.0%"``, ``"42.42%"``)."""
    return f"{hundredths / 100}%"


def _locate(emu: Emulator, aid: str, pid: str) -> tuple[etree._Element | None, Port | None]:
    """(adapter, port) by IDs; either is None when missing."""
    assert emu.ms is not None
    for ad in emu.ms.elem.iter(x.q("SRIOVAdapter")):
        if (ad.findtext(x.q("SRIOVAdapterID")) or "") != aid:
            continue
        for port in ad.iter():
            if (
                isinstance(port.tag, str)
                and x.local(port).endswith("PhysicalPort")
                and (port.findtext(x.q("PhysicalPortID")) or "") == pid
            ):
                return ad, Port(ad, port, aid, pid)
        return ad, None
    return None, None


def find_port(emu: Emulator, aid: str | None, pid: str | None, who: str) -> Port:
    """The physical port a request names, or a refusal naming what is wrong."""
    aid, pid = (aid or "").strip(), (pid or "").strip()
    if not aid or not pid:
        raise errors.bad_request(f"{who}: the SR-IOV adapter ID and physical port ID are required")
    ad, port = _locate(emu, aid, pid)
    if ad is None:
        raise errors.bad_request(f"{who}: there is no SR-IOV adapter with SRIOVAdapterID {aid}")
    mode = ad.findtext(x.q("AdapterMode")) or ""
    st = ad.findtext(x.q("AdapterState")) or ""
    if mode != "Sriov" or st != "Running":
        raise errors.refused(
            f"{who}: SR-IOV adapter {aid} at {ad.findtext(x.q('PhysicalLocation'))} is in "
            f"mode {mode!r}, state {st!r}; logical ports need mode 'Sriov' and state "
            "'Running'. Switch the adapter to shared (SR-IOV) mode first.",
            errors.SRIOV_NOT_READY,
        )
    if port is None:
        raise errors.bad_request(f"{who}: SR-IOV adapter {aid} has no physical port {pid}")
    return port


def _on_port(emu: Emulator, port: Port, exclude: Resource | None = None) -> list[Resource]:
    return [
        lp
        for lp in emu.store.list(KIND)
        if lp is not exclude
        and lp.field("AdapterID") == port.aid
        and lp.field("PhysicalPortID") == port.pid
    ]


def check_room(
    emu: Emulator,
    port: Port,
    capacity: int,
    who: str,
    exclude: Resource | None = None,
    promisc: bool = False,
    diag: bool = False,
) -> None:
    """Refuse a logical port that the physical port cannot hold.

    ``exclude`` is the logical port being changed (an update does not count
    itself twice).
    """
    gran = port.granularity
    if capacity <= 0 or capacity > _FULL or (gran and capacity % gran):
        raise errors.bad_request(
            f"{who}: capacity {fmt_percent(capacity)} must be a multiple of the minimum "
            f"granularity {fmt_percent(gran)} of {port.label}, between "
            f"{fmt_percent(gran)} and 100%"
        )
    others = _on_port(emu, port, exclude)
    limit = port.num("ConfiguredMaxEthernetLogicalPorts", 0)
    if len(others) + (0 if exclude is not None else 1) > limit:
        raise errors.refused(
            f"{who}: {port.label} has no free logical port ({len(others)} of "
            f"{limit} configured); delete a logical port or vNIC on it, or use another port",
            errors.IN_USE,
        )
    used = sum(percent(o.field("ConfiguredCapacity")) for o in others)
    if used + capacity > _FULL:
        raise errors.refused(
            f"{who}: {port.label} has {fmt_percent(_FULL - used)} capacity left, "
            f"{fmt_percent(capacity)} requested; lower the capacity or use another port",
            errors.NO_SPACE,
        )
    for flag, tag, what, limit_tag in (
        (promisc, "IsPromiscous", "promiscuous", "MaximumPromiscuousLogicalPorts"),
        (diag, "IsDiagnostic", "diagnostic", "MaximumDiagnosticsLogicalPorts"),
    ):
        most = port.num(limit_tag, 1)
        have = sum(1 for o in others if o.field(tag) == "true")
        if flag and have >= most:
            raise errors.refused(
                f"{who}: {port.label} allows {most} {what} logical port(s) and already has {have}",
                errors.IN_USE,
            )


def _account(emu: Emulator, port: Port | None, adding: Resource | None = None) -> None:
    """Recount the physical port from the logical ports that exist (plus
    ``adding``, which the engine stores once the create hook returns)."""
    if port is None:
        return
    lps = _on_port(emu, port) + ([adding] if adding is not None else [])
    schema.set_field(port.elem, "ConfiguredEthernetLogicalPorts", str(len(lps)))
    total = sum(percent(o.field("ConfiguredCapacity")) for o in lps)
    schema.set_field(port.elem, "AllocatedCapacity", fmt_percent(total))
    assert emu.ms is not None
    emu.changed(emu.ms)


# ---- the logical port element ---------------------------------------------------------
@dataclass
class Settings:
    """What a client (or a vNIC) asks of a logical port."""

    pvid: int = 0
    allowed_vlans: str = "ALL"
    allowed_macs: str = "ALL"
    mac: str | None = None
    promisc: bool = False
    diag: bool = False
    huge_dma: bool = False
    capacity: int | None = None
    max_capacity: int = _FULL
    config_id: str = "0"
    tuning_buffer: str = "-1"
    priority: str = "0"
    allowable_priorities: str = "0"


def _bool(el: etree._Element, tag: str, who: str) -> bool:
    text = (el.findtext(x.q(tag)) or "false").strip().lower()
    if text not in ("true", "false"):
        raise errors.bad_request(f"{who}: {tag} must be true or false, not {text!r}")
    return text == "true"


def _vlans(text: str, port: Port, who: str) -> str:
    text = " ".join(text.split()) or "ALL"
    if text.upper() in ("ALL", "NONE"):
        return text.upper()
    lo, hi = port.num("MinimumVLANID", 1), port.num("MaximumVLANID", 4094)
    vids = [int(v) for v in text.split()]
    bad = [v for v in vids if not lo <= v <= hi]
    if bad:
        raise errors.bad_request(f"{who}: allowed VLANs {bad} are outside {lo}..{hi}")
    if len(set(vids)) != len(vids):
        raise errors.bad_request(f"{who}: allowed VLANs list a VLAN more than once")
    return " ".join(str(v) for v in vids)


def _macs(text: str, who: str) -> str:
    text = " ".join(text.split()) or "ALL"
    if text.upper() in ("ALL", "NONE"):
        return text.upper()
    macs = [m.replace(":", "").upper() for m in text.split()]
    if any(len(m) != 12 or any(c not in "0123456789ABCDEF" for c in m) for m in macs):
        raise errors.bad_request(f"{who}: allowed MAC addresses {text!r} are not 12 hex digits")
    return " ".join(macs)


def parse(el: etree._Element, port: Port, who: str) -> Settings:
    """Client payload -> Settings, checked against what the physical port allows."""
    s = Settings()
    pvid = (el.findtext(x.q("PortVLANID")) or "0").strip()
    s.pvid = int(pvid)
    lo, hi = port.num("MinimumPortVLANID", 1), port.num("MaximumPortVLANID", 4094)
    if s.pvid != 0 and not lo <= s.pvid <= hi:
        raise errors.bad_request(
            f"{who}: PortVLANID {s.pvid} is outside {lo}..{hi} for {port.label} (0 = untagged)"
        )
    s.allowed_vlans = _vlans(el.findtext(x.q("AllowedVLANs")) or "ALL", port, who)
    s.allowed_macs = _macs(el.findtext(x.q("AllowedMACAddresses")) or "ALL", who)
    s.mac = (el.findtext(x.q("MACAddress")) or "").strip() or None
    s.promisc = _bool(el, "IsPromiscous", who)
    s.diag = _bool(el, "IsDiagnostic", who)
    s.huge_dma = _bool(el, "IsHugeDMA", who)
    if s.huge_dma and int(port.adapter.findtext(x.q("MaximumHugeDMALogicalPorts")) or 0) < 1:
        raise errors.bad_request(
            f"{who}: SR-IOV adapter {port.aid} supports no huge-DMA logical ports"
        )
    cap = el.findtext(x.q("ConfiguredCapacity"))
    s.capacity = percent(cap) if cap else port.granularity
    max_cap = el.findtext(x.q("ConfiguredMaxCapacity"))
    s.max_capacity = percent(max_cap) if max_cap else _FULL
    if not 0 < s.max_capacity <= _FULL:
        raise errors.bad_request(f"{who}: ConfiguredMaxCapacity must be above 0% and at most 100%")
    for attr, tag in (
        ("config_id", "ConfigurationID"),
        ("tuning_buffer", "TuningBufferID"),
        ("priority", "IEEE8021QPriority"),
        ("allowable_priorities", "IEEE8021QAllowablePriorities"),
    ):
        value = (el.findtext(x.q(tag)) or "").strip()
        if value:
            int(value)  # a ValueError is answered as a 400 by the engine
            setattr(s, attr, value)
    return s


def _free_index(emu: Emulator, aid: str, wanted: int | None, who: str) -> int:
    used = {
        int(lp.field("LogicalPortID") or 0) - _LPID_BASE
        for lp in emu.store.list(KIND)
        if lp.field("AdapterID") == aid
    }
    if wanted is not None:
        if wanted < 1 or wanted in used:
            raise errors.bad_request(
                f"{who}: logical port ID {wanted + _LPID_BASE} is not free on SR-IOV "
                f"adapter {aid}; leave LogicalPortID out to have one assigned",
                errors.DUPLICATE_NAME,
            )
        return wanted
    n = 1
    while n in used:
        n += 1
    return n


def _element(port: Port, index: int, s: Settings, usage: str) -> etree._Element:
    """The logical port as the server reports it (order and kb as in the capture)."""
    assert s.mac is not None and s.capacity is not None
    drc = f"PHB {_DRC_BASE + index}"
    vnic = usage != NOT_VNIC
    el = x.container(KIND)
    x.sub(el, "ConfigurationID", s.config_id, kb="COD")
    x.sub(el, "LogicalPortID", str(_LPID_BASE + index), kb="COD")
    x.sub(el, "AdapterID", port.aid, kb="COR")
    x.sub(el, "DynamicReconfigurationConnectorName", drc, kb="ROR")
    x.sub(el, "IsFunctional", "true", kb="ROR")
    x.sub(el, "IsPromiscous", str(s.promisc).lower(), kb="CUR")
    x.sub(el, "IsDiagnostic", str(s.diag).lower(), kb="CUR")
    x.sub(el, "IsHugeDMA", str(s.huge_dma).lower(), kb="CUR")
    # The OS device name is not known to the platform for a vNIC's port.
    x.sub(el, "DeviceName", "unavailable" if vnic else drc, kb="ROR")
    x.sub(el, "ConfiguredCapacity", fmt_percent(s.capacity), kb="CUR")
    x.sub(el, "ConfiguredMaxCapacity", fmt_percent(s.max_capacity), kb="CUR")
    x.sub(el, "PhysicalPortID", port.pid, kb="COR")
    x.sub(el, "PortVLANID", str(s.pvid), kb="CUR")
    loc = port.elem.findtext(x.q("LocationCode")) or ""
    x.sub(el, "LocationCode", f"{loc}-S{index}", kb="ROR")
    x.sub(el, "TuningBufferID", "0" if vnic else s.tuning_buffer, kb="CUR")
    x.sub(el, "VNICPortUsage", usage, kb="ROR")
    x.sub(el, "AllowedMACAddresses", s.allowed_macs, kb="CUD")
    x.sub(el, "MACAddress", s.mac, kb="CUD")
    # A vNIC's server reports the MAC in use; a directly assigned port reports
    # zeros until the partition's OS configures it (as in the capture).
    x.sub(el, "CurrentMACAddress", s.mac if vnic else "000000000000", kb="ROR")
    x.sub(el, "IEEE8021QAllowablePriorities", s.allowable_priorities, kb="CUD")
    x.sub(el, "IEEE8021QPriority", s.priority, kb="CUD")
    if s.allowed_vlans != "ALL":
        count = 0 if s.allowed_vlans == "NONE" else len(s.allowed_vlans.split())
        x.sub(el, "NumberOfAllowedVLANs", str(count), kb="CUD")
    x.sub(el, "AllowedVLANs", s.allowed_vlans, kb="CUD")
    return el


def _new(
    emu: Emulator, owner: Resource, port: Port, s: Settings, usage: str, wanted: int | None
) -> Resource:
    index = _free_index(emu, port.aid, wanted, f"{KIND} on {partition.name_of(owner.elem)!r}")
    el = _element(port, index, s, usage)
    assert emu.ms is not None
    uuid = str(
        uuidlib.uuid5(
            uuidlib.NAMESPACE_URL, f"{emu.ms.uuid}/sriov/{port.aid}/{index}/{s.mac}/{owner.uuid}"
        )
    )
    x.set_atom(el, uuid)
    return Resource(KIND, uuid, el, parent=owner, rootable=False)


# ---- client requests ------------------------------------------------------------------
def _create(emu: Emulator, parent: Resource | None, el: etree._Element) -> Resource:
    assert parent is not None
    who = f"{KIND} on {partition.name_of(parent.elem)!r}"
    partition.check_hotplug(parent, "add an SR-IOV logical port to")
    port = find_port(emu, el.findtext(x.q("AdapterID")), el.findtext(x.q("PhysicalPortID")), who)
    s = parse(el, port, who)
    assert s.capacity is not None
    check_room(emu, port, s.capacity, who, promisc=s.promisc, diag=s.diag)
    s.mac = ids.check_mac(emu, s.mac, who) if s.mac else ids.new_mac(emu)
    wanted = el.findtext(x.q("LogicalPortID"))
    res = _new(emu, parent, port, s, NOT_VNIC, int(wanted) - _LPID_BASE if wanted else None)
    _account(emu, port, adding=res)
    return res


def _port_of(emu: Emulator, res: Resource) -> Port | None:
    """The logical port's physical port, whatever mode its adapter is in now."""
    return _locate(emu, res.field("AdapterID") or "", res.field("PhysicalPortID") or "")[1]


def _backs_vnic(res: Resource) -> bool:
    return res.field("VNICPortUsage") != NOT_VNIC


def _update(emu: Emulator, res: Resource, new: etree._Element) -> None:
    assert res.parent is not None
    who = f"{KIND} {res.field('LogicalPortID')} on {partition.name_of(res.parent.elem)!r}"
    if _backs_vnic(res):
        raise errors.refused(f"{who} backs a vNIC; change the vNIC instead", errors.IN_USE)
    partition.check_hotplug(res.parent, "change an SR-IOV logical port of")
    port = find_port(emu, res.field("AdapterID"), res.field("PhysicalPortID"), who)
    s = parse(new, port, who)
    assert s.capacity is not None
    check_room(emu, port, s.capacity, who, exclude=res, promisc=s.promisc, diag=s.diag)
    mac = (res.field("MACAddress") or "").upper()
    if s.mac and s.mac.replace(":", "").upper() != mac:
        raise errors.bad_request(
            f"{who}: the MAC address of a logical port cannot change", errors.CREATE_ONLY_FIELD
        )
    s.mac = mac
    index = int(res.field("LogicalPortID") or 0) - _LPID_BASE
    el = _element(port, index, s, NOT_VNIC)
    x.set_atom(el, res.uuid, x.text(res.elem, "Metadata/Atom/AtomCreated"))
    res.elem = el
    _account(emu, port)


def _delete(emu: Emulator, res: Resource) -> None:
    assert res.parent is not None
    if _backs_vnic(res):
        raise errors.refused(
            f"{KIND} {res.field('LogicalPortID')} backs a vNIC of another partition; "
            "delete the vNIC instead",
            errors.IN_USE,
        )
    partition.check_hotplug(res.parent, "remove an SR-IOV logical port from")


def _after_delete(emu: Emulator, res: Resource) -> None:
    """Recount the physical port once the logical port is gone from the store."""
    _account(emu, _port_of(emu, res))


def _cascade(emu: Emulator, res: Resource) -> None:
    """The owning partition is being deleted: free the port's share."""
    emu.store.remove(res)
    _account(emu, _port_of(emu, res))


# ---- vNIC backing devices (called by network.py) --------------------------------------
def add_backing_port(
    emu: Emulator,
    vios: Resource,
    port: Port,
    capacity: int,
    max_capacity: int,
    details: etree._Element,
    mac: str,
) -> Resource:
    """Create the hosting VIOS's logical port for one vNIC backing device.

    The caller has checked room on the port (``check_room``).
    """
    s = Settings(
        pvid=int(details.findtext(x.q("PortVLANID")) or 0),
        allowed_vlans=" ".join((details.findtext(x.q("AllowedVLANIDs")) or "ALL").split()),
        allowed_macs="NONE",
        mac=mac,
        capacity=capacity,
        max_capacity=max_capacity,
    )
    res = _new(emu, vios, port, s, DEDICATED_VNIC, None)
    emu.store.add(res)
    _account(emu, port)
    emu.publish("ADD_URI", res)
    return res


def release_backing_port(emu: Emulator, href: str | None) -> None:
    """A vNIC went away: remove the logical port its backing device used."""
    uuid = (href or "").split("?")[0].rstrip("/").rsplit("/", 1)[-1]
    res = emu.store.find(KIND, uuid) if uuid else None
    if res is None:
        return
    emu.store.remove(res)
    _account(emu, _port_of(emu, res))
    emu.publish("DELETE_URI", res)


# ---- inventory ------------------------------------------------------------------------
def _seed(emu: Emulator, inv: dict[str, Any]) -> None:
    """``host.sriov_adapters: {"<SRIOVAdapterID>": {mode, state}}`` overrides."""
    assert emu.ms is not None
    wanted = (inv.get("host") or {}).get("sriov_adapters") or {}
    adapters = {
        ad.findtext(x.q("SRIOVAdapterID")): ad
        for ad in emu.ms.elem.iter(x.q("SRIOVAdapter"))
        if ad.findtext(x.q("SRIOVAdapterID"))
    }
    for aid, spec in wanted.items():
        ad = adapters.get(str(aid))
        if ad is None:
            raise ValueError(
                f"host.sriov_adapters names SR-IOV adapter {aid}; the host has {sorted(adapters)}"
            )
        for key, tag in (("mode", "AdapterMode"), ("state", "AdapterState")):
            if key in (spec or {}):
                schema.set_field(ad, tag, str(spec[key]))


def register(emu: Emulator) -> None:
    emu.register(
        Kind(
            KIND,
            rootable=False,
            parents=("LogicalPartition", "VirtualIOServer"),
            create=_create,
            update=_update,
            delete=_delete,
            on_cascade=_cascade,
            after_delete=[_after_delete],
        )
    )
    emu.seed_hooks.append(_seed)
