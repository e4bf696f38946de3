"""Nova compute driver for IBM Z / LinuxONE CPCs in DPM mode.

Loaded by Nova as ``compute_driver = ibmvirt.DPMDriver``. Each Nova instance is
one partition named ``OpenStack-<host>-<uuid>``, booted from a Cinder FCP
volume, with one NIC per ``dpm_vswitch`` VIF. This module only translates Nova
calls: the CPC subset is :class:`~ibmvirt.dpm.host.Host`, a partition is a
:class:`~ibmvirt.dpm.partition.Guest`, storage paths live in
:mod:`ibmvirt.dpm.storage` and NICs in :mod:`ibmvirt.dpm.nic`.
"""

from __future__ import annotations

import os_resource_classes as orc
import os_traits
import zhmcclient
from nova import conf as nova_conf
from nova import exception, objects
from nova.objects import fields as obj_fields
from nova.virt import driver, hardware
from oslo_log import log as logging
from oslo_serialization import jsonutils
from oslo_utils import excutils

import ibmvirt.conf  # noqa: F401  (registers [dpm])
from ibmvirt.common import capabilities as driver_caps
from ibmvirt.common import nodes, vifwait
from ibmvirt.common import sysmeta as sysmeta_store
from ibmvirt.dpm import exceptions as dpm_exc
from ibmvirt.dpm import nic as dpm_nic
from ibmvirt.dpm import partition as dpm_partition
from ibmvirt.dpm import storage as dpm_storage
from ibmvirt.dpm.host import Host, build_client

LOG = logging.getLogger(__name__)
CONF = nova_conf.CONF

#: instance.system_metadata keys. WWPNs must be known after the partition is
#: gone (Nova asks for the volume connector after destroy), so they live in Nova.
SYSMETA_WWPNS = "dpm_wwpns"
SYSMETA_BOOT_DEVICE = "dpm_boot_device_uri"


def _hmc_failure(exc: Exception) -> str:
    """What went wrong talking to the HMC, in words an operator can act on."""
    if isinstance(exc, zhmcclient.HTTPError):
        return f"the HMC refused a request: {exc}"
    if isinstance(exc, zhmcclient.ConnectionError):
        return f"the HMC could not be reached ([dpm] hmc): {exc}"
    if isinstance(exc, (zhmcclient.OperationTimeout, zhmcclient.StatusTimeout)):
        return f"the HMC did not finish in time ([dpm] operation_timeout): {exc}"
    return f"HMC request failed: {type(exc).__name__}: {exc}"


class DPMDriver(driver.ComputeDriver):
    """IBM Z DPM implementation of ComputeDriver (boot from FCP volume only)."""

    # No local disk: every image type is refused, instances boot from volume.
    capabilities = driver_caps.with_(supports_attach_interface=True)

    def __init__(self, virtapi, client: zhmcclient.Client | None = None) -> None:
        """``client`` lets tests inject a zhmcclient Client (e.g. on a FakedSession)."""
        super().__init__(virtapi)
        self._client = client
        self._host: Host | None = None
        self._storage: dpm_storage.StoragePath | None = None
        self._nics: dpm_nic.NicManager | None = None

    # -- host -----------------------------------------------------------------

    def init_host(self, host: str) -> None:
        """Find the CPC and check [dpm] against it; fail start-up naming the option."""
        client = self._client or build_client(CONF)
        hyper = Host(client, CONF, host)
        hyper.init()
        self._host = hyper
        self._storage = dpm_storage.for_host(hyper)
        self._nics = dpm_nic.NicManager(hyper)
        # Storage groups of this host whose partition is gone (e.g. nova-compute
        # died half-way through a destroy) are removed now.
        self._storage.cleanup_orphans()

    def cleanup_host(self, host: str) -> None:
        """Log off from the HMC when nova-compute stops (frees the HMC session)."""
        if self._host is not None:
            try:
                self._host.client.session.logoff()
            except zhmcclient.Error as exc:
                LOG.warning("HMC logoff failed: %s", exc)

    @property
    def host(self) -> Host:
        if self._host is None:
            raise exception.HypervisorUnavailable(host=CONF.host)
        return self._host

    def get_available_nodes(self, refresh: bool = False) -> list[str]:
        return [self._host.name if self._host else CONF.host]

    def get_nodenames_by_uuid(self, refresh: bool = False) -> dict[str, str]:
        """One node per CPC subset, its UUID derived from CPC and host name.

        Nova's default keeps a node id in a file under state_path, which
        several compute services for subsets of one CPC on one machine would
        share; the derived id is stable across restarts and needs no file.
        """
        (node,) = self.get_available_nodes(refresh)
        return {nodes.node_uuid(CONF.dpm.cpc_object_id, node): node}

    def get_available_resource(self, nodename: str) -> dict:
        """The CPC subset as a Nova node; static, so it costs no HMC request."""
        # Static: Nova's resource tracker computes usage from its instances.
        dpm = CONF.dpm
        return {
            "vcpus": dpm.max_processors,
            "memory_mb": dpm.max_memory,
            "local_gb": 0,
            "vcpus_used": 0,
            "memory_mb_used": 0,
            "local_gb_used": 0,
            "hypervisor_type": obj_fields.HVType.PRSM,
            "hypervisor_version": self.host.hypervisor_version,
            "hypervisor_hostname": nodename,
            "uuid": nodes.node_uuid(dpm.cpc_object_id, nodename),
            "cpu_info": jsonutils.dumps(
                {
                    "arch": obj_fields.Architecture.S390X,
                    "model": self.host.require_cpc().prop("machine-type", "host"),
                    "vendor": "IBM",
                    "topology": {"sockets": 1, "cores": dpm.max_processors, "threads": 1},
                    "features": [],
                }
            ),
            "disk_available_least": 0,
            "supported_instances": [
                (
                    obj_fields.Architecture.S390X,
                    obj_fields.HVType.PRSM,
                    obj_fields.VMMode.HVM,
                )
            ],
            "numa_topology": None,
        }

    def update_provider_tree(self, provider_tree, nodename: str, allocations=None) -> None:
        """VCPU and MEMORY_MB inventory of the subset ([dpm] limits), s390x traits."""
        dpm = CONF.dpm
        ratios = self._get_allocation_ratios(provider_tree.data(nodename).inventory)
        provider_tree.update_inventory(
            nodename,
            {
                orc.VCPU: {
                    "total": dpm.max_processors,
                    "min_unit": 1,
                    "max_unit": dpm.max_processors,
                    "step_size": 1,
                    "allocation_ratio": ratios[orc.VCPU],
                    "reserved": CONF.reserved_host_cpus,
                },
                orc.MEMORY_MB: {
                    "total": dpm.max_memory,
                    "min_unit": 1,
                    "max_unit": dpm.max_memory,
                    "step_size": 1,
                    "allocation_ratio": ratios[orc.MEMORY_MB],
                    "reserved": CONF.reserved_host_memory_mb,
                },
            },
        )
        provider_tree.add_traits(nodename, os_traits.HW_ARCH_S390X, os_traits.COMPUTE_ARCH_S390X)

    # -- instances ------------------------------------------------------------

    def list_instances(self) -> list[str]:
        """Partition names of this host (one HMC request; refreshes the status cache)."""
        return [p.name for p in self.host.list_partitions()]

    def list_instance_uuids(self) -> list[str]:
        """Instance UUIDs read from this host's partition names."""
        return [p.instance_uuid for p in self.host.list_partitions()]

    def instance_exists(self, instance) -> bool:
        return instance.uuid in self.list_instance_uuids()

    def get_info(self, instance, use_cache: bool = True) -> hardware.InstanceInfo:
        """Power state; from the last listing or operation when fresh enough."""
        if use_cache:
            hit, status = self.host.cached_status(instance.uuid)
            if hit:
                if status is None:
                    raise exception.InstanceNotFound(instance_id=instance.uuid)
                return dpm_partition.instance_info(status)
        else:
            status = self.host.operation_status(instance.uuid)
            if status is not None:
                return dpm_partition.instance_info(status)
        guest = self._guest(instance)
        return dpm_partition.instance_info(guest.status(guest.get()))

    def _guest(self, instance) -> dpm_partition.Guest:
        return dpm_partition.Guest(self.host, instance)

    # -- spawn / destroy --------------------------------------------------------

    @staticmethod
    def _refuse_image_boot(instance) -> None:
        if instance.image_ref:
            raise dpm_exc.BootFromImageNotSupported(image_id=instance.image_ref)

    def prepare_for_spawn(self, instance) -> None:
        """Create the partition and its storage paths so the WWPNs exist for Cinder."""
        self._refuse_image_boot(instance)
        guest = self._guest(instance)
        try:
            try:
                prepared = self._prepare(guest)
            except zhmcclient.HTTPError as exc:
                if not (exc.http_status == 400 and exc.reason == 8):
                    raise
                # Name taken: a leftover of an earlier attempt for this instance.
                LOG.warning("Removing leftover partition %s", guest.name, instance=instance)
                self._destroy(guest)
                prepared = self._prepare(guest)
        except Exception as exc:
            with excutils.save_and_reraise_exception(reraise=False):
                self._destroy_quietly(guest)
            raise dpm_exc.PartitionPreparationFailed(
                instance_id=instance.uuid, reason=f"{type(exc).__name__}: {exc}"
            ) from exc
        sysmeta = {SYSMETA_WWPNS: ",".join(prepared.wwpns)}
        if prepared.boot_device_uri:
            sysmeta[SYSMETA_BOOT_DEVICE] = prepared.boot_device_uri
        sysmeta_store.save(instance, sysmeta)

    def _prepare(self, guest: dpm_partition.Guest) -> dpm_storage.Prepared:
        partition = guest.create()
        return self._storage.prepare(partition, guest.name)

    def failed_spawn_cleanup(self, instance) -> None:
        """Remove what prepare_for_spawn created (idempotent)."""
        self._destroy(self._guest(instance))

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
        """Boot the prepared partition from its Cinder volume with one NIC per VIF."""
        guest = self._guest(instance)
        try:
            self._refuse_image_boot(instance)
            vifs = [dpm_nic.VifSpec.from_vif(v) for v in network_info or []]
            self._nics.check_fit(vifs)
            volume, data_volumes = self._volumes(instance, block_device_info)
            partition = guest.get()
            prepared = self._prepared(instance, partition)
            with vifwait.vifs_plugged(self.virtapi, instance, network_info):
                props = self._storage.boot_properties(partition, guest.name, volume, prepared)
                for data in data_volumes:
                    self._storage.attach_volume(partition, guest.name, data)
                props[dpm_nic.BOOT_PARAMS] = self._nics.create_all(
                    partition, vifs, choose_devnos=True
                )
                guest.update(partition, props)
            if power_on:
                guest.start(partition, status="stopped")
        except Exception as exc:
            with excutils.save_and_reraise_exception() as ctxt:
                LOG.error("Spawn failed; removing partition %s", guest.name, instance=instance)
                self._destroy_quietly(guest)
                if isinstance(exc, zhmcclient.Error):
                    # Nova shows users only the message of its own exceptions.
                    ctxt.reraise = False
            raise exception.InstanceDeployFailure(
                reason=f"partition {guest.name}: {_hmc_failure(exc)}"
            ) from exc
        LOG.info("Spawned partition %s", guest.name, instance=instance)

    def _volumes(
        self, instance, block_device_info
    ) -> tuple[dpm_storage.FCVolume, list[dpm_storage.FCVolume]]:
        """The boot volume and the data volumes the server is created with."""
        mapping = driver.block_device_info_get_mapping(block_device_info)
        if not mapping:
            raise dpm_exc.BootFromImageNotSupported(image_id=instance.image_ref or "none")
        boot = next((b for b in mapping if b.get("boot_index") == 0), mapping[0])
        volumes = [
            dpm_storage.FCVolume.from_connection_info(
                bdm["connection_info"],
                getattr(bdm, "volume_size", None) or bdm.get("volume_size"),
            )
            for bdm in [boot] + [b for b in mapping if b is not boot]
        ]
        return volumes[0], volumes[1:]

    def _prepared(self, instance, partition) -> dpm_storage.Prepared:
        wwpns = instance.system_metadata.get(SYSMETA_WWPNS)
        if not wwpns:
            raise dpm_exc.PartitionPreparationFailed(
                instance_id=instance.uuid,
                reason="no WWPNs were recorded for the partition by prepare_for_spawn",
            )
        return dpm_storage.Prepared(
            wwpns=wwpns.split(","),
            boot_device_uri=instance.system_metadata.get(SYSMETA_BOOT_DEVICE),
        )

    def destroy(
        self,
        context,
        instance,
        network_info,
        block_device_info=None,
        destroy_disks=True,
        destroy_secrets=True,
    ) -> None:
        """Stop and delete the partition and its storage group (idempotent)."""
        self._destroy(self._guest(instance))

    def _destroy(self, guest: dpm_partition.Guest) -> None:
        """Stop and delete the partition and its storage group; fine if already gone."""
        partition = guest.find()
        if partition is not None:
            try:
                guest.stop(partition)
            except exception.InstanceNotFound:
                partition = None
        self._storage.cleanup(partition, guest.name)
        if partition is not None:
            guest.delete(partition)

    def _destroy_quietly(self, guest: dpm_partition.Guest) -> None:
        try:
            self._destroy(guest)
        except Exception:
            LOG.exception("Could not remove partition %s", guest.name, instance=guest.instance)

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
        """Nothing is left after destroy(): NICs and HBAs vanish with the partition."""

    # -- power ------------------------------------------------------------------

    def power_off(self, instance, timeout: int = 0, retry_interval: int = 0) -> None:
        """Stop the partition (at once: ``timeout`` cannot ask the guest to shut down)."""
        # DPM's Stop Partition is immediate; there is no guest-cooperative shutdown.
        self._guest(instance).stop()

    def power_on(
        self,
        context,
        instance,
        network_info,
        block_device_info=None,
        accel_info=None,
        share_info=None,
    ) -> None:
        """Start the partition from any status (paused and terminated need a Stop first)."""
        self._guest(instance).start()

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
        """Stop and start the partition."""
        # SOFT and HARD are both stop + start: the HMC cannot ask the OS to reboot.
        guest = self._guest(instance)
        partition = guest.get()
        guest.stop(partition)
        guest.start(partition, status="stopped")

    def plug_vifs(self, instance, network_info) -> None:
        """NICs are persistent HMC objects; nothing to redo after a restart."""

    def unplug_vifs(self, instance, network_info) -> None:
        """NICs are removed with the partition or by detach_interface."""

    def get_console_output(self, context, instance) -> str:
        """The partition's operating system messages (SE 2.14 and later)."""
        return self._guest(instance).console_output()

    # -- volumes ----------------------------------------------------------------

    def get_volume_connector(self, instance) -> dict:
        """FC connector with the partition's own WWPNs (boot path first).

        ``host`` is the instance UUID: the WWPNs belong to this partition alone,
        so the storage array must not group them with other partitions.
        """
        wwpns = instance.system_metadata.get(SYSMETA_WWPNS)
        if wwpns:
            wwpn_list = wwpns.split(",")
        else:
            wwpn_list = self._read_wwpns(instance)
        return {
            "host": instance.uuid,
            "wwpns": wwpn_list,
            "platform": obj_fields.Architecture.S390X,
            "os_type": "linux",
            "multipath": len(wwpn_list) > 1,
        }

    def _read_wwpns(self, instance) -> list[str]:
        """Read WWPNs back from the HMC (instances without system_metadata)."""
        guest = self._guest(instance)
        partition = guest.find()
        if partition is None:
            raise exception.InstanceNotFound(instance_id=instance.uuid)
        return self._storage.read_wwpns(partition, guest.name)

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
        """Define a data volume for the partition (z14+; z13 needs nothing)."""
        guest = self._guest(instance)
        volume = dpm_storage.FCVolume.from_connection_info(connection_info)
        if self._storage.needs_volume_size:
            volume.size_gb = self._volume_size(context, instance, volume.volume_id)
        self._storage.attach_volume(guest.get(), guest.name, volume)

    def detach_volume(
        self, context, connection_info, instance, mountpoint, encryption=None
    ) -> None:
        """Undo attach_volume (idempotent)."""
        guest = self._guest(instance)
        volume = dpm_storage.FCVolume.from_connection_info(connection_info)
        partition = guest.find()
        if partition is not None:
            self._storage.detach_volume(partition, guest.name, volume)

    @staticmethod
    def _volume_size(context, instance, volume_id: str) -> int | None:
        """The volume's size from its block device mapping (the HMC wants it)."""
        if not volume_id or context is None:
            return None
        try:
            bdm = objects.BlockDeviceMapping.get_by_volume_and_instance(
                context, volume_id, instance.uuid
            )
        except exception.NotFound:
            return None
        return bdm.volume_size

    # -- interfaces -------------------------------------------------------------

    def attach_interface(self, context, instance, image_meta, vif) -> None:
        """Add a NIC to the (possibly running) partition.

        The NIC appears in the guest at once; its boot-parameter record (device,
        port and, on z13, MAC) reaches the guest tools at the next start.
        """
        guest = self._guest(instance)
        try:
            spec = dpm_nic.VifSpec.from_vif(vif)
            partition = guest.get()
            existing = partition.get_property(dpm_nic.BOOT_PARAMS) or ""
            params = self._nics.create_all(partition, [spec], existing)
            guest.update(partition, {dpm_nic.BOOT_PARAMS: params})
        except Exception as exc:
            # Nova frees the port only for a NovaException; leave no NIC behind.
            LOG.error("Attaching port %s failed: %s", vif["id"], exc, instance=instance)
            partition = guest.find()
            if partition is not None:
                try:
                    self._nics.delete(partition, vif["id"])
                except Exception:
                    LOG.exception("Could not remove the NIC of port %s", vif["id"])
            raise exception.InterfaceAttachFailed(instance_uuid=instance.uuid) from exc

    def detach_interface(self, context, instance, vif) -> None:
        """Remove the port's NIC and its boot-parameter record (idempotent)."""
        guest = self._guest(instance)
        partition = guest.find()
        if partition is None:
            return
        params = self._nics.delete(partition, vif["id"])
        if params is not None:
            guest.update(partition, {dpm_nic.BOOT_PARAMS: params})
