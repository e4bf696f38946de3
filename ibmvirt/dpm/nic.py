"""NICs of a partition: one per Neutron port bound as ``dpm_vswitch``.

Each NIC is named after its port and described with the owning host and MAC
(the Neutron DPM agent recognises its NICs by that description). The guest
learns device numbers, OSA port and (on z13, where the HMC cannot set a MAC)
the MAC through NIC records in ``boot-os-specific-parameters``; the length of
that property is checked before any NIC is created.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import zhmcclient
from oslo_log import log as logging

from ibmvirt import contract
from ibmvirt.conf.types import OBJECT_ID_PATTERN
from ibmvirt.dpm import bootparams
from ibmvirt.dpm import exceptions as dpm_exc
from ibmvirt.dpm.host import Host

LOG = logging.getLogger(__name__)

BOOT_PARAMS = "boot-os-specific-parameters"
#: First device number of the NICs of a new partition (OSA and HiperSockets NICs
#: occupy three consecutive subchannels each).
NIC_DEVNO_BASE = 0x0100
#: A virtual switch's object-id, as the DPM agent reports it in vif_details; it
#: goes into an HMC URI, so anything else ("../", "?x=1") is refused.
_OBJECT_ID = re.compile(f"^{OBJECT_ID_PATTERN}$", re.IGNORECASE)


@dataclass(frozen=True)
class VifSpec:
    """What a NIC needs from a Nova VIF."""

    port_id: str
    mac: str
    vswitch_id: str

    @classmethod
    def from_vif(cls, vif) -> VifSpec:
        """Validate a Nova VIF for DPM; refuse it naming the port and the fix."""
        port_id = vif["id"]
        if vif.get("type") != contract.VIF_TYPE_DPM_VSWITCH:
            raise dpm_exc.InvalidVIF(
                reason=f"port {port_id} is bound with vif_type {vif.get('type')!r}; DPM "
                f"partitions need {contract.VIF_TYPE_DPM_VSWITCH!r} (enable the 'dpm' "
                "ML2 mechanism driver and run the DPM agent for this host)"
            )
        details = vif.get("details") or {}
        if details.get(contract.VIF_DETAILS_VLAN) is not None:
            raise dpm_exc.InvalidVIF(
                reason=f"port {port_id} is on a VLAN network; DPM NICs support flat networks only"
            )
        vswitch_id = details.get(contract.VIF_DETAILS_DPM_VSWITCH_ID)
        if not vswitch_id:
            raise dpm_exc.InvalidVIF(
                reason=f"port {port_id} has no virtual switch in its binding "
                f"(vif_details[{contract.VIF_DETAILS_DPM_VSWITCH_ID!r}])"
            )
        if not isinstance(vswitch_id, str) or not _OBJECT_ID.fullmatch(vswitch_id):
            raise dpm_exc.InvalidVIF(
                reason=f"port {port_id}: vif_details[{contract.VIF_DETAILS_DPM_VSWITCH_ID!r}] "
                f"{vswitch_id!r} is not an HMC object-id (a UUID such as "
                "'a1b2c3d4-0000-4000-8000-000000000001'); the binding comes from the "
                "Neutron DPM agent of this host: fix its virtual switch mapping and rebind the port"
            )
        return cls(
            port_id=port_id,
            mac=vif["address"].lower(),
            vswitch_id=vswitch_id.lower(),
        )


class NicManager:
    """Creates and removes the NICs of partitions of one host."""

    def __init__(self, host: Host) -> None:
        self.host = host

    def check_fit(self, vifs: list[VifSpec], existing: str = "") -> None:
        """Refuse VIFs whose records would not fit, before anything is created."""
        try:
            bootparams.render([self._record("0000", v) for v in vifs], existing)
        except bootparams.BootParametersTooLong as exc:
            raise dpm_exc.InvalidVIF(
                reason=f"{exc}. Use fewer network interfaces per instance"
            ) from exc
        except ValueError as exc:  # a MAC the guest could not set
            raise dpm_exc.InvalidVIF(reason=str(exc)) from exc

    def _record(self, devno: str, vif: VifSpec) -> bootparams.NicRecord:
        mac = None if self.host.nic_mac_settable else vif.mac
        return bootparams.NicRecord(devno, self.host.vswitch_port(vif.vswitch_id), mac)

    def create(
        self, partition: zhmcclient.Partition, vif: VifSpec, devno: str | None = None
    ) -> bootparams.NicRecord:
        """Create one NIC and return its boot-parameter record.

        With ``devno`` the device number is chosen here, which saves reading it
        back; if the HMC refuses it (e.g. taken by a storage path), the HMC picks.
        """
        if devno is not None:
            try:
                return self._create(partition, vif, devno)
            except zhmcclient.HTTPError as exc:
                if exc.http_status != 400:
                    raise
                LOG.debug("Device number %s refused (%s); letting the HMC choose", devno, exc)
        return self._create(partition, vif, None)

    def _create(
        self, partition: zhmcclient.Partition, vif: VifSpec, devno: str | None
    ) -> bootparams.NicRecord:
        props = {
            "name": contract.dpm_nic_name(vif.port_id),
            "description": contract.dpm_nic_description(self.host.name, vif.mac),
            "virtual-switch-uri": f"/api/virtual-switches/{vif.vswitch_id}",
        }
        if self.host.nic_mac_settable:
            props["mac-address"] = vif.mac
        if devno is not None:
            props["device-number"] = devno
        try:
            nic = partition.nics.create(props)
        except zhmcclient.HTTPError as exc:
            if exc.http_status == 404:
                raise dpm_exc.InvalidVIF(
                    reason=f"port {vif.port_id}: virtual switch {vif.vswitch_id} does not "
                    f"exist on the CPC ({exc})"
                ) from exc
            raise
        devno = nic.get_property("device-number")
        LOG.debug("Created NIC %s (device %s) for port %s", nic.uri, devno, vif.port_id)
        return self._record(devno, vif)

    def create_all(
        self,
        partition: zhmcclient.Partition,
        vifs: list[VifSpec],
        existing: str = "",
        choose_devnos: bool = False,
    ) -> str:
        """Create the NICs; return the new boot-os-specific-parameters value.

        ``choose_devnos`` is for a partition without NICs: device numbers are
        then assigned from NIC_DEVNO_BASE (each OSA NIC takes three).
        """
        self.check_fit(vifs, existing)
        records = [
            self.create(partition, v, f"{NIC_DEVNO_BASE + 3 * i:04x}" if choose_devnos else None)
            for i, v in enumerate(vifs)
        ]
        return bootparams.render(records, existing)

    def find(self, partition: zhmcclient.Partition, port_id: str) -> zhmcclient.Nic | None:
        """The NIC of a Neutron port, by its name."""
        try:
            return partition.nics.find(name=contract.dpm_nic_name(port_id))
        except zhmcclient.NotFound:
            return None

    def delete(self, partition: zhmcclient.Partition, port_id: str) -> str | None:
        """Delete the port's NIC; return the boot parameters without its record.

        Returns None if the partition has no NIC for the port (already detached).
        """
        nic = self.find(partition, port_id)
        if nic is None:
            return None
        devno = nic.get_property("device-number").lower()
        nic.delete()
        return bootparams.without_devices(partition.get_property(BOOT_PARAMS) or "", {devno})
