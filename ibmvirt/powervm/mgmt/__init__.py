"""An instance's boot disk, readable on the management (NovaLink) partition.

Snapshot streams the raw boot disk to Glance from the partition nova-compute
runs on. A VIOS maps the disk to that partition through vSCSI, as it maps it
to the instance's LPAR (on a real NovaLink the management partition is a vSCSI
client of the VIOSes); how the partition then finds and reads the device is
what differs, chosen by ``[powervm] mgmt_disk_access``:

* ``sysfs`` (:mod:`.sysfs`): Linux on the NovaLink partition rescans the client
  adapter's SCSI bus and reads ``/dev/disk/by-id/*<UDID>``.
* ``emulator`` (:mod:`.emulator`): the NovaLink emulator has no SCSI bus to
  rescan; the disk's bytes are the file the emulator keeps for it.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from oslo_config import cfg
from oslo_log import log as logging
from pypowervm import const as pvm_const
from pypowervm.tasks import partition as pvm_par
from pypowervm.tasks import scsi_mapper as pvm_map
from pypowervm.utils import transaction as pvm_tx
from pypowervm.wrappers import virtual_io_server as pvm_vios

LOG = logging.getLogger(__name__)


@dataclass
class MgmtDisk:
    """A boot disk mapped to the management partition (and, once found, its device)."""

    name: str
    udid: str
    vios_uuid: str
    #: The management partition's client slot of the mapping (its SCSI bus).
    client_slot: int | None
    #: Where the partition reads the disk: a block device, or the emulator's file.
    path: str | None = None


class MgmtDiskAccess(abc.ABC):
    """Map a disk to the management partition, find it there, read it, remove it."""

    def __init__(self, host, conf: cfg.ConfigOpts) -> None:
        self.host = host
        self.conf = conf
        self._mgmt_uuid: str | None = None

    @property
    def mgmt_uuid(self) -> str:
        if self._mgmt_uuid is None:
            self._mgmt_uuid = pvm_par.get_mgmt_partition(self.host.adapter).uuid
        return self._mgmt_uuid

    def map(self, vios_uuid: str, storage) -> MgmtDisk:
        """Map ``storage`` (a VDisk or LU) from the VIOS to the management partition."""
        vios_w = pvm_map.add_vscsi_mapping(self.host.uuid, vios_uuid, self.mgmt_uuid, storage)
        maps = pvm_map.find_maps(
            vios_w.scsi_mappings, client_lpar_id=self.mgmt_uuid, match_func=_udid_is(storage.udid)
        )
        slot = maps[0].client_adapter.lpar_slot_num if maps and maps[0].client_adapter else None
        LOG.info(
            "Mapped disk %s to the management partition through VIOS %s (client slot %s)",
            storage.name,
            vios_w.name,
            slot,
        )
        return MgmtDisk(storage.name, storage.udid, vios_uuid, slot)

    def unmap(self, disk: MgmtDisk) -> None:
        """Remove the VIOS mapping of ``disk`` to the management partition (ETag-retried)."""
        getter = pvm_vios.VIOS.getter(
            self.host.adapter, entry_uuid=disk.vios_uuid, xag=[pvm_const.XAG.VIO_SMAP]
        )
        wtsk = pvm_tx.WrapperTask(f"unmap_mgmt_{disk.name}", getter)
        wtsk.add_functor_subtask(
            pvm_map.remove_maps, self.mgmt_uuid, match_func=_udid_is(disk.udid), provides="removed"
        )
        wtsk.execute()
        LOG.info("Unmapped disk %s from the management partition", disk.name)

    @abc.abstractmethod
    def discover(self, disk: MgmtDisk) -> str:
        """Make the mapped disk appear on the partition; the path to read it from."""

    @abc.abstractmethod
    def open(self, disk: MgmtDisk) -> contextlib.AbstractContextManager[BinaryIO]:
        """The discovered disk opened for reading (a context manager)."""

    @abc.abstractmethod
    def remove_device(self, disk: MgmtDisk) -> None:
        """Forget the discovered device on the partition (fine if it is gone)."""


def _udid_is(udid: str):
    def match(storage) -> bool:
        return getattr(storage, "udid", None) == udid

    return match


@contextlib.contextmanager
def open_file(path: str) -> Iterator[BinaryIO]:
    with open(path, "rb") as f:
        yield f


def load(host, conf: cfg.ConfigOpts) -> MgmtDiskAccess:
    """The implementation ``[powervm] mgmt_disk_access`` names."""
    if conf.powervm.mgmt_disk_access == "emulator":
        from ibmvirt.powervm.mgmt import emulator

        return emulator.EmulatorDiskAccess(host, conf)
    from ibmvirt.powervm.mgmt import sysfs

    return sysfs.SysfsDiskAccess(host, conf)
