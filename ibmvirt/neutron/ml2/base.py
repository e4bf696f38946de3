"""What the three mechanism drivers share: Neutron's agent-based binding
(the port's host must run a live agent of the driver's type that maps the
segment's physical network), layer-2 connectivity, and vif_details from
:mod:`ibmvirt.contract`, the module the Nova drivers read.
"""

from __future__ import annotations

from neutron.plugins.ml2.drivers import mech_agent
from neutron_lib.api.definitions import portbindings
from neutron_lib.plugins.ml2 import api

from ibmvirt import contract


class AgentMechanismDriver(mech_agent.SimpleAgentMechanismDriverBase):
    """An agent-based driver whose vif_details are built per binding."""

    #: Key of the agent's reported configurations holding its physnet mappings.
    mappings_key = contract.AGENT_CONF_BRIDGE_MAPPINGS

    def __init__(self, agent_type: str, vif_type: str, vnic_types: list[str]) -> None:
        super().__init__(
            agent_type,
            vif_type,
            {portbindings.CAP_PORT_FILTER: False},
            supported_vnic_types=vnic_types,
        )

    @property
    def connectivity(self):
        return portbindings.CONNECTIVITY_L2

    def get_mappings(self, agent):
        return (agent.get("configurations") or {}).get(self.mappings_key) or {}

    @staticmethod
    def segment_vlan(segment) -> int | None:
        """The segment's VLAN id, None on a flat network."""
        if segment[api.NETWORK_TYPE] == "vlan":
            return segment[api.SEGMENTATION_ID]
        return None
