"""``pvm_sea``: ports on a VIOS Shared Ethernet Adapter (vnic_type normal).

Nova's PowerVM driver creates a client adapter on the port's VLAN (on a flat
network the SEA's PVID) on the SEA's virtual switch, both as the host's agent
reports them; the agent puts that VLAN on the SEA it maps the physical network to.
An agent that found a single SEA and was given no mapping reports it as
``default``: that SEA bridges every physical network of the host.
"""

from __future__ import annotations

from neutron_lib import constants as n_const
from neutron_lib.api.definitions import portbindings
from neutron_lib.plugins.ml2 import api

from ibmvirt import contract
from ibmvirt.neutron.ml2 import base

DEFAULT_MAPPING = "default"


class PvmSeaMechanismDriver(base.AgentMechanismDriver):
    def __init__(self) -> None:
        super().__init__(
            contract.AGENT_TYPE_PVM_SEA, contract.VIF_TYPE_PVM_SEA, [portbindings.VNIC_NORMAL]
        )

    def get_allowed_network_types(self, agent=None):
        return [n_const.TYPE_FLAT, n_const.TYPE_VLAN]

    def physnet_in_mappings(self, physnet, mappings):
        return physnet in mappings or DEFAULT_MAPPING in mappings

    def get_vif_details(self, context, agent, segment):
        bridges = (agent.get("configurations") or {}).get(contract.AGENT_CONF_SEA_BRIDGES) or {}
        bridge = bridges.get(segment[api.PHYSICAL_NETWORK]) or bridges.get(DEFAULT_MAPPING) or {}
        vlan = self.segment_vlan(segment)
        if vlan is None:  # flat: what the SEA bridges untagged
            vlan = bridge.get(contract.SEA_BRIDGE_PVID)
        return contract.pvm_sea_vif_details(vlan, bridge.get(contract.SEA_BRIDGE_VSWITCH))
