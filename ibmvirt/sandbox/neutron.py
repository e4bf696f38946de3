"""Neutron with an L2 agent, as both drivers' sandboxes need it.

Nova's NeutronFixture with what the mechanism driver and agent add: a bound
port gets the driver's vif_type and vif_details and stays DOWN until the
"agent" sees the hypervisor side of it (a subclass says how); then the port
goes ACTIVE and Nova receives ``network-vif-plugged`` through its API, as
from a real Neutron server. As a real agent and ML2 do, an ACTIVE port whose
hypervisor side vanishes goes DOWN (``network-vif-unplugged``), and one whose
hypervisor side was re-created (the agent processes the new device: ML2 puts
the port in BUILD, then ACTIVE again) gets ``network-vif-plugged`` once more;
that is the event a rebuild's spawn waits for.
"""

from __future__ import annotations

import threading

from nova.tests import fixtures as nova_fixtures
from nova.tests.functional.api import client as api_client
from oslo_log import log as logging

LOG = logging.getLogger(__name__)


class AgentNeutron(nova_fixtures.NeutronFixture):
    """Subclasses implement :meth:`bind` and :meth:`agent_sees`."""

    agent_name = "l2-agent"

    def __init__(self, test):
        super().__init__(test)
        #: Port id -> identities of the hypervisor objects the agent saw when
        #: it reported the port up (see :meth:`agent_sees`).
        self._plugged: dict[str, frozenset[str]] = {}
        self._stop = threading.Event()
        #: False plays an agent that is down: ports are never reported up.
        self.agent_alive = True
        #: Called with the port just before it is reported up (tests use it to
        #: act in the middle of a spawn, e.g. expire the management sessions).
        self.before_plug = None

    def setUp(self):
        super().setUp()
        # NeutronFixture turns vif-plugged waiting off; our drivers' flows use it.
        self.test.flags(vif_plugging_timeout=60, vif_plugging_is_fatal=True)
        agent = threading.Thread(target=self._agent_loop, name=self.agent_name, daemon=True)
        agent.start()
        self.addCleanup(agent.join, 5)
        self.addCleanup(self._stop.set)

    def bind(self, port: dict) -> None:
        """Set the port's binding:vif_type and binding:vif_details."""
        raise NotImplementedError

    def agent_sees(self, ports: list[dict]) -> set[str] | dict[str, frozenset[str]]:
        """Ids of those ports whose hypervisor side the agent can see now; or,
        by port id, the identities (UUIDs) of the objects it sees: when none of
        those it reported a port up with is left, the device was re-created."""
        raise NotImplementedError

    def create_port(self, body=None):
        """Neutron's default base_mac (fa:16:3e) gives locally administered MACs."""
        created = super().create_port(body)["port"]
        if created["mac_address"].startswith("00:"):
            created["mac_address"] = "fa:16:3e" + created["mac_address"][8:]
            self._ports[created["id"]]["mac_address"] = created["mac_address"]
        return {"port": created}

    def update_port(self, port_id, body=None):
        port_body = (body or {}).get("port", {})
        if port_body.get("binding:host_id"):
            port = self._ports[port_id]
            self.bind(port)
            if port_id not in self._plugged:
                port["status"] = "DOWN"
        return super().update_port(port_id, body)

    def _agent_loop(self) -> None:
        while not self._stop.wait(0.2):
            try:
                self._report_new_ports()
            except Exception:  # noqa: BLE001  (keep polling, as an agent would)
                LOG.exception("%s emulation: reading the emulated machine failed", self.agent_name)

    def _seen(self, ports: list[dict]) -> dict[str, frozenset[str]]:
        seen = self.agent_sees(ports)
        if isinstance(seen, dict):
            return seen
        return dict.fromkeys(seen, frozenset())

    def _report_new_ports(self) -> None:
        if not self.agent_alive:
            return
        ports = [p for p in list(self._ports.values()) if p.get("device_id")]
        waiting = [p for p in ports if p["id"] not in self._plugged and p.get("status") == "DOWN"]
        up = [p for p in ports if p["id"] in self._plugged and p.get("status") == "ACTIVE"]
        if not waiting and not up:
            return
        seen = self._seen(waiting + up)
        for port in up:
            before = self._plugged[port["id"]]
            if port["id"] not in seen:
                # The device is gone: update_device_down, ACTIVE -> DOWN.
                del self._plugged[port["id"]]
                port["status"] = "DOWN"
                self._tell_nova(port, "network-vif-unplugged")
            elif before and not before & seen[port["id"]]:
                # Re-created: the agent processes it again (BUILD -> ACTIVE).
                self._plugged[port["id"]] = seen[port["id"]]
                self._tell_nova(port, "network-vif-plugged")
        for port in waiting:
            if port["id"] not in seen:
                continue
            self._plugged[port["id"]] = seen[port["id"]]
            if self.before_plug is not None:
                self.before_plug(port)
            port["status"] = "ACTIVE"
            self._tell_nova(port, "network-vif-plugged")

    def _tell_nova(self, port: dict, event: str) -> None:
        body = {
            "events": [
                {
                    "name": event,
                    "server_uuid": port["device_id"],
                    "tag": port["id"],
                    "status": "completed",
                }
            ]
        }
        try:
            self.test.admin_api.api_post("/os-server-external-events", body)
        except api_client.OpenStackApiNotFoundException:
            # The server went away meanwhile (Neutron's notifier logs and drops it).
            LOG.debug("%s for port %s: server %s is gone", event, port["id"], port["device_id"])
