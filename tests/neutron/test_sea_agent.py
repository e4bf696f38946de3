"""The SEA agent against real ML2 and an emulated NovaLink: what an operator
sees in Neutron (port status, the agent's configurations) and on the host
(VLANs on the SEA, requests NovaLink answered)."""

from __future__ import annotations

import logging
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time

import fixtures
from oslo_config import cfg
from pypowervm.tasks import network_bridger as net_br
from pypowervm.wrappers import network as pvm_net

from ibmvirt import contract
from ibmvirt.neutron.agent import base as agent_base
from ibmvirt.neutron.agent import sea
from ibmvirt.powervm import vif
from tests.neutron.novalink import NovaLinkAgentTestCase, small_inventory, vif_of

REPO = pathlib.Path(__file__).resolve().parents[2]
AGENT = contract.AGENT_TYPE_PVM_SEA


class SEAAgentTestCase(NovaLinkAgentTestCase):
    def start_sea(self, **agent_opts) -> sea.SEAAgentManager:
        for name, value in agent_opts.items():
            cfg.CONF.set_override(name, value, "AGENT")
        manager = sea.SEAAgentManager()
        self.start_agent(manager, AGENT, contract.AGENT_BINARY_PVM_SEA)
        return manager

    def bridges(self) -> dict[str, pvm_net.NetBridge]:
        return {nb.uuid: nb for nb in pvm_net.NetBridge.get(self.nova, parent=self.host)}

    def bridge(self) -> pvm_net.NetBridge:
        (nb,) = self.bridges().values()
        return nb

    def plug(self, port: dict, lpar) -> pvm_net.CNA:
        """What nova-compute's PowerVM driver does for a pvm_sea port."""
        return vif.SEAVifDriver(self.nova, self.host.uuid, cfg.CONF).plug(
            lpar, vif_of(self.port(port["id"])), "instance-1"
        )

    def unplug(self, port: dict, lpar) -> None:
        self.assertTrue(
            vif.SEAVifDriver(self.nova, self.host.uuid, cfg.CONF).unplug(lpar, vif_of(port))
        )

    def vlan_port(self, vlan: int, physnet: str = "physnet1", device_id: str = "vm-1") -> dict:
        port = self.make_port(
            self.make_network("vlan", physnet, vlan), "host1", device_id=device_id
        )
        self.assertEqual(contract.VIF_TYPE_PVM_SEA, port["binding:vif_type"])
        return port


class TestPlugAndUnplug(SEAAgentTestCase):
    def test_heartbeat_reports_the_single_sea_as_default(self):
        self.start_sea()
        reported = self.reported_configurations(AGENT)
        self.assertEqual({"default": self.bridge().uuid}, reported["bridge_mappings"])
        self.assertEqual({"default": {"vswitch": "ETHERNET0", "pvid": 1}}, reported["sea_bridges"])

    def test_a_plugged_port_goes_active_with_its_vlan_on_the_sea(self):
        self.start_sea()
        port = self.vlan_port(42)
        self.run_agent_once()
        self.assertEqual("DOWN", self.port(port["id"])["status"])
        self.assertFalse(self.bridge().supports_vlan(42))
        lpar = self.make_lpar()
        cna = self.plug(port, lpar)
        self.assertEqual(42, cna.pvid)
        self.wait_for_port_status(port["id"], "ACTIVE")
        nb = self.bridge()
        self.assertTrue(nb.supports_vlan(42))
        self.assertEqual(1, nb.seas[0].primary_adpt.pvid)  # the primary trunk untouched
        self.assertEqual([42], nb.seas[0].addl_adpts[0].tagged_vlans)
        self.unplug(port, lpar)
        self.wait_for_port_status(port["id"], "DOWN")

    def test_a_flat_port_needs_no_vlan(self):
        self.start_sea()
        before = self.bridge().list_vlans()
        port = self.make_port(self.make_network("flat"), "host1")
        self.plug(port, self.make_lpar())
        self.wait_for_port_status(port["id"], "ACTIVE")
        self.assertEqual(before, self.bridge().list_vlans())

    def test_an_adapter_deleted_behind_novas_back_takes_its_port_down(self):
        self.start_sea()
        port = self.vlan_port(43)
        cna = self.plug(port, self.make_lpar())
        self.wait_for_port_status(port["id"], "ACTIVE")
        cna.delete()  # no NOVA_PVM_VIF event: the feed's DELETE_URI says it
        self.wait_for_port_status(port["id"], "DOWN")

    def test_a_deleted_lpar_takes_its_ports_down(self):
        self.start_sea()
        ports = [self.vlan_port(44, device_id="vm-a"), self.vlan_port(45, device_id="vm-b")]
        lpar = self.make_lpar()
        for port in ports:
            self.plug(port, lpar)
        for port in ports:
            self.wait_for_port_status(port["id"], "ACTIVE")
        lpar.refresh().delete()
        for port in ports:
            self.wait_for_port_status(port["id"], "DOWN")

    def test_adapters_present_at_start_are_reported_up(self):
        # The agent was down while Nova plugged: nothing but the listing tells it.
        self.register_agent(
            AGENT,
            contract.AGENT_BINARY_PVM_SEA,
            "host1",
            {"bridge_mappings": {"default": self.bridge().uuid}},
        )
        port = self.vlan_port(46)
        self.plug(port, self.make_lpar())
        manager = self.start_sea()
        self.assertIn(port["mac_address"], manager.get_all_devices())
        self.wait_for_port_status(port["id"], "ACTIVE")
        self.assertTrue(self.bridge().supports_vlan(46))

    def test_rmc_and_ovs_adapters_are_not_devices(self):
        manager = self.start_sea()
        lpar = self.make_lpar()
        vif.plug_mgmt_vif(self.nova, lpar)
        rmc = pvm_net.CNA.get(self.nova, parent=lpar)[0]
        ovs = vif.create_cna(
            self.nova, lpar, 7, self._vswitch(cfg.CONF.powervm.pvm_vswitch_for_novalink_io)
        )
        own = vif.create_cna(self.nova, self.mgmt_partition(), 47, self._vswitch("ETHERNET0"))
        plain = vif.create_cna(self.nova, lpar, 48, self._vswitch("ETHERNET0"))
        self.settle(manager)
        macs = {m.replace(":", "").upper() for m in manager.get_all_devices()}
        self.assertEqual({plain.mac}, macs)
        self.assertNotIn(rmc.mac, macs)
        self.assertNotIn(ovs.mac, macs)
        self.assertNotIn(own.mac, macs)

    def _vswitch(self, name: str) -> pvm_net.VSwitch:
        switches = {s.name: s for s in pvm_net.VSwitch.get(self.nova, parent=self.host)}
        if name not in switches:
            switches[name] = pvm_net.VSwitch.bld(self.nova, name).create(parent=self.host)
        return switches[name]


class TestRequestBudget(SEAAgentTestCase):
    def test_steady_state_costs_no_novalink_request(self):
        manager = self.start_sea()
        lpar = self.make_lpar()
        ports = [self.vlan_port(50 + i, device_id=f"vm-{i}") for i in range(3)]
        for port in ports:
            self.plug(port, lpar)
        for port in ports:
            self.wait_for_port_status(port["id"], "ACTIVE")
        self.settle(manager)
        self.nl_control.log.clear()
        for _ in range(20):  # a second of polling_interval 0.05
            self.run_agent_once()
            time.sleep(0.05)
        self.report_state()
        self.assertEqual([], self.novalink_requests())
        # ... while the event feed is long-polled all along (event_wait 0.3 s).
        self.assertGreater(self.nl_control.log.count("GET", "/Event"), 0)

    def test_events_lost_make_the_agent_list_everything_once(self):
        manager = self.start_sea()
        port = self.vlan_port(61)
        self.plug(port, self.make_lpar())
        self.wait_for_port_status(port["id"], "ACTIVE")
        self.settle(manager)
        for etype in ("MISSING_EVENTS", "CACHE_CLEARED"):
            with self.subTest(etype=etype):
                self.nl_control.log.clear()
                self.novalink.emu.events.publish(etype)
                self.settle(manager)
                lpar_feeds = self.novalink_requests(r"/LogicalPartition\?", "GET")
                self.assertEqual(1, len(lpar_feeds), self.novalink_requests())
                self.run_agent_once()
                self.assertEqual("ACTIVE", self.port(port["id"])["status"])

    def test_ports_on_a_vlan_already_on_the_sea_do_not_reread_it(self):
        manager = self.start_sea()
        lpar = self.make_lpar()
        net = self.make_network("vlan", seg_id=60)
        ports = [self.make_port(net, "host1", device_id=f"vm-{i}") for i in range(5)]
        for port in ports:
            self.plug(port, lpar)
        self.settle(manager)
        self.nl_control.log.clear()
        for port in ports:
            self.wait_for_port_status(port["id"], "ACTIVE")
        self.assertEqual(1, len(self.novalink_requests(r"NetworkBridge\?", "GET")))
        self.assertEqual(1, len(self.novalink_requests("NetworkBridge/", "POST")))


class TestHeal(SEAAgentTestCase):
    def heal(self, manager) -> None:
        manager.worker.submit("heal", manager.heal)
        self.settle(manager)

    def test_heal_puts_back_a_vlan_removed_out_of_band(self):
        manager = self.start_sea(heal_and_optimize_interval=1)
        port = self.vlan_port(70)
        self.plug(port, self.make_lpar())
        self.wait_for_port_status(port["id"], "ACTIVE")
        nb = self.bridge()
        net_br.remove_vlan_from_nb(self.nova, self.host.uuid, nb.uuid, 70)
        self.assertFalse(self.bridge().supports_vlan(70))

        def back():
            self.run_agent_once()
            return self.bridge().supports_vlan(70)

        self.wait_until(back, what="VLAN 70 back on the SEA")
        self.assertEqual("ACTIVE", self.port(port["id"])["status"])
        self.assertIn(port["mac_address"], manager.get_all_devices())

    def test_cleanup_removes_three_unused_vlans_per_pass(self):
        manager = self.start_sea()
        lpar = self.make_lpar()
        port = self.vlan_port(80)
        self.plug(port, lpar)
        self.wait_for_port_status(port["id"], "ACTIVE")
        # In use without Neutron: another LPAR's adapter, NovaLink's own.
        eth0 = self._eth0()
        vif.create_cna(self.nova, self.make_lpar("not-openstack"), 81, eth0)
        vif.create_cna(self.nova, self.mgmt_partition(), 82, eth0)
        nb = self.bridge()
        net_br.ensure_vlans_on_nb(self.nova, self.host.uuid, nb.uuid, [81, 82, 90, 91, 92, 93, 94])
        self.heal(manager)
        left = set(self.bridge().list_vlans())
        self.assertEqual({1, 80, 81, 82, 93, 94}, left)  # the lowest three went first
        self.heal(manager)
        self.assertEqual({1, 80, 81, 82}, set(self.bridge().list_vlans()))
        self.run_agent_once()
        self.assertEqual("ACTIVE", self.port(port["id"])["status"])

    def test_no_cleanup_when_turned_off(self):
        manager = self.start_sea(automated_powervm_vlan_cleanup=False)
        nb = self.bridge()
        net_br.ensure_vlans_on_nb(self.nova, self.host.uuid, nb.uuid, [90, 91])
        self.heal(manager)
        self.assertEqual({1, 90, 91}, set(self.bridge().list_vlans()))

    def _eth0(self) -> pvm_net.VSwitch:
        return next(
            s for s in pvm_net.VSwitch.get(self.nova, parent=self.host) if s.name == "ETHERNET0"
        )


class TestNovaLinkOutage(SEAAgentTestCase):
    def test_ports_go_down_and_come_back_with_novalink(self):
        manager = self.start_sea()
        lpar = self.make_lpar()
        ports = [self.vlan_port(20 + i, device_id=f"vm-{i}") for i in range(2)]
        for port in ports:
            self.plug(port, lpar)
        for port in ports:
            self.wait_for_port_status(port["id"], "ACTIVE")
        self.novalink_down()
        for port in ports:
            self.wait_for_port_status(port["id"], "DOWN")
        self.assertEqual(set(), manager.get_all_devices())
        self.report_state()  # the agent is alive and says so
        self.assertTrue(self.reported_configurations(AGENT)["bridge_mappings"])
        self.novalink_up()
        for port in ports:
            self.wait_for_port_status(port["id"], "ACTIVE")

    def test_a_plug_that_fails_is_retried(self):
        self.start_sea()
        port = self.vlan_port(30)
        self.nl_control.injector.add("POST", r"NetworkBridge/", status=500, times=2)
        self.plug(port, self.make_lpar())
        self.wait_for_port_status(port["id"], "ACTIVE")
        self.assertTrue(self.bridge().supports_vlan(30))


class TestSEAOffTheDefaultSwitch(SEAAgentTestCase):
    """A SEA on ETHERNET1 whose untagged VLAN is 7: Nova must put the adapters
    there, and an adapter anywhere else must not be reported ACTIVE."""

    inventory = small_inventory(
        network__vswitches=["ETHERNET0", "ETHERNET1", "MGMTSWITCH"],
        network__sea={"vios": "vios1", "pvid": 7, "vswitch": "ETHERNET1"},
    )

    def setUp(self):
        super().setUp()
        self.log = self.useFixture(
            fixtures.FakeLogger(name="ibmvirt.neutron.agent.sea", level=logging.WARNING)
        )

    def cna_switch(self, cna) -> str:
        switches = {s.related_href.upper(): s.name for s in self._switches()}
        return switches[cna.vswitch_uri.upper()]

    def _switches(self):
        return pvm_net.VSwitch.get(self.nova, parent=self.host)

    def test_vif_details_carry_the_seas_switch_and_its_pvid_on_flat(self):
        self.start_sea()
        self.assertEqual(
            {"default": {"vswitch": "ETHERNET1", "pvid": 7}},
            self.reported_configurations(AGENT)["sea_bridges"],
        )
        flat = self.make_port(self.make_network("flat"), "host1")
        self.assertEqual("7", flat["binding:vif_details"]["vlan"])
        self.assertEqual("ETHERNET1", flat["binding:vif_details"]["vswitch"])
        vlan = self.vlan_port(250)
        self.assertEqual("250", vlan["binding:vif_details"]["vlan"])
        self.assertEqual("ETHERNET1", vlan["binding:vif_details"]["vswitch"])

    def test_ports_plugged_as_bound_go_active(self):
        self.start_sea()
        lpar = self.make_lpar()
        flat = self.make_port(self.make_network("flat"), "host1")
        cna = self.plug(flat, lpar)
        self.assertEqual((7, "ETHERNET1"), (cna.pvid, self.cna_switch(cna)))
        vlan = self.vlan_port(250, device_id="vm-2")
        cna = self.plug(vlan, self.make_lpar("vm2"))
        self.assertEqual((250, "ETHERNET1"), (cna.pvid, self.cna_switch(cna)))
        self.wait_for_port_status(flat["id"], "ACTIVE")
        self.wait_for_port_status(vlan["id"], "ACTIVE")
        self.assertTrue(self.bridge().supports_vlan(250))

    def assert_stays_down(self, manager, port) -> None:
        self.settle(manager)
        self.run_agent_once()
        self.assertEqual("DOWN", self.port(port["id"])["status"])

    def test_an_adapter_on_another_switch_stays_down(self):
        manager = self.start_sea()
        port = self.vlan_port(250)
        eth0 = next(s for s in self._switches() if s.name == "ETHERNET0")
        vif.create_cna(
            self.nova, self.make_lpar(), 250, eth0, mac=contract.pvm_mac(port["mac_address"])
        )
        self.assert_stays_down(manager, port)

    def test_an_adapter_corrected_in_place_goes_active(self):
        manager = self.start_sea()
        port = self.vlan_port(250)
        eth1 = next(s for s in self._switches() if s.name == "ETHERNET1")
        mac = contract.pvm_mac(port["mac_address"])
        cna = vif.create_cna(self.nova, self.make_lpar(), 251, eth1, mac=mac)
        self.assert_stays_down(manager, port)
        self.assertTrue(self.agent_warned(port))
        cna.pvid = 250
        cna.update()
        self.wait_for_port_status(port["id"], "ACTIVE")

    def test_an_active_port_whose_adapter_leaves_the_vlan_goes_down(self):
        self.start_sea()
        port = self.vlan_port(250)
        cna = self.plug(port, self.make_lpar())
        self.wait_for_port_status(port["id"], "ACTIVE")
        cna.pvid = 251
        cna.update()
        self.wait_for_port_status(port["id"], "DOWN")

    def test_a_port_replugged_right_under_the_same_mac_goes_active(self):
        manager = self.start_sea()
        port = self.vlan_port(250)
        eth0 = next(s for s in self._switches() if s.name == "ETHERNET0")
        lpar = self.make_lpar()
        mac = contract.pvm_mac(port["mac_address"])
        wrong = vif.create_cna(self.nova, lpar, 250, eth0, mac=mac)
        self.assert_stays_down(manager, port)
        self.assertTrue(self.agent_warned(port))
        wrong.delete()
        self.plug(port, lpar)  # as Nova would, within one polling interval
        self.wait_for_port_status(port["id"], "ACTIVE")

    def agent_warned(self, port) -> bool:
        return f"Port {port['mac_address']}: its adapter is on virtual switch" in self.log.output

    def test_a_flat_adapter_off_the_seas_pvid_stays_down(self):
        manager = self.start_sea()
        port = self.make_port(self.make_network("flat"), "host1")
        eth1 = next(s for s in self._switches() if s.name == "ETHERNET1")
        vif.create_cna(
            self.nova, self.make_lpar(), 1, eth1, mac=contract.pvm_mac(port["mac_address"])
        )
        self.assert_stays_down(manager, port)


class TestTwoSEAs(SEAAgentTestCase):
    inventory = small_inventory(
        network__sea=[
            {"vios": "vios1", "pvid": 1, "vswitch": "ETHERNET0", "backing_device": "ent0"},
            {"vios": "vios2", "pvid": 2, "vswitch": "ETHERNET0", "backing_device": "ent0"},
        ]
    )

    def nb_of(self, vios_name: str) -> str:
        vioses = {v.uuid.upper(): v.name for v in self._vioses()}
        return next(
            nb.uuid
            for nb in self.bridges().values()
            if vioses[nb.seas[0].vio_uri.rstrip("/").rsplit("/", 1)[-1].upper()] == vios_name
        )

    def _vioses(self):
        from pypowervm.wrappers import virtual_io_server as pvm_vios

        return pvm_vios.VIOS.get(self.nova)

    def test_each_physnet_gets_its_sea(self):
        self.start_sea(bridge_mappings="physnet1:ent5:vios1, physnet2:ent5:vios2")
        expected = {"physnet1": self.nb_of("vios1"), "physnet2": self.nb_of("vios2")}
        self.assertEqual(expected, self.reported_configurations(AGENT)["bridge_mappings"])
        port = self.vlan_port(250, "physnet2")
        self.plug(port, self.make_lpar())
        self.wait_for_port_status(port["id"], "ACTIVE")
        self.assertTrue(self.bridges()[expected["physnet2"]].supports_vlan(250))
        self.assertFalse(self.bridges()[expected["physnet1"]].supports_vlan(250))

    def assert_refused(self, mappings: str, *words: str) -> None:
        cfg.CONF.set_override("bridge_mappings", mappings, "AGENT")
        with self.assertRaises(agent_base.AgentStartupError) as ctx:
            sea.SEAAgentManager()
        for word in ("[AGENT] bridge_mappings", *words):
            self.assertIn(word, str(ctx.exception))

    def test_bad_mappings_are_refused_at_start_naming_the_option(self):
        cases = {
            "": ("2 Shared Ethernet Adapters", "ent5 on vios1, ent5 on vios2"),
            "physnet1:ent5:vios9": ("no VIOS named 'vios9'", "vios1, vios2"),
            "physnet1:ent9:vios1": ("no Shared Ethernet Adapter 'ent9'", "ent5 on vios1"),
            "physnet1:ent5:vios1,physnet1:ent5:vios2": ("'physnet1' twice",),
            "physnet1:ent5:vios1,physnet2:ent5:vios1": (
                "physnet2:ent5:vios1: SEA ent5 on vios1 already bridges physical network "
                "'physnet1'",
            ),
            "physnet1:ent5": ("'physnet1:ent5' is not <physnet>:<SEA device>:<VIOS name>",),
        }
        for mappings, words in cases.items():
            with self.subTest(mappings=mappings):
                self.assert_refused(mappings, *words)


class TestConsoleScript(NovaLinkAgentTestCase):
    def write_conf(self, mappings: str) -> list[str]:
        """The agent's --config-file arguments (neutron.conf, the agent's ini)."""
        tmp = pathlib.Path(tempfile.mkdtemp(prefix="ibmvirt-agent-"))
        self.addCleanup(shutil.rmtree, tmp, True)
        (tmp / "neutron.conf").write_text(
            "[DEFAULT]\nhost = host1\ntransport_url = fake:/\n[AGENT]\npolling_interval = 1\n"
        )
        (tmp / "sea.ini").write_text(
            textwrap.dedent(
                f"""\
                [AGENT]
                bridge_mappings = {mappings}
                [powervm]
                novalink_host = 127.0.0.1
                novalink_port = {self.novalink.port}
                novalink_protocol = http
                novalink_username = neo
                novalink_password = passw0rd
                vios_ready_timeout = 0
                """
            )
        )
        return ["--config-file", str(tmp / "neutron.conf"), "--config-file", str(tmp / "sea.ini")]

    SCRIPT = str(pathlib.Path(sys.executable).parent / "ibmvirt-powervm-sea-agent")
    ENV = {**os.environ, "PYTHONPATH": str(REPO)}  # this tree, not the installed copy

    def test_sighup_restarts_the_worker_on_a_session_of_its_own(self):
        """oslo.service restarts the worker process on SIGHUP (forked again from
        the parent); it must log on anew, not reuse a session the old one ended."""
        args = self.write_conf("physnet1:ent5:vios1")
        log = pathlib.Path(args[1]).with_name("agent.log")
        proc = subprocess.Popen(
            [self.SCRIPT, *args],
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            env=self.ENV,
            start_new_session=True,  # cotyledon signals its process group
        )
        self.addCleanup(lambda: proc.poll() is None and os.killpg(proc.pid, signal.SIGKILL))

        def listings():
            return self.novalink_requests(r"/LogicalPartition(\?|$)", "GET")

        self.wait_until(listings, timeout=60, what="the worker's first listing")
        before = len(self.nl_control.log.records())
        os.kill(proc.pid, signal.SIGHUP)

        def after():
            return self.nl_control.log.records()[before:]

        self.wait_until(
            lambda: any(
                re.search(r"/LogicalPartition(\?|$)", r.path) and r.status == 200 for r in after()
            ),
            timeout=60,
            what="the restarted worker's listing",
        )
        time.sleep(3)  # a worker on a stale session would fail and be respawned by now
        since = [r for r in after() if "/Event" not in r.path]
        self.assertEqual([], [r for r in since if r.status == 401], since)
        logons = [r for r in since if "/web/Logon" in r.path and r.method == "PUT"]
        self.assertEqual(1, len(logons), since)
        self.assertIsNone(proc.poll())
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
        output = log.read_text()
        self.assertEqual(0, proc.returncode, output[-3000:])
        self.assertNotIn("passw0rd", output)

    def test_a_bad_mapping_fails_the_console_script_naming_the_option(self):
        result = subprocess.run(
            [self.SCRIPT, *self.write_conf("physnet1:ent9:vios1")],
            capture_output=True,
            text=True,
            timeout=120,
            env=self.ENV,
        )
        self.assertEqual(1, result.returncode, result.stderr)
        self.assertIn("[AGENT] bridge_mappings: physnet1:ent9:vios1", result.stderr)
        self.assertIn("no Shared Ethernet Adapter 'ent9'", result.stderr)
        self.assertNotIn("passw0rd", result.stderr)
        self.assertNotIn("Traceback", result.stderr)
