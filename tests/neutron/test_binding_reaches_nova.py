"""A binding made by real ML2 is what the Nova drivers' plugging code reads:
the ports are bound here and handed, as JSON, to that code in a Nova process."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

from ibmvirt import contract
from tests.neutron.base import Ml2TestCase

REPO = pathlib.Path(__file__).resolve().parents[2]
VSWITCH = "3ea09d2a-b18d-11e6-89a4-42f2e9ef1641"


def plug_in_nova(ports: list[dict]) -> list[dict]:
    out = subprocess.run(
        [sys.executable, "-m", "tests.neutron.nova_side"],
        input=json.dumps(ports),
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=True,
    )
    return json.loads(out.stdout)


class TestBindingReachesNova(Ml2TestCase):
    def setUp(self):
        super().setUp()
        self.register_agent(
            contract.AGENT_TYPE_PVM_SEA,
            contract.AGENT_BINARY_PVM_SEA,
            "power1",
            {contract.AGENT_CONF_BRIDGE_MAPPINGS: {"physnet1": "nb-uuid"}},
        )
        self.register_agent(
            contract.AGENT_TYPE_DPM,
            contract.AGENT_BINARY_DPM,
            "subset1",
            {
                contract.AGENT_CONF_DPM_MAPPINGS: {
                    "physnet1": contract.dpm_backing(vswitch_id=VSWITCH)
                },
                contract.AGENT_CONF_DPM_VLAN: True,
            },
        )

    def test_bindings_plug_as_bound(self):
        vlan_net = self.make_network("vlan", seg_id=100)
        ports = [
            self.make_port(vlan_net, "power1", device_id="vm-1"),
            self.make_port(self.make_network("flat"), "power1", device_id="vm-2"),
            self.make_port(self.make_network("flat"), "subset1", device_id="vm-3"),
            self.make_port(vlan_net, "subset1", device_id="vm-4"),
        ]
        sea_vlan, sea_flat, dpm_flat, dpm_vlan = plug_in_nova(ports)
        self.assertEqual({"vlan": 100, "mac": contract.pvm_mac(ports[0]["mac_address"])}, sea_vlan)
        # flat: the client adapter goes on the SEA's untagged PVID.
        self.assertEqual(1, sea_flat["vlan"])
        self.assertEqual({"vswitch_id": VSWITCH, "mac": ports[2]["mac_address"]}, dpm_flat)
        # ML2 binds the VLAN (the agent says the CPC can); the Nova DPM driver
        # has no VLAN NICs yet and refuses the port before anything is created.
        self.assertIn("flat networks only", dpm_vlan["refused"])
