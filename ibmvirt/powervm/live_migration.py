"""Live partition mobility (LPM) of an instance's LPAR to another NovaLink host.

The destination says what it offers (:func:`check_destination`), the source
refuses what cannot move (:func:`check_source`), the destination prepares
the LPAR's volumes and ovs trunks (:func:`pre_live_migration`, a TaskFlow
flow whose reverts undo a partial preparation), and the source runs
NovaLink's Migrate job (:func:`migrate`), which moves the running LPAR with
its adapters and storage mappings.

The state of a migration in progress lives on NovaLink, not in nova-compute:
the Migrate job and the LPAR's MigrationState. A restarted nova-compute
(Nova aborts the migrations it finds in progress) asks NovaLink to abort it
by the LPAR alone (:func:`abort`).
"""

from __future__ import annotations

import threading
import time

from nova import exception, objects
from nova.virt import driver as nova_driver
from oslo_log import log as logging
from pypowervm import exceptions as pvm_ex
from pypowervm.tasks import migration as pvm_mig
from pypowervm.tasks import partition as pvm_par
from pypowervm.wrappers import iocard as pvm_card
from taskflow.patterns import linear_flow

from ibmvirt import contract
from ibmvirt.powervm import exceptions as pvm_exc
from ibmvirt.powervm import tasks, vm
from ibmvirt.powervm import vif as pvm_vif
from ibmvirt.powervm import volume as pvm_volume
from ibmvirt.powervm.lpm_data import PowerVMLiveMigrateData
from ibmvirt.powervm.tasks import migration as tf_mig

LOG = logging.getLogger(__name__)

NOT_MIGRATING = "Not_Migrating"
#: NovaLink runs these vif types' adapters in a way LPM can move.
MOVABLE_VIF_TYPES = (contract.VIF_TYPE_PVM_SEA, contract.VIF_TYPE_OVS)


def _refuse(instance, reason: str):
    return exception.MigrationPreCheckError(
        reason=pvm_exc.MoveRefused(lpar=vm.lpar_name(instance), reason=reason).format_message()
    )


def check_destination(host, disk, conf, instance) -> PowerVMLiveMigrateData:
    """This (destination) host's offer; refused when it has no free migration slot."""
    if conf.compute.live_migration_wait_for_vif_plug and any(
        vif["type"] == contract.VIF_TYPE_PVM_SEA for vif in instance.get_network_info()
    ):
        # The SEA agent sees a port's adapter only once the LPAR is here, so
        # the source would wait for network-vif-plugged until it times out.
        raise _refuse(
            instance,
            "set [compute] live_migration_wait_for_vif_plug = False on this host: a "
            "pvm_sea port's adapter arrives with the LPAR, so Neutron cannot report it "
            "plugged before the move",
        )
    system = host.refresh_system()
    mig = system.migration_data
    running, limit = mig["active_migrations_in_progress"], mig["active_migrations_supported"]
    if running >= limit:
        raise _refuse(
            instance,
            f"the destination system {system.system_name} already runs {running} of the "
            f"{limit} active partition migrations it supports; retry later or choose another host",
        )
    return PowerVMLiveMigrateData(
        dest_sys_name=system.system_name,
        dest_ip=host.ip_address(conf),
        dest_proc_compat=",".join(system.proc_compat_modes),
        dest_memory_region_mb=int(system.memory_region_size),
        dest_storage=disk.storage_id() if disk.capabilities.shared_storage else None,
        vol_data={},
        vlan_mappings={},
    )


def check_source(host, disk, conf, instance, data, block_device_info, network_info):
    """Refuse, before anything changes, what PowerVM or this driver cannot move."""
    system = host.refresh_system()
    lpar = vm.get_lpar(host.adapter, instance)
    dest = data.dest_sys_name
    if lpar.migration_state != NOT_MIGRATING:
        raise _refuse(instance, f"it is already migrating ({lpar.migration_state})")
    modes = [m for m in data.dest_proc_compat.split(",") if m]
    if lpar.proc_compat_mode not in modes:
        raise _refuse(
            instance,
            f"it runs in processor compatibility mode {lpar.proc_compat_mode}, which {dest} "
            f"does not support ({', '.join(modes)}); give its flavor "
            "powervm:processor_compatibility set to a mode both hosts support",
        )
    if int(system.memory_region_size) != data.dest_memory_region_mb:
        raise _refuse(
            instance,
            f"the memory region size differs ({system.memory_region_size} MB here, "
            f"{data.dest_memory_region_mb} MB on {dest}); set both systems alike in ASMI",
        )
    capable, why = lpar.can_lpm(system, system.migration_data)
    if not capable:
        raise _refuse(instance, f"PowerVM cannot move it now: {why}")
    mig = system.migration_data
    if mig["active_migrations_in_progress"] >= mig["active_migrations_supported"]:
        raise _refuse(
            instance,
            f"this system already runs {mig['active_migrations_in_progress']} of the "
            f"{mig['active_migrations_supported']} active migrations it supports",
        )
    bfv = any(b.get("boot_index") == 0 for b in _bdms(block_device_info))
    if not bfv and data.dest_storage != (
        disk.storage_id() if disk.capabilities.shared_storage else ""
    ):
        raise _refuse(
            instance,
            "a localdisk boot disk stays on its host; boot the server from a volume or "
            "use the ssp disk driver"
            if not disk.capabilities.shared_storage
            else f"{dest} is not in the cluster of its boot disk",
        )
    _check_ports(host, instance, lpar, network_info)
    for bdm in _bdms(block_device_info):
        connector = pvm_volume.connector_for(bdm["connection_info"], host, conf)
        if not connector.live_migratable:
            raise _refuse(
                instance,
                f"its volume {pvm_volume.volume_id_of(bdm['connection_info'])} is attached "
                f"through {type(connector).__name__}, which cannot follow a live migration "
                "yet; detach it or cold-migrate the server",
            )
    if _has_optical_media(host, lpar):
        raise _refuse(
            instance,
            "it has a config drive (virtual optical media), which cannot move with it; "
            "cold-migrate the server",
        )
    return data


def _check_ports(host, instance, lpar, network_info) -> None:
    """SR-IOV logical ports and vNICs are physical I/O to LPM: refused."""
    for vif in network_info or []:
        if vif["type"] not in MOVABLE_VIF_TYPES:
            raise _refuse(
                instance,
                f"port {vif['id']} is {vif['type']} (vnic_type {vif.get('vnic_type')}); "
                "PowerVM moves only virtual Ethernet adapters (pvm_sea, ovs): detach the "
                "SR-IOV port first",
            )
    if pvm_card.VNIC.get(host.adapter, parent=lpar) or _sriov_logical_ports(host, lpar):
        raise _refuse(
            instance,
            "it has SR-IOV logical ports or vNICs on this system, which PowerVM cannot "
            "move; detach them first",
        )


def _sriov_logical_ports(host, lpar) -> list:
    return list(pvm_card.SRIOVEthLPort.get(host.adapter, parent=lpar))


def _has_optical_media(host, lpar) -> bool:
    from pypowervm import const as pvm_const
    from pypowervm.tasks import scsi_mapper as pvm_map
    from pypowervm.wrappers import storage as pvm_stor

    for vios_w in pvm_par.get_active_vioses(host.adapter, xag=[pvm_const.XAG.VIO_SMAP]):
        for m in pvm_map.find_maps(vios_w.scsi_mappings, client_lpar_id=lpar.uuid):
            if isinstance(m.backing_storage, pvm_stor.VOptMedia):
                return True
    return False


def _bdms(block_device_info) -> list:
    return nova_driver.block_device_info_get_mapping(block_device_info)


def pre_live_migration(host, conf, context, instance, block_device_info, network_info, data):
    """On the destination: volumes reachable here, a trunk on a free VLAN per
    ovs port; a failure undoes what was prepared. Then a watcher undoes it if
    the migration ends without the LPAR here."""
    flow = linear_flow.Flow(f"pre_live_migration_{instance.uuid}")
    for bdm in _bdms(block_device_info):
        info = bdm["connection_info"]
        flow.add(tf_mig.PrepareVolume(pvm_volume.connector_for(info, host, conf), info, data))
    for vif in network_info or []:
        drv = pvm_vif.driver_for(vif, host.adapter, host.uuid, conf)
        flow.add(tf_mig.PrepareVif(drv, vif, instance.uuid, data))
    tasks.run(flow, instance)
    migration = _migration_of(context, instance)
    if migration is not None and data.vlan_mappings:
        threading.Thread(
            target=_watch_destination,
            args=(host, conf, context, instance, network_info, migration.id),
            name=f"lpm-watch-{instance.uuid}",
            daemon=True,
        ).start()
    return data


def _migration_of(context, instance):
    for status in ("preparing", "queued", "accepted"):
        try:
            return objects.Migration.get_by_instance_and_status(context, instance.uuid, status)
        except exception.MigrationNotFoundByStatus:
            continue
    return None


#: Migration statuses after which the LPAR will not come here.
_FAILED = ("error", "failed", "cancelled")


def _watch_destination(host, conf, context, instance, network_info, migration_id) -> None:
    """Nova 34 calls the destination's rollback only for libvirt and Hyper-V
    migrate data, so the destination itself removes the trunks it prepared
    once the migration has ended without the LPAR here (volumes are undone
    through remove_volume_connection, i.e. detach_volume)."""
    while not host.stopped:
        time.sleep(1.0)
        try:
            status = objects.Migration.get_by_id(context, migration_id).status
        except Exception:
            LOG.exception("Cannot read migration %s", migration_id, instance=instance)
            continue
        if status == "completed":
            return
        if status in _FAILED:
            try:
                if vm.find_lpar(host.adapter, instance) is not None:
                    return  # it arrived after all: what was prepared is in use
            except pvm_ex.Error:
                continue
            rollback_at_destination(host, conf, instance, None, network_info)
            return


def _retrying(fn, what: str, instance, attempts: int = 3) -> None:
    """Clean-up that must not leave things behind over one failed NovaLink
    request: a few tries, then a logged error (the move itself stands)."""
    for attempt in range(1, attempts + 1):
        try:
            fn()
            return
        except Exception:
            if attempt == attempts:
                LOG.exception("Could not %s", what, instance=instance)
                return
            time.sleep(0.5 * attempt)


def rollback_at_destination(host, conf, instance, block_device_info, network_info) -> None:
    """Undo pre_live_migration (from what Nova still has: the migrate data of a
    failed pre_live_migration never reached the source)."""
    for bdm in _bdms(block_device_info):
        info = bdm["connection_info"]
        _retrying(
            lambda info=info: pvm_volume.connector_for(
                info, host, conf
            ).rollback_live_migration_at_destination(info),
            f"undo the preparation of volume {pvm_volume.volume_id_of(info)}",
            instance,
        )
    for vif in network_info or []:
        _retrying(
            lambda vif=vif: pvm_vif.driver_for(
                vif, host.adapter, host.uuid, conf
            ).rollback_live_migration_at_destination(vif),
            f"undo the preparation of port {vif['id']}",
            instance,
        )


def migrate(host, instance, data) -> None:
    """Run NovaLink's Migrate job (returns when the LPAR runs on the destination).

    Raises :class:`MigrationFailed` naming where the LPAR runs after a failure.
    """
    lpar = vm.get_lpar(host.adapter, instance)
    try:
        pvm_mig.migrate_lpar(
            lpar,
            data.dest_sys_name,
            tgt_mgmt_svr=data.dest_ip,
            vlan_mappings=data.vlan_mapping_list() or None,
            sdn_override=True,
            vlan_check_override=True,
            timeout=host.conf.pypowervm_job_request_timeout * 4,
        )
    except Exception as exc:
        here = _recover(host, instance)
        raise MigrationFailed(reason=pvm_exc.failure_reason(exc), still_here=here) from exc


def run(host, context, instance, dest, post_method, recover_method, block_migration, data):
    """The source's part: the job, then Nova's post (the LPAR left) or its
    rollback (the LPAR stayed: "cancelled" after an abort, else "error")."""
    try:
        migrate(host, instance, data)
    except MigrationFailed as exc:
        if host.stopped:
            return  # this nova-compute stopped; the next one settles the migration
        LOG.error("Live migration failed: %s", exc.reason, instance=instance)
        if exc.still_here:
            status = "cancelled" if "aborted" in exc.reason.lower() else "error"
            recover_method(context, instance, dest, data, migration_status=status)
            return
    post_method(context, instance, dest, block_migration, data)


def _recover(host, instance, wait: float = 600.0) -> bool:
    """After a failed job: is the LPAR (still) here? A failed poll does not
    stop NovaLink's job, so a migration still in progress is waited for; one
    left in a migrating state is recovered (MigrateRecover) so it runs here."""
    deadline = time.monotonic() + wait
    errors = 0
    while True:
        if host.stopped:
            return True  # this nova-compute stopped: the next one settles it
        try:
            lpar = vm.find_lpar(host.adapter, instance)
        except pvm_ex.Error:
            errors += 1
            LOG.exception("Cannot tell where the LPAR is after the failed move", instance=instance)
            if errors >= 5 or time.monotonic() > deadline:
                return True  # not known to have left: the source keeps it
            time.sleep(1.0)
            continue
        if lpar is None:
            return False
        if lpar.migration_state == NOT_MIGRATING or time.monotonic() > deadline:
            break
        if _job_running(lpar):
            time.sleep(1.0)
            continue
        break
    if lpar.migration_state != NOT_MIGRATING:
        try:
            pvm_mig.migrate_recover(lpar, force=True)
        except pvm_ex.Error:
            LOG.exception("MigrateRecover failed", instance=instance)
    return True


def _job_running(lpar) -> bool:
    """Whether NovaLink still moves the LPAR (MigrationState says so while the
    job runs; a state left behind by a failed job is not progress)."""
    return lpar.migration_state.startswith("Migration_") and "Fail" not in lpar.migration_state


class MigrationFailed(Exception):
    """The Migrate job failed; ``still_here`` says whether the LPAR stayed on the source."""

    def __init__(self, reason: str, still_here: bool) -> None:
        super().__init__(reason)
        self.reason, self.still_here = reason, still_here


def abort(host, instance) -> None:
    """Stop the LPAR's migration; it keeps running here."""
    lpar = vm.get_lpar(host.adapter, instance)
    if lpar.migration_state == NOT_MIGRATING:
        raise pvm_exc.LPAROperationFailed(
            lpar=vm.lpar_name(instance),
            operation="aborting the live migration",
            reason="NovaLink shows no migration of it in progress",
        )
    try:
        pvm_mig.migrate_abort(lpar)
    except pvm_ex.Error as exc:
        raise pvm_exc.LPAROperationFailed(
            lpar=vm.lpar_name(instance),
            operation="aborting the live migration",
            reason=pvm_exc.failure_reason(exc),
        ) from exc


def force_complete(instance) -> None:
    """PowerVM has no such operation: refused, saying so."""
    raise pvm_exc.LPAROperationFailed(
        lpar=vm.lpar_name(instance),
        operation="forcing the live migration to complete",
        reason="PowerVM cannot hurry a partition migration (NovaLink copies the memory "
        "and switches over on its own); wait for it, or abort it",
    )


def forget_volume(host, conf, instance, connection_info) -> None:
    """detach_volume where the LPAR is not: Nova's undo of a failed live
    migration on its destination (and harmless anywhere else)."""
    _retrying(
        lambda: pvm_volume.connector_for(
            connection_info, host, conf
        ).rollback_live_migration_at_destination(connection_info),
        f"forget volume {pvm_volume.volume_id_of(connection_info)} here",
        instance,
    )


def post_at_source(host, conf, instance, block_device_info) -> None:
    """The LPAR left: forget its volumes' devices on this host's VIOSes."""
    for bdm in _bdms(block_device_info):
        info = bdm["connection_info"]
        _retrying(
            lambda info=info: pvm_volume.connector_for(
                info, host, conf
            ).post_live_migration_at_source(info),
            f"forget the devices of volume {pvm_volume.volume_id_of(info)} here",
            instance,
        )


def remove_trunks_at_source(host, conf, instance, network_info) -> None:
    """The LPAR's ovs adapters left with it: remove their NovaLink trunks here
    (by device name: a trunk prepared for an LPAR arriving here looks
    orphaned too, so no scrub)."""
    for vif in network_info or []:
        if vif["type"] != contract.VIF_TYPE_OVS:
            continue
        _retrying(
            lambda vif=vif: pvm_vif.driver_for(
                vif, host.adapter, host.uuid, conf
            ).rollback_live_migration_at_destination(vif),
            f"remove the trunk adapter of port {vif['id']}",
            instance,
        )
