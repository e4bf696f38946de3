"""The DPM agent in Neutron's agent loop against real ML2, reading an HMC emulator.

A port is bound on host1, the Nova side creates its NIC on the HMC as the DPM
driver does, and the agent's report takes the port ACTIVE through ML2; what
the operator sees is the port status and the agent's heartbeat.
"""

from __future__ import annotations

import logging

import fixtures
from neutron_lib.api.definitions import portbindings
from oslo_config import cfg

from ibmvirt import contract
from ibmvirt.emulators.hmc import inventories
from ibmvirt.neutron.agent import dpm
from tests.neutron.base import Ml2TestCase
from tests.neutron.dpm_fixtures import DpmHmc

AGENT_LOG = "ibmvirt.neutron.agent.dpm"


class DpmAgentTestCase(Ml2TestCase):
    inventory = inventories.Z15
    #: Another HMC version managing the same CPC (e.g. "2.16.0").
    hmc_version: str | None = None

    def setUp(self):
        super().setUp()
        inventory = self.inventory
        if self.hmc_version:
            tmp = self.useFixture(fixtures.TempDir()).path
            inventory = inventories.with_hmc_version(inventory, self.hmc_version, "4.10", tmp)
        self.hmc = self.useFixture(DpmHmc(inventory, inventories.ALL[self.inventory]))
        self.ids = self.hmc.ids
        self.log = self.useFixture(fixtures.FakeLogger(name=AGENT_LOG, level=logging.INFO))
        self.hmc.configure(
            cfg.CONF,
            [
                f"physnet1:{self.ids.osa_adapter}",
                f"physnet2:{self.ids.hipersockets_adapter}:0",
            ],
        )
        self.manager = dpm.make_manager(cfg.CONF)
        self.start_agent(self.manager, contract.AGENT_TYPE_DPM, contract.AGENT_BINARY_DPM)
        self.net = self.make_network("flat", "physnet1")

    def bound_port(self, device_id: str = "vm-1") -> dict:
        port = self.make_port(self.net, "host1", device_id=device_id)
        self.assertEqual(contract.VIF_TYPE_DPM_VSWITCH, port[portbindings.VIF_TYPE])
        return port

    def nic_for(self, port: dict, partition, host: str = "host1"):
        vswitch = port[portbindings.VIF_DETAILS][contract.VIF_DETAILS_DPM_VSWITCH_ID]
        return self.hmc.create_nic(partition, port["id"], vswitch, host, port["mac_address"])


class TestPortStatus(DpmAgentTestCase):
    def test_nic_of_a_never_started_partition_takes_its_port_active(self):
        port = self.bound_port()
        self.assertEqual(
            self.ids.vswitch_osa_port0,
            port[portbindings.VIF_DETAILS][contract.VIF_DETAILS_DPM_VSWITCH_ID],
        )
        self.run_agent_once()
        self.assertEqual("DOWN", self.port(port["id"])["status"])

        part = self.hmc.partition()  # Nova waits for vif-plugged before it starts it
        self.nic_for(port, part)
        self.assertEqual("stopped", part.get_property("status"))
        self.wait_for_port_status(port["id"], "ACTIVE")

    def test_deleted_nic_takes_its_port_down(self):
        port = self.bound_port()
        part = self.hmc.partition(start=True)
        nic = self.nic_for(port, part)
        self.wait_for_port_status(port["id"], "ACTIVE")
        nic.delete()
        self.wait_for_port_status(port["id"], "DOWN")

    def test_nic_of_another_host_is_ignored(self):
        ours, theirs = self.bound_port("vm-1"), self.bound_port("vm-2")
        part = self.hmc.partition()
        self.nic_for(theirs, part, host="host2")
        self.nic_for(ours, part)
        self.wait_for_port_status(ours["id"], "ACTIVE")
        info = self.run_agent_once()
        self.assertEqual({ours["id"]}, info["current"])
        self.assertEqual("DOWN", self.port(theirs["id"])["status"])

    def test_nic_on_an_unmapped_virtual_switch_is_ignored(self):
        port = self.bound_port()
        self.hmc.create_nic(self.hmc.partition(), port["id"], self.ids.vswitch_osa_port1)
        self.assertEqual(set(), self.run_agent_once()["current"])
        self.assertEqual("DOWN", self.port(port["id"])["status"])


class TestPortStatusOnHmc216(TestPortStatus):
    """The same through List Partitions with nic-uris (HMC 2.16.0 and later)."""

    hmc_version = "2.16.0"

    def test_reads_partitions_not_the_inventory(self):
        self.assertTrue(self.manager.features.list_additional_properties)
        self.run_agent_once()
        self.assertEqual(0, self.hmc.emu.request_count("POST", r"^/api/services/inventory$"))


class TestHmcOutage(DpmAgentTestCase):
    def setUp(self):
        super().setUp()
        self.port_ = self.bound_port()
        self.nic_for(self.port_, self.hmc.partition(start=True))
        self.wait_for_port_status(self.port_["id"], "ACTIVE")

    def test_hmc_down_ports_down_agent_running_then_recovers(self):
        self.hmc.emu.stop(final=False)  # connections refused; sessions end
        self.wait_for_port_status(self.port_["id"], "DOWN")
        self.assertIn("reporting the ports of host host1 down until it answers", self.log.output)
        self.report_state()  # the agent still talks to neutron-server
        self.hmc.emu.start()  # same port, same CA, same NICs
        self.wait_for_port_status(self.port_["id"], "ACTIVE")
        self.assertIn("HMC answers again", self.log.output)

    #: The request of a poll that reads the NICs.
    failing_read = r"/api/services/inventory"

    def test_http_5xx_takes_ports_down_for_one_poll(self):
        self.hmc.emu.inject_fault(None, self.failing_read, status=503, times=1)
        self.assertEqual(set(), self.run_agent_once()["current"])
        self.assertEqual("DOWN", self.port(self.port_["id"])["status"])
        self.wait_for_port_status(self.port_["id"], "ACTIVE")

    def test_session_expiry_is_a_new_logon_not_an_outage(self):
        self.hmc.emu.expire_sessions()
        self.assertEqual({self.port_["id"]}, self.run_agent_once()["current"])
        self.assertEqual("ACTIVE", self.port(self.port_["id"])["status"])
        self.assertNotIn("down until it answers", self.log.output)

    def test_vanished_virtual_switch_takes_its_nics_down_and_is_not_reported(self):
        props = self.hmc.remove_vswitch(self.ids.vswitch_osa_port0)
        self.wait_for_port_status(self.port_["id"], "DOWN")
        self.assertIn(
            f"Physical network physnet1: vswitch {self.ids.vswitch_osa_port0} of "
            "[dpm] physical_network_adapter_mappings line 'physnet1:",
            self.log.output,
        )
        self.report_state()
        mappings = self.reported_configurations(contract.AGENT_TYPE_DPM)[
            contract.AGENT_CONF_DPM_MAPPINGS
        ]
        self.assertEqual(["physnet2"], list(mappings))

        self.hmc.restore_vswitch(props)
        self.wait_for_port_status(self.port_["id"], "ACTIVE")
        self.report_state()
        mappings = self.reported_configurations(contract.AGENT_TYPE_DPM)[
            contract.AGENT_CONF_DPM_MAPPINGS
        ]
        self.assertEqual({"physnet1", "physnet2"}, set(mappings))


class TestHmcOutageOnHmc216(TestHmcOutage):
    """The same outages where the agent lists partitions and reads NICs in
    bulk (HMC 2.16.0) instead of one Get Inventory."""

    hmc_version = "2.16.0"
    failing_read = r"/partitions\?.*additional-properties=nic-uris"


class TestHeartbeat(DpmAgentTestCase):
    def test_heartbeat_carries_backings_and_vlan_support(self):
        conf = self.reported_configurations(contract.AGENT_TYPE_DPM)
        self.assertEqual(
            {
                "physnet1": contract.dpm_backing(vswitch_id=self.ids.vswitch_osa_port0),
                "physnet2": contract.dpm_backing(vswitch_id=self.ids.vswitch_hipersockets),
            },
            conf[contract.AGENT_CONF_DPM_MAPPINGS],
        )
        self.assertIs(True, conf[contract.AGENT_CONF_DPM_VLAN])

    def test_vlan_network_binds_on_z15(self):
        port = self.make_port(self.make_network("vlan", "physnet1", 42), "host1")
        self.assertEqual(contract.VIF_TYPE_DPM_VSWITCH, port[portbindings.VIF_TYPE])
        self.assertEqual("42", port[portbindings.VIF_DETAILS][contract.VIF_DETAILS_VLAN])


class TestZ13(DpmAgentTestCase):
    inventory = inventories.Z13

    def test_z13_reports_no_nic_vlan_and_flat_ports_go_active(self):
        conf = self.reported_configurations(contract.AGENT_TYPE_DPM)
        self.assertIs(False, conf[contract.AGENT_CONF_DPM_VLAN])
        vlan = self.make_port(self.make_network("vlan", "physnet1", 42), "host1")
        self.assertEqual(portbindings.VIF_TYPE_BINDING_FAILED, vlan[portbindings.VIF_TYPE])

        port = self.bound_port("vm-2")
        self.nic_for(port, self.hmc.partition())  # z13: the HMC picks the MAC
        self.wait_for_port_status(port["id"], "ACTIVE")
