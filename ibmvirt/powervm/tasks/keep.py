"""Tasks that keep what recreating an LPAR elsewhere needs: its client slot
numbers (in the instance) and its NVRAM (in the NVRAM store)."""

from __future__ import annotations

from oslo_log import log as logging
from taskflow import task

from ibmvirt.powervm import slots

LOG = logging.getLogger(__name__)


class PlaceMappings(task.Task):
    """Queue, last in ``ftsk``, the client slots the new mappings had before."""

    def __init__(self, ftsk, slot_map):
        super().__init__(name="place_mappings")
        self.ftsk, self.slot_map = ftsk, slot_map

    def execute(self, lpar):
        slots.place_new_mappings(self.ftsk, lpar.uuid, self.slot_map)


class SaveSlots(task.Task):
    """Read the LPAR's slots from NovaLink and keep them with the instance."""

    def __init__(self, host, instance):
        super().__init__(name="save_slots")
        self.host, self.instance = host, instance

    def execute(self, lpar):
        slots.save(self.instance, slots.read(self.host.adapter, lpar.refresh()))


class StoreNvram(task.Task):
    """Copy the stopped LPAR's NVRAM now (before a move to another host)."""

    def __init__(self, nvram_mgr, instance):
        super().__init__(name="store_nvram")
        self.nvram, self.instance = nvram_mgr, instance

    def execute(self, lpar):
        self.nvram.store_now(lpar.uuid, self.instance.uuid)


class DeleteNvram(task.Task):
    """Forget the deleted instance's NVRAM copy."""

    def __init__(self, nvram_mgr, instance):
        super().__init__(name="delete_nvram")
        self.nvram, self.instance = nvram_mgr, instance

    def execute(self):
        self.nvram.delete(self.instance.uuid)
