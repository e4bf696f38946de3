"""Client slot numbers of an LPAR's virtual adapters, kept with the instance.

The guest names its devices after their slots (the boot disk, eth0) and its
NVRAM's boot list points at them, so an LPAR recreated on another host
(evacuate) must get every adapter in the slot it had. The numbers are read
from NovaLink after each change of the LPAR's adapters and kept in the
instance's system_metadata: Nova's database outlives the source host and
needs no NVRAM store (nova-powervm kept them next to the NVRAM in Swift,
which lost them whenever no store was configured).

A volume is known by its UDID, the same on every host that sees it; a
virtual disk or medium by its name too (a boot disk recreated from the image
keeps its name, not its UDID). The network adapters (CNAs and SR-IOV vNICs)
by MAC, the RMC adapter as ``mgmt``.
"""

from __future__ import annotations

import dataclasses
import json

from oslo_log import log as logging
from pypowervm import const as pvm_const
from pypowervm.wrappers import iocard as pvm_card
from pypowervm.wrappers import network as pvm_net
from pypowervm.wrappers import virtual_io_server as pvm_vios

from ibmvirt import contract
from ibmvirt.common import sysmeta

LOG = logging.getLogger(__name__)

#: system_metadata key prefix: the JSON in chunks of at most 255 characters
#: (Nova's limit per value), ``powervm_slots_0``, ``powervm_slots_1``, ...
KEY = "powervm_slots_"
_CHUNK = 255
MGMT = "mgmt"


@dataclasses.dataclass
class SlotMap:
    max_slots: int | None = None
    #: MAC (NovaLink form) or MGMT -> client slot of the CNA or vNIC
    cna: dict[str, int] = dataclasses.field(default_factory=dict)
    #: storage UDID or name -> {VIOS position: client slot of its vSCSI adapter}
    #: (each VIOS mapping a disk gives it its own adapter; VIOSes are known
    #: by their position in partition ID order, the same on hosts built alike)
    scsi: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)

    def cna_slot(self, mac: str | None) -> int | None:
        return self.cna.get(MGMT if mac is None else contract.pvm_mac(mac))

    def scsi_slot(self, storage, vios_position: int) -> int | None:
        for key in _storage_keys(storage):
            if key in self.scsi:
                return self.scsi[key].get(str(vios_position))
        return None

    def to_json(self) -> str:
        return json.dumps(
            {"max": self.max_slots, "cna": self.cna, "scsi": self.scsi}, separators=(",", ":")
        )

    @classmethod
    def from_json(cls, text: str) -> SlotMap:
        data = json.loads(text)
        return cls(data.get("max"), dict(data.get("cna", {})), dict(data.get("scsi", {})))


def _storage_keys(storage) -> list[str]:
    keys = []
    for attr in ("udid", "name"):
        try:
            value = getattr(storage, attr, None)
        except Exception:  # noqa: BLE001  (an element without that child)
            value = None
        if value:
            keys.append(str(value))
    return keys


def _is_client(mapping, lpar_uuid: str) -> bool:
    href = mapping.client_lpar_href or ""
    return href.rstrip("/").upper().endswith(lpar_uuid.upper())


def read(adapter, lpar) -> SlotMap:
    """The LPAR's slots as NovaLink has them now (three reads: its CNAs, its
    vNICs, the VIOSes' mappings)."""
    from ibmvirt.powervm import vif

    found = SlotMap(max_slots=lpar.io_config.max_virtual_slots)
    cnas = pvm_net.CNA.get(adapter, parent=lpar)
    mgmt = vif._vswitches(adapter).get(contract.PVM_MGMT_VSWITCH) if cnas else None
    for cna in cnas:
        on_mgmt = mgmt is not None and vif._on_switch(cna, mgmt)
        found.cna[MGMT if on_mgmt else cna.mac] = cna.slot
    for vnic in pvm_card.VNIC.get(adapter, parent=lpar):
        found.cna[vnic.mac] = vnic.slot
    vioses = sorted(pvm_vios.VIOS.get(adapter, xag=[pvm_const.XAG.VIO_SMAP]), key=lambda v: v.id)
    for position, vios in enumerate(vioses):
        for m in vios.scsi_mappings:
            if m.client_adapter is None or m.backing_storage is None:
                continue
            if not _is_client(m, lpar.uuid):
                continue
            slot = m.client_adapter.lpar_slot_num
            for key in _storage_keys(m.backing_storage):
                found.scsi.setdefault(key, {})[str(position)] = slot
    return found


def save(instance, slot_map: SlotMap) -> None:
    """Keep the map in the instance's system_metadata (replacing the last one)."""
    text = slot_map.to_json()
    chunks = [text[i : i + _CHUNK] for i in range(0, len(text), _CHUNK)] or [""]
    updates = {f"{KEY}{i}": c for i, c in enumerate(chunks)}
    stale = [k for k in instance.system_metadata if k.startswith(KEY) and k not in updates]
    for k in stale:
        del instance.system_metadata[k]
    sysmeta.save(instance, updates)


def load(instance) -> SlotMap | None:
    """The map kept for the instance, None if none was."""
    meta = instance.system_metadata or {}
    parts, i = [], 0
    while f"{KEY}{i}" in meta:
        parts.append(meta[f"{KEY}{i}"])
        i += 1
    if not parts:
        return None
    try:
        return SlotMap.from_json("".join(parts))
    except (ValueError, TypeError) as exc:
        LOG.warning("Ignoring an unreadable slot map: %s", exc, instance=instance)
        return None


def place_new_mappings(ftsk, lpar_uuid: str, slot_map: SlotMap) -> None:
    """Queue, after the mappings ``ftsk`` adds, the setting of each new
    mapping's client slot to the one its storage had (the rest are left to
    NovaLink). Mappings sharing a client adapter get the same slot."""

    positions = {w.uuid: i for i, w in enumerate(sorted(ftsk.feed, key=lambda w: w.id))}

    def place(vios_w) -> bool:
        position = positions.get(vios_w.uuid)
        changed = False
        for m in vios_w.scsi_mappings:
            ca = m.client_adapter
            if ca is None or ca.lpar_slot_num is not None or not _is_client(m, lpar_uuid):
                continue
            if m.backing_storage is None or position is None:
                continue
            slot = slot_map.scsi_slot(m.backing_storage, position)
            if slot is None:
                continue
            ca._lpar_slot_num(slot)
            ca._use_next_slot(False)
            changed = True
        return changed

    ftsk.add_functor_subtask(place)
