"""The three mechanism drivers inside Neutron's real ML2 plugin: what binds,
what is refused, and the vif_details Nova receives."""

from __future__ import annotations

from neutron_lib.api.definitions import portbindings

from ibmvirt import contract
from tests.neutron.base import BINDING_FAILED, Ml2TestCase

VIF_TYPE = portbindings.VIF_TYPE
VIF_DETAILS = portbindings.VIF_DETAILS
NB_UUID = "2b0d3e55-6f3a-3a8e-a8d6-1a2b3c4d5e6f"
LOCS = ["U78CB.001.WZS007Y-P1-C10-T1", "U78CB.001.WZS007Y-P1-C11-T1"]
VSWITCH = "3ea09d2a-b18d-11e6-89a4-42f2e9ef1641"


def details(port: dict) -> dict:
    """vif_details as our driver set them (ML2 adds which driver bound the port)."""
    return {k: v for k, v in port[VIF_DETAILS].items() if k != "bound_drivers"}


class TestPvmSea(Ml2TestCase):
    def setUp(self):
        super().setUp()
        self.sea_agent = self.register_agent(
            contract.AGENT_TYPE_PVM_SEA,
            contract.AGENT_BINARY_PVM_SEA,
            "host1",
            {contract.AGENT_CONF_BRIDGE_MAPPINGS: {"physnet1": NB_UUID}},
        )

    def test_vlan_port_carries_its_vlan(self):
        port = self.make_port(self.make_network("vlan", seg_id=42), "host1")
        self.assertEqual(contract.VIF_TYPE_PVM_SEA, port[VIF_TYPE])
        self.assertEqual({"port_filter": False, "connectivity": "l2", "vlan": "42"}, details(port))

    def test_vlan_at_the_top_of_the_range(self):
        port = self.make_port(self.make_network("vlan", seg_id=100), "host1")
        self.assertEqual("100", port[VIF_DETAILS]["vlan"])

    def test_flat_port_has_no_vlan_from_an_agent_that_reports_no_seas(self):
        port = self.make_port(self.make_network("flat"), "host1")
        self.assertEqual(contract.VIF_TYPE_PVM_SEA, port[VIF_TYPE])
        self.assertIsNone(port[VIF_DETAILS]["vlan"])
        self.assertNotIn("vswitch", port[VIF_DETAILS])

    def test_the_physnets_sea_gives_the_switch_and_the_flat_vlan(self):
        self.register_agent(
            contract.AGENT_TYPE_PVM_SEA,
            contract.AGENT_BINARY_PVM_SEA,
            "host3",
            {
                contract.AGENT_CONF_BRIDGE_MAPPINGS: {"physnet1": NB_UUID, "physnet2": "nb-2"},
                contract.AGENT_CONF_SEA_BRIDGES: {
                    "physnet1": {"vswitch": "ETHERNET1", "pvid": 7},
                    "physnet2": {"vswitch": "ETHERNET2", "pvid": 1},
                },
            },
        )
        flat = self.make_port(self.make_network("flat"), "host3")
        self.assertEqual(
            {"port_filter": False, "connectivity": "l2", "vlan": "7", "vswitch": "ETHERNET1"},
            details(flat),
        )
        vlan = self.make_port(self.make_network("vlan", "physnet2", 250), "host3")
        self.assertEqual(("250", "ETHERNET2"), (details(vlan)["vlan"], details(vlan)["vswitch"]))

    def test_refusals(self):
        cases = {
            "physnet not mapped": (self.make_network("vlan", "physnet2", 250), "host1", "normal"),
            "no agent on host": (self.make_network("vlan", seg_id=43), "host2", "normal"),
            "vnic type direct": (self.make_network("vlan", seg_id=44), "host1", "direct"),
        }
        for why, (net, host, vnic) in cases.items():
            port = self.make_port(net, host, vnic_type=vnic)
            self.assertEqual(BINDING_FAILED, port[VIF_TYPE], why)

    def test_dead_agent_does_not_bind(self):
        self.register_agent(
            contract.AGENT_TYPE_PVM_SEA,
            contract.AGENT_BINARY_PVM_SEA,
            "host3",
            {contract.AGENT_CONF_BRIDGE_MAPPINGS: {"physnet1": NB_UUID}},
            alive=False,
        )
        port = self.make_port(self.make_network("vlan", seg_id=45), "host3")
        self.assertEqual(BINDING_FAILED, port[VIF_TYPE])

    def test_tunnel_networks_are_not_bound(self):
        port = self.make_port(self.make_network("vxlan", physnet=None, seg_id=1000), "host1")
        self.assertEqual(BINDING_FAILED, port[VIF_TYPE])

    def test_single_unmapped_sea_bridges_every_physnet(self):
        self.register_agent(
            contract.AGENT_TYPE_PVM_SEA,
            contract.AGENT_BINARY_PVM_SEA,
            "host4",
            {contract.AGENT_CONF_BRIDGE_MAPPINGS: {"default": NB_UUID}},
        )
        port = self.make_port(self.make_network("vlan", "physnet2", 250), "host4")
        self.assertEqual(contract.VIF_TYPE_PVM_SEA, port[VIF_TYPE])
        self.assertEqual("250", port[VIF_DETAILS]["vlan"])


class TestPvmSriov(Ml2TestCase):
    def setUp(self):
        super().setUp()
        self.register_agent(
            contract.AGENT_TYPE_PVM_SRIOV,
            contract.AGENT_BINARY_PVM_SRIOV,
            "host1",
            {
                contract.AGENT_CONF_BRIDGE_MAPPINGS: {"physnet1": LOCS},
                contract.AGENT_CONF_DEFAULT_REDUNDANCY: 2,
                contract.AGENT_CONF_DEFAULT_CAPACITY: 0.02,
            },
        )

    def test_agent_defaults_without_profile(self):
        port = self.make_port(self.make_network("vlan", seg_id=7), "host1", vnic_type="direct")
        self.assertEqual(contract.VIF_TYPE_PVM_SRIOV, port[VIF_TYPE])
        self.assertEqual(
            {
                "port_filter": False,
                "connectivity": "l2",
                "vlan": "7",
                "physical_network": "physnet1",
                "physical_ports": LOCS,
                "redundancy": 2,
                "capacity": 0.02,
                "maxcapacity": None,
            },
            details(port),
        )

    def test_profile_overrides_defaults(self):
        profile = {"vnic_required_vfs": 1, "capacity": "0.5", "maxcapacity": 1.0}
        port = self.make_port(
            self.make_network("flat"), "host1", vnic_type="direct", profile=profile
        )
        details = port[VIF_DETAILS]
        self.assertEqual(
            (1, 0.5, 1.0, None),
            (details["redundancy"], details["capacity"], details["maxcapacity"], details["vlan"]),
        )

    def test_redundancy_of_exactly_the_port_count_binds(self):
        port = self.make_port(
            self.make_network("flat"), "host1", vnic_type="direct", profile={"vnic_required_vfs": 2}
        )
        self.assertEqual(2, port[VIF_DETAILS]["redundancy"])

    def test_profiles_the_firmware_cannot_take_fail_the_binding(self):
        bad = [
            {"vnic_required_vfs": 3},  # two physical ports only
            {"vnic_required_vfs": 0},
            {"vnic_required_vfs": "two"},
            {"capacity": 0},
            {"capacity": 1.5},
            {"capacity": "x"},
            {"capacity": 0.5, "maxcapacity": 0.4},
        ]
        net = self.make_network("flat")
        for i, profile in enumerate(bad):
            port = self.make_port(
                net, "host1", vnic_type="direct", profile=profile, device_id=f"vm-{i}"
            )
            self.assertEqual(BINDING_FAILED, port[VIF_TYPE], profile)

    def test_capacity_of_exactly_one_binds(self):
        port = self.make_port(
            self.make_network("flat"), "host1", vnic_type="direct", profile={"capacity": 1}
        )
        self.assertEqual(1.0, port[VIF_DETAILS]["capacity"])

    def test_normal_vnic_and_unlabelled_physnet_are_refused(self):
        normal = self.make_port(self.make_network("vlan", seg_id=8), "host1")
        self.assertEqual(BINDING_FAILED, normal[VIF_TYPE])
        other = self.make_port(
            self.make_network("vlan", "physnet2", 201), "host1", vnic_type="direct"
        )
        self.assertEqual(BINDING_FAILED, other[VIF_TYPE])


class TestDpm(Ml2TestCase):
    def register_dpm(self, host, mappings, vlan):
        return self.register_agent(
            contract.AGENT_TYPE_DPM,
            contract.AGENT_BINARY_DPM,
            host,
            {contract.AGENT_CONF_DPM_MAPPINGS: mappings, contract.AGENT_CONF_DPM_VLAN: vlan},
        )

    def setUp(self):
        super().setUp()
        self.register_dpm("subset1", {"physnet1": contract.dpm_backing(vswitch_id=VSWITCH)}, True)

    def test_flat_port_on_a_virtual_switch(self):
        port = self.make_port(self.make_network("flat"), "subset1")
        self.assertEqual(contract.VIF_TYPE_DPM_VSWITCH, port[VIF_TYPE])
        self.assertEqual(
            {"port_filter": False, "connectivity": "l2", "object_id": VSWITCH}, details(port)
        )

    def test_each_binding_gets_its_own_vlan(self):
        """networking-dpm mutated one shared dict: the second port's VLAN showed on the first."""
        first = self.make_port(self.make_network("vlan", seg_id=11), "subset1")
        second = self.make_port(self.make_network("vlan", seg_id=12), "subset1", device_id="vm-2")
        flat = self.make_port(self.make_network("flat"), "subset1", device_id="vm-3")
        self.assertEqual("11", self.port(first["id"])[VIF_DETAILS]["vlan"])
        self.assertEqual("12", second[VIF_DETAILS]["vlan"])
        self.assertNotIn("vlan", flat[VIF_DETAILS])

    def test_vlan_refused_where_the_cpc_has_no_nic_vlan(self):
        self.register_dpm("z13", {"physnet1": contract.dpm_backing(vswitch_id=VSWITCH)}, False)
        port = self.make_port(self.make_network("vlan", seg_id=13), "z13")
        self.assertEqual(BINDING_FAILED, port[VIF_TYPE])
        flat = self.make_port(self.make_network("flat"), "z13", device_id="vm-2")
        self.assertEqual(contract.VIF_TYPE_DPM_VSWITCH, flat[VIF_TYPE])

    def test_partition_link_and_adapter_port_backings(self):
        link = "5b3a2f10-0000-4000-8000-00000000000a"
        port_uri = "/api/adapters/7c2b1a00-0000-4000-8000-000000000001/network-ports/0"
        self.register_dpm("z16", {"physnet1": contract.dpm_backing(partition_link_id=link)}, True)
        self.register_dpm(
            "z17", {"physnet1": contract.dpm_backing(adapter_port_uri=port_uri)}, True
        )
        on_link = self.make_port(self.make_network("vlan", seg_id=14), "z16")
        self.assertEqual(
            {"port_filter": False, "connectivity": "l2", "partition_link_id": link, "vlan": "14"},
            details(on_link),
        )
        on_port = self.make_port(self.make_network("flat"), "z17", device_id="vm-2")
        self.assertEqual(port_uri, on_port[VIF_DETAILS]["adapter_port_uri"])
        self.assertNotIn("object_id", on_port[VIF_DETAILS])

    def test_refusals(self):
        self.register_dpm("broken", {"physnet1": {"object_id": VSWITCH, "bogus": "x"}}, True)
        self.register_dpm("dead", {"physnet1": contract.dpm_backing(vswitch_id=VSWITCH)}, True)
        self.driver.update_agent(
            self.context,
            self.driver.get_agents(self.context, filters={"host": ["dead"]})[0]["id"],
            {"agent": {"heartbeat_timestamp": "2000-01-01 00:00:00"}},
        )
        cases = {
            "physnet not mapped": (self.make_network("flat", "physnet2"), "subset1", "normal"),
            "vnic type direct": (self.make_network("flat"), "subset1", "direct"),
            "no agent on host": (self.make_network("flat"), "subset9", "normal"),
            "agent reports a bad backing": (self.make_network("flat"), "broken", "normal"),
            "agent dead": (self.make_network("flat"), "dead", "normal"),
        }
        for i, (why, (net, host, vnic)) in enumerate(cases.items()):
            port = self.make_port(net, host, vnic_type=vnic, device_id=f"vm-{i}")
            self.assertEqual(BINDING_FAILED, port[VIF_TYPE], why)
