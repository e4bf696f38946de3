"""Tasks that plug Neutron ports into the LPAR."""

from __future__ import annotations

from oslo_log import log as logging
from taskflow import task

from ibmvirt.common import vifwait
from ibmvirt.powervm import vif as pvm_vif

LOG = logging.getLogger(__name__)


class PlugVifs(task.Task):
    """Create an adapter per VIF inside Nova's wait for network-vif-plugged."""

    def __init__(self, host, virtapi, instance, network_info, conf, slot_map=None):
        super().__init__(name="plug_vifs")
        self.host, self.virtapi, self.instance = host, virtapi, instance
        self.network_info, self.conf = network_info or [], conf
        self.slot_map = slot_map  # recreating an LPAR: the slots its adapters had
        self._plugged: list = []

    def execute(self, lpar):
        with vifwait.vifs_plugged(self.virtapi, self.instance, self.network_info):
            for vif in self.network_info:
                driver = pvm_vif.driver_for(vif, self.host.adapter, self.host.uuid, self.conf)
                slot = self.slot_map.cna_slot(vif["address"]) if self.slot_map else None
                driver.plug(lpar, vif, self.instance.uuid, slot=slot)
                self._plugged.append((driver, vif))

    def revert(self, lpar, result, flow_failures, **kwargs):
        for driver, vif in reversed(self._plugged):
            try:
                driver.unplug(lpar, vif)
            except Exception:
                LOG.exception("Could not unplug port %s", vif["id"], instance=self.instance)


class PlugMgmtVif(task.Task):
    """The RMC adapter on MGMTSWITCH (deleted with the LPAR)."""

    def __init__(self, host, slot_map=None):
        super().__init__(name="plug_mgmt_vif")
        self.host, self.slot_map = host, slot_map

    def execute(self, lpar):
        slot = self.slot_map.cna_slot(None) if self.slot_map else None
        pvm_vif.plug_mgmt_vif(self.host.adapter, lpar, slot=slot)


class DeleteTrunks(task.Task):
    """The NovaLink trunk adapters paired with the LPAR's ovs adapters."""

    def __init__(self, host, vswitch_name: str):
        super().__init__(name="delete_trunks")
        self.host, self.vswitch_name = host, vswitch_name

    def execute(self, lpar):
        if lpar is not None:
            pvm_vif.delete_trunks_of(self.host.adapter, lpar, self.vswitch_name)
        else:
            # The LPAR went behind Nova's back: its trunks are orphans now.
            self.host.scrub_orphan_trunks()
