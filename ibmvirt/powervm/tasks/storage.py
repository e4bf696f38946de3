"""Tasks that give the LPAR its boot disk, volumes and config drive.

Mapping changes are collected into the operation's VIOS FeedTask (``ftsk``):
one ETag-checked update per VIOS, the VIOSes in parallel, run by
:class:`RunFeedTask`, whose revert removes every mapping of the LPAR again.
"""

from __future__ import annotations

from oslo_log import log as logging
from pypowervm.tasks import scsi_mapper as pvm_map
from pypowervm.tasks import vfc_mapper as pvm_vfc
from taskflow import task

from ibmvirt.powervm import exceptions as pvm_exc

LOG = logging.getLogger(__name__)


class CreateBootDisk(task.Task):
    """Boot disk from the image; revert deletes it."""

    def __init__(self, disk_driver, context, instance, image_meta, size_gb: int):
        super().__init__(name="create_boot_disk", provides="boot_disk")
        self.disk, self.context, self.instance = disk_driver, context, instance
        self.image_meta, self.size_gb = image_meta, size_gb

    def execute(self):
        return self.disk.create_from_image(
            self.context, self.instance, self.image_meta, self.size_gb
        )

    def revert(self, result, flow_failures, **kwargs):
        self.disk.delete_boot_disk(self.instance)


class ConnectBootDisk(task.Task):
    def __init__(self, disk_driver, ftsk):
        super().__init__(name="connect_boot_disk")
        self.disk, self.ftsk = disk_driver, ftsk

    def execute(self, lpar, boot_disk):
        self.disk.add_connect(self.ftsk, lpar.uuid, boot_disk)


class FindBootDisk(task.Task):
    """The boot disk a move brings (shared storage); never deleted on revert:
    the source host still uses it."""

    def __init__(self, disk_driver, instance):
        super().__init__(name="find_boot_disk", provides="boot_disk")
        self.disk, self.instance = disk_driver, instance

    def execute(self):
        found = self.disk.find_boot_disk(self.instance)
        if found is None:
            raise pvm_exc.BootDiskMissing(
                disk=self.disk.boot_disk_name(self.instance),
                where=f"this host's {self.disk.name} storage",
            )
        return found


class ExtendBootDisk(task.Task):
    """Grow the boot disk to the flavor's root disk. A disk cannot shrink, so
    revert keeps the larger disk (the guest may have used the space already)."""

    def __init__(self, disk_driver, instance, size_gb: int):
        super().__init__(name="extend_boot_disk")
        self.disk, self.instance, self.size_gb = disk_driver, instance, size_gb
        self.grown = False

    def execute(self):
        self.grown = self.disk.extend_boot_disk(self.instance, self.size_gb)
        if self.grown:
            LOG.info("Boot disk grown to %d GB", self.size_gb, instance=self.instance)

    def revert(self, result, flow_failures, **kwargs):
        if self.grown:
            LOG.warning(
                "Move failed: the boot disk stays at %d GB (disks cannot shrink)",
                self.size_gb,
                instance=self.instance,
            )


class _Volumes(task.Task):
    """Connect or disconnect a set of volumes in one FeedTask of their own."""

    def __init__(self, name, new_feedtask, volumes):
        super().__init__(name=name)
        self.new_feedtask = new_feedtask
        self.volumes = volumes  # [(connector factory, connection_info)]

    def _connect(self, lpar_uuid):
        ftsk = self.new_feedtask()
        connectors = []
        try:
            for make, info in self.volumes:
                connector = make()
                connectors.append((connector, info))
                connector.add_connect(ftsk, lpar_uuid, info)
            if any(w.subtasks for w in ftsk.wrapper_tasks.values()):
                ftsk.execute()
        except Exception:
            for connector, info in connectors:
                connector.undo_connect(info)
            raise

    def _disconnect(self, lpar_uuid):
        ftsk = self.new_feedtask()
        connectors = []
        for make, info in self.volumes:
            connector = make()
            connector.add_disconnect(ftsk, lpar_uuid, info)
            connectors.append((connector, info))
        if connectors:
            ftsk.execute()
        for connector, info in connectors:
            connector.after_disconnect(info)


class ConnectVolumes(_Volumes):
    """Discover and map the instance's volumes; revert unmaps them again."""

    def __init__(self, new_feedtask, volumes):
        super().__init__("connect_volumes", new_feedtask, volumes)

    def execute(self, lpar):
        self._connect(lpar.uuid)

    def revert(self, lpar, result, flow_failures, **kwargs):
        if self.volumes:
            self._disconnect(lpar.uuid)


class DisconnectVolumes(_Volumes):
    """Unmap the instance's volumes and forget their hdisks (the array then
    unmasks them for this host); revert maps them again."""

    def __init__(self, new_feedtask, volumes):
        super().__init__("disconnect_volumes", new_feedtask, volumes)

    def execute(self, lpar):
        self._disconnect(lpar.uuid)

    def revert(self, lpar, result, flow_failures, **kwargs):
        if self.volumes:
            self._connect(lpar.uuid)


class ConnectVolume(task.Task):
    """Discover a Cinder volume on the VIOSes and queue its mappings."""

    def __init__(self, connector, connection_info, ftsk, volume_id: str):
        super().__init__(name=f"connect_volume_{volume_id}")
        self.connector, self.connection_info, self.ftsk = connector, connection_info, ftsk

    def execute(self, lpar):
        self.connector.add_connect(self.ftsk, lpar.uuid, self.connection_info)

    def revert(self, lpar, result, flow_failures, **kwargs):
        self.connector.undo_connect(self.connection_info)


class CreateConfigDrive(task.Task):
    """Build and upload the config drive, queue its mapping; revert removes it."""

    def __init__(self, config_drive, ftsk, instance, injected_files, network_info, admin_pass):
        super().__init__(name="config_drive")
        self.cfg, self.ftsk, self.instance = config_drive, ftsk, instance
        self.files, self.network_info, self.admin_pass = (
            injected_files,
            network_info,
            admin_pass,
        )

    def execute(self, lpar):
        vopt = self.cfg.create(self.instance, self.files, self.network_info, self.admin_pass)
        self.cfg.add_connect(self.ftsk, lpar.uuid, vopt)

    def revert(self, lpar, result, flow_failures, **kwargs):
        self.cfg.delete(self.instance)


class RunFeedTask(task.Task):
    """Apply the queued VIOS mapping changes; revert removes the LPAR's
    mappings (vSCSI and vFC)."""

    def __init__(self, ftsk, new_feedtask):
        super().__init__(name="vios_mappings")
        self.ftsk, self.new_feedtask = ftsk, new_feedtask

    def execute(self, lpar):
        if any(w.subtasks for w in self.ftsk.wrapper_tasks.values()):
            self.ftsk.execute()

    def revert(self, lpar, result, flow_failures, **kwargs):
        def remove(vwrap):
            removed = pvm_map.remove_maps(vwrap, lpar.uuid)
            return bool(removed + pvm_vfc.remove_maps(vwrap, lpar.uuid))

        undo = self.new_feedtask()
        undo.add_functor_subtask(remove)
        undo.execute()


class DetachAll(task.Task):
    """Remove every VIOS mapping of the instance in one FeedTask: its volumes'
    (whose hdisks are then removed), the rest of the LPAR's (vSCSI and vFC),
    and, when the LPAR is gone already, those still naming its volumes, boot
    disk or config drive."""

    def __init__(self, ftsk, instance, volumes, owned_by_instance):
        super().__init__(name="detach_storage")
        self.ftsk, self.instance = ftsk, instance
        self.volumes = volumes  # [(connector, connection_info)]
        self.owned = owned_by_instance  # [match(instance, storage) -> bool]

    def execute(self, lpar):
        lpar_uuid = lpar.uuid if lpar is not None else None
        for connector, info in self.volumes:
            connector.add_disconnect_for_delete(self.ftsk, lpar_uuid, info)
        instance, owned = self.instance, self.owned

        def remove(vwrap):
            removed = pvm_map.remove_maps(vwrap, lpar_uuid) if lpar_uuid else []
            if lpar_uuid:
                removed += pvm_vfc.remove_maps(vwrap, lpar_uuid)
            stale = [
                m
                for m in vwrap.scsi_mappings
                if m.backing_storage is not None
                and any(match(instance, m.backing_storage) for match in owned)
            ]
            for m in stale:
                vwrap.scsi_mappings.remove(m)
            return bool(removed or stale)

        self.ftsk.add_functor_subtask(remove)
        self.ftsk.execute()
        for connector, info in self.volumes:
            connector.after_disconnect(info)


class DeleteBootDisk(task.Task):
    def __init__(self, disk_driver, instance):
        super().__init__(name="delete_boot_disk")
        self.disk, self.instance = disk_driver, instance

    def execute(self):
        self.disk.delete_boot_disk(self.instance)


class DeleteConfigDrive(task.Task):
    def __init__(self, config_drive, instance):
        super().__init__(name="delete_config_drive")
        self.cfg, self.instance = config_drive, instance

    def execute(self):
        self.cfg.delete(self.instance)
