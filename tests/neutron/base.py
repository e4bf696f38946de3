"""Real ML2 with our mechanism drivers, and our agents talking to it.

``Ml2TestCase`` is Neutron's own ML2 plugin test base (API, plugin, type
drivers, mechanism manager; sqlite in memory) loading ``pvm_sea``,
``pvm_sriov`` and ``dpm`` by their entry-point names, as neutron-server does.

``start_agent`` runs one of our agents' managers inside Neutron's
``CommonAgentLoop`` and connects it to that plugin through real
oslo.messaging RPC on the in-memory ``fake`` transport: the agent's own
PluginApi and PluginReportStateAPI clients reach ML2's endpoints. The loop's
daemon thread is not started; ``run_agent_once`` runs one iteration, so a test
decides when the agent looks.
"""

from __future__ import annotations

import time
from unittest import mock

from neutron.tests.common import helpers
from neutron.tests.unit.plugins.ml2 import test_plugin
from neutron_lib import rpc as n_rpc
from neutron_lib.api.definitions import portbindings
from neutron_lib.api.definitions import provider_net as pnet
from oslo_config import cfg

from ibmvirt.neutron.agent import base as agent_base

# Captured before neutron_lib's RPCFixture mocks it out for each test.
_REAL_CONSUME = n_rpc.Connection.consume_in_threads

PNET_ARGS = (pnet.NETWORK_TYPE, pnet.PHYSICAL_NETWORK, pnet.SEGMENTATION_ID)
BINDING_FAILED = portbindings.VIF_TYPE_BINDING_FAILED


class Ml2TestCase(test_plugin.Ml2PluginV2TestCase):
    """ML2 with ibmvirt's three mechanism drivers (and Neutron's logger)."""

    _mechanism_drivers = ["pvm_sea", "pvm_sriov", "dpm", "logger"]

    def setUp(self):
        super().setUp()
        agent_base.register_neutron_agent_opts(cfg.CONF)
        self._networks: dict = {}

    # -- server side -------------------------------------------------------------
    def make_network(
        self, net_type: str, physnet: str | None = "physnet1", seg_id: int | None = None
    ):
        if net_type == "flat" and (physnet, None) in self._networks:
            return self._networks[(physnet, None)]  # one flat network per physnet
        kw = {pnet.NETWORK_TYPE: net_type}
        if physnet is not None:
            kw[pnet.PHYSICAL_NETWORK] = physnet
        if seg_id is not None:
            kw[pnet.SEGMENTATION_ID] = seg_id
        network = self._make_network(
            self.fmt,
            f"net-{net_type}-{physnet}-{seg_id}",
            True,
            as_admin=True,
            arg_list=PNET_ARGS,
            **kw,
        )["network"]
        if net_type == "flat":
            self._networks[(physnet, None)] = network
        return network

    def make_port(
        self,
        network: dict,
        host: str,
        vnic_type: str = portbindings.VNIC_NORMAL,
        profile: dict | None = None,
        device_id: str = "vm-1",
    ) -> dict:
        """A port bound to ``host`` as Nova binds it (device owner compute:nova)."""
        kw = {
            portbindings.HOST_ID: host,
            portbindings.VNIC_TYPE: vnic_type,
            "device_owner": "compute:nova",
            "device_id": device_id,
        }
        args = (portbindings.HOST_ID, portbindings.VNIC_TYPE)
        res = self._create_port(self.fmt, network["id"], arg_list=args, is_admin=True, **kw)
        body = self.deserialize(self.fmt, res)
        self.assertIn("port", body, body)
        if profile is None:
            return body["port"]
        # Only the service role (Nova) may write binding:profile; ML2 rebinds.
        req = self.new_update_request(
            "ports",
            {"port": {portbindings.PROFILE: profile}},
            body["port"]["id"],
            as_service=True,
        )
        body = self.deserialize(self.fmt, req.get_response(self.api))
        self.assertIn("port", body, body)
        return body["port"]

    def port(self, port_id: str) -> dict:
        return self.driver.get_port(self.context, port_id)

    def register_agent(
        self, agent_type: str, binary: str, host: str, configurations: dict, alive: bool = True
    ) -> dict:
        """An agent's heartbeat as neutron-server stores it (dead: last seen an hour ago)."""
        agent = {
            "binary": binary,
            "host": host,
            "topic": "N/A",
            "agent_type": agent_type,
            "configurations": configurations,
            "start_flag": True,
        }
        registered = helpers._register_agent(agent)
        if not alive:
            helpers.kill_agent(registered["id"])
        return registered

    # -- agent side --------------------------------------------------------------
    def start_agent(self, manager, agent_type: str, binary: str, host: str = "host1"):
        """Run ``manager`` in Neutron's CommonAgentLoop against this plugin over RPC."""
        cfg.CONF.set_override("rpc_response_timeout", 10)  # the RPC fixture sets 0
        cfg.CONF.set_override("report_interval", 0, "AGENT")  # heartbeat by hand
        cfg.CONF.set_override("firewall_driver", "noop", "SECURITYGROUP")
        cfg.CONF.set_override("host", host)
        with mock.patch.object(n_rpc.Connection, "consume_in_threads", _REAL_CONSUME):
            servers = self.driver.start_rpc_listeners()
            self.addCleanup(_stop_servers, servers)
            loop = agent_base.AgentLoop(manager, 0, 10, agent_type, binary)
            with mock.patch.object(loop, "daemon_loop"):
                loop.start()
            self.addCleanup(loop.stop, graceful=False)
        # report_interval=0 also made the state RPC timeout 0.
        loop.state_rpc.timeout = 10
        self._agent_loop = loop
        self._agent_previous = None
        self._agent_sync = True
        loop._report_state()
        self.assertFalse(loop.failed_report_state, "the agent's first heartbeat failed")
        return loop

    def run_agent_once(self) -> dict:
        """One iteration of the agent's daemon loop; returns what it scanned."""
        loop = self._agent_loop
        info = loop.scan_devices(previous=self._agent_previous, sync=self._agent_sync)
        self._agent_sync = False
        if loop._device_info_has_changes(info):
            self._agent_sync = loop.process_network_devices(info)
        self._agent_previous = info
        return info

    def report_state(self) -> None:
        self._agent_loop._report_state()
        self.assertFalse(self._agent_loop.failed_report_state)

    def reported_configurations(self, agent_type: str, host: str = "host1") -> dict:
        agents = self.driver.get_agents(
            self.context, filters={"agent_type": [agent_type], "host": [host]}
        )
        self.assertEqual(1, len(agents), agents)
        return agents[0]["configurations"]

    def wait_for_port_status(self, port_id: str, status: str, timeout: float = 30.0) -> dict:
        """Run agent iterations until the port has ``status`` (events arrive
        on other threads, so a few iterations may be needed)."""
        deadline = time.monotonic() + timeout
        while True:
            self.run_agent_once()
            port = self.port(port_id)
            if port["status"] == status:
                return port
            if time.monotonic() > deadline:
                self.fail(f"port {port_id} is {port['status']}, not {status}, after {timeout} s")
            time.sleep(0.1)


def _stop_servers(servers) -> None:
    for server in servers:
        server.stop()
    for server in servers:
        server.wait()
