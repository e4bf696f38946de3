"""Cinder backed by a Fibre Channel storage array, for both drivers' sandboxes.

Attaching a volume masks its LUN to the WWPNs of the connector the driver
reported and returns ``fibre_channel`` connection info (initiator-target map,
LUN), as a real Cinder FC driver does; detaching unmasks. Tests read
``masking`` to see which host WWPNs can reach which volume.
"""

from __future__ import annotations

import copy

from nova.tests import fixtures as nova_fixtures

#: Target ports of the emulated storage array (two fabrics).
ARRAY_TARGET_WWPNS = ("500507680b214ac1", "500507680b224ac1")


class FibreChannelArray(nova_fixtures.CinderFixture):
    """Cinder whose volumes live on an FC array that masks LUNs by WWPN."""

    def __init__(self, test, targets=ARRAY_TARGET_WWPNS):
        super().__init__(test)
        self.targets = list(targets)
        self.masking: dict[str, set[str]] = {}
        self._luns: dict[str, int] = {}
        self._connection_info: dict[str, dict] = {}

    def lun_of(self, volume_id: str) -> int:
        """The array assigns LUN ids from 1 in attach order (0 is the controller)."""
        return self._luns.setdefault(volume_id, len(self._luns) + 1)

    def fake_attachment_create(
        self, context, volume_id, instance_uuid, connector=None, mountpoint=None
    ):
        """An attachment created with a connector (a live migration's
        destination) is exported at once, as Cinder does."""
        ref = super().fake_attachment_create(
            context, volume_id, instance_uuid, connector, mountpoint
        )
        if connector:
            ref["connection_info"] = self._export(volume_id, ref["id"], connector)
        return ref

    def fake_attachment_update(self, context, attachment_id, connector, mountpoint=None):
        ref = super().fake_attachment_update(context, attachment_id, connector, mountpoint)
        volume_id = ref["connection_info"]["data"]["volume_id"]
        ref["connection_info"] = self._export(volume_id, attachment_id, connector)
        return ref

    def _export(self, volume_id: str, attachment_id: str, connector: dict) -> dict:
        """Mask the LUN to the connector's WWPNs; the FC connection info."""
        wwpns = [w.lower() for w in connector.get("wwpns") or []]
        if not wwpns:
            raise ValueError(f"connector for volume {volume_id} has no wwpns: {connector}")
        self.masking.setdefault(volume_id, set()).update(wwpns)
        info = {
            "driver_volume_type": "fibre_channel",
            "data": {
                "volume_id": volume_id,
                "attachment_id": attachment_id,
                "target_discovered": False,
                "target_lun": self.lun_of(volume_id),
                "target_wwn": list(self.targets),
                "initiator_target_map": {w: list(self.targets) for w in wwpns},
            },
        }
        self._connection_info[attachment_id] = info
        return copy.deepcopy(info)

    def _find_connection_info(self, volume_id, attachment_id):
        if attachment_id in self._connection_info:
            return copy.deepcopy(self._connection_info[attachment_id])
        return super()._find_connection_info(volume_id, attachment_id)

    def fake_attachment_delete(self, context, attachment_id):
        info = self._connection_info.pop(attachment_id, None)
        if info is not None:
            volume_id = info["data"]["volume_id"]
            still = [
                i for i in self._connection_info.values() if i["data"]["volume_id"] == volume_id
            ]
            if not still:
                self.masking.pop(volume_id, None)
        return super().fake_attachment_delete(context, attachment_id)
