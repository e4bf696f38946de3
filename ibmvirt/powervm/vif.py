"""Plugging Neutron ports into LPARs, one class per binding:vif_type.

``pvm_sea``: a client network adapter (CNA) with the port's MAC on the port's
VLAN, on the virtual switch a VIOS Shared Ethernet Adapter bridges (both from
the binding's vif_details; the SEA agent puts the VLAN on the SEA). ``ovs``:
a CNA paired with a trunk adapter on the NovaLink partition, whose tap device
NovaLink adds to the OVS bridge with the port's external ids, so the Neutron
OVS agent wires it. ``pvm_sriov``: a vNIC whose backing devices are SR-IOV
logical ports on physical ports labelled with the port's physical network
(one per port asked for, with failover between them), capacity and VLAN from
the binding. After a plug or unplug a custom REST event tells the L2 agent at
once.
"""

from __future__ import annotations

import abc
import json

from nova import exception
from oslo_config import cfg
from oslo_log import log as logging
from pypowervm import exceptions as pvm_ex
from pypowervm import util as pvm_util
from pypowervm.tasks import cna as pvm_cna
from pypowervm.tasks import partition as pvm_par
from pypowervm.tasks import sriov as pvm_sriov
from pypowervm.wrappers import event as pvm_evt
from pypowervm.wrappers import iocard as pvm_card
from pypowervm.wrappers import managed_system as pvm_ms
from pypowervm.wrappers import network as pvm_net

from ibmvirt import contract
from ibmvirt.powervm import sriov

LOG = logging.getLogger(__name__)

#: The virtual switch every LPAR CNA of a pvm_sea port goes on (the SEA's).
SEA_VSWITCH = pvm_net.VSW_DEFAULT_VSWITCH
OVS_DEV_PREFIX = "tap"


def find_cna(adapter, lpar, mac: str) -> pvm_net.CNA | None:
    mac = contract.pvm_mac(mac)
    return next((c for c in pvm_net.CNA.get(adapter, parent=lpar) if c.mac == mac), None)


class VifDriver(abc.ABC):
    vif_type: str

    def __init__(self, adapter, host_uuid: str, conf: cfg.ConfigOpts) -> None:
        self.adapter = adapter
        self.host_uuid = host_uuid
        self.conf = conf

    @abc.abstractmethod
    def plug(self, lpar, vif, instance_uuid: str, slot: int | None = None) -> pvm_net.CNA:
        """Create the LPAR's adapter for the port of Nova instance ``instance_uuid``
        (in client slot ``slot``; None: NovaLink picks one)."""

    def check(self, vif) -> None:  # noqa: B027  (most types need no check)
        """Refuse (VirtualInterfacePlugException) a port this host cannot plug,
        before anything is created; reads only."""

    def unplug(self, lpar, vif) -> bool:
        """Remove the port's adapter; False if it had none."""
        cna = find_cna(self.adapter, lpar, vif["address"])
        if cna is None:
            return False
        cna.delete()
        self._announce(cna, "unplug", vif)
        return True

    def pre_live_migration_at_destination(self, vif, instance_uuid: str) -> int | None:
        """On a live migration's destination, before the LPAR arrives: what
        the port needs here; returns the PVID its adapter must take here, or
        None to keep its own (a pvm_sea port: the SEA agent provisions the
        VLAN for the destination's binding)."""
        return None

    def rollback_live_migration_at_destination(self, vif) -> None:  # noqa: B027
        """Undo pre_live_migration_at_destination."""

    def _announce(self, cna, action: str, vif) -> None:
        """Tell the L2 agent through the REST event feed (best effort)."""
        detail = json.dumps(
            {
                "provider": contract.PVM_VIF_EVENT_PROVIDER,
                "action": action,
                "mac": contract.pvm_mac(vif["address"]),
                "type": self.vif_type,
            }
        )
        try:
            pvm_evt.Event.bld(self.adapter, cna.href, detail).create()
        except pvm_ex.Error as exc:
            LOG.warning("Could not announce the %s of port %s: %s", action, vif["id"], exc)


def vlan_of(vif) -> int:
    """The port's VLAN from Neutron's binding (on a flat network the SEA's PVID,
    which the agent reports; 1 where nothing says); anything but a VLAN id is
    refused before NovaLink is asked."""
    details = vif.get("details") or {}
    raw = details.get(contract.VIF_DETAILS_PVM_VLAN)
    if raw in (None, ""):
        raw = vif["network"].get_meta("vlan")
    if raw in (None, ""):
        return 1
    try:
        vlan = int(str(raw), 10)
    except ValueError:
        vlan = 0
    if not 1 <= vlan <= 4094:
        raise exception.VirtualInterfacePlugException(
            f"port {vif['id']}: binding:vif_details {contract.VIF_DETAILS_PVM_VLAN}={raw!r} "
            "is not a VLAN id (1-4094)"
        )
    return vlan


def sea_vswitch_of(vif) -> str:
    """The virtual switch of the SEA the agent reported for the port's
    physical network (ETHERNET0 from an agent that did not say)."""
    return (vif.get("details") or {}).get(contract.VIF_DETAILS_PVM_VSWITCH) or SEA_VSWITCH


class SEAVifDriver(VifDriver):
    vif_type = contract.VIF_TYPE_PVM_SEA

    def plug(self, lpar, vif, instance_uuid: str, slot: int | None = None) -> pvm_net.CNA:
        cna = create_cna(
            self.adapter,
            lpar,
            vlan_of(vif),
            _vswitch(self.adapter, sea_vswitch_of(vif)),
            mac=contract.pvm_mac(vif["address"]),
            slot=slot,
        )
        self._announce(cna, "plug", vif)
        return cna


class OVSVifDriver(VifDriver):
    vif_type = contract.VIF_TYPE_OVS

    @staticmethod
    def _dev_name(vif) -> str:
        return vif.get("devname") or (OVS_DEV_PREFIX + vif["id"])[:14]

    def _trunk_args(self, vif, instance_uuid: str) -> dict:
        ext_ids = ",".join(
            (
                f"iface-id={vif['id']}",
                "iface-status=active",
                f"attached-mac={vif['address']}",
                f"vm-uuid={instance_uuid}",  # Nova's UUID: the OVS agent's device_id
            )
        )
        return {
            "crt_vswitch": True,
            "dev_name": self._dev_name(vif),
            "ovs_bridge": vif["network"]["bridge"],
            "ovs_ext_ids": ext_ids,
            "configured_mtu": vif["network"].get_meta("mtu"),
        }

    def plug(self, lpar, vif, instance_uuid: str, slot: int | None = None) -> pvm_net.CNA:
        mgmt = pvm_par.get_mgmt_partition(self.adapter)
        cna, _trunks = pvm_cna.crt_p2p_cna(
            self.adapter,
            None,
            lpar.uuid,
            [mgmt.uuid],
            self.conf.powervm.pvm_vswitch_for_novalink_io,
            mac_addr=contract.pvm_mac(vif["address"]),
            slot_num=slot,
            **self._trunk_args(vif, instance_uuid),
        )
        self._announce(cna, "plug", vif)
        return cna

    def pre_live_migration_at_destination(self, vif, instance_uuid: str) -> int | None:
        """A NovaLink trunk on a VLAN free on this host's switch, with the
        port's OVS ids; the arriving adapter takes its VLAN as PVID."""
        mgmt = pvm_par.get_mgmt_partition(self.adapter)
        trunks = pvm_cna.crt_trunk_with_free_vlan(
            self.adapter,
            None,
            [mgmt.uuid],
            self.conf.powervm.pvm_vswitch_for_novalink_io,
            **self._trunk_args(vif, instance_uuid),
        )
        return trunks[0].pvid

    def rollback_live_migration_at_destination(self, vif) -> None:
        """Delete the port's trunk (found by its device name): the one prepared
        here, or, on the source after the move, the one its adapter left."""
        mgmt = pvm_par.get_mgmt_partition(self.adapter)
        for trunk in pvm_net.CNA.get(self.adapter, parent=mgmt):
            if trunk.is_trunk and trunk.dev_name == self._dev_name(vif):
                trunk.delete()

    def unplug(self, lpar, vif) -> bool:
        cna = find_cna(self.adapter, lpar, vif["address"])
        if cna is None:
            return False
        for trunk in pvm_cna.find_trunks(self.adapter, cna):
            trunk.delete()
        cna.delete()
        self._announce(cna, "unplug", vif)
        return True


def find_vnic(adapter, lpar, mac: str) -> pvm_card.VNIC | None:
    mac = contract.pvm_mac(mac)
    return next((v for v in pvm_card.VNIC.get(adapter, parent=lpar) if v.mac == mac), None)


def _up(pport) -> str:
    return "up" if pport.link_status else "down"


def sriov_vlan_of(vif) -> int | None:
    """The vNIC's port VLAN: the binding's, None (untagged) on a flat network."""
    raw = (vif.get("details") or {}).get(contract.VIF_DETAILS_PVM_VLAN)
    if raw in (None, ""):
        return None
    return vlan_of(vif)


class SRIOVVifDriver(VifDriver):
    """A vNIC with ``redundancy`` backing logical ports, on distinct physical
    ports labelled with the port's physical network (pypowervm's
    set_vnic_back_devs spreads them over adapters and VIOSes); the first
    backing device has the highest failover priority."""

    vif_type = contract.VIF_TYPE_PVM_SRIOV

    def _plan(self, vif, slot: int | None = None) -> pvm_card.VNIC:
        details = vif.get("details") or {}
        physnet = details.get(contract.VIF_DETAILS_SRIOV_PHYSNET) or (
            vif["network"].get_meta("physical_network")
        )
        redundancy = int(details.get(contract.VIF_DETAILS_SRIOV_REDUNDANCY) or 1)
        capacity = details.get(contract.VIF_DETAILS_SRIOV_CAPACITY)
        max_capacity = details.get(contract.VIF_DETAILS_SRIOV_MAX_CAPACITY)
        system = pvm_ms.System.get(self.adapter)[0]
        listed = details.get(contract.VIF_DETAILS_SRIOV_PHYSICAL_PORTS) or None
        ports = sriov.ports_for(system, physnet or sriov.DEFAULT_LABEL, listed)
        who = f"port {vif['id']}"
        if not ports:
            raise exception.VirtualInterfacePlugException(
                f"{who}: this host has no running SR-IOV physical port labelled "
                f"{physnet!r} (the port's physical network); label one (pvmctl sriov update "
                "-s label=...) or schedule elsewhere"
            )
        usable = [p for p in ports if p.link_status]
        if redundancy > len(usable):
            raise exception.VirtualInterfacePlugException(
                f"{who}: {redundancy} backing ports asked for (binding:vif_details "
                f"{contract.VIF_DETAILS_SRIOV_REDUNDANCY}), but this host has only {len(usable)} "
                f"SR-IOV physical port(s) labelled {physnet!r} with link up "
                f"({', '.join(f'{p.loc_code} link {_up(p)}' for p in ports)})"
            )
        vnic = pvm_card.VNIC.bld(
            self.adapter,
            pvid=sriov_vlan_of(vif),
            slot_num=slot,
            mac_addr=contract.pvm_mac(vif["address"]),
            # Only the port's VLAN and MAC: the guest cannot take others.
            allowed_vlans=pvm_util.VLANList.NONE,
            allowed_macs=pvm_util.MACList.NONE,
        )
        try:
            pvm_sriov.set_vnic_back_devs(
                vnic,
                [p.loc_code for p in ports],
                sys_w=system,
                redundancy=redundancy,
                capacity=None if capacity is None else float(capacity),
                max_capacity=None if max_capacity is None else float(max_capacity),
                check_port_status=True,
            )
        except (pvm_ex.Error, ValueError) as exc:
            raise exception.VirtualInterfacePlugException(
                f"{who}: no vNIC with {redundancy} backing port(s) of physical network "
                f"{physnet!r} fits on this host: {exc}"
            ) from exc
        if len(vnic.back_devs) > 1:
            # Failover order: the devices as pypowervm spread them (1 is tried first).
            for priority, dev in enumerate(vnic.back_devs, start=1):
                dev.failover_pri = priority
        return vnic

    def check(self, vif) -> None:
        self._plan(vif)

    def plug(self, lpar, vif, instance_uuid: str, slot: int | None = None) -> pvm_card.VNIC:
        vnic = self._plan(vif, slot).create(parent=lpar)
        self._announce(vnic, "plug", vif)
        return vnic

    def unplug(self, lpar, vif) -> bool:
        vnic = find_vnic(self.adapter, lpar, vif["address"])
        if vnic is None:
            return False
        vnic.delete()
        self._announce(vnic, "unplug", vif)
        return True


_DRIVERS = {d.vif_type: d for d in (SEAVifDriver, OVSVifDriver, SRIOVVifDriver)}


def check_all(network_info, adapter, host_uuid: str, conf: cfg.ConfigOpts) -> None:
    """Every port of a new instance can be plugged here (before its LPAR exists)."""
    for vif in network_info or []:
        driver_for(vif, adapter, host_uuid, conf).check(vif)


def driver_for(vif, adapter, host_uuid: str, conf: cfg.ConfigOpts) -> VifDriver:
    cls = _DRIVERS.get(vif["type"])
    if cls is None:
        raise exception.VirtualInterfacePlugException(
            f"port {vif['id']}: binding:vif_type {vif['type']!r} is not supported on PowerVM "
            f"(supported: {', '.join(sorted(_DRIVERS))})"
        )
    return cls(adapter, host_uuid, conf)


def _vswitches(adapter) -> dict[str, pvm_net.VSwitch]:
    return {
        s.name: s
        for s in pvm_net.VSwitch.get(
            adapter, parent_type="ManagedSystem", parent_uuid=adapter.sys_uuid
        )
    }


def _on_switch(cna: pvm_net.CNA, switch: pvm_net.VSwitch) -> bool:
    return bool(cna.vswitch_uri) and cna.vswitch_uri.upper().endswith(switch.uuid.upper())


def _vswitch(adapter, name: str) -> pvm_net.VSwitch:
    switch = _vswitches(adapter).get(name)
    if switch is None:
        raise pvm_ex.Error(f"Unable to find the Virtual Switch {name} on the system.")
    return switch


def create_cna(
    adapter, lpar, vlan: int, switch: pvm_net.VSwitch, mac: str | None = None, slot=None
):
    """A client adapter on ``switch`` (pypowervm's crt_cna, minus its re-read of
    the LPAR: it has only the UUID, and CNA.create needs the partition type)."""
    if adapter.traits.vnet_aware:  # an HMC; NovaLink is not
        return pvm_cna.crt_cna(
            adapter, None, lpar.uuid, vlan, vswitch=switch.name, mac_addr=mac, slot_num=slot
        )
    return pvm_net.CNA.bld(
        adapter, str(vlan), switch.related_href, slot_num=slot, mac_addr=mac
    ).create(parent=lpar)


def plug_mgmt_vif(adapter, lpar, slot: int | None = None) -> pvm_net.CNA | None:
    """The RMC adapter (MGMTSWITCH, VLAN 4094) of a new LPAR, if the host has that
    switch (spawn plugs it once, on an LPAR it just created)."""
    mgmt = _vswitches(adapter).get(contract.PVM_MGMT_VSWITCH)
    if mgmt is None:
        return None
    return create_cna(adapter, lpar, contract.PVM_MGMT_VLAN, mgmt, slot=slot)


def delete_trunks_of(adapter, lpar, vswitch_name: str) -> None:
    """Remove the NovaLink trunk adapters paired with the LPAR's ovs adapters
    (only those on ``vswitch_name``: a SEA's trunks are never touched)."""
    switch = _vswitches(adapter).get(vswitch_name)
    if switch is None:
        return
    for cna in pvm_net.CNA.get(adapter, parent=lpar):
        if not _on_switch(cna, switch):
            continue
        try:
            for trunk in pvm_cna.find_trunks(adapter, cna):
                trunk.delete()
        except pvm_ex.Error as exc:
            LOG.warning("Could not remove the trunk adapters of %s: %s", cna.mac, exc)
