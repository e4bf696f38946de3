"""Which device an LPAR's firmware boots: its boot list.

A LogicalPartition of the PowerVM REST API holds the list in
``BootListInformation`` (extended attribute group ``Advanced``):
``PendingBootString``, Open Firmware device paths separated by spaces, is
what a client sets; at the next activation it becomes the partition's boot
list (``BootDeviceList``) and the firmware boots the first device of it the
partition has (``LastBootedDeviceString``). pypowervm 1.1.27 knows the
element but has no property for it, so it is read and written through the
wrapper's XML, in a WrapperTask (ETag retries).

A vSCSI disk's path is ``/vdevice/v-scsi@<0x30000000 + client slot>/
disk@<LUN address>``, from the VIOS mapping that serves it; a disk mapped
through two VIOSes has two paths (multipath boot).
"""

from __future__ import annotations

from oslo_log import log as logging
from pypowervm import const as pvm_const
from pypowervm.utils import transaction as pvm_tx
from pypowervm.wrappers import logical_partition as pvm_lpar

from ibmvirt.powervm import exceptions as pvm_exc

LOG = logging.getLogger(__name__)

CONTAINER = "BootListInformation"
PENDING = "PendingBootString"
LIST = "BootDeviceList"
LAST = "LastBootedDeviceString"
#: The Open Firmware unit address of a client vSCSI adapter: 0x30000000 + slot.
VSCSI_UNIT_BASE = 0x30000000


def device_path(mapping) -> str | None:
    """The Open Firmware path of a vSCSI mapping's disk as the client LPAR sees it."""
    client = mapping.client_adapter
    target = mapping.target_dev
    lua = getattr(target, "lua", None) if target is not None else None
    if client is None or client.lpar_slot_num is None or not lua:
        return None
    lun = lua.lower()[2:] if lua.lower().startswith("0x") else lua.lower()
    return f"/vdevice/v-scsi@{VSCSI_UNIT_BASE + int(client.lpar_slot_num):x}/disk@{lun}"


def paths_of(vios_wrappers, lpar_uuid: str, match) -> list[str]:
    """Paths of the disks mapped to the LPAR for which ``match(storage)`` holds,
    in the order of ``vios_wrappers``."""
    out = []
    for vios_w in vios_wrappers:
        for m in vios_w.scsi_mappings:
            if m.backing_storage is None or not match(m.backing_storage):
                continue
            href = m.client_lpar_href or ""
            if lpar_uuid.upper() not in href.upper():
                continue
            path = device_path(m)
            if path and path not in out:
                out.append(path)
    return out


def _box(lpar_w, lpar_name: str):
    box = lpar_w.element.find(CONTAINER)
    if box is None or box.find(PENDING) is None:
        raise pvm_exc.BootListUnavailable(lpar=lpar_name)
    return box


def read(adapter, lpar_uuid: str, lpar_name: str) -> dict[str, list[str]]:
    """The LPAR's pending list, boot list and last booted device, as path lists."""
    lpar_w = pvm_lpar.LPAR.get(adapter, uuid=lpar_uuid, xag=[pvm_const.XAG.ADV])
    box = _box(lpar_w, lpar_name)
    return {tag: (box.findtext(tag) or "").split() for tag in (PENDING, LIST, LAST)}


def set_pending(adapter, lpar_uuid: str, lpar_name: str, paths: list[str]) -> None:
    """Make ``paths`` the boot list of the LPAR's next activation."""
    if not paths:
        raise pvm_exc.BootListUnavailable(lpar=lpar_name, reason="no device to boot from")
    text = " ".join(paths)

    def apply(lpar_w) -> bool:
        node = _box(lpar_w, lpar_name).find(PENDING)
        if (node.text or "").strip() == text:
            return False
        node.text = text
        return True

    getter = pvm_lpar.LPAR.getter(adapter, entry_uuid=lpar_uuid, xag=[pvm_const.XAG.ADV])
    wtsk = pvm_tx.WrapperTask(f"boot_list_{lpar_uuid}", getter)
    wtsk.add_functor_subtask(apply)
    wtsk.execute()
    LOG.info("LPAR %s boots next from %s", lpar_name, text)
