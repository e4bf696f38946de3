"""The mapped disk as the file the NovaLink emulator keeps for it.

The vSCSI mapping to the management partition is the real one (the emulator
records it like any other), but an emulated partition has no SCSI bus to
rescan. The emulator's control endpoint ``GET /_emulator/disks`` (loopback
only, on the REST API's port) names the file holding what was uploaded to the
disk, or to the image it was copied or cloned from; snapshot reads that.
"""

from __future__ import annotations

import contextlib
from typing import BinaryIO

import requests

from ibmvirt.common import novalink
from ibmvirt.powervm import emulated
from ibmvirt.powervm import exceptions as pvm_exc
from ibmvirt.powervm.mgmt import MgmtDisk, MgmtDiskAccess, open_file

#: Seconds to wait for the control endpoint.
TIMEOUT = 30


class EmulatorDiskAccess(MgmtDiskAccess):
    def _disks_url(self) -> str:
        return emulated.control_url(self.host.adapter, "mgmt_disk_access") + "/disks"

    def discover(self, disk: MgmtDisk) -> str:
        url = self._disks_url()
        verify = novalink.tls_verify(self.conf) if url.startswith("https") else False
        try:
            resp = requests.get(url, timeout=TIMEOUT, verify=verify)
            resp.raise_for_status()
            records = resp.json()["disks"]
        except (requests.RequestException, ValueError, KeyError) as exc:
            raise pvm_exc.MgmtDiskError(
                disk=disk.name, reason=f"the emulator's {url} did not answer: {exc}"
            ) from exc
        record = records.get(disk.udid)
        if record is None:
            raise pvm_exc.MgmtDiskError(
                disk=disk.name,
                reason=f"the emulator holds no data for UDID {disk.udid} (nothing was "
                "uploaded to it or to the image it was made from)",
            )
        if not record.get("path"):
            raise pvm_exc.MgmtDiskError(
                disk=disk.name,
                reason="the emulator does not keep disk data; start it with disk_dir "
                "(ibmvirt-novalink-emulator --keep-disk-data)",
            )
        return record["path"]

    def open(self, disk: MgmtDisk) -> contextlib.AbstractContextManager[BinaryIO]:
        return open_file(disk.path)

    def remove_device(self, disk: MgmtDisk) -> None:
        """No device was created on the emulated partition."""
