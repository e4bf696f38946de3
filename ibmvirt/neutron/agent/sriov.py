"""``ibmvirt-powervm-sriov-agent``: SR-IOV vNIC ports (vnic_type direct).

Nova creates the vNIC itself, on the physical ports the binding names; this
agent reports the host's SR-IOV physical ports by label (the label is the
physical network, unlabelled ports are ``default``) with the default
redundancy and capacity, so the pvm_sriov mechanism driver can bind, and
reports each vNIC's port up while the vNIC exists. Labels are re-read when
NovaLink says a port's configuration changed, on every port_update from the
server and at each heal pass.
"""

from __future__ import annotations

from oslo_log import log as logging
from pypowervm.wrappers import iocard as pvm_card
from pypowervm.wrappers import logical_partition as pvm_lpar
from pypowervm.wrappers import managed_system as pvm_ms

from ibmvirt import contract
from ibmvirt.neutron.agent import base as agent_base
from ibmvirt.neutron.agent import powervm
from ibmvirt.neutron.agent.devices import Device

LOG = logging.getLogger(__name__)

#: The physical network of unlabelled ports (networking-powervm's).
DEFAULT_LABEL = "default"
#: In the detail of the event NovaLink sends when a physical port's
#: configuration (its label) changes (networking-powervm's test for it).
CONFIG_CHANGE = "SRIOVPhysicalPort.ConfigChange"


def port_mappings(system: pvm_ms.System) -> dict[str, list[str]]:
    """{label or 'default': [physical port location codes]} of a managed system."""
    mappings: dict[str, list[str]] = {}
    for adapter in system.asio_config.sriov_adapters:
        for port in adapter.phys_ports:
            mappings.setdefault(port.label or DEFAULT_LABEL, []).append(port.loc_code)
    return mappings


class SRIOVAgentManager(powervm.PowerVMAgentManager):
    vif_type = contract.VIF_TYPE_PVM_SRIOV
    adapter_kind = pvm_card.VNIC.schema_type
    agent_id_prefix = "sriov-agent"

    def setup(self) -> None:
        agent = self.conf.AGENT
        if agent.vnic_vf_capacity is not None and agent.vnic_vf_capacity <= 0.0:
            raise agent_base.AgentStartupError(
                f"[AGENT] vnic_vf_capacity = {agent.vnic_vf_capacity}: a VF needs a share above "
                "0.0; unset it to use each port's minimum granularity"
            )
        self.set_configuration(contract.AGENT_CONF_DEFAULT_REDUNDANCY, agent.vnic_required_vfs)
        self.set_configuration(contract.AGENT_CONF_DEFAULT_CAPACITY, agent.vnic_vf_capacity)
        self.bridge_mappings: dict[str, list[str]] = {}
        self.refresh_mappings()
        if not self.bridge_mappings:
            LOG.warning(
                "This host has no SR-IOV physical port in shared (SR-IOV) mode: no "
                "pvm_sriov port can be bound here until one is"
            )

    def refresh_mappings(self) -> None:
        """Re-read the port labels (one request) and report them if they changed."""
        system = pvm_ms.System.get(self.adapter, uuid=self.host_uuid)
        mappings = port_mappings(system)
        if mappings != self.bridge_mappings:
            LOG.info("SR-IOV physical ports by label: %s", mappings)
            self.bridge_mappings = mappings
            self.set_configuration(contract.AGENT_CONF_BRIDGE_MAPPINGS, mappings)

    def refresh_later(self) -> None:
        self.worker.submit("mappings", self.refresh_mappings)

    # -- adapters ---------------------------------------------------------------------
    def list_adapters(self, lpar_uuid: str) -> list:
        return pvm_card.VNIC.get(self.adapter, parent_type=pvm_lpar.LPAR, parent_uuid=lpar_uuid)

    def read_adapter(self, lpar_uuid: str, uuid: str):
        return pvm_card.VNIC.get(
            self.adapter, uuid=uuid, parent_type=pvm_lpar.LPAR, parent_uuid=lpar_uuid
        )

    def device_of(self, lpar_uuid: str, vnic) -> Device | None:
        return Device(powervm.norm_mac(vnic.mac), lpar_uuid, vnic.uuid.upper(), None, (vnic.pvid,))

    def handle_event(self, event) -> None:
        if CONFIG_CHANGE in (event.detail or ""):
            self.refresh_later()

    def port_updated(self, port: dict) -> None:
        self.refresh_later()

    def after_heal(self) -> None:
        self.refresh_mappings()

    def plug_interface(self, network_id, network_segment, device, device_owner):
        """Nova created the vNIC on the ports the binding named: it is up."""
        return True
