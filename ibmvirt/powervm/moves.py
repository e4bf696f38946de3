"""Resize and cold migration: what the driver checks and hands over.

Nova moves an instance in steps on two compute hosts (one, when a resize
stays on its host): ``migrate_disk_and_power_off`` on the source,
``finish_migration`` on the destination, then ``confirm_migration`` on the
source or, to revert, ``destroy`` on the destination and
``finish_revert_migration`` on the source. What the driver needs to know
between the steps comes from Nova's migration record, the destination's
compute node and the hypervisor, never from memory: a restart of either
nova-compute between the steps loses nothing.

A boot disk moves only where it is already: a Shared Storage Pool LU is
found by name on every host of the cluster; a localdisk logical volume
belongs to one VIOS of one system and cannot move (nor is it copied: a copy
across systems needs a channel between the two VIOSes that NovaLink does not
offer). Volumes move as Cinder moves them.
"""

from __future__ import annotations

from nova import exception, objects
from nova.virt import driver
from oslo_serialization import jsonutils

from ibmvirt.powervm import exceptions as pvm_exc
from ibmvirt.powervm import vm

#: Compute node stats key naming the boot-disk storage of a host (DiskDriver.storage_id).
STORAGE_STAT = "powervm_boot_disk_storage"


def migration_of(context, instance) -> objects.Migration:
    """The migration record of the instance's move in progress."""
    mig_ctx = instance.migration_context
    if mig_ctx is None:
        raise exception.MigrationNotFoundForInstance(instance_id=instance.uuid)
    return objects.Migration.get_by_id_and_instance(context, mig_ctx.migration_id, instance.uuid)


def same_host(migration) -> bool:
    return migration.source_compute == migration.dest_compute


def flavor_changed(migration) -> bool:
    """A resize (not a cold migration with the same flavor)."""
    return migration.old_instance_type_id != migration.new_instance_type_id


def reverting_in_place(context, instance) -> bool:
    """Whether this is the destroy() of a revert of a resize that stayed on
    its host: the LPAR is the instance's only one and must stay."""
    from nova.compute import task_states

    if instance.task_state != task_states.RESIZE_REVERTING:
        return False
    try:
        return same_host(migration_of(context, instance))
    except exception.NotFound:
        return False


def boot_from_volume(block_device_info) -> bool:
    return any(
        b.get("boot_index") == 0 for b in driver.block_device_info_get_mapping(block_device_info)
    )


def destination_storage(context, migration) -> str | None:
    """The destination's boot-disk storage, as its resource updates report it."""
    try:
        node = objects.ComputeNode.get_by_host_and_nodename(
            context, migration.dest_compute, migration.dest_node
        )
    except exception.NotFound:
        return None
    return (node.stats or {}).get(STORAGE_STAT)


def check(instance, new_flavor, migration, bfv: bool, disk, dest_storage: str | None) -> None:
    """Refuse a move the driver cannot do, as Nova expects before anything
    changed (InstanceFaultRollback: the server stays as it was)."""
    lpar = vm.lpar_name(instance)
    old_gb, new_gb = instance.flavor.root_gb, new_flavor.root_gb
    if not bfv and new_gb < old_gb:
        reason = pvm_exc.MoveRefused(
            lpar=lpar,
            reason=f"flavor {new_flavor.name} has a {new_gb} GB root disk and the server's "
            f"is {old_gb} GB; a PowerVM disk cannot shrink: choose a flavor with a root "
            f"disk of at least {old_gb} GB",
        ).format_message()
        raise exception.InstanceFaultRollback(inner_exception=exception.ResizeError(reason=reason))
    if bfv or same_host(migration) or dest_storage == disk.storage_id():
        return
    # Nova keeps 255 characters of the message: the cause and the fix first.
    reason = pvm_exc.MoveRefused(
        lpar=lpar,
        reason=(
            f"a localdisk boot disk stays on its host ({migration.dest_compute} cannot reach "
            "it); resize it on this host, or boot the server from a volume"
            if disk.name == "localdisk"
            else f"host {migration.dest_compute} is not in the cluster of its boot disk "
            f"({dest_storage or 'no shared storage pool'} there, {disk.storage_id()} here)"
        ),
    ).format_message()
    raise exception.InstanceFaultRollback(
        inner_exception=exception.MigrationPreCheckError(reason=reason)
    )


def disk_info(disk, instance, bfv: bool) -> str:
    """What finish_migration on the destination needs of the boot disk."""
    return jsonutils.dumps(
        {
            "disk_driver": disk.name,
            "storage": disk.storage_id(),
            "boot_disk": None if bfv else disk.boot_disk_name(instance),
        }
    )


def check_disk_info(text, disk, instance) -> None:
    """The destination's own look at what the source handed over."""
    info = jsonutils.loads(text) if text else {}
    if info.get("boot_disk") and info.get("storage") != disk.storage_id():
        raise pvm_exc.MoveRefused(
            lpar=vm.lpar_name(instance),
            reason=f"its boot disk {info['boot_disk']} is on {info.get('storage')}, which "
            f"this host ({disk.storage_id()}) does not see",
        )
