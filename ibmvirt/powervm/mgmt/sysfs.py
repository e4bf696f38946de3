"""The mapped disk as a Linux block device on a real NovaLink partition.

The vSCSI client adapter of slot ``N`` is the vio bus device
``0x30000000 | N``; rescanning its SCSI host makes the new LUN appear, and
udev links it as ``/dev/disk/by-id/...<last 32 characters of the UDID>``.
nova-compute is not root and block devices are root's: the scan and delete
writes and a temporary chown go through Nova's privsep helpers.
"""

from __future__ import annotations

import contextlib
import glob
import os
import time
from collections.abc import Callable, Iterator
from typing import BinaryIO

from oslo_log import log as logging

from ibmvirt.powervm import exceptions as pvm_exc
from ibmvirt.powervm.mgmt import MgmtDisk, MgmtDiskAccess

LOG = logging.getLogger(__name__)

#: The vio bus numbers virtual adapters as 0x30000000 | slot.
VIO_SLOT_BASE = 0x30000000
#: How long a rescanned LUN may take to show up (udev included), and to go.
DISCOVER_TIMEOUT = 300.0
DELETE_TIMEOUT = 10.0
POLL_INTERVAL = 0.25


def _privsep_writefile(path: str, mode: str, content: str) -> None:
    from nova.privsep import path as priv_path

    priv_path.writefile(path, mode, content)


def _privsep_chown(path: str, uid: int) -> None:
    from nova.privsep import path as priv_path

    priv_path.chown(path, uid=uid)


class SysfsDiskAccess(MgmtDiskAccess):
    """Rescan the client slot's SCSI bus, read /dev/disk/by-id, delete through sysfs.

    The roots, privileged writes and timings are injectable so the path logic
    runs against a directory tree standing in for /sys and /dev.
    """

    def __init__(
        self,
        host,
        conf,
        sys_root: str = "/sys",
        dev_root: str = "/dev",
        writefile: Callable[[str, str, str], None] = _privsep_writefile,
        chown: Callable[[str, int], None] = _privsep_chown,
        discover_timeout: float = DISCOVER_TIMEOUT,
        delete_timeout: float = DELETE_TIMEOUT,
        interval: float = POLL_INTERVAL,
    ) -> None:
        super().__init__(host, conf)
        self.sys_root, self.dev_root = sys_root, dev_root
        self.writefile, self.chown = writefile, chown
        self.discover_timeout, self.delete_timeout = discover_timeout, delete_timeout
        self.interval = interval

    def scan_paths(self, client_slot: int) -> list[str]:
        """The ``scan`` files of the SCSI host(s) behind a vSCSI client slot."""
        bus_dev = f"{VIO_SLOT_BASE | client_slot:x}"
        return sorted(
            glob.glob(
                os.path.join(
                    self.sys_root, "bus/vio/devices", bus_dev, "host*/scsi_host/host*/scan"
                )
            )
        )

    def by_id_links(self, udid: str) -> list[str]:
        return sorted(glob.glob(os.path.join(self.dev_root, "disk/by-id", "*" + udid[-32:])))

    def discover(self, disk: MgmtDisk) -> str:
        if disk.client_slot is None:
            raise pvm_exc.MgmtDiskError(
                disk=disk.name, reason="its vSCSI mapping has no client adapter slot"
            )
        scans = self.scan_paths(disk.client_slot)
        if not scans:
            raise pvm_exc.MgmtDiskError(
                disk=disk.name,
                reason=f"no SCSI host under {self.sys_root}/bus/vio/devices/"
                f"{VIO_SLOT_BASE | disk.client_slot:x} (client slot {disk.client_slot}); "
                "is the ibmvscsi module loaded on the NovaLink partition?",
            )
        for scan in scans:
            self.writefile(scan, "a", "- - -")
        deadline = time.monotonic() + self.discover_timeout
        while True:
            devices = {os.path.realpath(p) for p in self.by_id_links(disk.udid)}
            if len(devices) == 1:
                path = devices.pop()
                LOG.info("Disk %s appeared on the management partition as %s", disk.name, path)
                return path
            if len(devices) > 1:
                raise pvm_exc.MgmtDiskError(
                    disk=disk.name,
                    reason=f"UDID {disk.udid} matches several devices: {sorted(devices)}",
                )
            if time.monotonic() >= deadline:
                raise pvm_exc.MgmtDiskError(
                    disk=disk.name,
                    reason=f"no {self.dev_root}/disk/by-id/*{disk.udid[-32:]} within "
                    f"{self.discover_timeout:g} s of rescanning {', '.join(scans)}",
                )
            time.sleep(self.interval)

    @contextlib.contextmanager
    def open(self, disk: MgmtDisk) -> Iterator[BinaryIO]:
        """Open the device, owning it meanwhile (block devices are root's)."""
        path = disk.path
        owner = os.stat(path).st_uid
        me = os.getuid()
        if owner != me:
            self.chown(path, me)
        try:
            with open(path, "rb") as f:
                yield f
        finally:
            if owner != me:
                self.chown(path, owner)

    def remove_device(self, disk: MgmtDisk) -> None:
        if not disk.path:
            return
        dev = os.path.basename(disk.path)
        block = os.path.join(self.sys_root, "block", dev)
        delete = os.path.join(block, "device", "delete")
        if not os.path.exists(delete):
            return
        self.writefile(delete, "a", "1")
        deadline = time.monotonic() + self.delete_timeout
        while os.path.exists(block):
            if time.monotonic() >= deadline:
                raise pvm_exc.MgmtDiskError(
                    disk=disk.name,
                    reason=f"{block} still exists {self.delete_timeout:g} s after "
                    f"writing 1 to {delete}",
                )
            time.sleep(self.interval)
        LOG.info("Removed %s (disk %s) from the management partition", disk.path, disk.name)
