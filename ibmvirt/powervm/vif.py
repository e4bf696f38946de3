"""Plugging Neutron ports into LPARs, one class per binding:vif_type.

``pvm_sea``: a client network adapter (CNA) with the port's MAC on the port's
VLAN, on the virtual switch a VIOS Shared Ethernet Adapter bridges (both from
the binding's vif_details; the SEA agent puts the VLAN on the SEA). ``ovs``:
a CNA paired with a trunk adapter on the NovaLink partition, whose tap device
NovaLink adds to the OVS bridge with the port's external ids, so the Neutron
OVS agent wires it. After a plug or unplug a custom REST event tells the L2
agent at once.
"""

from __future__ import annotations

import abc
import json

from nova import exception
from oslo_config import cfg
from oslo_log import log as logging
from pypowervm import exceptions as pvm_ex
from pypowervm.tasks import cna as pvm_cna
from pypowervm.tasks import partition as pvm_par
from pypowervm.wrappers import event as pvm_evt
from pypowervm.wrappers import network as pvm_net

from ibmvirt import contract

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

    def unplug(self, lpar, vif) -> bool:
        """Remove the port's adapter; False if it had none."""
        cna = find_cna(self.adapter, lpar, vif["address"])
        if cna is None:
            return False
        cna.delete()
        self._announce(cna, "unplug", vif)
        return True

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

    def plug(self, lpar, vif, instance_uuid: str, slot: int | None = None) -> pvm_net.CNA:
        mgmt = pvm_par.get_mgmt_partition(self.adapter)
        dev_name = vif.get("devname") or (OVS_DEV_PREFIX + vif["id"])[:14]
        ext_ids = ",".join(
            (
                f"iface-id={vif['id']}",
                "iface-status=active",
                f"attached-mac={vif['address']}",
                f"vm-uuid={instance_uuid}",  # Nova's UUID: the OVS agent's device_id
            )
        )
        cna, _trunks = pvm_cna.crt_p2p_cna(
            self.adapter,
            None,
            lpar.uuid,
            [mgmt.uuid],
            self.conf.powervm.pvm_vswitch_for_novalink_io,
            crt_vswitch=True,
            mac_addr=contract.pvm_mac(vif["address"]),
            slot_num=slot,
            dev_name=dev_name,
            ovs_bridge=vif["network"]["bridge"],
            ovs_ext_ids=ext_ids,
            configured_mtu=vif["network"].get_meta("mtu"),
        )
        self._announce(cna, "plug", vif)
        return cna

    def unplug(self, lpar, vif) -> bool:
        cna = find_cna(self.adapter, lpar, vif["address"])
        if cna is None:
            return False
        for trunk in pvm_cna.find_trunks(self.adapter, cna):
            trunk.delete()
        cna.delete()
        self._announce(cna, "unplug", vif)
        return True


_DRIVERS = {d.vif_type: d for d in (SEAVifDriver, OVSVifDriver)}


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
