"""A partition's boot list and what its firmware boots at power on.

The PowerVM REST schema gives a LogicalPartition a ``BootListInformation``
(pypowervm 1.1.27 knows the element, last in ``LPAR``'s child order, but
reads nothing from it). What is known of the real element comes from
public notes of an HMC V10R3 client: four leaf fields in extended group
``Advanced``, empty on a never-booted partition; ``BootDeviceList`` holds
Open Firmware device paths separated by spaces (``/vdevice/v-scsi@30000003/
disk@8100000000000000``); ``PendingBootString`` (kb ``UOD``) is what a
client writes, in the same form, and an update that empties it was refused
with 500 ``REST0126``. The emulator serves three of the fields (the fourth
is not named by any source):

* ``PendingBootString``: the boot list for the next activation. At power on
  (boot mode ``norm``) the firmware makes it the partition's boot list and
  empties it (*guess*: no captured partition has a pending string);
* ``BootDeviceList``: the boot list the partition's NVRAM holds (read-only);
* ``LastBootedDeviceString``: the device the partition last booted from
  (read-only).

The firmware boots the first device of the boot list that the partition
has: a vSCSI mapping to it whose client slot and LUN form the path
(``v-scsi@`` 0x30000000 + client slot, ``disk@`` or ``cdrom@`` the LUN
address without ``0x``). An empty list means the firmware's default list:
the mapped disks by client slot and LUN, then optical media (*guess*: the
real default also holds network adapters, and the firmware leaves NVRAM
alone). Boot mode ``sms`` (or ``of``) stops in the firmware: nothing boots
and the pending list waits for the next normal boot. A list naming no
device the partition has boots nothing (the real firmware would stop in
SMS after its retries); ``LastBootedDeviceString`` is then empty.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lxml import etree

from ibmvirt.emulators.novalink import errors, schema
from ibmvirt.emulators.novalink import xmlutil as x
from ibmvirt.emulators.novalink.store import Resource

if TYPE_CHECKING:
    from ibmvirt.emulators.novalink.emulator import Emulator

GROUP = "Advanced"
CONTAINER = "BootListInformation"
PENDING = "PendingBootString"
LIST = "BootDeviceList"
LAST = "LastBootedDeviceString"
#: (field, kb) in schema order.
FIELDS = ((PENDING, "UOD"), (LIST, "ROO"), (LAST, "ROO"))
#: The Open Firmware unit address of a client vSCSI adapter is 0x30000000 + slot.
VSCSI_UNIT_BASE = 0x30000000


def add(el: etree._Element) -> None:
    """Give a new LogicalPartition element its (empty) boot list information."""
    if el.find(x.q(CONTAINER)) is not None:
        return
    box = etree.Element(
        x.q(CONTAINER), attrib={"kb": "CUD", "kxe": "false", "group": GROUP}, schemaVersion="V1_0"
    )
    md = etree.SubElement(box, x.q("Metadata"))
    etree.SubElement(md, x.q("Atom"))
    for tag, kb in FIELDS:
        etree.SubElement(box, x.q(tag), attrib={"kb": kb, "kxe": "false", "group": GROUP})
    schema.insert_ordered(el, box)


def fields(el: etree._Element) -> dict[str, str]:
    """The boot list fields' text ("" when empty)."""
    return {tag: (x.text(el, f"{CONTAINER}/{tag}") or "").strip() for tag, _ in FIELDS}


def _set(res: Resource, tag: str, value: str) -> None:
    box = res.elem.find(x.q(CONTAINER))
    if box is None:
        add(res.elem)
        box = res.elem.find(x.q(CONTAINER))
    node = box.find(x.q(tag))
    node.text = value or None


def check_update(who: str, old: etree._Element, new: etree._Element) -> None:
    """An update may set the pending boot string to device paths; it cannot
    empty one that is set (the refusal a real HMC gave). The read-only
    fields keep what the server holds."""
    box = new.find(x.q(CONTAINER))
    if box is None:
        stored = old.find(x.q(CONTAINER))
        if stored is not None:
            schema.insert_ordered(new, x.deep(stored))
        return
    before, after = fields(old), fields(new)
    for tag, kb in FIELDS:
        if kb != "ROO":
            continue
        node = box.find(x.q(tag))
        if node is None:
            node = etree.Element(x.q(tag), attrib={"kb": kb, "kxe": "false", "group": GROUP})
            schema.insert_ordered(box, node)
        node.text = before[tag] or None
    pending = after[PENDING]
    if before[PENDING] and not pending and new.find(f"{x.q(CONTAINER)}/{x.q(PENDING)}") is not None:
        raise errors.refused(
            f"{who}: PendingBootString cannot be emptied; set it to the Open Firmware device "
            "paths to boot from instead",
            errors.BAD_VALUE,
        )
    bad = [p for p in pending.split() if not p.startswith("/")]
    if bad:
        raise errors.bad_request(
            f"{who}: PendingBootString holds {bad[0]!r}, which is not an Open Firmware device "
            "path (paths start with '/', separated by spaces)"
        )


def _of_lun(lua: str) -> str:
    """The LUN part of a device path: a VIOS's LUA without ``0x``; the NovaLink
    partition's ``lunN`` as a flat-addressed LUN (*guess*)."""
    lua = lua.strip().lower()
    if lua.startswith("lun") and lua[3:].isdigit():
        return f"{0x8000 | int(lua[3:]):04x}000000000000"
    return lua[2:] if lua.startswith("0x") else lua


def devices(emu: Emulator, res: Resource) -> list[tuple[str, str]]:
    """(Open Firmware path, storage name) of every vSCSI device mapped to the
    partition: disks by client slot and LUN first, then optical media."""
    found = []
    for v in emu.store.list("VirtualIOServer"):
        for m in v.elem.iter(x.q("VirtualSCSIMapping")):
            link = m.find(x.q("AssociatedLogicalPartition"))
            if link is None or not link.get("href", "").rstrip("/").upper().endswith(res.uuid):
                continue
            stg = m.find(x.q("Storage"))
            lua = m.find(f"{x.q('TargetDevice')}/*/{x.q('LogicalUnitAddress')}")
            slot = x.text(m, "ClientAdapter/VirtualSlotNumber")
            if stg is None or not len(stg) or lua is None or not lua.text or not slot:
                continue
            item = stg[0]
            optical = x.local(item) == "VirtualOpticalMedia"
            name = next(
                (
                    item.findtext(x.q(t))
                    for t in ("DiskName", "MediaName", "UnitName", "VolumeName")
                    if item.findtext(x.q(t))
                ),
                "",
            )
            path = (
                f"/vdevice/v-scsi@{VSCSI_UNIT_BASE + int(slot):x}/"
                f"{'cdrom' if optical else 'disk'}@{_of_lun(lua.text)}"
            )
            found.append((optical, int(slot), path, name))
    return [(path, name) for _, _, path, name in sorted(found)]


def boot(emu: Emulator, res: Resource, mode: str = "norm") -> tuple[str, str] | None:
    """The firmware starts the partition (call under the lock): take the
    pending list, boot the first device of the list the partition has.
    Returns (path, storage name) of the booted device, or None."""
    if res.kind != "LogicalPartition":
        return None
    if res.elem.find(x.q(CONTAINER)) is None:
        add(res.elem)
    if mode != "norm":
        res.ext.pop("boot_device", None)
        return None
    now = fields(res.elem)
    if now[PENDING]:
        _set(res, LIST, now[PENDING])
        _set(res, PENDING, "")
    present = devices(emu, res)
    have = dict(present)
    wanted = fields(res.elem)[LIST].split() or [p for p, _ in present]
    booted = next(((p, have[p]) for p in wanted if p in have), None)
    _set(res, LAST, booted[0] if booted else "")
    if booted:
        res.ext["boot_device"] = booted
    else:
        res.ext.pop("boot_device", None)
    res.bump(GROUP)
    return booted
