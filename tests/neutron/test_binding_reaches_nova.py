"""A binding made by real ML2 is what the Nova drivers' plugging code reads:
the ports are bound here and handed, as JSON, to that code in a Nova process."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

from neutron_lib.api.definitions import portbindings

from ibmvirt import contract
from tests.neutron.base import Ml2TestCase
from tests.neutron.novalink import NovaLinkAgentTestCase, small_inventory

REPO = pathlib.Path(__file__).resolve().parents[2]
VSWITCH = "3ea09d2a-b18d-11e6-89a4-42f2e9ef1641"


def plug_in_nova(ports: list[dict], novalink: dict | None = None) -> list[dict]:
    out = subprocess.run(
        [sys.executable, "-m", "tests.neutron.nova_side"],
        input=json.dumps({"ports": ports, "novalink": novalink}),
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


#: The label of SR-IOV ports 1/0 and 2 (link up) and 1/1 (link down) here (ML2's
#: test base has VLANs 1-100 on physnet1).
PHYSNET = "physnet1"


class TestSriovBindingReachesNova(NovaLinkAgentTestCase):
    """pvm_sriov: ML2 binds with the SR-IOV agent's mappings of an emulated host;
    the Nova PowerVM driver's VIF code plugs the binding into an LPAR there."""

    inventory = small_inventory(
        host__sriov_port_labels={
            "1/0": PHYSNET,
            "1/1": PHYSNET,
            "1/2": PHYSNET,
            "2/0": "physnet-stor",
        }
    )

    def setUp(self):
        super().setUp()
        # What the SR-IOV agent reports: every port by label (link state is the host's).
        mappings: dict[str, list[str]] = {}
        for adapter in self.host.asio_config.sriov_adapters:
            for port in adapter.phys_ports:
                mappings.setdefault(port.label or "default", []).append(port.loc_code)
        self.locs = mappings[PHYSNET]
        self.register_agent(
            contract.AGENT_TYPE_PVM_SRIOV,
            contract.AGENT_BINARY_PVM_SRIOV,
            "host1",
            {
                contract.AGENT_CONF_BRIDGE_MAPPINGS: mappings,
                contract.AGENT_CONF_DEFAULT_REDUNDANCY: 1,
                contract.AGENT_CONF_DEFAULT_CAPACITY: None,
            },
        )
        self.lpar = self.make_lpar()

    def _novalink(self) -> dict:
        return {"port": self.novalink.port, "lpar": self.lpar.uuid}

    def test_a_redundant_vnic_is_plugged_as_ml2_bound_it(self):
        net = self.make_network("vlan", physnet=PHYSNET, seg_id=42)
        profile = {contract.SRIOV_PROFILE_REDUNDANCY: 2, contract.SRIOV_PROFILE_CAPACITY: 0.1}
        port = self.make_port(net, "host1", vnic_type=portbindings.VNIC_DIRECT, profile=profile)
        self.assertEqual(contract.VIF_TYPE_PVM_SRIOV, port[portbindings.VIF_TYPE])
        self.assertEqual(3, len(self.locs))
        (plugged,) = plug_in_nova([port], self._novalink())
        self.assertEqual(contract.pvm_mac(port["mac_address"]), plugged["mac"])
        self.assertEqual(42, plugged["vlan"])
        # The two ports with link up, 10 % each, failover order 1 then 2.
        self.assertEqual([[1, 0], [1, 2]], [b[:2] for b in plugged["backing"]])
        self.assertEqual([0.1, 0.1], [b[2] for b in plugged["backing"]])
        self.assertEqual({1, 2}, {b[3] for b in plugged["backing"]})

    def test_ml2_binds_three_ports_but_the_host_has_two_with_link_up(self):
        """ML2 sees the agent's three labelled ports; only the host knows one
        is down: Nova refuses before creating anything."""
        net = self.make_network("flat", physnet=PHYSNET)
        profile = {contract.SRIOV_PROFILE_REDUNDANCY: 3}
        port = self.make_port(net, "host1", vnic_type=portbindings.VNIC_DIRECT, profile=profile)
        self.assertEqual(contract.VIF_TYPE_PVM_SRIOV, port[portbindings.VIF_TYPE])
        start = len(self.nl_control.log.records())
        (plugged,) = plug_in_nova([port], self._novalink())
        self.assertIn(
            "only 2 SR-IOV physical port(s) labelled 'physnet1' with link up",
            plugged["refused"],
        )
        writes = [
            r
            for r in self.nl_control.log.records()[start:]
            if r.method in ("PUT", "POST", "DELETE") and "Logon" not in r.path
        ]
        self.assertEqual([], writes)
