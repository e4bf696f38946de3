"""FCP storage paths of a partition: one interface, one module per CPC generation.

* ``hba`` (z13, SE 2.13): one HBA per configured adapter port; boot through
  ``boot-device = storage-adapter``.
* ``groups`` (z14 and later, firmware feature ``dpm-storage-management``): one
  storage group per instance, named like the partition, with the configured
  ports as candidates; boot through ``boot-device = storage-volume``.

Both prepare the partition's WWPNs before spawn, so that Nova can hand
Cinder a volume connector, and both report them in the order of
``[dpm] physical_storage_adapter_mappings`` (the first is the boot path).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

import zhmcclient

from ibmvirt.dpm import exceptions as dpm_exc
from ibmvirt.dpm.host import Host


@dataclass
class Prepared:
    """What prepare() found out and the driver persists in system_metadata."""

    wwpns: list[str]
    boot_device_uri: str | None = None


@dataclass
class FCVolume:
    """The parts of a Cinder fibre_channel connection_info the HMC needs."""

    volume_id: str
    lun: int
    target_wwpns: list[str]
    initiator_target_map: dict[str, list[str]] = field(default_factory=dict)
    size_gb: int | None = None

    @classmethod
    def from_connection_info(cls, connection_info: dict, size_gb: int | None = None) -> FCVolume:
        """Parse Cinder's connection info; refuse non-FC volumes naming the volume."""
        vtype = connection_info.get("driver_volume_type")
        data = connection_info.get("data") or {}
        volume_id = data.get("volume_id") or connection_info.get("serial") or "?"
        if vtype != "fibre_channel":
            raise dpm_exc.VolumeNotSupported(
                reason=f"volume {volume_id} is attached over {vtype!r}; DPM partitions "
                "reach volumes over FCP only: use a Cinder backend with "
                "driver_volume_type 'fibre_channel'"
            )
        targets = data.get("target_wwn") or data.get("target_wwns") or []
        if isinstance(targets, str):
            targets = [targets]
        itmap = {
            normalize_wwpn(k): [normalize_wwpn(t) for t in v]
            for k, v in (data.get("initiator_target_map") or {}).items()
        }
        lun = data.get("target_lun")
        if lun is None and data.get("target_luns"):
            lun = data["target_luns"][0]
        if lun is None:
            raise dpm_exc.VolumeNotSupported(
                reason=f"the connection info of volume {volume_id} has no target_lun"
            )
        return cls(
            volume_id=volume_id,
            lun=int(lun),
            target_wwpns=[normalize_wwpn(t) for t in targets],
            initiator_target_map=itmap,
            size_gb=size_gb,
        )

    def boot_target(self, initiator_wwpn: str, ignore: list[str]) -> str:
        """The target WWPN to boot from over the initiator ``initiator_wwpn``."""
        ignored = {normalize_wwpn(w) for w in ignore}
        candidates = self.initiator_target_map.get(normalize_wwpn(initiator_wwpn))
        if candidates is None:
            candidates = self.target_wwpns
        for wwpn in candidates:
            if wwpn not in ignored:
                return wwpn
        raise dpm_exc.VolumeNotSupported(
            reason=f"volume {self.volume_id} offers no target WWPN for boot initiator "
            f"{initiator_wwpn} outside [dpm] target_wwpn_ignore_list; check the "
            "storage zoning and that list"
        )


def normalize_wwpn(wwpn: str) -> str:
    """16 lower-case hex digits, without 0x or colons."""
    value = str(wwpn).lower().replace(":", "")
    if value.startswith("0x"):
        value = value[2:]
    return value.zfill(16)


def fcp_lun(lun: int) -> str:
    """The HMC's 16-hex-digit FCP LUN for a SCSI LUN number from Cinder.

    SCSI-3 (SAM) single-level LUN addressing: LUNs below 256 use peripheral
    addressing (``00nn000000000000``), LUNs up to 16383 flat addressing
    (``4nnn000000000000``). Values that already are 64-bit LUNs pass through.
    """
    if lun < 0:
        raise ValueError(f"LUN {lun} is negative")
    if lun < 256:
        return f"{lun:04x}" + "0" * 12
    if lun < 16384:
        return f"{0x4000 | lun:04x}" + "0" * 12
    if lun < 2**64:
        return f"{lun:016x}"
    raise ValueError(f"LUN {lun} does not fit into 64 bits")


class StoragePath(abc.ABC):
    """How partitions of this CPC reach FCP volumes."""

    #: Whether attach_volume needs FCVolume.size_gb (the HMC defines volumes).
    needs_volume_size = False

    def __init__(self, host: Host) -> None:
        self.host = host

    @abc.abstractmethod
    def prepare(self, partition: zhmcclient.Partition, name: str) -> Prepared:
        """Create the paths of a new partition; return its WWPNs (boot path first)."""

    @abc.abstractmethod
    def read_wwpns(self, partition: zhmcclient.Partition, name: str) -> list[str]:
        """The partition's WWPNs as the HMC reports them now (boot path first)."""

    @abc.abstractmethod
    def boot_properties(
        self,
        partition: zhmcclient.Partition,
        name: str,
        volume: FCVolume,
        prepared: Prepared,
    ) -> dict:
        """Partition properties that make it boot from ``volume``."""

    @abc.abstractmethod
    def attach_volume(self, partition: zhmcclient.Partition, name: str, volume: FCVolume) -> None:
        """Make a data volume known to the partition's paths."""

    @abc.abstractmethod
    def detach_volume(self, partition: zhmcclient.Partition, name: str, volume: FCVolume) -> None:
        """Undo attach_volume (idempotent)."""

    @abc.abstractmethod
    def cleanup(self, partition: zhmcclient.Partition | None, name: str) -> None:
        """Remove everything prepare() created outside the partition (idempotent)."""

    def cleanup_orphans(self) -> list[str]:
        """Remove this host's objects outside partitions whose partition is gone."""
        return []


def for_host(host: Host) -> StoragePath:
    """The storage path matching the CPC's firmware."""
    if host.storage_management:
        from ibmvirt.dpm.storage.groups import StorageGroupPath

        return StorageGroupPath(host)
    from ibmvirt.dpm.storage.hba import HbaPath

    return HbaPath(host)
