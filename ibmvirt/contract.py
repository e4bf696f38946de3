"""Contract between the Nova drivers and the Neutron mechanism drivers/agents.

Both sides import these names so that a VIF bound by Neutron is understood by
Nova and a NIC created by Nova is recognised by the Neutron agent. Changing a
value here is an upgrade-breaking change on both sides.
"""

from __future__ import annotations

import re

# --- IBM Z DPM ---------------------------------------------------------------

#: binding:vif_type of a port bound to a DPM virtual switch (OSA / HiperSockets).
VIF_TYPE_DPM_VSWITCH = "dpm_vswitch"

#: binding:vif_details key holding the object-id of the HMC virtual switch
#: the NIC must be created on (same key networking-dpm used).
VIF_DETAILS_DPM_VSWITCH_ID = "object_id"

#: binding:vif_details key carrying a VLAN id; DPM NICs are flat only, so Nova
#: refuses VIFs that carry it.
VIF_DETAILS_VLAN = "vlan"

#: Prefix of every NIC name the Nova DPM driver creates: ``OpenStack_Port_<port id>``.
DPM_NIC_NAME_PREFIX = "OpenStack_Port_"

_NIC_DESC_RE = re.compile(
    r"^OpenStack mac=(?P<mac>([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}), CPCSubset=(?P<host>\S+)$"
)


def dpm_nic_name(port_id: str) -> str:
    """NIC name for a Neutron port; unique per partition, names the port."""
    return f"{DPM_NIC_NAME_PREFIX}{port_id}"


def dpm_nic_port_id(nic_name: str) -> str | None:
    """The Neutron port id encoded in a NIC name, or None for foreign NICs."""
    if nic_name and nic_name.startswith(DPM_NIC_NAME_PREFIX):
        return nic_name[len(DPM_NIC_NAME_PREFIX) :] or None
    return None


def dpm_nic_description(host: str, mac: str) -> str:
    """NIC description marking ownership by compute/agent ``host`` and the port MAC."""
    return f"OpenStack mac={mac.lower()}, CPCSubset={host}"


def parse_dpm_nic_description(description: str) -> tuple[str, str] | None:
    """Return ``(host, mac)`` from a description written by :func:`dpm_nic_description`."""
    m = _NIC_DESC_RE.match(description or "")
    if not m:
        return None
    return m.group("host"), m.group("mac").lower()


# --- PowerVM ------------------------------------------------------------------

#: binding:vif_type of a port bridged by a VIOS Shared Ethernet Adapter: Nova
#: creates a client network adapter on the port's VLAN, the SEA agent puts the
#: VLAN on the SEA (networking-powervm's value).
VIF_TYPE_PVM_SEA = "pvm_sea"

#: binding:vif_type of a port on Open vSwitch in the NovaLink partition: Nova
#: pairs a client adapter with a trunk adapter whose tap joins the OVS bridge.
VIF_TYPE_OVS = "ovs"

#: binding:vif_type of an SR-IOV vNIC port (networking-powervm's value).
VIF_TYPE_PVM_SRIOV = "pvm_sriov"

#: binding:vif_details key with the VLAN of a pvm_sea port (a string, as
#: networking-powervm sent it). On a flat network it is the SEA's PVID, the
#: VLAN the SEA bridges untagged; None only from an agent that did not report
#: its SEAs (Nova then uses VLAN 1).
VIF_DETAILS_PVM_VLAN = "vlan"

#: binding:vif_details key with the virtual switch of the SEA that bridges a
#: pvm_sea port's physical network: Nova creates the client adapter there.
#: Absent from an agent that did not report it (Nova then uses ETHERNET0).
VIF_DETAILS_PVM_VSWITCH = "vswitch"

#: Custom REST event Nova pushes after plugging or unplugging a PowerVM NIC,
#: so that the L2 agent provisions it without waiting for its next scan.
#: Its detail is JSON: {"provider": PVM_VIF_EVENT_PROVIDER, "action":
#: "plug"|"unplug", "mac": <MAC>, "type": <vif type>}.
PVM_VIF_EVENT_PROVIDER = "NOVA_PVM_VIF"

#: Virtual switch and VLAN of the RMC management adapter Nova gives each LPAR.
PVM_MGMT_VSWITCH = "MGMTSWITCH"
PVM_MGMT_VLAN = 4094


def pvm_mac(mac: str) -> str:
    """A MAC as PowerVM writes it (12 upper-case hex digits)."""
    return mac.replace(":", "").replace("-", "").upper()


# --- Neutron agents and bindings ---------------------------------------------
# The Neutron side: the agent type and binary each agent registers with, the
# keys of its reported ``configurations``, and the binding:vif_details each
# mechanism driver produces. The sandboxes bind ports with the same builders,
# so the Nova tests see exactly what real ML2 would hand Nova.

AGENT_TYPE_PVM_SEA = "PowerVM Shared Ethernet agent"
AGENT_TYPE_PVM_SRIOV = "PowerVM SR-IOV Ethernet agent"
AGENT_TYPE_DPM = "DPM agent"

AGENT_BINARY_PVM_SEA = "ibmvirt-powervm-sea-agent"
AGENT_BINARY_PVM_SRIOV = "ibmvirt-powervm-sriov-agent"
AGENT_BINARY_DPM = "ibmvirt-dpm-agent"

#: Agent configurations key: SEA agent ``{physnet: NetBridge UUID}``; SR-IOV
#: agent ``{port label: [physical port location codes]}``.
AGENT_CONF_BRIDGE_MAPPINGS = "bridge_mappings"
#: SEA agent: ``{physnet: {"vswitch": <name>, "pvid": <int>}}``, what the
#: physnet's SEA bridges: the pvm_sea driver puts both into vif_details.
AGENT_CONF_SEA_BRIDGES = "sea_bridges"
SEA_BRIDGE_VSWITCH = "vswitch"
SEA_BRIDGE_PVID = "pvid"
#: SR-IOV agent defaults used where a port's binding:profile says nothing.
AGENT_CONF_DEFAULT_REDUNDANCY = "default_redundancy"
AGENT_CONF_DEFAULT_CAPACITY = "default_capacity"
#: DPM agent: ``{physnet: <backing>}`` where backing is one of the dicts
#: :func:`dpm_backing` returns (already translated for the CPC's generation).
AGENT_CONF_DPM_MAPPINGS = "adapter_mappings"
#: DPM agent: True where the CPC can give NICs a VLAN id (z14 and later).
AGENT_CONF_DPM_VLAN = "nic_vlan_supported"

#: binding:profile keys an operator may set on an SR-IOV port (networking-powervm's).
SRIOV_PROFILE_REDUNDANCY = "vnic_required_vfs"
SRIOV_PROFILE_CAPACITY = "capacity"
SRIOV_PROFILE_MAX_CAPACITY = "maxcapacity"

#: binding:vif_details keys of a pvm_sriov port.
VIF_DETAILS_SRIOV_PHYSICAL_PORTS = "physical_ports"
VIF_DETAILS_SRIOV_PHYSNET = "physical_network"
VIF_DETAILS_SRIOV_REDUNDANCY = "redundancy"
VIF_DETAILS_SRIOV_CAPACITY = "capacity"
VIF_DETAILS_SRIOV_MAX_CAPACITY = "maxcapacity"

#: DPM backings, one per machine generation: a virtual switch (OSA and
#: HiperSockets up to z16), a partition link (HiperSockets on a z16 HMC with
#: partition-link management) or a network adapter port (z17, no vswitches).
VIF_DETAILS_DPM_PARTITION_LINK_ID = "partition_link_id"
VIF_DETAILS_DPM_ADAPTER_PORT_URI = "adapter_port_uri"
DPM_BACKING_KEYS = (
    VIF_DETAILS_DPM_VSWITCH_ID,
    VIF_DETAILS_DPM_PARTITION_LINK_ID,
    VIF_DETAILS_DPM_ADAPTER_PORT_URI,
)

#: Neutron's own binding:vif_details keys and values (neutron_lib portbindings).
_PORT_FILTER = "port_filter"
_CONNECTIVITY = "connectivity"
_CONNECTIVITY_L2 = "l2"


def _vlan_detail(segmentation_id: int | None) -> str | None:
    """A VLAN as Neutron's L2 drivers write it into vif_details (a string)."""
    return None if segmentation_id is None else str(segmentation_id)


def _base_details() -> dict:
    return {_PORT_FILTER: False, _CONNECTIVITY: _CONNECTIVITY_L2}


def pvm_sea_vif_details(vlan: int | None, vswitch: str | None = None) -> dict:
    """binding:vif_details of a pvm_sea port: the client adapter's VLAN (the
    segment's, or the SEA's PVID on a flat network) and the SEA's switch."""
    details = {**_base_details(), VIF_DETAILS_PVM_VLAN: _vlan_detail(vlan)}
    if vswitch:
        details[VIF_DETAILS_PVM_VSWITCH] = vswitch
    return details


def pvm_sriov_vif_details(
    physnet: str,
    physical_ports: list[str],
    segmentation_id: int | None,
    redundancy: int,
    capacity: float | None,
    max_capacity: float | None,
) -> dict:
    """binding:vif_details of a pvm_sriov port."""
    return {
        **_base_details(),
        VIF_DETAILS_PVM_VLAN: _vlan_detail(segmentation_id),
        VIF_DETAILS_SRIOV_PHYSNET: physnet,
        VIF_DETAILS_SRIOV_PHYSICAL_PORTS: list(physical_ports),
        VIF_DETAILS_SRIOV_REDUNDANCY: redundancy,
        VIF_DETAILS_SRIOV_CAPACITY: capacity,
        VIF_DETAILS_SRIOV_MAX_CAPACITY: max_capacity,
    }


def dpm_backing(
    vswitch_id: str | None = None,
    partition_link_id: str | None = None,
    adapter_port_uri: str | None = None,
) -> dict:
    """What a DPM NIC is created on: exactly one of the three, as a dict."""
    given = {
        k: v
        for k, v in zip(
            DPM_BACKING_KEYS, (vswitch_id, partition_link_id, adapter_port_uri), strict=True
        )
        if v
    }
    if len(given) != 1:
        raise ValueError(f"a DPM backing is exactly one of {DPM_BACKING_KEYS}, got {given}")
    return given


def dpm_vif_details(backing: dict, segmentation_id: int | None) -> dict:
    """binding:vif_details of a dpm_vswitch port: a fresh dict every time (the
    old driver mutated a shared one and leaked VLANs between ports)."""
    details = {**_base_details(), **dpm_backing(**_backing_kwargs(backing))}
    if segmentation_id is not None:
        details[VIF_DETAILS_VLAN] = _vlan_detail(segmentation_id)
    return details


def _backing_kwargs(backing: dict) -> dict:
    names = dict(
        zip(DPM_BACKING_KEYS, ("vswitch_id", "partition_link_id", "adapter_port_uri"), strict=True)
    )
    unknown = set(backing) - set(names)
    if unknown:
        raise ValueError(f"unknown DPM backing keys {sorted(unknown)}")
    return {names[k]: v for k, v in backing.items()}
