"""VirtualSCSIBus: a VIOS's vSCSI connections seen one adapter pair at a time
(``VirtualIOServer/{uuid}/VirtualSCSIBus``, as newer NovaLink serves them).

The VIOS's ``VirtualSCSIMappings`` stay the one source of truth. A bus is a
view of the mappings that share a server adapter: its client link, both
adapters and, in ``AssociatedMappings``, each mapping's storage and target
device. Bus requests are turned into VIOS mapping changes and applied through
the VIOS update path (so ``scsi.scsi_hook`` assigns slots, adapters, target
devices and LUAs exactly as for a mapping request), and every VIOS mapping
change is mirrored back into the bus objects. Either way both ETags move.

Mapping list shape, as the real VIOS reports it: an adapter pair with storage
shows one mapping per storage device; a pair without storage (a bus just
created, or emptied) shows one mapping with adapters only.
"""

from __future__ import annotations

import hashlib
import uuid as uuidlib

from lxml import etree

from ibmvirt.emulators.novalink import errors
from ibmvirt.emulators.novalink import xmlutil as x
from ibmvirt.emulators.novalink.emulator import Emulator, Kind
from ibmvirt.emulators.novalink.state import partition, scsi, slots, vios
from ibmvirt.emulators.novalink.store import Groups, Resource

KIND = "VirtualSCSIBus"
STDEV = "VirtualSCSIStorageAndTargetDevice"
_MAPS = "VirtualSCSIMappings"
_GROUP = "ViosSCSIMapping"
_DIGEST = "scsibus_digest"  # VIOS ext key: mappings the bus objects were built from


class Bus(Resource):
    """A bus object that follows its VIOS: before it is shown or its ETag is
    compared it is rebuilt if the VIOS mappings changed behind its back
    (server-side changes such as an incoming migration), and it answers 404
    once its adapter pair is gone."""

    def __init__(self, emu: Emulator, uuid: str, elem: etree._Element, v: Resource, slot: int):
        super().__init__(KIND, uuid, elem, parent=v, rootable=False)
        self.emu = emu
        self.slot = slot

    def fresh(self) -> None:
        assert self.parent is not None
        if self.parent.ext.get(_DIGEST) != _digest(self.parent.elem):
            sync(self.emu, self.parent)
        if self.emu.store.find(KIND, self.uuid) is not self:
            raise errors.not_found(KIND, self.uuid)

    def etag(self, groups: Groups) -> str:
        self.fresh()
        return super().etag(groups)

    def view(self, groups: Groups) -> etree._Element:
        self.fresh()
        return super().view(groups)


# ---- VIOS mappings -> bus objects -------------------------------------------------------------
def _digest(v_elem: etree._Element) -> str:
    sec = v_elem.find(x.q(_MAPS))
    raw = b"" if sec is None else etree.tostring(sec, method="c14n")
    return hashlib.sha256(raw).hexdigest()


def _server_slot(m: etree._Element) -> int | None:
    return slots.int_of(m.find(x.q("ServerAdapter")), "VirtualSlotNumber")


def _has_storage(m: etree._Element) -> bool:
    return slots.storage_key(m.find(x.q("Storage"))) is not None


def _pairs(v_elem: etree._Element) -> dict[int, list[etree._Element]]:
    """Mappings grouped by server adapter slot (only completed adapter pairs)."""
    out: dict[int, list[etree._Element]] = {}
    for m in slots.mappings(v_elem):
        sslot = _server_slot(m)
        if sslot is not None and m.find(x.q("ClientAdapter")) is not None:
            out.setdefault(sslot, []).append(m)
    return out


def _link_uuid(m: etree._Element) -> str:
    link = m.find(x.q("AssociatedLogicalPartition"))
    href = link.get("href", "") if link is not None else ""
    return href.split("?")[0].rstrip("/").rsplit("/", 1)[-1]


def _bus_uuid(v: Resource, sslot: int, m: etree._Element) -> str:
    """Name-based, like the real server's bus IDs (version-3 UUIDs in
    vscsibus_feed.txt): the same adapter pair keeps its ID across restarts,
    a new pair in a reused slot gets a new one."""
    cslot = slots.int_of(m.find(x.q("ClientAdapter")), "VirtualSlotNumber")
    key = f"{v.uuid.upper()}/{KIND}/{sslot}/{_link_uuid(m).upper()}/{cslot}"
    return str(uuidlib.uuid3(uuidlib.NAMESPACE_URL, key))


def _client_href(emu: Emulator, m: etree._Element) -> str:
    """The client link as the real bus shows it (under the ManagedSystem)."""
    client = emu.store.find("LogicalPartition", _link_uuid(m)) or emu.store.find(
        "VirtualIOServer", _link_uuid(m)
    )
    if client is None:  # partition deleted with its mappings left behind
        link = m.find(x.q("AssociatedLogicalPartition"))
        return link.get("href", "") if link is not None else ""
    return emu.base + client.ms_path


def _render(emu: Emulator, uuid: str, maps: list[etree._Element]) -> etree._Element:
    el = x.container(KIND)
    x.set_atom(el, uuid, "0")
    x.link(el, "AssociatedLogicalPartition", _client_href(emu, maps[0]), kb="CUR")
    el.append(x.deep(maps[0].find(x.q("ClientAdapter"))))
    stored = [m for m in maps if _has_storage(m)]
    # The server adapter names the backing device of its latest mapping.
    el.append(x.deep((stored[-1] if stored else maps[0]).find(x.q("ServerAdapter"))))
    assoc = x.sub_container(el, "AssociatedMappings", kb="CUR", kxe="false")
    for m in stored:
        dev = x.sub_container(assoc, STDEV)
        dev.append(x.deep(m.find(x.q("Storage"))))
        td = m.find(x.q("TargetDevice"))
        if td is not None:
            dev.append(x.deep(td))
    return el


def sync(emu: Emulator, v: Resource) -> list[Resource]:
    """Bring the bus objects of ``v`` in line with its mappings; returns them."""
    with emu.lock:
        seen: list[Resource] = []
        for sslot, maps in _pairs(v.elem).items():
            uuid = _bus_uuid(v, sslot, maps[0])
            el = _render(emu, uuid, maps)
            bus = emu.store.find(KIND, uuid)
            if not isinstance(bus, Bus):
                bus = Bus(emu, uuid, el, v, sslot)
                emu.store.add(bus)
            elif etree.tostring(bus.elem, method="c14n") != etree.tostring(el, method="c14n"):
                bus.elem = el
                bus.bump()
            seen.append(bus)
        for old in emu.store.list(KIND, parent=v):
            if old not in seen:
                emu.store.remove(old)
        v.ext[_DIGEST] = _digest(v.elem)
        return seen


def _after_vios_update(emu: Emulator, v: Resource) -> None:
    sync(emu, v)


def _list(emu: Emulator, parent: Resource) -> list[Resource]:
    if parent.kind != "VirtualIOServer":
        raise errors.RestError(404, f"{KIND} is only served under a VirtualIOServer")
    return sync(emu, parent)


# ---- VIOS update hook: the mapping list keeps the real shape -----------------------------------
def mapping_hook(emu: Emulator, v: Resource, old: etree._Element, new: etree._Element) -> None:
    """After ``scsi_hook`` completed the mappings: refuse one storage device
    twice on one adapter pair, drop an adapters-only mapping once its pair
    has storage, and clear the backing device name of a pair without any."""
    if new.find(x.q(_MAPS)) is None:
        return
    vname = partition.name_of(v.elem)
    for sslot, maps in _pairs(new).items():
        seen: set[tuple[str, str]] = set()
        for m in maps:
            key = slots.storage_key(m.find(x.q("Storage")))
            if key is None:
                continue
            if key in seen:
                vhost = m.findtext(f"{x.q('ServerAdapter')}/{x.q('AdapterName')}")
                raise errors.bad_request(
                    f"{key[0]} {key[1]!r} is already mapped to {vhost or f'slot {sslot}'} on "
                    f"VIOS {vname!r}; a vSCSI bus holds each storage device once",
                    errors.DUPLICATE_NAME,
                )
            seen.add(key)
        empty = [m for m in maps if not _has_storage(m)]
        keep_one = not seen
        for m in empty:
            if keep_one:
                keep_one = False
                x.remove_all(m.find(x.q("ServerAdapter")), ["BackingDeviceName"])
                x.remove_all(m, ["TargetDevice"])
                continue
            m.getparent().remove(m)


# ---- bus requests -> VIOS mapping changes ------------------------------------------------------
def _apply(emu: Emulator, v: Resource, new: etree._Element) -> None:
    """Apply a changed VIOS element through the VIOS update path (its hooks
    complete and validate the mappings), bumping the mapping group's ETag."""
    before = _digest(v.elem)
    emu.kind("VirtualIOServer").update(emu, v, new)
    if _digest(v.elem) != before:
        v.bump(_GROUP)
        emu.publish("MODIFY_URI", v, "Other")


def _who(v: Resource) -> str:
    return f"{KIND} on VIOS {partition.name_of(v.elem)!r}"


def _requested(
    emu: Emulator, v: Resource, el: etree._Element, who: str
) -> list[tuple[etree._Element, etree._Element | None, tuple[str, str]]]:
    """(storage reference, target device or None, storage identity) of each
    storage association in a bus payload; refuses missing and repeated storage."""
    out = []
    seen: set[tuple[str, str]] = set()
    for dev in slots.items(el, "AssociatedMappings", STDEV):
        stg = dev.find(x.q("Storage"))
        if stg is None or not len(stg):
            raise errors.bad_request(f"{who}: a {STDEV} without Storage")
        full = etree.Element(x.q("Storage"))
        full.append(scsi.resolve_storage(emu, v, stg[0], who))
        key = slots.storage_key(full)
        assert key is not None
        if key in seen:
            raise errors.bad_request(
                f"{who}: {key[0]} {key[1]!r} is given twice; a bus holds each storage device once",
                errors.DUPLICATE_NAME,
            )
        seen.add(key)
        out.append((stg[0], dev.find(x.q("TargetDevice")), key))
    return out


def _mapping(
    href: str,
    client_adapter: etree._Element,
    server_adapter: etree._Element,
    stg: etree._Element | None,
    td: etree._Element | None,
) -> etree._Element:
    """A mapping request as a client would send it to the VIOS."""
    m = etree.Element(x.q("VirtualSCSIMapping"), schemaVersion=x.SCHEMA_VERSION)
    etree.SubElement(etree.SubElement(m, x.q("Metadata")), x.q("Atom"))
    x.link(m, "AssociatedLogicalPartition", href, kb="CUR")
    m.append(client_adapter)
    m.append(server_adapter)
    if stg is not None:
        etree.SubElement(m, x.q("Storage"), kb="CUR", kxe="false").append(x.deep(stg))
    if td is not None:
        m.append(x.deep(td))
    return m


def _bare_adapter(tag: str, side: str, slot: int | None = None) -> etree._Element:
    el = etree.Element(x.q(tag), kb="CUR", kxe="false", schemaVersion=x.SCHEMA_VERSION)
    etree.SubElement(etree.SubElement(el, x.q("Metadata")), x.q("Atom"))
    x.sub(el, "AdapterType", side)
    if slot is not None:
        x.sub(el, "VirtualSlotNumber", str(slot), kb="COD")
    return el


def _client(emu: Emulator, el: etree._Element, who: str) -> tuple[Resource, str]:
    link = el.find(x.q("AssociatedLogicalPartition"))
    if link is None or not link.get("href"):
        raise errors.bad_request(
            f"{who}: AssociatedLogicalPartition is required (the client partition's link)"
        )
    probe = etree.Element(x.q("VirtualSCSIMapping"))
    probe.append(x.deep(link))
    client = slots.client_of(emu, probe, who)
    assert client is not None
    return client, link.get("href", "")


def _create(emu: Emulator, parent: Resource | None, el: etree._Element) -> Resource:
    if parent is None or parent.kind != "VirtualIOServer":
        raise errors.RestError(
            405, f"{KIND} is created under a VirtualIOServer", errors.UNSUPPORTED
        )
    v = parent
    who = _who(v)
    for tag, side in (("ClientAdapter", "Client"), ("ServerAdapter", "Server")):
        given = el.findtext(f"{x.q(tag)}/{x.q('AdapterType')}")
        if given not in (None, side):
            raise errors.bad_request(f"{who}: {tag}.AdapterType must be {side}, not {given!r}")
    client, href = _client(emu, el, who)
    wanted = slots.int_of(el.find(x.q("ClientAdapter")), "VirtualSlotNumber")
    cname = partition.name_of(client.elem)
    # A new bus is always a new adapter pair: a client slot already in use is
    # refused, not joined (joining an existing pair is a bus update).
    cslot = scsi.client_slots(emu, client).take(wanted, f"{who} for {cname!r}")
    stdevs = _requested(emu, v, el, who)
    new = x.deep(v.elem)
    sec = vios.section(new, _MAPS)
    added = [
        _mapping(
            href,
            _bare_adapter("ClientAdapter", "Client", cslot),
            _bare_adapter("ServerAdapter", "Server"),
            stg,
            td,
        )
        for stg, td, _key in stdevs
    ] or [
        _mapping(
            href,
            _bare_adapter("ClientAdapter", "Client", cslot),
            _bare_adapter("ServerAdapter", "Server"),
            None,
            None,
        )
    ]
    for m in added:
        sec.append(m)
    _apply(emu, v, new)
    sslot = _server_slot(added[0])
    for bus in sync(emu, v):
        if isinstance(bus, Bus) and bus.slot == sslot:
            return bus
    raise errors.RestError(500, f"{who}: the new adapter pair did not appear")


def _bus_maps(v_elem: etree._Element, bus: Bus) -> list[etree._Element]:
    return _pairs(v_elem).get(bus.slot, [])


def _update(emu: Emulator, res: Resource, new_el: etree._Element) -> None:
    """Storage added to or removed from the bus; the adapter pair stays."""
    assert isinstance(res, Bus) and res.parent is not None
    bus, v = res, res.parent
    bus.fresh()
    who = f"{_who(v)} {bus.uuid}"
    cur = _bus_maps(v.elem, bus)
    link = new_el.find(x.q("AssociatedLogicalPartition"))
    if link is not None and link.get("href"):
        asked = link.get("href", "").split("?")[0].rstrip("/").rsplit("/", 1)[-1]
        if asked.upper() != _link_uuid(cur[0]).upper():
            raise errors.bad_request(
                f"{who}: the client partition of a bus cannot change; create a new bus",
                errors.CREATE_ONLY_FIELD,
            )
    by_key = {}
    for m in cur:
        key = slots.storage_key(m.find(x.q("Storage")))
        if key is not None:
            by_key[key] = m
    href = cur[0].find(x.q("AssociatedLogicalPartition")).get("href", "")
    first = cur[0]
    wanted: list[etree._Element] = []
    for stg, td, key in _requested(emu, v, new_el, who):
        have = by_key.get(key)
        if have is not None:
            _check_same_target(have, td, key, who)
            wanted.append(x.deep(have))
        else:
            wanted.append(
                _mapping(
                    href,
                    x.deep(first.find(x.q("ClientAdapter"))),
                    x.deep(first.find(x.q("ServerAdapter"))),
                    stg,
                    td,
                )
            )
    if not wanted:  # the pair stays, as an adapters-only mapping
        empty = next((m for m in cur if not _has_storage(m)), None)
        wanted.append(
            x.deep(empty)
            if empty is not None
            else _mapping(
                href,
                x.deep(first.find(x.q("ClientAdapter"))),
                x.deep(first.find(x.q("ServerAdapter"))),
                None,
                None,
            )
        )
    _apply(emu, v, _replace_pair(v.elem, bus, wanted))
    sync(emu, v)


def _check_same_target(
    have: etree._Element, td: etree._Element | None, key: tuple[str, str], who: str
) -> None:
    """Storage kept on the bus keeps its target device (name and LUA)."""
    if td is None or not len(td):
        return
    cur = have.find(f"{x.q('TargetDevice')}/*")
    for tag in ("TargetName", "LogicalUnitAddress"):
        asked = td[0].findtext(x.q(tag))
        if asked and cur is not None and asked != cur.findtext(x.q(tag)):
            raise errors.bad_request(
                f"{who}: {tag} of the target device of {key[0]} {key[1]!r} cannot change "
                f"({cur.findtext(x.q(tag))!r}); remove the storage and add it again",
                errors.CREATE_ONLY_FIELD,
            )


def _replace_pair(v_elem: etree._Element, bus: Bus, wanted: list[etree._Element]):
    """Copy of the VIOS element with the bus's mappings replaced by ``wanted``
    (at the place of its first mapping, so the list order stays stable)."""
    new = x.deep(v_elem)
    sec = vios.section(new, _MAPS)
    mine = _bus_maps(new, bus)
    at = list(sec).index(mine[0]) if mine else len(sec)
    for m in mine:
        sec.remove(m)
    for i, m in enumerate(wanted):
        sec.insert(at + i, m)
    return new


def _delete(emu: Emulator, res: Resource) -> None:
    """Remove the adapter pair. Refused while storage is attached, as the VIOS
    refuses to remove a vhost adapter that still has virtual target devices
    (``rmdev`` without ``-recursive``): take the storage off the bus first."""
    assert isinstance(res, Bus) and res.parent is not None
    bus, v = res, res.parent
    bus.fresh()
    cur = _bus_maps(v.elem, bus)
    attached = [slots.storage_key(m.find(x.q("Storage"))) for m in cur if _has_storage(m)]
    if attached:
        vhost = cur[0].findtext(f"{x.q('ServerAdapter')}/{x.q('AdapterName')}")
        names = ", ".join(f"{k[0]} {k[1]!r}" for k in attached if k)
        raise errors.refused(
            f"{_who(v)} {bus.uuid} ({vhost}) still has storage attached ({names}); remove "
            "the storage from the bus (update it without mappings) before deleting it",
            errors.IN_USE,
        )
    _apply(emu, v, _replace_pair(v.elem, bus, []))


def register(emu: Emulator) -> None:
    kind = Kind(
        KIND,
        rootable=False,
        parents=("VirtualIOServer",),
        create=_create,
        update=_update,
        delete=_delete,
    )
    kind.lister = _list
    emu.register(kind)
    vios.add_update_hook(emu, mapping_hook)
    vios.add_after_update(emu, _after_vios_update)
