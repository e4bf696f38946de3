"""z14+ storage path: one storage group per instance (DPM storage management).

The group is named like the partition, unshared (``max-partitions`` 1) and
has the configured FCP ports as candidates, with one path per port. Attaching
it to the partition gives the partition its virtual storage resources (VSRs)
and thereby its WWPNs. Each Cinder volume becomes a storage volume of the
group, fulfilled with the target WWPN and FCP LUN Cinder returned; the boot
volume is the partition's ``boot-storage-volume``. Deleting the group removes
the volume definitions on the HMC (never data on the storage system).
"""

from __future__ import annotations

import zhmcclient
from oslo_log import log as logging

from ibmvirt.dpm import exceptions as dpm_exc
from ibmvirt.dpm import naming
from ibmvirt.dpm.host import StoragePort
from ibmvirt.dpm.storage import FCVolume, Prepared, StoragePath, fcp_lun, normalize_wwpn

LOG = logging.getLogger(__name__)


def _wwpn_of(item) -> str:
    """WWPN from an entry of unassigned-world-wide-port-names (string or wwpn-info)."""
    if isinstance(item, dict):
        return item.get("world-wide-port-name", "")
    return str(item)


def volume_name(volume_id: str) -> str:
    """Storage volume name inside the instance's group; names the Cinder volume."""
    return f"OpenStack-{volume_id}"


class StorageGroupPath(StoragePath):
    """One unshared storage group per instance, named like its partition."""

    needs_volume_size = True

    @property
    def _groups(self) -> zhmcclient.StorageGroupManager:
        return self.host.client.consoles.console.storage_groups

    def _port(self, port: StoragePort) -> zhmcclient.Port:
        # Built locally from data resolved at init_host: no HMC request.
        adapter = self.host.require_cpc().adapters.resource_object(
            port.adapter_uri, {"adapter-family": "ficon", "type": "fcp"}
        )
        return adapter.ports.resource_object(port.port_uri)

    def find_group(self, name: str) -> zhmcclient.StorageGroup | None:
        """The instance's storage group (free when the name-URI cache knows it)."""
        try:
            return self._groups.find_by_name(name)
        except zhmcclient.NotFound:
            return None

    def prepare(self, partition: zhmcclient.Partition, name: str) -> Prepared:
        ports = self.host.storage_ports
        props = {
            "name": name,
            "description": naming.storage_group_description(self.host.name),
            "cpc-uri": self.host.require_cpc().uri,
            "type": "fcp",
            "shared": False,
            "max-partitions": 1,
            "connectivity": len(ports),
            "candidate-adapter-port-uris": [p.port_uri for p in ports],
        }
        try:
            group = self._groups.create(props)
        except zhmcclient.HTTPError as exc:
            if exc.http_status != 400 or exc.reason == 8:
                raise
            # HMCs that take candidate ports only through their own operation.
            del props["candidate-adapter-port-uris"]
            group = self._groups.create(props)
            group.add_candidate_adapter_ports([self._port(p) for p in ports])
        # The HMC reserves the group's WWPNs at creation so storage can be zoned
        # before attachment; attach hands them to the partition's paths in
        # candidate-port order (the first is on the boot port).
        reserved = group.get_properties_pulled("unassigned-world-wide-port-names") or []
        wwpns = [normalize_wwpn(_wwpn_of(w)) for w in reserved][: len(ports)]
        partition.attach_storage_group(group)
        if len(wwpns) < len(ports):
            wwpns = self._read_wwpns(group, partition)
        return Prepared(wwpns=wwpns)

    def read_wwpns(self, partition: zhmcclient.Partition, name: str) -> list[str]:
        group = self.find_group(name)
        return self._read_wwpns(group, partition) if group is not None else []

    def _read_wwpns(
        self, group: zhmcclient.StorageGroup, partition: zhmcclient.Partition
    ) -> list[str]:
        vsrs = [
            v
            for v in group.virtual_storage_resources.list(full_properties=True)
            if v.prop("partition-uri", partition.uri) == partition.uri
        ]
        order = {p.port_uri: i for i, p in enumerate(self.host.storage_ports)}
        vsrs.sort(key=lambda v: order.get(v.prop("adapter-port-uri", ""), len(order)))
        return [normalize_wwpn(v.get_property("world-wide-port-name")) for v in vsrs]

    def _create_volume(
        self, name: str, volume: FCVolume, usage: str, initiator_wwpn: str | None
    ) -> zhmcclient.StorageVolume:
        group = self.find_group(name)
        if group is None:
            raise dpm_exc.PartitionOperationFailed(
                operation="define storage volume",
                partition=name,
                reason=f"the partition's storage group {name} does not exist on the HMC; "
                "rebuild the instance",
            )
        sv_name = volume_name(volume.volume_id)
        if usage != "boot":  # the boot volume goes into a brand-new group
            self._delete_volume(group, sv_name)  # a leftover of a failed attach
        sv = group.storage_volumes.create(
            {
                "name": sv_name,
                "description": f"Cinder volume {volume.volume_id}",
                "size": float(volume.size_gb or 1),
                "usage": usage,
            }
        )
        # The path the HMC uses to check (and, for the boot volume, to boot) the volume.
        port = self.host.storage_ports[0]
        ignore = self.host.conf.dpm.target_wwpn_ignore_list
        target = volume.boot_target(initiator_wwpn or "", ignore)
        sv.indicate_fulfillment_fcp(target, fcp_lun(volume.lun), self._port(port))
        return sv

    def boot_properties(
        self, partition: zhmcclient.Partition, name: str, volume: FCVolume, prepared: Prepared
    ) -> dict:
        sv = self._create_volume(name, volume, "boot", prepared.wwpns[0])
        return {"boot-device": "storage-volume", "boot-storage-volume": sv.uri}

    def attach_volume(self, partition: zhmcclient.Partition, name: str, volume: FCVolume) -> None:
        self._create_volume(name, volume, "data", None)

    def detach_volume(self, partition: zhmcclient.Partition, name: str, volume: FCVolume) -> None:
        group = self.find_group(name)
        if group is None:
            return
        self._delete_volume(group, volume_name(volume.volume_id))

    @staticmethod
    def _delete_volume(group: zhmcclient.StorageGroup, sv_name: str) -> None:
        # Names are compared exactly here: an HMC name filter is a regular
        # expression, and sv_name carries a Cinder volume id ("<id>|.*" would
        # otherwise match every volume of the group, the boot volume included).
        for sv in group.storage_volumes.list():
            if sv.name == sv_name:
                sv.delete()

    def cleanup_orphans(self) -> list[str]:
        groups = self._groups.list(
            filter_args={
                "name": naming.owned_name_filter(self.host.name),
                "cpc-uri": self.host.require_cpc().uri,
            }
        )
        groups = [g for g in groups if naming.instance_uuid_from_name(self.host.name, g.name)]
        if not groups:
            return []
        partition_names = {p.name for p in self.host.list_partitions()}
        removed = []
        for group in groups:
            if group.name not in partition_names:
                LOG.warning("Removing storage group %s: its partition is gone", group.name)
                self.cleanup(None, group.name)
                removed.append(group.name)
        return removed

    def cleanup(self, partition: zhmcclient.Partition | None, name: str) -> None:
        group = self.find_group(name)
        if group is None:
            return
        if partition is not None:
            try:
                partition.detach_storage_group(group)
            except zhmcclient.HTTPError as exc:
                # 404: partition gone; 409: group not attached. Both mean detached.
                if exc.http_status not in (404, 409):
                    raise
        try:
            group.delete()
        except zhmcclient.HTTPError as exc:
            if exc.http_status != 404:
                raise
        self._groups.invalidate_cache()
        LOG.info("Deleted storage group %s", name)
