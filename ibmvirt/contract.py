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
#: networking-powervm sent it; absent or None on flat networks).
VIF_DETAILS_PVM_VLAN = "vlan"

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
