"""``dpm``: NICs of IBM Z partitions in DPM mode (vnic_type normal).

The DPM agent of the port's host (the CPC subset) reports, per physical
network, what a NIC must be created on, already translated for the CPC's
generation (virtual switch, partition link or network adapter port), and
whether the CPC can give a NIC a VLAN id. VLAN networks bind only where it
can; otherwise they are flat only, as on a z13.
"""

from __future__ import annotations

from neutron_lib import constants as n_const
from neutron_lib.api.definitions import portbindings
from neutron_lib.plugins.ml2 import api
from oslo_log import log as logging

from ibmvirt import contract
from ibmvirt.neutron.ml2 import base

LOG = logging.getLogger(__name__)


class DpmMechanismDriver(base.AgentMechanismDriver):
    mappings_key = contract.AGENT_CONF_DPM_MAPPINGS

    def __init__(self) -> None:
        super().__init__(
            contract.AGENT_TYPE_DPM, contract.VIF_TYPE_DPM_VSWITCH, [portbindings.VNIC_NORMAL]
        )

    def get_allowed_network_types(self, agent=None):
        if agent is not None and (agent.get("configurations") or {}).get(
            contract.AGENT_CONF_DPM_VLAN
        ):
            return [n_const.TYPE_FLAT, n_const.TYPE_VLAN]
        return [n_const.TYPE_FLAT]

    def try_to_bind_segment_for_agent(self, context, segment, agent):
        if not self.check_segment_for_agent(segment, agent):
            return False
        backing = self.get_mappings(agent)[segment[api.PHYSICAL_NETWORK]]
        try:
            details = contract.dpm_vif_details(backing, self.segment_vlan(segment))
        except (TypeError, ValueError) as exc:
            LOG.error(
                "DPM agent on host %s reports an unusable mapping for physical network %s (%s): %s",
                agent["host"],
                segment[api.PHYSICAL_NETWORK],
                backing,
                exc,
            )
            return False
        context.set_binding(segment[api.ID], self.vif_type, details)
        return True
