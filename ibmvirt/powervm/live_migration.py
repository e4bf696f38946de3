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

from nova import exception
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


def pre_live_migration(host, conf, instance, block_device_info, network_info, data):
    """On the destination: volumes reachable here, a trunk on a free VLAN per
    ovs port; a failure undoes what was prepared."""
    flow = linear_flow.Flow(f"pre_live_migration_{instance.uuid}")
    for bdm in _bdms(block_device_info):
        info = bdm["connection_info"]
        flow.add(tf_mig.PrepareVolume(pvm_volume.connector_for(info, host, conf), info, data))
    for vif in network_info or []:
        drv = pvm_vif.driver_for(vif, host.adapter, host.uuid, conf)
        flow.add(tf_mig.PrepareVif(drv, vif, instance.uuid, data))
    tasks.run(flow, instance)
    return data


def rollback_at_destination(host, conf, instance, block_device_info, network_info) -> None:
    """Undo pre_live_migration (from what Nova still has: the migrate data of a
    failed pre_live_migration never reached the source)."""
    for bdm in _bdms(block_device_info):
        info = bdm["connection_info"]
        try:
            pvm_volume.connector_for(info, host, conf).rollback_live_migration_at_destination(info)
        except Exception:
            LOG.exception("Could not undo the preparation of volume %s", instance=instance)
    for vif in network_info or []:
        try:
            drv = pvm_vif.driver_for(vif, host.adapter, host.uuid, conf)
            drv.rollback_live_migration_at_destination(vif)
        except Exception:
            LOG.exception("Could not undo the preparation of port %s", vif["id"])


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


def _recover(host, instance) -> bool:
    """After a failed job: is the LPAR (still) here? A partition left in a
    migrating state is recovered (NovaLink's MigrateRecover) so it runs here."""
    try:
        lpar = vm.find_lpar(host.adapter, instance)
    except pvm_ex.Error:
        LOG.exception("Cannot tell where the LPAR is after the failed move", instance=instance)
        return True  # not known to have left: the source keeps it
    if lpar is None:
        return False
    if lpar.migration_state != NOT_MIGRATING:
        try:
            pvm_mig.migrate_recover(lpar, force=True)
        except pvm_ex.Error:
            LOG.exception("MigrateRecover failed", instance=instance)
    return True


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


def post_at_source(host, conf, instance, block_device_info) -> None:
    """The LPAR left: forget its volumes' devices on this host's VIOSes."""
    for bdm in _bdms(block_device_info):
        info = bdm["connection_info"]
        try:
            pvm_volume.connector_for(info, host, conf).post_live_migration_at_source(info)
        except Exception:
            LOG.exception("Could not clean up volume devices here", instance=instance)
