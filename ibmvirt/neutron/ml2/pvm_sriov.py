"""``pvm_sriov``: SR-IOV vNICs (vnic_type direct) on flat and VLAN networks.

The SR-IOV agent reports the host's physical ports by label (the label is the
physical network) with its default redundancy and capacity. A port's
binding:profile may ask for its own (``vnic_required_vfs``, ``capacity``,
``maxcapacity``); networking-powervm never read it. A profile the firmware
could not honour fails the binding instead of reaching Nova.
"""

from __future__ import annotations

from neutron_lib import constants as n_const
from neutron_lib.api.definitions import portbindings
from neutron_lib.plugins.ml2 import api
from oslo_log import log as logging

from ibmvirt import contract
from ibmvirt.neutron.ml2 import base

LOG = logging.getLogger(__name__)


class BadProfile(ValueError):
    """A binding:profile value the SR-IOV firmware cannot take."""


def _capacity(value, name: str) -> float | None:
    if value is None:
        return None
    try:
        capacity = float(value)
    except (TypeError, ValueError):
        raise BadProfile(f"{name}={value!r} is not a number") from None
    if not 0.0 < capacity <= 1.0:
        raise BadProfile(f"{name}={value!r} is not a share of a port (0 < value <= 1.0)")
    return capacity


def _redundancy(value) -> int:
    if isinstance(value, bool):
        raise BadProfile(f"{contract.SRIOV_PROFILE_REDUNDANCY}={value!r} is not a count")
    try:
        redundancy = int(value)
    except (TypeError, ValueError):
        raise BadProfile(f"{contract.SRIOV_PROFILE_REDUNDANCY}={value!r} is not a count") from None
    if redundancy < 1 or str(redundancy) != str(value).strip():
        raise BadProfile(
            f"{contract.SRIOV_PROFILE_REDUNDANCY}={value!r}: a vNIC needs at least 1 backing VF"
        )
    return redundancy


class PvmSriovMechanismDriver(base.AgentMechanismDriver):
    def __init__(self) -> None:
        super().__init__(
            contract.AGENT_TYPE_PVM_SRIOV, contract.VIF_TYPE_PVM_SRIOV, [portbindings.VNIC_DIRECT]
        )

    def get_allowed_network_types(self, agent=None):
        return [n_const.TYPE_FLAT, n_const.TYPE_VLAN]

    def try_to_bind_segment_for_agent(self, context, segment, agent):
        if not self.check_segment_for_agent(segment, agent):
            return False
        try:
            details = self._details(context.current, agent, segment)
        except BadProfile as exc:
            LOG.warning(
                "Not binding port %s as %s on host %s: binding:profile %s",
                context.current["id"],
                self.vif_type,
                agent["host"],
                exc,
            )
            return False
        context.set_binding(segment[api.ID], self.vif_type, details)
        return True

    def _details(self, port: dict, agent: dict, segment) -> dict:
        profile = port.get(portbindings.PROFILE) or {}
        conf = agent.get("configurations") or {}
        physnet = segment[api.PHYSICAL_NETWORK]
        default_redundancy = conf.get(contract.AGENT_CONF_DEFAULT_REDUNDANCY, 1)
        redundancy = _redundancy(profile.get(contract.SRIOV_PROFILE_REDUNDANCY, default_redundancy))
        capacity = _capacity(
            profile.get(
                contract.SRIOV_PROFILE_CAPACITY, conf.get(contract.AGENT_CONF_DEFAULT_CAPACITY)
            ),
            contract.SRIOV_PROFILE_CAPACITY,
        )
        max_capacity = _capacity(
            profile.get(contract.SRIOV_PROFILE_MAX_CAPACITY), contract.SRIOV_PROFILE_MAX_CAPACITY
        )
        if capacity is not None and max_capacity is not None and max_capacity < capacity:
            raise BadProfile(
                f"{contract.SRIOV_PROFILE_MAX_CAPACITY}={max_capacity} is below "
                f"{contract.SRIOV_PROFILE_CAPACITY}={capacity}"
            )
        ports = self.get_mappings(agent)[physnet]
        if redundancy > len(ports):
            raise BadProfile(
                f"{redundancy} backing VFs asked for, but physical network {physnet!r} has "
                f"{len(ports)} physical port(s) on this host"
            )
        return contract.pvm_sriov_vif_details(
            physnet, ports, self.segment_vlan(segment), redundancy, capacity, max_capacity
        )
