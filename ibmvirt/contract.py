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
