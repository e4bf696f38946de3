"""Tasks that prepare the destination of a live migration (each undone on revert)."""

from __future__ import annotations

from oslo_log import log as logging
from taskflow import task

from ibmvirt import contract
from ibmvirt.powervm import volume as pvm_volume

LOG = logging.getLogger(__name__)


class PrepareVolume(task.Task):
    """The volume reachable from this host's VIOSes (NovaLink maps it during the move)."""

    def __init__(self, connector, connection_info, data):
        volume_id = pvm_volume.volume_id_of(connection_info)
        super().__init__(name=f"prepare_volume_{volume_id}")
        self.connector, self.info, self.data, self.volume_id = (
            connector,
            connection_info,
            data,
            volume_id,
        )

    def execute(self):
        self.data.vol_data[self.volume_id] = self.connector.pre_live_migration_at_destination(
            self.info
        )

    def revert(self, result, flow_failures, **kwargs):
        self.data.vol_data.pop(self.volume_id, None)
        try:
            self.connector.rollback_live_migration_at_destination(self.info)
        except Exception:
            LOG.exception("Could not undo the preparation of volume %s", self.volume_id)


class PrepareVif(task.Task):
    """What the port needs here (an ovs trunk on a free VLAN: its PVID goes to
    the Migrate job's VlanMappings)."""

    def __init__(self, vif_driver, vif, instance_uuid: str, data):
        super().__init__(name=f"prepare_vif_{vif['id']}")
        self.drv, self.vif, self.instance_uuid, self.data = vif_driver, vif, instance_uuid, data

    def execute(self):
        pvid = self.drv.pre_live_migration_at_destination(self.vif, self.instance_uuid)
        if pvid is not None:
            self.data.vlan_mappings[contract.pvm_mac(self.vif["address"])] = str(pvid)

    def revert(self, result, flow_failures, **kwargs):
        self.data.vlan_mappings.pop(contract.pvm_mac(self.vif["address"]), None)
        try:
            self.drv.rollback_live_migration_at_destination(self.vif)
        except Exception:
            LOG.exception("Could not undo the preparation of port %s", self.vif["id"])
