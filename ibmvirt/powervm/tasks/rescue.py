"""Tasks of rescue and unrescue: the rescue disk and the LPAR's boot list.

Rescue adds a disk made from the rescue image and points the boot list at
it; the boot disk stays mapped where it was (the rescue system finds it as
a second disk). Unrescue points the boot list back, then removes the rescue
disk. The boot list the LPAR had is kept in the instance's system_metadata
(``powervm_boot_list``) between the two, so a restart of nova-compute in
between loses nothing.
"""

from __future__ import annotations

from oslo_log import log as logging
from pypowervm import const as pvm_const
from pypowervm.tasks import partition as pvm_par
from pypowervm.tasks import scsi_mapper as pvm_map
from taskflow import task

from ibmvirt.common import sysmeta
from ibmvirt.powervm import bootlist, vm
from ibmvirt.powervm import exceptions as pvm_exc

LOG = logging.getLogger(__name__)

#: system_metadata key: the boot list to give back at unrescue (paths, space-separated).
SAVED_BOOT_LIST = "powervm_boot_list"


def _mapped_paths(host, disk_driver, lpar_uuid: str, match) -> list[str]:
    """Paths of the disks ``match`` selects, through this backend's VIOSes."""
    wanted = set(disk_driver.vios_uuids)
    vioses = [
        v
        for v in pvm_par.get_active_vioses(host.adapter, xag=[pvm_const.XAG.VIO_SMAP])
        if v.uuid in wanted
    ]
    vioses.sort(key=lambda v: disk_driver.vios_uuids.index(v.uuid))
    return bootlist.paths_of(vioses, lpar_uuid, match)


class StopForRescue(task.Task):
    """Stop the LPAR at once (Nova has shut the OS down already)."""

    def __init__(self, host, instance):
        super().__init__(name="stop_for_rescue")
        self.host, self.instance = host, instance

    def execute(self, lpar):
        vm.power_off(lpar)
        self.host.states.changed(lpar.uuid)


class CreateRescueDisk(task.Task):
    """The rescue disk from the rescue image; revert deletes it."""

    def __init__(self, disk_driver, context, instance, image_meta):
        super().__init__(name="create_rescue_disk", provides="rescue_disk")
        self.disk, self.context, self.instance = disk_driver, context, instance
        self.image_meta = image_meta

    def execute(self):
        # A leftover of an earlier rescue that died half-way is replaced.
        self.disk.delete_rescue_disk(self.instance)
        return self.disk.create_rescue_disk(self.context, self.instance, self.image_meta)

    def revert(self, result, flow_failures, **kwargs):
        LOG.warning("Rescue failed: deleting the rescue disk", instance=self.instance)
        self.disk.delete_rescue_disk(self.instance)


class _RescueMappings:
    def _unmap(self, lpar_uuid: str) -> None:
        disk, instance = self.disk, self.instance

        def remove(vwrap):
            return bool(
                pvm_map.remove_maps(
                    vwrap, lpar_uuid, match_func=lambda s: disk.is_rescue_disk(instance, s)
                )
            )

        ftsk = self.new_feedtask()
        ftsk.add_functor_subtask(remove)
        ftsk.execute()


class ConnectRescueDisk(_RescueMappings, task.Task):
    """Map the rescue disk (every VIOS of the backend); provides its boot
    paths. Revert removes its mappings, nothing else of the LPAR's."""

    def __init__(self, host, disk_driver, instance, new_feedtask):
        super().__init__(name="connect_rescue_disk", provides="rescue_paths")
        self.host, self.disk, self.instance = host, disk_driver, instance
        self.new_feedtask = new_feedtask

    def execute(self, lpar, rescue_disk):
        ftsk = self.new_feedtask()
        self.disk.add_connect(ftsk, lpar.uuid, rescue_disk)
        ftsk.execute()
        paths = _mapped_paths(
            self.host, self.disk, lpar.uuid, lambda s: self.disk.is_rescue_disk(self.instance, s)
        )
        if not paths:
            raise pvm_exc.BootListUnavailable(
                lpar=lpar.name, reason="the rescue disk's mapping shows no client slot and LUN"
            )
        return paths

    def revert(self, lpar, result, flow_failures, **kwargs):
        self._unmap(lpar.uuid)


class DisconnectRescueDisk(_RescueMappings, task.Task):
    def __init__(self, disk_driver, instance, new_feedtask):
        super().__init__(name="disconnect_rescue_disk")
        self.disk, self.instance, self.new_feedtask = disk_driver, instance, new_feedtask

    def execute(self, lpar):
        self._unmap(lpar.uuid)


class DeleteRescueDisk(task.Task):
    def __init__(self, disk_driver, instance):
        super().__init__(name="delete_rescue_disk")
        self.disk, self.instance = disk_driver, instance

    def execute(self):
        self.disk.delete_rescue_disk(self.instance)


def original_boot_list(host, disk_driver, instance, lpar) -> list[str]:
    """The boot list to go back to: the one saved at rescue, else the
    LPAR's boot disk (also when its boot list was the firmware's default)."""
    saved = (instance.system_metadata or {}).get(SAVED_BOOT_LIST, "").split()
    if saved:
        return saved
    return _mapped_paths(
        host, disk_driver, lpar.uuid, lambda s: disk_driver.is_boot_disk(instance, s)
    )


class BootRescueDisk(task.Task):
    """Save the LPAR's boot list, then make the rescue disk its boot list;
    revert gives the old list back."""

    def __init__(self, host, disk_driver, instance):
        super().__init__(name="boot_rescue_disk")
        self.host, self.disk, self.instance = host, disk_driver, instance
        self.original: list[str] = []

    def execute(self, lpar, rescue_paths):
        now = bootlist.read(self.host.adapter, lpar.uuid, lpar.name)
        self.original = now[bootlist.LIST] or original_boot_list(
            self.host, self.disk, self.instance, lpar
        )
        sysmeta.save(self.instance, {SAVED_BOOT_LIST: " ".join(self.original)})
        bootlist.set_pending(self.host.adapter, lpar.uuid, lpar.name, rescue_paths)

    def revert(self, lpar, result, flow_failures, **kwargs):
        if self.original:
            bootlist.set_pending(self.host.adapter, lpar.uuid, lpar.name, self.original)


class RestoreBootList(task.Task):
    """Unrescue: the LPAR boots what it booted before the rescue again."""

    def __init__(self, host, disk_driver, instance):
        super().__init__(name="restore_boot_list")
        self.host, self.disk, self.instance = host, disk_driver, instance

    def execute(self, lpar):
        paths = original_boot_list(self.host, self.disk, self.instance, lpar)
        bootlist.set_pending(self.host.adapter, lpar.uuid, lpar.name, paths)


class ForgetBootList(task.Task):
    def __init__(self, instance):
        super().__init__(name="forget_boot_list")
        self.instance = instance

    def execute(self):
        if SAVED_BOOT_LIST in (self.instance.system_metadata or {}):
            sysmeta.save(self.instance, {SAVED_BOOT_LIST: ""})
