"""z13 storage path: one HBA per configured FCP adapter port.

HBAs live inside the partition, so deleting the partition removes them; the
HMC assigns their WWPNs, which one "Export WWPN List" request reads back.
"""

from __future__ import annotations

import zhmcclient
from oslo_log import log as logging

from ibmvirt.dpm import naming
from ibmvirt.dpm.storage import FCVolume, Prepared, StoragePath, fcp_lun, normalize_wwpn

LOG = logging.getLogger(__name__)


class HbaPath(StoragePath):
    """One HBA per configured adapter port; boot through the first."""

    def prepare(self, partition: zhmcclient.Partition, name: str) -> Prepared:
        hbas = []
        for port in self.host.storage_ports:
            hbas.append(
                partition.hbas.create(
                    {
                        "name": naming.hba_name(port.adapter_id, port.port),
                        "description": naming.hba_description(self.host.name),
                        "adapter-port-uri": port.port_uri,
                    }
                )
            )
        return Prepared(wwpns=self._read_wwpns(partition, hbas), boot_device_uri=hbas[0].uri)

    def _read_wwpns(self, partition: zhmcclient.Partition, hbas: list) -> list[str]:
        numbers = [p.adapter_number for p in self.host.storage_ports]
        if all(numbers) and len(set(numbers)) == len(numbers):
            # One request for all HBAs, matched by adapter (one HBA per adapter).
            rows = self.host.require_cpc().get_wwpns([partition])
            by_adapter = {row["adapter-id"]: row["wwpn"] for row in rows}
            if all(n in by_adapter for n in numbers):
                return [normalize_wwpn(by_adapter[n]) for n in numbers]
        # Two ports of one adapter: read each HBA.
        return [normalize_wwpn(hba.get_property("wwpn")) for hba in hbas]

    def read_wwpns(self, partition: zhmcclient.Partition, name: str) -> list[str]:
        by_name = {h.name: h for h in partition.hbas.list()}
        hbas = [by_name.get(naming.hba_name(p.adapter_id, p.port)) for p in self.host.storage_ports]
        return self._read_wwpns(partition, [h for h in hbas if h is not None])

    def boot_properties(
        self, partition: zhmcclient.Partition, name: str, volume: FCVolume, prepared: Prepared
    ) -> dict:
        boot_hba = prepared.boot_device_uri
        if not boot_hba:
            port = self.host.storage_ports[0]
            boot_hba = partition.hbas.find(name=naming.hba_name(port.adapter_id, port.port)).uri
        target = volume.boot_target(prepared.wwpns[0], self.host.conf.dpm.target_wwpn_ignore_list)
        return {
            "boot-device": "storage-adapter",
            "boot-storage-device": boot_hba,
            "boot-world-wide-port-name": target,
            "boot-logical-unit-number": fcp_lun(volume.lun),
        }

    def attach_volume(self, partition: zhmcclient.Partition, name: str, volume: FCVolume) -> None:
        # Cinder masks the LUN to the HBA WWPNs; Linux finds it through NPIV.
        LOG.debug("Volume %s reachable through the HBAs of %s", volume.volume_id, name)

    def detach_volume(self, partition: zhmcclient.Partition, name: str, volume: FCVolume) -> None:
        LOG.debug("Volume %s unmasked by Cinder for %s", volume.volume_id, name)

    def cleanup(self, partition: zhmcclient.Partition | None, name: str) -> None:
        # HBAs are children of the partition and vanish with it.
        return None
