"""Nova compute driver for IBM Power servers managed through NovaLink.

Loaded by Nova as ``compute_driver = ibmvirt.PowerVMDriver``. Each Nova
instance is one client LPAR of the managed system (:mod:`ibmvirt.powervm.vm`),
with its boot disk from a disk driver (:mod:`~ibmvirt.powervm.disk`), Cinder
volumes through a connector (:mod:`~ibmvirt.powervm.volume`), ports through a
VIF driver (:mod:`~ibmvirt.powervm.vif`) and a config drive
(:mod:`~ibmvirt.powervm.media`). Operations are TaskFlow flows of the tasks in
:mod:`~ibmvirt.powervm.tasks`; this module only assembles them.
"""

from __future__ import annotations

import math
import threading

import os_resource_classes as orc
import os_traits
from nova import conf as nova_conf
from nova import exception, objects
from nova.compute import task_states
from nova.console import type as ctype
from nova.objects import fields as obj_fields
from nova.virt import configdrive, driver, hardware
from oslo_log import log as logging
from oslo_serialization import jsonutils
from oslo_utils import excutils
from pypowervm import const as pvm_const
from pypowervm import exceptions as pvm_ex
from pypowervm.tasks import partition as pvm_par
from pypowervm.tasks import power_opts as pvm_popts
from taskflow import exceptions as tf_exc
from taskflow.patterns import linear_flow

import ibmvirt.conf  # noqa: F401  (registers [powervm])
from ibmvirt.common import capabilities as driver_caps
from ibmvirt.common import nodes, service_state
from ibmvirt.powervm import disk as pvm_disk
from ibmvirt.powervm import exceptions as pvm_exc
from ibmvirt.powervm import live_migration as lpm
from ibmvirt.powervm import lpm_data, media, moves, recreate, slots, tasks, vm
from ibmvirt.powervm import mgmt as pvm_mgmt
from ibmvirt.powervm import nvram as pvm_nvram
from ibmvirt.powervm import sriov as pvm_sriov
from ibmvirt.powervm import vif as pvm_vif
from ibmvirt.powervm import vnc as pvm_vnc
from ibmvirt.powervm import volume as pvm_volume
from ibmvirt.powervm import vterm as pvm_vterm
from ibmvirt.powervm.host import Host
from ibmvirt.powervm.tasks import image as tf_img
from ibmvirt.powervm.tasks import keep as tf_keep
from ibmvirt.powervm.tasks import network as tf_net
from ibmvirt.powervm.tasks import rescue as tf_rescue
from ibmvirt.powervm.tasks import storage as tf_stg
from ibmvirt.powervm.tasks import vm as tf_vm

LOG = logging.getLogger(__name__)
CONF = nova_conf.CONF


class PowerVMDriver(driver.ComputeDriver):
    """PowerVM implementation of ComputeDriver."""

    capabilities = driver_caps.with_(
        supports_attach_interface=True,
        supports_evacuate=True,
        # Every connector rescans (or, NPIV, needs not) after Cinder grows a volume.
        supports_extend_volume=True,
        # A VIOS maps one hdisk (no SCSI reserve) or file to several LPARs.
        supports_multiattach=True,
        # (Rescue needs no flag: Nova offers it because rescue() is implemented.
        # supports_bfv_rescue stays off: a volume-backed server has no boot
        # disk of the disk driver to boot back to, and that path is untested.)
    )

    def __init__(self, virtapi, adapter=None) -> None:
        """``adapter`` lets tests and tools inject a pypowervm Adapter."""
        super().__init__(virtapi)
        lpm_data.register()
        self.host = Host(CONF, adapter)
        self.disk: pvm_disk.DiskDriver = pvm_disk.load(CONF.powervm.disk_driver, self.host, CONF)
        caps = self.disk.capabilities
        self.capabilities = {
            **self.capabilities,
            "has_imagecache": caps.has_imagecache,
            **{f"supports_image_type_{t}": True for t in self.disk.image_formats},
        }
        self.config_drive: media.ConfigDrive | None = None
        self.mgmt: pvm_mgmt.MgmtDiskAccess = pvm_mgmt.load(self.host, CONF)
        self.vterm: pvm_vterm.VTerm = pvm_vterm.load(self.host, CONF)
        self._vnc_relay: pvm_vnc.Relay | None = None
        self._vnc_relay_lock = threading.Lock()
        self._resources: dict | None = None
        #: This service's host name (init_host's; CONF.host until then).
        self.nova_host: str = CONF.host
        self._nvram_store = pvm_nvram.load(CONF)
        self.nvram: pvm_nvram.NvramManager | None = None

    # -- host -----------------------------------------------------------------

    def init_host(self, host: str) -> None:
        """Connect, check the system, VIOSes and storage, start the event feed."""
        self.nova_host = host
        self.host.connect()
        if self._nvram_store is not None:
            self.nvram = pvm_nvram.NvramManager(
                self._nvram_store, self.host.adapter, self._instance_of_lpar
            )
        self.host.start(self.emit_event, self.nvram.changed if self.nvram else None)
        self.disk.check()
        pvm_volume.check(self.host, CONF)
        self.config_drive = media.ConfigDrive(self.host.adapter, self.host.uuid, CONF)
        nodes.remember_identity(nodes.node_uuid(self.host.uuid, host))

    def _instance_of_lpar(self, lpar_uuid: str) -> str | None:
        """The UUID of this host's instance whose LPAR that is (NVRAM events)."""
        from ibmvirt.powervm import event

        instance = event.instance_of(lpar_uuid)
        return instance.uuid if instance is not None and instance.host == self.nova_host else None

    def cleanup_host(self, host: str) -> None:
        if self.nvram is not None:
            self.nvram.stop()
        if self._vnc_relay is not None:
            self._vnc_relay.stop()
        self.host.stop()

    def get_available_nodes(self, refresh: bool = False) -> list[str]:
        return [self.nova_host]

    def get_nodenames_by_uuid(self, refresh: bool = False) -> dict[str, str]:
        """One node per managed system, its UUID derived from system and host name."""
        return {nodes.node_uuid(self.host.uuid, self.nova_host): self.nova_host}

    def get_available_resource(self, nodename: str) -> dict:
        """The system's capacity, re-read (Nova's periodic resource update)."""
        system = self.host.refresh_system()
        total_gb, used_gb = self.disk.capacity_gb()
        io_units, io_memory = self.host.io_partitions_usage()
        resources = {
            "vcpus": self.host.vcpus(),
            "memory_mb": self.host.memory_mb(),
            "local_gb": int(total_gb),
            "vcpus_used": 0,
            "memory_mb_used": self.host.memory_mb() - int(system.memory_free),
            "local_gb_used": int(used_gb),
            "hypervisor_type": obj_fields.HVType.PHYP,
            "hypervisor_version": 8,
            "hypervisor_hostname": nodename,
            "uuid": nodes.node_uuid(self.host.uuid, nodename),
            "cpu_info": jsonutils.dumps({"vendor": "ibm", "arch": "ppc64"}),
            "disk_available_least": int(total_gb - used_gb),
            "supported_instances": [
                (obj_fields.Architecture.PPC64, obj_fields.HVType.PHYP, obj_fields.VMMode.HVM),
                (obj_fields.Architecture.PPC64LE, obj_fields.HVType.PHYP, obj_fields.VMMode.HVM),
            ],
            "numa_topology": None,
            # Pseudo-VFs of the SR-IOV ports, for direct ports' PCI requests.
            "pci_passthrough_devices": jsonutils.dumps(pvm_sriov.pseudo_vfs(system)),
            "stats": {
                "memory_region_size": self.host.memory_region_mb(),
                # Where boot disks live: a move's source checks the destination shares it.
                moves.STORAGE_STAT: self.disk.storage_id(),
            },
            # What the VIOSes and the NovaLink partition hold (reserved below).
            "io_vcpus": math.ceil(io_units / CONF.powervm.proc_units_factor - 1e-9),
            "io_memory_mb": io_memory,
        }
        self._resources = resources
        return resources

    def update_provider_tree(self, provider_tree, nodename: str, allocations=None) -> None:
        """VCPU, MEMORY_MB and DISK_GB of the system, POWER traits.

        Nova calls this on every claim too: it uses what the last periodic
        get_available_resource read instead of asking NovaLink again.
        """
        data = self._resources or self.get_available_resource(nodename)
        ratios = self._get_allocation_ratios(provider_tree.data(nodename).inventory)
        if CONF.cpu_allocation_ratio is None:
            # A vCPU is proc_units_factor processor units of the system; PowerVM
            # cannot hand out more units than it has, so no overcommit by default.
            ratios[orc.VCPU] = 1.0
        inventory = {
            orc.VCPU: (data["vcpus"], data["io_vcpus"] + CONF.reserved_host_cpus),
            orc.MEMORY_MB: (data["memory_mb"], data["io_memory_mb"] + CONF.reserved_host_memory_mb),
            orc.DISK_GB: (data["local_gb"], _reserved_disk_gb()),
        }
        provider_tree.update_inventory(
            nodename,
            {
                rc: {
                    "total": total,
                    "min_unit": 1,
                    "max_unit": total,
                    "step_size": 1,
                    "allocation_ratio": ratios[rc],
                    "reserved": reserved,
                }
                for rc, (total, reserved) in inventory.items()
                if total > 0
            },
        )
        provider_tree.add_traits(
            nodename,
            os_traits.HW_ARCH_PPC64,
            os_traits.HW_ARCH_PPC64LE,
            os_traits.COMPUTE_ARCH_PPC64LE,
        )

    def set_host_enabled(self, enabled: bool) -> str:
        """Take this host out of scheduling (or back, if it took itself out)."""
        node = nodes.node_uuid(self.host.uuid, self.nova_host)
        on = service_state.set_state(
            self.virtapi, self.nova_host, node, enabled, service_state.DISABLED
        )
        return "enabled" if on else "disabled"

    def host_maintenance_mode(self, host: str, mode: bool) -> str:
        """Maintenance: no new instances here (the service disabled, with its
        reason); the running ones stay, to be moved by cold migration."""
        node = nodes.node_uuid(self.host.uuid, self.nova_host)
        service_state.set_state(
            self.virtapi, self.nova_host, node, not mode, service_state.MAINTENANCE
        )
        return "on_maintenance" if mode else "off_maintenance"

    def get_host_ip_addr(self) -> str:
        return Host.ip_address(CONF)

    def get_host_uptime(self) -> str:
        with open("/proc/uptime") as f:
            seconds = float(f.read().split()[0])
        days, rest = divmod(int(seconds), 86400)
        return f"up {days} days, {rest // 3600}:{rest % 3600 // 60:02d}"

    # -- instances ------------------------------------------------------------

    def list_instances(self) -> list[str]:
        return [lp.name for lp in vm.list_client_lpars(self.host.adapter)]

    def get_num_instances(self) -> int:
        """From the power-state cache: Nova's default reads the whole LPAR feed
        (list_instances) at every power-state sync."""
        return len(self.host.states.all())

    def list_instance_uuids(self) -> list[str]:
        """Both Nova UUIDs each LPAR UUID may come from (PowerVM cleared the top
        bit): Nova looks these up in its database, where only the real one is."""
        return [c for u in self.host.states.all() for c in vm.nova_uuid_candidates(u)]

    def instance_exists(self, instance) -> bool:
        return self.host.states.get(vm.pvm_uuid_of(instance)) is not None

    def get_info(self, instance, use_cache: bool = True) -> hardware.InstanceInfo:
        """Power state from the event-fed cache (at most one quick/All read)."""
        states = self.host.states
        lpar_uuid = vm.pvm_uuid_of(instance)
        if not use_cache:
            states.changed(lpar_uuid)
        try:
            state = states.get(lpar_uuid)
        except pvm_ex.Error as first:
            # Once more: a failed build or sync over one lost read costs more.
            LOG.warning("Reading the state of LPAR %s failed, retrying: %s", lpar_uuid, first)
            states.changed(lpar_uuid)
            try:
                state = states.get(lpar_uuid)
            except pvm_ex.Error as exc:
                raise pvm_exc.LPAROperationFailed(
                    lpar=vm.lpar_name(instance),
                    operation="reading its state",
                    reason=pvm_exc.failure_reason(exc),
                ) from exc
        if state is None:
            raise exception.InstanceNotFound(instance_id=instance.uuid)
        return vm.instance_info(state)

    # -- spawn / destroy --------------------------------------------------------

    def _new_feedtask(self):
        return pvm_par.build_active_vio_feed_task(
            self.host.adapter, xag=[pvm_const.XAG.VIO_SMAP, pvm_const.XAG.VIO_FMAP]
        )

    def spawn(
        self,
        context,
        instance,
        image_meta,
        injected_files,
        admin_password,
        allocations,
        network_info=None,
        block_device_info=None,
        power_on=True,
        accel_info=None,
    ) -> None:
        """Create the LPAR with its disk, volumes, ports and config drive; start it."""
        self._build(
            context,
            instance,
            image_meta,
            injected_files,
            admin_password,
            network_info,
            block_device_info,
            power_on,
        )

    def rebuild(
        self,
        context,
        instance,
        image_meta,
        injected_files,
        admin_password,
        allocations,
        bdms,
        detach_block_devices,
        attach_block_devices,
        network_info=None,
        evacuate=False,
        block_device_info=None,
        preserve_ephemeral=False,
        accel_uuids=None,
        reimage_boot_volume=False,
    ) -> None:
        """Evacuate: the LPAR recreated here with its slots, NVRAM and disks
        (:mod:`~ibmvirt.powervm.recreate`). A rebuild on its own host is Nova's
        default: destroy, then spawn from the new image."""
        if not evacuate or preserve_ephemeral:
            raise NotImplementedError()
        bdi = recreate.prepare_evacuate(
            context, instance, bdms, detach_block_devices, attach_block_devices
        )
        self._build(
            context,
            instance,
            image_meta,
            injected_files,
            admin_password,
            network_info,
            bdi,
            True,
            recreating=True,
        )

    def instance_on_disk(self, instance) -> bool:
        """Evacuate: whether this host reaches the boot disk (SSP, a volume)."""
        return recreate.on_disk(self.disk, instance)

    def _build(
        self,
        context,
        instance,
        image_meta,
        injected_files,
        admin_password,
        network_info,
        block_device_info,
        power_on,
        recreating=False,
    ) -> None:
        name = vm.lpar_name(instance)
        try:
            flow = self._spawn_flow(
                context,
                instance,
                image_meta,
                injected_files,
                admin_password,
                network_info,
                block_device_info,
                power_on,
                recreating,
            )
            tasks.run(flow, instance)
        except Exception as exc:
            with excutils.save_and_reraise_exception() as ctxt:
                LOG.error(
                    "Spawn of LPAR %s failed: %s",
                    name,
                    pvm_exc.failure_reason(exc),
                    instance=instance,
                )
                if not isinstance(
                    exc, (exception.VirtualInterfaceCreateException, exception.BuildAbortException)
                ):
                    ctxt.reraise = False
            raise exception.InstanceDeployFailure(
                reason=f"LPAR {name}: {pvm_exc.failure_reason(exc)}"
            ) from exc
        LOG.info("Spawned LPAR %s", name, instance=instance)

    def _spawn_flow(
        self,
        context,
        instance,
        image_meta,
        injected_files,
        admin_password,
        network_info,
        block_device_info,
        power_on,
        recreating=False,
    ):
        """Recreating (evacuate), the LPAR gets its NVRAM, its slots and the
        boot disk shared storage kept."""
        volumes = driver.block_device_info_get_mapping(block_device_info)
        boot_from_volume = any(b.get("boot_index") == 0 for b in volumes)
        slot_map = slots.load(instance) if recreating else None
        nvram = self.nvram.fetch(instance.uuid) if recreating and self.nvram else None
        kept_disk = not boot_from_volume and recreating and recreate.on_disk(self.disk, instance)
        if not boot_from_volume and not kept_disk:
            self.disk.check_image(image_meta, instance.flavor.root_gb)
        pvm_vif.check_all(network_info, self.host.adapter, self.host.uuid, CONF)
        ftsk = self._new_feedtask()
        flow = linear_flow.Flow(f"spawn_{instance.uuid}")
        flow.add(
            tf_vm.Create(self.host, instance, instance.flavor, image_meta, CONF, nvram, slot_map)
        )
        flow.add(tf_net.PlugVifs(self.host, self.virtapi, instance, network_info, CONF, slot_map))
        if CONF.powervm.use_rmc_mgmt_vif:
            flow.add(tf_net.PlugMgmtVif(self.host, slot_map))
        if kept_disk:
            flow.add(tf_stg.FindBootDisk(self.disk, instance))
            flow.add(tf_stg.ConnectBootDisk(self.disk, ftsk))
        elif not boot_from_volume:
            flow.add(
                tf_stg.CreateBootDisk(
                    self.disk, context, instance, image_meta, instance.flavor.root_gb
                )
            )
            flow.add(tf_stg.ConnectBootDisk(self.disk, ftsk))
        for bdm in volumes:
            info = bdm["connection_info"]
            connector = pvm_volume.connector_for(info, self.host, CONF, instance)
            flow.add(tf_stg.ConnectVolume(connector, info, ftsk, pvm_volume.volume_id_of(info)))
        if configdrive.required_by(instance):
            flow.add(
                tf_stg.CreateConfigDrive(
                    self.config_drive,
                    ftsk,
                    instance,
                    injected_files,
                    network_info,
                    admin_password,
                )
            )
        if slot_map is not None:
            flow.add(tf_keep.PlaceMappings(ftsk, slot_map))
        flow.add(tf_stg.RunFeedTask(ftsk, self._new_feedtask))
        flow.add(tf_keep.SaveSlots(self.host, instance))
        if image_meta.properties.get("os_distro") == "ibmi":
            flow.add(tf_vm.UpdateIBMi(self.host, "vscsi"))
        if power_on:
            opts = pvm_popts.PowerOnOpts()
            if CONF.powervm.remove_vopt_media_on_boot and configdrive.required_by(instance):
                opts.remove_optical(
                    media.media_name(instance), time=CONF.powervm.remove_vopt_media_time
                )
            flow.add(tf_vm.PowerOn(self.host, instance, opts))
        return flow

    def destroy(
        self,
        context,
        instance,
        network_info,
        block_device_info=None,
        destroy_disks=True,
        destroy_secrets=True,
    ) -> None:
        """Remove the LPAR and everything this host made for it (idempotent).

        Reverting a resize that stayed on this host, the LPAR is the instance's
        only one: it is stopped and its volumes disconnected, and
        finish_revert_migration gives it its old flavor back.
        """
        name = vm.lpar_name(instance)
        try:
            if moves.reverting_in_place(context, instance):
                flow = linear_flow.Flow(f"revert_in_place_{instance.uuid}")
                flow.add(tf_vm.Find(self.host, instance))
                flow.add(tf_vm.StopForMove(self.host, instance))
                flow.add(
                    tf_stg.DisconnectVolumes(
                        self._new_feedtask, self._volumes(block_device_info, instance)
                    )
                )
                tasks.run(flow, instance)
                return
            self._destroy(instance, network_info, block_device_info, destroy_disks)
        except Exception as exc:
            LOG.exception("Destroy of LPAR %s failed", name, instance=instance)
            raise exception.InstanceTerminationFailure(
                reason=f"LPAR {name}: {pvm_exc.failure_reason(exc)}"
            ) from exc

    def _destroy(self, instance, network_info, block_device_info, destroy_disks) -> None:
        volumes = [
            (
                pvm_volume.connector_for(bdm["connection_info"], self.host, CONF, instance),
                bdm["connection_info"],
            )
            for bdm in driver.block_device_info_get_mapping(block_device_info)
        ]
        owned = [self.disk.is_boot_disk, self.disk.is_rescue_disk, media.ConfigDrive.is_media_of]
        flow = linear_flow.Flow(f"destroy_{instance.uuid}")
        flow.add(tf_vm.StopForDelete(self.host, instance))
        flow.add(tf_stg.DetachAll(self._new_feedtask(), instance, volumes, owned))
        if destroy_disks:
            flow.add(tf_stg.DeleteBootDisk(self.disk, instance))
        # A rescued server's rescue disk goes with it (shared storage or not).
        flow.add(tf_rescue.DeleteRescueDisk(self.disk, instance))
        if self.config_drive is not None:
            flow.add(tf_stg.DeleteConfigDrive(self.config_drive, instance))
        flow.add(tf_net.DeleteTrunks(self.host, CONF.powervm.pvm_vswitch_for_novalink_io))
        flow.add(tf_vm.Delete(self.host, self.vterm))
        if self.nvram is not None and recreate.deleting_here(instance, self.nova_host):
            flow.add(tf_keep.DeleteNvram(self.nvram, instance))
        tasks.run(flow, instance)

    def cleanup(
        self,
        context,
        instance,
        network_info,
        block_device_info=None,
        destroy_disks=True,
        migrate_data=None,
        destroy_vifs=True,
        destroy_secrets=True,
    ) -> None:
        """Nothing is left after destroy()."""

    # -- resize and cold migration ------------------------------------------------

    def _volumes(self, block_device_info, instance=None) -> list:
        """(connector factory, connection_info) of each volume: a connector
        keeps what it found for its undo, so each volume gets its own."""
        return [
            (
                lambda info=bdm["connection_info"]: pvm_volume.connector_for(
                    info, self.host, CONF, instance
                ),
                bdm["connection_info"],
            )
            for bdm in driver.block_device_info_get_mapping(block_device_info)
        ]

    def migrate_disk_and_power_off(
        self,
        context,
        instance,
        dest,
        flavor,
        network_info,
        block_device_info=None,
        timeout=0,
        retry_interval=0,
    ) -> str:
        """Stop the LPAR and disconnect its volumes for the destination.

        Refused before anything changes (the server stays as it was): a smaller
        root disk, or another host that does not share the boot disk's
        storage. The LPAR, its boot disk and ports stay until the move is
        confirmed or reverted; on the same host the LPAR itself is resized in
        finish_migration.
        """
        migration = moves.migration_of(context, instance)
        bfv = moves.boot_from_volume(block_device_info)
        dest_storage = None
        if not (bfv or moves.same_host(migration)):
            dest_storage = moves.destination_storage(context, migration)
        moves.check(instance, flavor, migration, bfv, self.disk, dest_storage)
        if moves.same_host(migration):
            self._check_flavor_here(instance, flavor)
        flow = linear_flow.Flow(f"migrate_disk_and_power_off_{instance.uuid}")
        flow.add(tf_vm.Find(self.host, instance))
        flow.add(tf_vm.StopForMove(self.host, instance, timeout=timeout))
        if self.nvram is not None and not moves.same_host(migration):
            flow.add(tf_keep.StoreNvram(self.nvram, instance))
        flow.add(
            tf_stg.DisconnectVolumes(self._new_feedtask, self._volumes(block_device_info, instance))
        )
        try:
            tasks.run(flow, instance)
        except exception.InstanceNotFound:
            raise
        except Exception as exc:
            # The flow's reverts started the LPAR again and reconnected its volumes.
            reason = f"LPAR {vm.lpar_name(instance)}: {pvm_exc.failure_reason(exc)}"
            LOG.error("Move failed, server left as it was: %s", reason, instance=instance)
            raise exception.InstanceFaultRollback(
                inner_exception=exception.ResizeError(reason=reason)
            ) from exc
        return moves.disk_info(self.disk, instance, bfv)

    def _check_flavor_here(self, instance, flavor) -> None:
        try:
            vm.check_flavor(
                self.host, instance, flavor, objects.ImageMeta.from_instance(instance), CONF
            )
        except exception.Invalid as exc:
            raise exception.InstanceFaultRollback(
                inner_exception=exception.ResizeError(reason=exc.format_message())
            ) from exc

    def finish_migration(
        self,
        context,
        migration,
        instance,
        disk_info,
        network_info,
        image_meta,
        resize_instance,
        allocations,
        block_device_info=None,
        power_on=True,
        share_info=None,
    ) -> None:
        """The LPAR with the new flavor on this host: the same one resized, or
        a new one with the boot disk the source left in shared storage."""
        volumes = self._volumes(block_device_info, instance)
        bfv = moves.boot_from_volume(block_device_info)
        flow = linear_flow.Flow(f"finish_migration_{instance.uuid}")
        if moves.same_host(migration):
            flow.add(tf_vm.Find(self.host, instance))
            # (resize_instance says whether the disks changed, not the flavor.)
            if moves.flavor_changed(migration):
                flow.add(
                    tf_vm.ApplyFlavor(
                        self.host, instance, instance.flavor, instance.old_flavor, image_meta, CONF
                    )
                )
            if not bfv:
                flow.add(tf_stg.ExtendBootDisk(self.disk, instance, instance.flavor.root_gb))
            flow.add(tf_stg.ConnectVolumes(self._new_feedtask, volumes))
        else:
            moves.check_disk_info(disk_info, self.disk, instance)
            ftsk = self._new_feedtask()
            nvram = self.nvram.fetch(instance.uuid) if self.nvram else None
            slot_map = slots.load(instance)
            flow.add(
                tf_vm.Create(
                    self.host, instance, instance.flavor, image_meta, CONF, nvram, slot_map
                )
            )
            flow.add(
                tf_net.PlugVifs(self.host, self.virtapi, instance, network_info, CONF, slot_map)
            )
            if CONF.powervm.use_rmc_mgmt_vif:
                flow.add(tf_net.PlugMgmtVif(self.host, slot_map))
            if not bfv:
                flow.add(tf_stg.FindBootDisk(self.disk, instance))
                flow.add(tf_stg.ExtendBootDisk(self.disk, instance, instance.flavor.root_gb))
                flow.add(tf_stg.ConnectBootDisk(self.disk, ftsk))
            for make, info in volumes:
                flow.add(tf_stg.ConnectVolume(make(), info, ftsk, pvm_volume.volume_id_of(info)))
            if configdrive.required_by(instance):
                flow.add(
                    tf_stg.CreateConfigDrive(
                        self.config_drive, ftsk, instance, [], network_info, None
                    )
                )
            if slot_map is not None:
                flow.add(tf_keep.PlaceMappings(ftsk, slot_map))
            flow.add(tf_stg.RunFeedTask(ftsk, self._new_feedtask))
            flow.add(tf_keep.SaveSlots(self.host, instance))
            if image_meta.properties.get("os_distro") == "ibmi":
                flow.add(tf_vm.UpdateIBMi(self.host, "vscsi"))
        if power_on:
            flow.add(tf_vm.PowerOn(self.host, instance))
        try:
            tasks.run(flow, instance)
        except Exception as exc:
            LOG.error(
                "Finishing the move of LPAR %s failed: %s",
                vm.lpar_name(instance),
                pvm_exc.failure_reason(exc),
                instance=instance,
            )
            raise pvm_exc.LPAROperationFailed(
                lpar=vm.lpar_name(instance),
                operation="finishing the move",
                reason=pvm_exc.failure_reason(exc),
            ) from exc

    def confirm_migration(self, context, migration, instance, network_info) -> None:
        """Remove the source LPAR of a move to another host (its boot disk
        stays: the destination uses it). A resize on one host leaves nothing."""
        if moves.same_host(migration):
            return
        self._destroy(
            instance,
            network_info,
            None,  # the volumes were disconnected in migrate_disk_and_power_off
            destroy_disks=not self.disk.capabilities.shared_storage,
        )

    def finish_revert_migration(
        self,
        context,
        instance,
        network_info,
        migration,
        block_device_info=None,
        power_on=True,
        share_info=None,
    ) -> None:
        """The source LPAR back as it was: its old flavor (a resize on one
        host changed it), its volumes reconnected, started if it ran."""
        flow = linear_flow.Flow(f"finish_revert_migration_{instance.uuid}")
        flow.add(tf_vm.Find(self.host, instance))
        if moves.same_host(migration) and moves.flavor_changed(migration):
            image_meta = objects.ImageMeta.from_instance(instance)
            flow.add(
                tf_vm.ApplyFlavor(
                    self.host, instance, instance.flavor, instance.new_flavor, image_meta, CONF
                )
            )
        flow.add(
            tf_stg.ConnectVolumes(self._new_feedtask, self._volumes(block_device_info, instance))
        )
        if power_on:
            flow.add(tf_vm.PowerOn(self.host, instance))
        try:
            tasks.run(flow, instance)
        except Exception as exc:
            raise pvm_exc.LPAROperationFailed(
                lpar=vm.lpar_name(instance),
                operation="reverting the move",
                reason=pvm_exc.failure_reason(exc),
            ) from exc

    def check_instance_shared_storage_local(self, context, instance) -> dict:
        """This host's boot-disk storage (Nova asks before a revert destroys
        the destination's copy whether its disks are the source's too)."""
        return {"storage": self.disk.storage_id()}

    def check_instance_shared_storage_remote(self, context, data) -> bool:
        return data.get("storage") == self.disk.storage_id()

    # -- live migration (ibmvirt.powervm.live_migration) ------------------------

    def check_can_live_migrate_destination(
        self,
        context,
        instance,
        src_compute_info,
        dst_compute_info,
        block_migration=False,
        disk_over_commit=False,
    ):
        return lpm.check_destination(self.host, self.disk, CONF, instance)

    def cleanup_live_migration_destination_check(self, context, dest_check_data) -> None:
        """check_can_live_migrate_destination leaves nothing behind."""

    def check_can_live_migrate_source(
        self, context, instance, dest_check_data, block_device_info=None
    ):
        return lpm.check_source(
            self.host,
            self.disk,
            CONF,
            instance,
            dest_check_data,
            block_device_info,
            instance.get_network_info(),
        )

    def pre_live_migration(
        self, context, instance, block_device_info, network_info, disk_info, migrate_data
    ):
        return lpm.pre_live_migration(
            self.host, CONF, context, instance, block_device_info, network_info, migrate_data
        )

    def live_migration(
        self,
        context,
        instance,
        dest,
        post_method,
        recover_method,
        block_migration=False,
        migrate_data=None,
    ) -> None:
        """NovaLink's Migrate job; then Nova's post or rollback, by where the LPAR runs."""
        lpm.run(
            self.host,
            context,
            instance,
            dest,
            post_method,
            recover_method,
            block_migration,
            migrate_data,
        )

    def live_migration_abort(self, instance) -> None:
        lpm.abort(self.host, instance)

    def live_migration_force_complete(self, instance) -> None:
        lpm.force_complete(instance)

    def rollback_live_migration_at_destination(
        self,
        context,
        instance,
        network_info,
        block_device_info,
        destroy_disks=True,
        migrate_data=None,
    ) -> None:
        lpm.rollback_at_destination(self.host, CONF, instance, block_device_info, network_info)

    def post_live_migration(self, context, instance, block_device_info, migrate_data=None):
        lpm.post_at_source(self.host, CONF, instance, block_device_info)

    def post_live_migration_at_source(self, context, instance, network_info) -> None:
        """The LPAR's adapters left with it: their NovaLink trunks go too."""
        lpm.remove_trunks_at_source(self.host, CONF, instance, network_info)

    def post_live_migration_at_destination(
        self, context, instance, network_info, block_migration=False, block_device_info=None
    ) -> None:
        """NovaLink brought the LPAR with its adapters and mappings."""

    # -- rescue -----------------------------------------------------------------

    def rescue(
        self,
        context,
        instance,
        network_info,
        image_meta,
        rescue_password,
        block_device_info,
        share_info,
    ) -> None:
        """Boot the LPAR from a rescue disk made from ``image_meta``.

        The rescue disk comes from the disk driver (as a boot disk does) and
        is mapped next to the boot disk, which stays where it was; the LPAR's
        boot list names the rescue disk, so the firmware boots it (not the
        SMS menu). A failure removes the rescue disk and gives the boot list
        back; the LPAR stays stopped (Nova puts the server in ERROR).
        """
        lpar = vm.lpar_name(instance)
        if self.disk.find_boot_disk(instance) is None:
            raise exception.InstanceNotRescuable(
                instance_id=instance.uuid,
                reason=f"LPAR {lpar} has no {self.disk.name} boot disk (booted from a volume?)",
            )
        self.disk.check_image(image_meta, 0)
        flow = linear_flow.Flow(f"rescue_{instance.uuid}")
        flow.add(tf_vm.Find(self.host, instance))
        flow.add(tf_rescue.StopForRescue(self.host, instance))
        flow.add(tf_rescue.CreateRescueDisk(self.disk, context, instance, image_meta))
        flow.add(tf_rescue.ConnectRescueDisk(self.host, self.disk, instance, self._new_feedtask))
        flow.add(tf_rescue.BootRescueDisk(self.host, self.disk, instance))
        flow.add(tf_vm.PowerOn(self.host, instance))
        try:
            tasks.run(flow, instance)
        except Exception as exc:
            raise pvm_exc.LPAROperationFailed(
                lpar=lpar, operation="rescue", reason=pvm_exc.failure_reason(exc)
            ) from exc

    def unrescue(self, context, instance) -> None:
        """Stop the LPAR, boot list back to what it was, rescue disk removed, start."""
        flow = linear_flow.Flow(f"unrescue_{instance.uuid}")
        flow.add(tf_vm.Find(self.host, instance))
        flow.add(tf_rescue.StopForRescue(self.host, instance))
        flow.add(tf_rescue.RestoreBootList(self.host, self.disk, instance))
        flow.add(tf_rescue.DisconnectRescueDisk(self.disk, instance, self._new_feedtask))
        flow.add(tf_rescue.DeleteRescueDisk(self.disk, instance))
        flow.add(tf_vm.PowerOn(self.host, instance))
        flow.add(tf_rescue.ForgetBootList(instance))
        try:
            tasks.run(flow, instance)
        except Exception as exc:
            raise pvm_exc.LPAROperationFailed(
                lpar=vm.lpar_name(instance),
                operation="unrescue",
                reason=pvm_exc.failure_reason(exc),
            ) from exc

    # -- snapshot ---------------------------------------------------------------

    def snapshot(self, context, instance, image_id, update_task_state) -> None:
        """Stream the boot disk to Glance through the NovaLink partition."""
        lpar = vm.lpar_name(instance)
        if not self.disk.capabilities.snapshot:
            raise pvm_exc.SnapshotNotSupported(
                lpar=lpar, reason=f"the {self.disk.name} disk driver cannot read its disks"
            )
        boot_disk = self.disk.find_boot_disk(instance)
        if boot_disk is None:
            raise pvm_exc.SnapshotNotSupported(
                lpar=lpar,
                reason=f"it has no {self.disk.name} boot disk (booted from a volume? "
                "Nova snapshots a volume-backed server's volumes instead)",
            )
        flow = linear_flow.Flow(f"snapshot_{instance.uuid}")
        flow.add(tf_img.UpdateTaskState(update_task_state, task_states.IMAGE_PENDING_UPLOAD))
        flow.add(tf_img.DiskToMgmt(self.mgmt, self.disk.vios_uuids[0], boot_disk, instance))
        flow.add(
            tf_img.UpdateTaskState(
                update_task_state,
                task_states.IMAGE_UPLOADING,
                expected_state=task_states.IMAGE_PENDING_UPLOAD,
            )
        )
        flow.add(tf_img.StreamToGlance(self.mgmt, context, image_id, instance))
        flow.add(tf_img.RemoveDiskFromMgmt(self.mgmt))
        try:
            tasks.run(flow, instance)
        except pvm_ex.Error as exc:
            raise pvm_exc.LPAROperationFailed(
                lpar=lpar, operation="snapshot", reason=pvm_exc.failure_reason(exc)
            ) from exc

    # -- power ------------------------------------------------------------------

    def _lpar(self, instance):
        return vm.get_lpar(self.host.adapter, instance)

    def _power(self, instance, what: str, action) -> None:
        lpar = self._lpar(instance)
        try:
            action(lpar)
        except pvm_ex.Error as exc:
            raise pvm_exc.LPAROperationFailed(
                lpar=lpar.name, operation=what, reason=pvm_exc.failure_reason(exc)
            ) from exc
        finally:
            self.host.states.changed(lpar.uuid)

    def power_off(self, instance, timeout: int = 0, retry_interval: int = 0) -> None:
        """With ``timeout``: OS shutdown first, then VSP normal, then hard; else hard."""
        self._power(instance, "power off", lambda lpar: vm.power_off(lpar, timeout=timeout))

    def power_on(
        self,
        context,
        instance,
        network_info,
        block_device_info=None,
        accel_info=None,
        share_info=None,
    ) -> None:
        self._power(instance, "power on", vm.power_on)

    def reboot(
        self,
        context,
        instance,
        network_info,
        reboot_type,
        block_device_info=None,
        bad_volumes_callback=None,
        accel_info=None,
        share_info=None,
    ) -> None:
        """SOFT: OS restart, falling back as power_off does; HARD: immediate restart."""
        timeout = CONF.shutdown_timeout if reboot_type == "SOFT" else 0

        def restart(lpar):
            if not vm.power_off(lpar, timeout=timeout, restart=True):
                vm.power_on(lpar)

        self._power(instance, f"{reboot_type.lower()} reboot", restart)

    def trigger_crash_dump(self, instance) -> None:
        """The dump restart power operation: the OS dumps, then starts again."""
        self._power(instance, "dump restart", vm.dump_restart)

    # -- consoles ---------------------------------------------------------------

    def get_console_output(self, context, instance) -> bytes:
        """The latest output of the LPAR's virtual terminal (at most 100 KiB)."""
        lpar = self._lpar(instance)
        return self.vterm.output(lpar.uuid)[-pvm_vterm.MAX_CONSOLE_BYTES :]

    def get_vnc_console(self, context, instance) -> ctype.ConsoleVNC:
        """The LPAR's terminal through this host's VNC relay (Nova's proxy
        connects to the relay and asks for the LPAR UUID)."""
        lpar = self._lpar(instance)
        self.vterm.open_vnc(lpar.uuid)  # fails here, not in the proxy, if it cannot
        with self._vnc_relay_lock:
            if self._vnc_relay is None:
                self._vnc_relay = pvm_vnc.Relay(
                    CONF.vnc.server_listen, CONF.powervm.vnc_relay_port, self._vnc_port_of
                )
        return ctype.ConsoleVNC(
            host=CONF.vnc.server_proxyclient_address,
            port=self._vnc_relay.port,
            internal_access_path=lpar.uuid,
        )

    def _vnc_port_of(self, path: str) -> int | None:
        """The relay's lookup: an LPAR of this host by UUID, its terminal's VNC port."""
        if not vm.is_lpar_uuid(path) or self.host.states.get(path.upper()) is None:
            return None
        return self.vterm.open_vnc(path.upper())

    def plug_vifs(self, instance, network_info) -> None:
        """Adapters are persistent LPAR objects; nothing to redo after a restart."""

    def unplug_vifs(self, instance, network_info) -> None:
        """Adapters are removed with the LPAR or by detach_interface."""

    # -- interfaces -------------------------------------------------------------

    def attach_interface(self, context, instance, image_meta, vif) -> None:
        lpar = self._lpar(instance)
        possible, why = lpar.can_modify_io()
        if not possible:
            # Nova's manager frees the port, logs this message and puts it in the
            # instance.interface_attach.error notification; the API says 500.
            raise pvm_exc.DLPARNotPossible(lpar=lpar.name, what="a network adapter", reason=why)
        try:
            vif_driver = pvm_vif.driver_for(vif, self.host.adapter, self.host.uuid, CONF)
            vif_driver.plug(lpar, vif, instance.uuid)
        except pvm_ex.Error as exc:
            raise pvm_exc.LPAROperationFailed(
                lpar=lpar.name,
                operation=f"attaching port {vif['id']}",
                reason=pvm_exc.failure_reason(exc),
            ) from exc
        self._save_slots(instance, lpar)

    def _save_slots(self, instance, lpar) -> None:
        """Keep the LPAR's slots after its adapters changed (for an evacuate;
        a failure here must not fail the change itself)."""
        try:
            slots.save(instance, slots.read(self.host.adapter, lpar.refresh()))
        except Exception as exc:  # noqa: BLE001
            LOG.warning("Could not save the slots of LPAR %s: %s", lpar.name, exc)

    def detach_interface(self, context, instance, vif) -> None:
        lpar = vm.find_lpar(self.host.adapter, instance)
        if lpar is None:
            return
        possible, why = lpar.can_modify_io()
        if not possible:
            refusal = pvm_exc.DLPARNotPossible(
                lpar=lpar.name, what="an adapter removal", reason=why
            )
            LOG.error("%s", refusal.format_message(), instance=instance)
            raise exception.InterfaceDetachFailed(instance_uuid=instance.uuid) from refusal
        try:
            pvm_vif.driver_for(vif, self.host.adapter, self.host.uuid, CONF).unplug(lpar, vif)
        except pvm_ex.Error as exc:
            LOG.error(
                "Detaching port %s failed: %s",
                vif["id"],
                pvm_exc.failure_reason(exc),
                instance=instance,
            )
            raise exception.InterfaceDetachFailed(instance_uuid=instance.uuid) from exc
        self._save_slots(instance, lpar)

    # -- volumes ----------------------------------------------------------------

    def get_volume_connector(self, instance) -> dict:
        """FC WWPNs (the VIOS ports for vSCSI, the instance's own for NPIV),
        the iSCSI initiator and the multipath flag."""
        props = pvm_volume.connector(self.host, CONF, instance)
        return {
            "host": self.nova_host,
            "platform": obj_fields.Architecture.PPC64LE,
            "os_type": "linux",
            **props,
        }

    def attach_volume(
        self,
        context,
        connection_info,
        instance,
        mountpoint,
        disk_bus=None,
        device_type=None,
        encryption=None,
    ) -> None:
        lpar = self._lpar(instance)
        connector = pvm_volume.connector_for(connection_info, self.host, CONF, instance)
        try:
            self._map_volume(
                lpar.uuid,
                lpar.name,
                connector.add_connect,
                connection_info,
                exception.VolumeAttachFailed,
            )
        except Exception:
            with excutils.save_and_reraise_exception():
                connector.undo_connect(connection_info)
        self._save_slots(instance, lpar)

    def detach_volume(self, context, connection_info, instance, mountpoint, encryption=None):
        """Unmap, then forget the device (hdisk, iSCSI session) unless another
        mapping uses it; with the LPAR gone, the mappings it left are removed."""
        lpar = vm.find_lpar(self.host.adapter, instance)
        connector = pvm_volume.connector_for(connection_info, self.host, CONF, instance)
        if lpar is None and connector.live_migratable:
            # A live migration here failed: forget what pre_live_migration found.
            lpm.forget_volume(self.host, CONF, instance, connection_info)
            return
        self._map_volume(
            lpar.uuid if lpar else None,
            lpar.name if lpar else vm.lpar_name(instance),
            connector.add_disconnect,
            connection_info,
            exception.VolumeDetachFailed,
        )
        connector.after_disconnect(connection_info)
        if lpar is not None:
            self._save_slots(instance, lpar)

    def extend_volume(self, context, connection_info, instance, requested_size) -> None:
        """Cinder grew the volume: the VIOSes mapping it rescan the device."""
        connector = pvm_volume.connector_for(connection_info, self.host, CONF, instance)
        try:
            where = connector.extend(connection_info)
        except pvm_ex.Error as exc:
            raise exception.VolumeExtendFailed(
                volume_id=pvm_volume.volume_id_of(connection_info),
                reason=pvm_exc.failure_reason(exc),
            ) from exc
        LOG.info(
            "Volume %s rescanned on %s",
            pvm_volume.volume_id_of(connection_info),
            ", ".join(where) or "no VIOS (NPIV: the LPAR sees the fabric)",
            instance=instance,
        )

    def _map_volume(self, lpar_uuid, lpar_name, add_change, connection_info, failure) -> None:
        """One FeedTask for one volume's mapping change, errors as ``failure``."""
        ftsk = self._new_feedtask()
        try:
            add_change(ftsk, lpar_uuid, connection_info)
            if any(w.subtasks for w in ftsk.wrapper_tasks.values()):
                ftsk.execute()
        except (pvm_ex.Error, tf_exc.WrappedFailure) as exc:
            raise failure(
                volume_id=pvm_volume.volume_id_of(connection_info),
                reason=f"LPAR {lpar_name}: {pvm_exc.failure_reason(exc)}",
            ) from exc

    # -- image cache ----------------------------------------------------------------

    def manage_image_cache(self, context, all_instances) -> None:
        """Remove cached images no instance of this host uses (localdisk)."""
        if not self.disk.capabilities.has_imagecache:
            return
        if not CONF.image_cache.remove_unused_base_images:
            return
        used = {i.image_ref for i in all_instances if i.host == self.nova_host and i.image_ref}
        removed = self.disk.remove_unused_images(
            used, CONF.image_cache.remove_unused_original_minimum_age_seconds
        )
        if removed:
            LOG.info("Removed unused cached images: %s", ", ".join(removed))


def _reserved_disk_gb() -> int:
    return -(-CONF.reserved_host_disk_mb // 1024)
