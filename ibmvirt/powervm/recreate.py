"""Evacuate: the instance's LPAR made again on this host, as it was.

Nova evacuates when the source host is down (its service stopped and forced
down): the destination's ``rebuild(evacuate=True)`` recreates the LPAR with
the slots kept with the instance (:mod:`~ibmvirt.powervm.slots`), the NVRAM
kept in the NVRAM store, the boot disk the source left in the Shared Storage
Pool (or a new one from the image, where the disk stayed on the source's
volume group), and the volumes Cinder attaches to this host. When the
source's nova-compute starts again, Nova destroys what is left there; its
disks stay if the destination shares them (check_instance_shared_storage_*).
"""

from __future__ import annotations

from nova import context as nova_context
from nova.compute import task_states
from nova.compute import utils as compute_utils
from oslo_log import log as logging

LOG = logging.getLogger(__name__)


def prepare_evacuate(context, instance, bdms, detach_block_devices, attach_block_devices):
    """Nova's part of an evacuate before the LPAR is made (what its default
    rebuild does): volumes detached from the source and attached to this
    host; returns the new block_device_info."""
    detach_block_devices(context, bdms)
    instance.task_state = task_states.REBUILD_BLOCK_DEVICE_MAPPING
    instance.save(expected_task_state=[task_states.REBUILDING])
    block_device_info = attach_block_devices(context, instance, bdms)
    instance.task_state = task_states.REBUILD_SPAWNING
    instance.save(expected_task_state=[task_states.REBUILD_BLOCK_DEVICE_MAPPING])
    return block_device_info


def on_disk(disk, instance) -> bool:
    """Whether this host reaches the instance's disks as they are: booted
    from a volume, or a boot disk in storage this host shares."""
    ctx = nova_context.get_admin_context()
    if compute_utils.is_volume_backed_instance(ctx, instance):
        return True
    return bool(disk.capabilities.shared_storage and disk.find_boot_disk(instance) is not None)


def deleting_here(instance, nova_host: str) -> bool:
    """Whether a destroy is the instance's deletion on its own host (not the
    clean-up after an evacuate or a move, whose copies the new host uses)."""
    return instance.task_state == task_states.DELETING and instance.host in (nova_host, None)
