"""SR-IOV vNICs (``pvm_sriov`` ports, vnic_type direct) through the Nova API:
boot with redundant backing ports, capacity and VLAN from the binding; a port
the host cannot serve refused before anything is created; a physical network
no host has refused by the scheduler; hot attach and detach."""

from __future__ import annotations

import copy

from oslo_utils import uuidutils

from ibmvirt import contract
from ibmvirt.sandbox import powervm

#: small.yaml labels SR-IOV ports 1/0 (link up) and 1/1 (link down) with it; the
#: tests label 1/2 (link up) too: two ports a vNIC can use, one it cannot.
PHYSNET = "physnet-prod"
VLAN = 3001
#: Requests that create or change something on the emulated host.
_WRITES = ("PUT", "POST", "DELETE")


class _SriovBase(powervm.PowerVMSingleComputeTestBase):
    sriov_port_labels = {"1/2": PHYSNET}

    def setUp(self):
        super().setUp()
        # One compute: a failed build goes to ERROR instead of being rescheduled.
        self.flags(max_attempts=1, group="scheduler")

    def sriov_network(self, physnet: str = PHYSNET) -> dict:
        neutron = self.neutron
        net = copy.deepcopy(neutron.network_2)
        net.update(
            {
                "id": uuidutils.generate_uuid(),
                "provider:physical_network": physnet,
                "provider:segmentation_id": VLAN,
            }
        )
        subnet = copy.deepcopy(neutron.subnet_2)
        subnet.update({"id": uuidutils.generate_uuid(), "network_id": net["id"]})
        net["subnets"] = [subnet["id"]]
        neutron._networks[net["id"]] = net
        neutron._subnets[subnet["id"]] = subnet
        return net

    def direct_port(self, net: dict, profile: dict | None = None) -> dict:
        port = copy.deepcopy(self.neutron.sriov_port)
        n = len(self.neutron._ports) + 0x10
        port.update(
            {
                "id": uuidutils.generate_uuid(),
                "network_id": net["id"],
                "mac_address": f"fa:16:3e:5a:{n // 256:02x}:{n % 256:02x}",
                "fixed_ips": [
                    {"ip_address": f"192.168.1.{n % 200 + 10}", "subnet_id": net["subnets"][0]}
                ],
                "binding:profile": profile or {},
            }
        )
        self.neutron._ports[port["id"]] = port
        return port

    def vnics_of(self, mac: str) -> list[dict]:
        return [v for v in self.nl_view.vnics() if v["mac"] == contract.pvm_mac(mac)]

    def writes_since(self, start: int) -> list[tuple[str, str]]:
        return [
            (r.method, r.path)
            for r in self.nl_control.log.records()[start:]
            if r.method in _WRITES and "/web/" not in r.path and "Logon" not in r.path
        ]


class TestBootWithDirectPorts(_SriovBase):
    def test_a_direct_port_gets_a_vnic_with_two_backing_ports_capacity_and_vlan(self):
        net = self.sriov_network()
        port = self.direct_port(
            net,
            {contract.SRIOV_PROFILE_REDUNDANCY: 2, contract.SRIOV_PROFILE_CAPACITY: 0.1},
        )
        lps_before = self.nl_view.sriov_logical_ports()
        server = self.boot_from_image([{"port": port["id"]}])
        self.assertEqual("ACTIVE", server["status"])
        shown = self.neutron.show_port(port["id"])["port"]
        self.assertEqual(contract.VIF_TYPE_PVM_SRIOV, shown["binding:vif_type"])
        self.assertEqual("ACTIVE", shown["status"])  # the agent saw the vNIC

        (vnic,) = self.vnics_of(port["mac_address"])
        (lpar,) = self.nl_view.lpars().values()
        self.assertEqual(lpar["uuid"], vnic["lpar"])
        self.assertEqual(str(VLAN), vnic["vlan"])
        backing = sorted(vnic["backing"], key=lambda b: (b["adapter"], b["port"]))
        # One backing device on each physnet-prod port with link up (1/0, 1/2).
        self.assertEqual([(1, 0), (1, 2)], [(b["adapter"], b["port"]) for b in backing])
        self.assertEqual(["10.0%", "10.0%"], [b["capacity"] for b in backing])
        self.assertEqual({"1", "2"}, {b["priority"] for b in backing})
        # Priority 1 carries the traffic.
        self.assertEqual(["1"], [b["priority"] for b in backing if b["active"]])
        self.assertEqual(2, len(self.nl_view.sriov_logical_ports()) - len(lps_before))

        self._delete_server(server)
        self.assertEqual([], self.vnics_of(port["mac_address"]))
        self.assertEqual(lps_before, self.nl_view.sriov_logical_ports())

    def test_more_redundancy_than_the_host_has_ports_is_refused_before_anything_is_created(self):
        net = self.sriov_network()
        port = self.direct_port(net)
        locs = self.nl_view.sriov_ports_labelled(PHYSNET)
        self.assertEqual(3, len(locs))  # two of them with link up
        # A binding asking for 3 backing ports (the ML2 driver refuses this itself;
        # Nova must not rely on it: labels change, agents report late).
        self.pvm_neutron.sriov_details[port["id"]] = contract.pvm_sriov_vif_details(
            PHYSNET, locs, VLAN, 3, None, None
        )
        start = len(self.nl_control.log.records())
        server = self.boot_from_image([{"port": port["id"]}], expected_state="ERROR")
        self.assertIn(
            f"only 2 SR-IOV physical port(s) labelled '{PHYSNET}' with link up",
            server["fault"]["message"],
        )
        self.assertEqual([], self.writes_since(start))
        self.assertEqual({}, self.nl_view.lpars())
        self.assertEqual([], self.vnics_of(port["mac_address"]))

    def test_redundancy_of_exactly_the_ports_there_are_is_served(self):
        net = self.sriov_network()
        port = self.direct_port(net)
        locs = self.nl_view.sriov_ports_labelled(PHYSNET)
        self.pvm_neutron.sriov_details[port["id"]] = contract.pvm_sriov_vif_details(
            PHYSNET, locs, None, 2, None, None
        )
        server = self.boot_from_image([{"port": port["id"]}])
        (vnic,) = self.vnics_of(port["mac_address"])
        self.assertEqual(2, len(vnic["backing"]))
        self.assertEqual("0", vnic["vlan"])  # flat: untagged
        self._delete_server(server)

    def test_a_physical_network_no_port_is_labelled_with_never_reaches_the_host(self):
        net = self.sriov_network(physnet="physnet-nowhere")
        port = self.direct_port(net)
        start = len(self.nl_control.log.records())
        server = self.boot_from_image([{"port": port["id"]}], expected_state="ERROR")
        self.assertIn("No valid host", server["fault"]["message"])
        self.assertEqual([], self.writes_since(start))
        self.assertEqual({}, self.nl_view.lpars())


class TestSriovAttachDetach(_SriovBase):
    def test_attach_and_detach_a_direct_port_on_a_running_lpar(self):
        server = self.boot_from_image([{"port": self.neutron.port_1["id"]}])
        (lpar,) = self.nl_view.lpars().values()
        self.assertEqual("running", lpar["state"])
        port = self.direct_port(self.sriov_network())
        lps_before = self.nl_view.sriov_logical_ports()

        self.api.attach_interface(server["id"], {"interfaceAttachment": {"port_id": port["id"]}})
        (vnic,) = self.vnics_of(port["mac_address"])
        self.assertEqual(lpar["uuid"], vnic["lpar"])
        self.assertEqual(1, len(vnic["backing"]))
        self.assertIn(
            port["id"],
            [i["port_id"] for i in self.api.get_port_interfaces(server["id"])],
        )

        self.api.detach_interface(server["id"], port["id"])
        powervm.wait_for(lambda: not self.vnics_of(port["mac_address"]), "the vNIC to be removed")
        self.assertEqual(lps_before, self.nl_view.sriov_logical_ports())
        self.assertEqual("ACTIVE", self.api.get_server(server["id"])["status"])
        self._delete_server(server)

    def test_a_direct_port_booted_with_detaches_after_a_restart_of_nova_compute(self):
        """The vNIC is found on NovaLink by the port's MAC, not in memory."""
        port = self.direct_port(self.sriov_network())
        server = self.boot_from_image([{"port": self.neutron.port_1["id"]}, {"port": port["id"]}])
        self.assertEqual(1, len(self.vnics_of(port["mac_address"])))
        self.restart_compute("compute")
        self.api.detach_interface(server["id"], port["id"])
        powervm.wait_for(lambda: not self.vnics_of(port["mac_address"]), "the vNIC to be removed")
        # The pvm_sea port stays.
        (lpar,) = self.nl_view.lpars().values()
        self.assertIn(
            contract.pvm_mac(self.neutron.port_1["mac_address"]),
            [a["mac"] for a in self.nl_view.adapters_of(lpar["uuid"])],
        )
        self._delete_server(server)
        self.assertEqual({}, self.nl_view.lpars())
