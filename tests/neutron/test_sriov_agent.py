"""The SR-IOV agent against real ML2 and an emulated NovaLink: ports bound
from the labels it reports, vNICs seen up and down, label changes seen."""

from __future__ import annotations

from neutron_lib.api.definitions import portbindings
from oslo_config import cfg
from pypowervm.tasks import sriov as pvm_sriov
from pypowervm.wrappers import iocard as pvm_card
from pypowervm.wrappers import managed_system as pvm_ms

from ibmvirt import contract
from ibmvirt.neutron.agent import base as agent_base
from ibmvirt.neutron.agent import sriov
from tests.neutron.novalink import NovaLinkAgentTestCase, small_inventory

AGENT = contract.AGENT_TYPE_PVM_SRIOV
# Two link-up ports on different adapters for physnet1 (vNIC failover).
LABELS = {"1/0": "physnet1", "2/0": "physnet1", "1/2": "physnet-stor"}


class SRIOVAgentTestCase(NovaLinkAgentTestCase):
    inventory = small_inventory(host__sriov_port_labels=LABELS)

    def start_sriov(self, **agent_opts) -> sriov.SRIOVAgentManager:
        for name, value in agent_opts.items():
            cfg.CONF.set_override(name, value, "AGENT")
        manager = sriov.SRIOVAgentManager()
        self.start_agent(manager, AGENT, contract.AGENT_BINARY_PVM_SRIOV)
        return manager

    def ports_by_label(self) -> dict[str, list[str]]:
        host = pvm_ms.System.get(self.nova)[0]
        out: dict[str, list[str]] = {}
        for adapter in host.asio_config.sriov_adapters:
            for p in adapter.phys_ports:
                out.setdefault(p.label or "default", []).append(p.loc_code)
        return out

    def direct_port(self, vlan: int = 10, **kw) -> dict:
        port = self.make_port(
            self.make_network("vlan", "physnet1", vlan), "host1", portbindings.VNIC_DIRECT, **kw
        )
        self.assertEqual(contract.VIF_TYPE_PVM_SRIOV, port["binding:vif_type"])
        return port

    def plug(self, port: dict, lpar) -> pvm_card.VNIC:
        """What nova-powervm's vNIC driver did for a pvm_sriov port."""
        details = self.port(port["id"])["binding:vif_details"]
        vnic = pvm_card.VNIC.bld(
            self.nova,
            pvid=int(details["vlan"]),
            mac_addr=contract.pvm_mac(port["mac_address"]),
        )
        pvm_sriov.set_vnic_back_devs(
            vnic,
            details["physical_ports"],
            sys_w=pvm_ms.System.get(self.nova)[0],
            redundancy=details["redundancy"],
            capacity=details["capacity"],
            check_port_status=True,
        )
        return vnic.create(parent=lpar)

    def relabel(self, loc_code: str, label: str) -> None:
        """``pvmctl sriov update --loc <loc> -s label=<label>``."""

        def change(sys_w):
            for adapter in sys_w.asio_config.sriov_adapters:
                for p in adapter.phys_ports:
                    if p.loc_code == loc_code:
                        p.label = label
            return True

        pvm_sriov.safe_update_pports(pvm_ms.System.getter(self.nova, self.host.uuid), change)

    def relabel_unannounced(self, loc_code: str, label: str) -> None:
        """A label change the agent hears nothing of (an event lost)."""
        from ibmvirt.emulators.novalink import xmlutil as x

        emu = self.novalink.emu
        with emu.lock:
            for port in emu.ms.elem.iter():
                if isinstance(port.tag, str) and port.findtext(x.q("LocationCode")) == loc_code:
                    port.find(x.q("Label")).text = label
            emu.ms.bump()


class TestConfigurations(SRIOVAgentTestCase):
    def test_heartbeat_reports_ports_by_label_and_the_defaults(self):
        self.start_sriov()
        reported = self.reported_configurations(AGENT)
        self.assertEqual(self.ports_by_label(), reported["bridge_mappings"])
        self.assertEqual(2, len(reported["bridge_mappings"]["physnet1"]))
        self.assertEqual(2, reported["default_redundancy"])
        self.assertIsNone(reported["default_capacity"])

    def test_defaults_come_from_the_options(self):
        self.start_sriov(vnic_required_vfs=1, vnic_vf_capacity=0.04)
        reported = self.reported_configurations(AGENT)
        self.assertEqual(1, reported["default_redundancy"])
        self.assertEqual(0.04, reported["default_capacity"])
        details = self.direct_port()["binding:vif_details"]
        self.assertEqual(1, details["redundancy"])
        self.assertEqual(0.04, details["capacity"])

    def test_vf_capacity_at_its_limits(self):
        cfg.CONF.set_override("vnic_vf_capacity", 1.0, "AGENT")
        manager = sriov.SRIOVAgentManager()
        self.addCleanup(manager.stop)
        self.assertEqual(1.0, manager.configurations["default_capacity"])
        cfg.CONF.set_override("vnic_vf_capacity", 0.0, "AGENT")
        with self.assertRaises(agent_base.AgentStartupError) as ctx:
            sriov.SRIOVAgentManager()
        self.assertIn("[AGENT] vnic_vf_capacity = 0.0", str(ctx.exception))
        with self.assertRaises(ValueError):  # oslo.config refuses above 1.0
            cfg.CONF.set_override("vnic_vf_capacity", 1.01, "AGENT")

    def test_a_label_change_on_novalink_is_reported(self):
        manager = self.start_sriov()
        loc = self.ports_by_label()["physnet-stor"][0]
        self.relabel(loc, "physnet3")
        self.wait_until(
            lambda: "physnet3" in manager.bridge_mappings, what="the new label seen by the agent"
        )
        self.report_state()
        reported = self.reported_configurations(AGENT)["bridge_mappings"]
        self.assertEqual([loc], reported["physnet3"])
        self.assertNotIn("physnet-stor", reported)

    def test_a_port_update_rereads_the_labels(self):
        manager = self.start_sriov()
        port = self.direct_port()
        loc = self.ports_by_label()["physnet-stor"][0]
        self.relabel_unannounced(loc, "physnet4")
        self.settle(manager)
        self.assertNotIn("physnet4", manager.bridge_mappings)
        self._update("ports", port["id"], {"port": {"admin_state_up": False}}, as_admin=True)
        self.wait_until(lambda: "physnet4" in manager.bridge_mappings, what="labels re-read")
        self.report_state()
        self.assertIn("physnet4", self.reported_configurations(AGENT)["bridge_mappings"])

    def test_a_heal_pass_rereads_the_labels(self):
        manager = self.start_sriov()
        loc = self.ports_by_label()["physnet-stor"][0]
        self.relabel_unannounced(loc, "physnet5")
        manager.worker.submit("heal", manager.heal)
        self.settle(manager)
        self.assertEqual([loc], manager.bridge_mappings["physnet5"])


class TestVNICs(SRIOVAgentTestCase):
    def test_a_vnic_brings_its_port_up_and_its_deletion_down(self):
        self.start_sriov()
        port = self.direct_port()
        self.run_agent_once()
        self.assertEqual("DOWN", self.port(port["id"])["status"])
        vnic = self.plug(port, self.make_lpar())
        self.assertEqual(2, len(vnic.back_devs))  # the default redundancy
        self.wait_for_port_status(port["id"], "ACTIVE")
        vnic.delete()
        self.wait_for_port_status(port["id"], "DOWN")

    def test_vnics_present_at_start_are_reported_up(self):
        self.register_agent(
            AGENT,
            contract.AGENT_BINARY_PVM_SRIOV,
            "host1",
            {"bridge_mappings": self.ports_by_label(), "default_redundancy": 2},
        )
        port = self.direct_port()
        self.plug(port, self.make_lpar())
        self.start_sriov()
        self.wait_for_port_status(port["id"], "ACTIVE")

    def test_steady_state_costs_no_novalink_request(self):
        manager = self.start_sriov()
        port = self.direct_port()
        self.plug(port, self.make_lpar())
        self.wait_for_port_status(port["id"], "ACTIVE")
        self.settle(manager)
        self.nl_control.log.clear()
        for _ in range(20):
            self.run_agent_once()
        self.report_state()
        self.assertEqual([], self.novalink_requests())

    def test_vnic_ports_go_down_in_an_outage_and_come_back(self):
        self.start_sriov()
        port = self.direct_port()
        self.plug(port, self.make_lpar())
        self.wait_for_port_status(port["id"], "ACTIVE")
        self.novalink_down()
        self.wait_for_port_status(port["id"], "DOWN")
        self.novalink_up()
        self.wait_for_port_status(port["id"], "ACTIVE")
