"""Tasks of snapshot: expose the boot disk on the NovaLink partition, stream it to Glance.

The disk stays where it is (VIOS volume group or SSP); a VIOS maps it to the
management partition for the upload and the mapping is removed afterwards,
on success by :class:`RemoveDiskFromMgmt`, on failure by the revert of
:class:`DiskToMgmt`.
"""

from __future__ import annotations

from nova.image import glance
from oslo_log import log as logging
from taskflow import task

LOG = logging.getLogger(__name__)


class UpdateTaskState(task.Task):
    """Tell Nova where the snapshot is (IMAGE_PENDING_UPLOAD, IMAGE_UPLOADING)."""

    def __init__(self, update_task_state, task_state: str, expected_state: str | None = None):
        super().__init__(name=f"update_task_state_{task_state}")
        self.update_task_state, self.task_state = update_task_state, task_state
        self.expected_state = expected_state

    def execute(self):
        if self.expected_state is None:
            self.update_task_state(self.task_state)
        else:
            self.update_task_state(self.task_state, expected_state=self.expected_state)


class DiskToMgmt(task.Task):
    """Map the boot disk to the management partition and find it there.

    Revert unmaps first, then forgets the device: the mapping is what must not
    be left behind, a stale device entry is harmless.
    """

    def __init__(self, mgmt, vios_uuid: str, storage, instance):
        super().__init__(name="disk_to_mgmt", provides="mgmt_disk")
        self.mgmt, self.vios_uuid, self.storage = mgmt, vios_uuid, storage
        self.instance = instance
        self.disk = None

    def execute(self):
        self.disk = self.mgmt.map(self.vios_uuid, self.storage)
        self.disk.path = self.mgmt.discover(self.disk)
        return self.disk

    def revert(self, result, flow_failures, **kwargs):
        if self.disk is None:
            return
        LOG.warning(
            "Snapshot failed: unmapping %s from the management partition",
            self.disk.name,
            instance=self.instance,
        )
        self.mgmt.unmap(self.disk)
        try:
            self.mgmt.remove_device(self.disk)
        except Exception:  # noqa: BLE001  (the unmap, which matters, is done)
            LOG.exception("Could not remove %s from the management partition", self.disk.path)


class StreamToGlance(task.Task):
    """Upload the disk's raw bytes as the snapshot image's data."""

    def __init__(self, mgmt, context, image_id: str, instance):
        super().__init__(name="stream_to_glance")
        self.mgmt, self.context, self.image_id = mgmt, context, image_id
        self.instance = instance

    def execute(self, mgmt_disk):
        api = glance.API()
        metadata = snapshot_metadata(api.get(self.context, self.image_id), self.instance)
        with self.mgmt.open(mgmt_disk) as data:
            api.update(self.context, self.image_id, metadata, data=data)
        LOG.info("Uploaded %s to image %s", mgmt_disk.name, self.image_id, instance=self.instance)


class RemoveDiskFromMgmt(task.Task):
    """Forget the device on the management partition, then remove the mapping."""

    def __init__(self, mgmt):
        super().__init__(name="remove_disk_from_mgmt")
        self.mgmt = mgmt

    def execute(self, mgmt_disk):
        self.mgmt.remove_device(mgmt_disk)
        self.mgmt.unmap(mgmt_disk)


def snapshot_metadata(image: dict, instance) -> dict:
    """What the snapshot image becomes: a raw, bare, active image of the instance's owner."""
    return {
        "name": image["name"],
        "status": "active",
        "disk_format": "raw",
        "container_format": "bare",
        "properties": {
            "image_location": "snapshot",
            "image_state": "available",
            "owner_id": instance.project_id,
        },
    }
