"""Cinder volume driver for the emulated SAN of ``make cloud``.

The real cloud's cinder-volume loads this as its backend
(``volume_driver = ibmvirt.sandbox.cinder_san.EmulatedSANDriver``). Volumes
live on an emulated Fibre Channel array: attaching one masks its LUN to the
WWPNs of the connector nova-compute sent and returns ``fibre_channel``
connection info (the array's target ports, the LUN, the initiator-target
map), as a real FC array driver does. The array is zoned to the emulated
hosts: every VIOS of a NovaLink emulator with a physical FC port among the
connector's WWPNs gets the LUN as a discoverable disk (the emulator's
``/_emulator/san/present`` control route), which the PowerVM driver then
finds with its LUA recovery job, as on a real fabric.

Storage is metadata only (Cinder's in-memory fake LVM backend, no
commands): the sandbox has no block devices.
"""

from __future__ import annotations

import io
import json
import urllib.request

from cinder.tests import fake_driver
from oslo_config import cfg
from oslo_log import log as logging

LOG = logging.getLogger(__name__)

#: Target ports of the emulated array (two fabrics), as in the in-process sandbox.
ARRAY_TARGET_WWPNS = ("500507680b214ac1", "500507680b224ac1")

san_opts = [
    cfg.ListOpt(
        "emulated_san_novalink_urls",
        default=[],
        help="Base URLs of the NovaLink emulators whose VIOSes are zoned to the "
        "emulated array (loopback only).",
    ),
]


class EmulatedSANDriver(fake_driver.FakeLoggingVolumeDriver):
    """An FC array that masks LUNs by WWPN and zones them to the emulated VIOSes."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.protocol = "FC"
        if self.configuration is not None:
            self.configuration.append_config_values(san_opts)

    def _update_volume_stats(self):
        super()._update_volume_stats()
        self._stats["storage_protocol"] = "FC"
        self._stats["volume_backend_name"] = (
            self.configuration.safe_get("volume_backend_name") or "san"
        )

    def clone_image(self, context, volume, image_location, image_meta, image_service):
        """The array clones the image itself (no download through privsep)."""
        return {}, True

    def copy_volume_to_image(self, context, volume, image_service, image_meta):
        image_service.update(context, image_meta["id"], {}, io.BytesIO(b"\0" * 512))

    def validate_connector(self, connector):
        """An FC array needs the host's initiator WWPNs (not an iSCSI IQN)."""
        if not connector.get("wwpns"):
            from cinder import exception

            raise exception.InvalidConnectorException(missing="wwpns")

    def create_export(self, context, volume, connector):
        return None

    def ensure_export(self, context, volume):
        return None

    def remove_export(self, context, volume):
        return None

    @staticmethod
    def lun_of(volume) -> int:
        """A stable LUN per volume (1-255; 0 is the controller)."""
        return int(volume["id"].replace("-", "")[:8], 16) % 255 + 1

    def initialize_connection(self, volume, connector):
        wwpns = [w.lower() for w in connector.get("wwpns") or []]
        if not wwpns:
            from cinder import exception

            raise exception.InvalidConnectorException(missing="wwpns")
        lun = self.lun_of(volume)
        for url in self.configuration.safe_get("emulated_san_novalink_urls") or []:
            self._present(url, volume, wwpns, lun)
        targets = list(ARRAY_TARGET_WWPNS)
        return {
            "driver_volume_type": "fibre_channel",
            "data": {
                "target_discovered": False,
                "target_lun": lun,
                "target_wwn": targets,
                "initiator_target_map": {w: targets for w in wwpns},
                "volume_id": volume["id"],
                "access_mode": "rw",
                "encrypted": False,
            },
        }

    def _present(self, url: str, volume, wwpns: list[str], lun: int) -> None:
        body = {
            "wwpns": wwpns,
            "lun": lun,
            "target_wwpn": ARRAY_TARGET_WWPNS[0],
            "size_gb": volume["size"],
            "udid_seed": f"cinder-volume-{volume['id']}",
        }
        req = urllib.request.Request(  # noqa: S310  (loopback emulator)
            url.rstrip("/") + "/_emulator/san/present",
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310
            vioses = json.loads(resp.read()).get("vioses", [])
        LOG.info("volume %s: LUN %d zoned to %s at %s", volume["id"], lun, vioses or "none", url)

    def terminate_connection(self, volume, connector, **kwargs):
        return {"driver_volume_type": "fibre_channel", "data": {}}
