"""Neutron ports on an emulated PowerVM host, through the Nova API: pvm_sea and
ovs VIFs, interface attach and detach on a running LPAR, the wait for
network-vif-plugged, the RMC adapter and the NOVA_PVM_VIF events."""

from __future__ import annotations

import json
import threading

import fixtures
import pypowervm.adapter as pvm_adpt
from nova.tests.functional.api import client
from oslo_utils import uuidutils

from ibmvirt import contract
from ibmvirt.sandbox import powervm

NOVALINK_VSWITCH = "NovaLinkVEABridge"  # [powervm] pvm_vswitch_for_novalink_io's default


class _NetworkTestBase(powervm.PowerVMSingleComputeTestBase):
    def lpar(self) -> dict:
        (lpar,) = self.nl_view.lpars().values()
        return lpar

    def adapters(self, lpar_uuid: str) -> list[dict]:
        """The LPAR's client adapters as the emulator holds them, with their switch."""
        emu = self.novalink.emu
        with emu.lock:
            switches = {
                s.field("SwitchID"): s.field("SwitchName") for s in emu.store.list("VirtualSwitch")
            }
            return [
                {
                    "mac": c.field("MACAddress"),
                    "vlan": c.field("PortVLANID"),
                    "vswitch": switches.get(c.field("VirtualSwitchID")),
                }
                for c in emu.store.list("ClientNetworkAdapter")
                if c.parent is not None and c.parent.uuid == lpar_uuid
            ]

    def vswitches(self) -> set[str]:
        with self.novalink.emu.lock:
            return {s.field("SwitchName") for s in self.novalink.emu.store.list("VirtualSwitch")}

    def assert_nothing_left(self) -> None:
        self.assertEqual({}, self.nl_view.lpars())
        self.assertEqual([], [m for m in self.nl_view.client_macs() if not self._is_trunk_mac(m)])
        self.assertEqual([], [t for t in self.nl_view.trunks() if t["vswitch"] == NOVALINK_VSWITCH])
        self.assertEqual([], self.nl_view.scsi_mappings())
        self.assertEqual([], [d for d in self.nl_view.virtual_disks() if d.startswith("b_")])

    def _is_trunk_mac(self, mac: str) -> bool:
        return mac in {t["mac"] for t in self.nl_view.trunks()}

    def new_port(self) -> dict:
        """A port on the sandbox network, as `openstack port create` makes it."""
        body = {"port": {"network_id": self.neutron.network_1["id"]}}
        return self.neutron.create_port(body)["port"]

    def port_of(self, port_id: str) -> dict:
        return self.neutron.show_port(port_id)["port"]

    @staticmethod
    def mac(port: dict) -> str:
        return contract.pvm_mac(port["mac_address"])


class _HighBitUUIDs:
    """oslo's uuidutils for Nova's compute API, with instance UUIDs whose first bit
    is set: PowerVM clears it in the LPAR's UUID, so the two can be told apart."""

    def __getattr__(self, name):
        return getattr(uuidutils, name)

    @staticmethod
    def generate_uuid(dashed: bool = True) -> str:
        return "f" + uuidutils.generate_uuid(dashed)[1:]


class TestOvsVifs(_NetworkTestBase):
    def test_boot_with_an_ovs_port_pairs_it_with_a_novalink_trunk_and_delete_removes_both(self):
        self.useFixture(fixtures.MonkeyPatch("nova.compute.api.uuidutils", _HighBitUUIDs()))
        port = self.neutron.port_1
        self.pvm_neutron.vif_types[port["id"]] = contract.VIF_TYPE_OVS
        self.assertNotIn(NOVALINK_VSWITCH, self.vswitches())

        server = self.boot_from_image([{"port": port["id"]}])
        self.assertEqual("ACTIVE", server["status"])
        self.assertEqual("ACTIVE", self.port_of(port["id"])["status"])  # the OVS agent saw the tap
        self.assertEqual(contract.VIF_TYPE_OVS, self.port_of(port["id"])["binding:vif_type"])
        self.assertIn(NOVALINK_VSWITCH, self.vswitches())  # created when missing

        lpar = self.lpar()
        (client_cna,) = [a for a in self.adapters(lpar["uuid"]) if a["mac"] == self.mac(port)]
        self.assertEqual(NOVALINK_VSWITCH, client_cna["vswitch"])
        (trunk,) = [t for t in self.nl_view.trunks() if t["vswitch"] == NOVALINK_VSWITCH]
        self.assertEqual(client_cna["vlan"], trunk["vlan"])  # the point-to-point VLAN
        self.assertNotEqual(server["id"], lpar["uuid"].lower())
        self.assertEqual(powervm.ovs_devname(port["id"]), trunk["dev"])
        self.assertEqual("br-int", trunk["bridge"])
        ext_ids = dict(kv.split("=", 1) for kv in trunk["ext_ids"].split(","))
        self.assertEqual(
            {
                "iface-id": port["id"],
                "iface-status": "active",
                "attached-mac": port["mac_address"],
                "vm-uuid": server["id"],  # Nova's instance UUID, as the OVS agent reads it
            },
            ext_ids,
        )

        self._delete_server(server)
        self.assert_nothing_left()

    def test_an_lpar_deleted_behind_novas_back_leaves_no_trunk(self):
        port = self.neutron.port_1
        self.pvm_neutron.vif_types[port["id"]] = contract.VIF_TYPE_OVS
        server = self.boot_from_image([{"port": port["id"]}])
        lpar = self.lpar()
        emu = self.novalink.emu
        with emu.lock:  # as `pvmctl lpar delete` would, leaving the NovaLink trunk
            res = emu.store.get("LogicalPartition", lpar["uuid"])
            for cna in emu.store.list("ClientNetworkAdapter", parent=res):
                emu.store.remove(cna)
            emu.store.remove(res)
        self.assertNotEqual(
            [], [t for t in self.nl_view.trunks() if t["vswitch"] == NOVALINK_VSWITCH]
        )
        self._delete_server(server)
        self.assertEqual([], [t for t in self.nl_view.trunks() if t["vswitch"] == NOVALINK_VSWITCH])


class TestInterfaceAttachDetach(_NetworkTestBase):
    def _attach(self, server, port_id):
        return self.api.attach_interface(
            server["id"], {"interfaceAttachment": {"port_id": port_id}}
        )

    def test_attach_and_detach_on_a_running_lpar(self):
        server = self.boot_from_image([{"port": self.neutron.port_1["id"]}])
        lpar = self.lpar()
        self.assertEqual("running", lpar["state"])
        sea_port = self.new_port()
        ovs_port = self.new_port()
        self.pvm_neutron.vif_types[ovs_port["id"]] = contract.VIF_TYPE_OVS

        self._attach(server, sea_port["id"])
        self.assertIn(
            {"mac": self.mac(sea_port), "vlan": str(powervm.NETWORK_VLAN), "vswitch": "ETHERNET0"},
            self.adapters(lpar["uuid"]),
        )
        self._attach(server, ovs_port["id"])
        ovs_cna = next(a for a in self.adapters(lpar["uuid"]) if a["mac"] == self.mac(ovs_port))
        self.assertEqual(NOVALINK_VSWITCH, ovs_cna["vswitch"])
        (trunk,) = [t for t in self.nl_view.trunks() if t["vswitch"] == NOVALINK_VSWITCH]
        self.assertEqual(
            (ovs_cna["vlan"], powervm.ovs_devname(ovs_port["id"])), (trunk["vlan"], trunk["dev"])
        )
        attached = {i["port_id"] for i in self.api.get_port_interfaces(server["id"])}
        self.assertEqual({self.neutron.port_1["id"], sea_port["id"], ovs_port["id"]}, attached)

        for port in (sea_port, ovs_port):
            self.api.detach_interface(server["id"], port["id"])
            powervm.wait_for(
                lambda p=port: self.mac(p) not in {a["mac"] for a in self.adapters(lpar["uuid"])},
                f"the adapter of port {port['id']} to go",
            )
        self.assertEqual([], [t for t in self.nl_view.trunks() if t["vswitch"] == NOVALINK_VSWITCH])
        macs = {a["mac"] for a in self.adapters(lpar["uuid"])}
        self.assertIn(self.mac(self.neutron.port_1), macs)
        powervm.wait_for(
            lambda: (
                {i["port_id"] for i in self.api.get_port_interfaces(server["id"])}
                == {self.neutron.port_1["id"]}
            ),
            "Nova to list only the boot port",
        )
        self.assertEqual("ACTIVE", self.api.get_server(server["id"])["status"])
        self.assertEqual("running", self.lpar()["state"])

        self._delete_server(server)
        self.assert_nothing_left()

    def test_attach_is_refused_while_rmc_is_down(self):
        self.novalink.emu.config.rmc_on_boot = False  # the guest OS never starts RMC
        server = self.boot_from_image([{"port": self.neutron.port_1["id"]}])
        lpar = self.lpar()
        before = self.adapters(lpar["uuid"])
        port = self.new_port()

        exc = self.assertRaises(client.OpenStackApiException, self._attach, server, port["id"])
        self.assertEqual(500, exc.response.status_code)
        self.assertIn("Failed to attach network adapter", str(exc))
        server = self.api.get_server(server["id"])
        self.assertEqual("ACTIVE", server["status"])
        self.assertEqual(before, self.adapters(lpar["uuid"]))  # no adapter left behind
        self.assertEqual("", self.port_of(port["id"])["device_id"])  # the port is free again
        # The operator learns why: the error notification names the LPAR and RMC.
        (error,) = [
            n
            for n in self.notifier.versioned_notifications
            if n["event_type"] == "instance.interface_attach.error"
        ]
        fault = error["payload"]["nova_object.data"]["fault"]["nova_object.data"]
        self.assertIn("RMC", fault["exception_message"])
        (name,) = self.nl_view.lpars()
        self.assertIn(name, fault["exception_message"])

    def test_detach_is_refused_while_rmc_is_down(self):
        server = self.boot_from_image([{"port": self.neutron.port_1["id"]}])
        lpar = self.lpar()
        port = self.new_port()
        self._attach(server, port["id"])
        before = self.adapters(lpar["uuid"])
        emu = self.novalink.emu
        with emu.lock:  # the guest stopped RMC
            res = emu.store.get("LogicalPartition", lpar["uuid"])
            res.elem.find(".//{*}ResourceMonitoringControlState").text = "inactive"
            res.bump()
        self.assertRaises(
            client.OpenStackApiException,
            self.api.detach_interface,
            server["id"],
            port["id"],
        )
        self.assertEqual(before, self.adapters(lpar["uuid"]))  # the adapter is still there


class TestVifPluggedWait(_NetworkTestBase):
    def test_a_dead_agent_fails_the_boot_when_vif_plugging_is_fatal(self):
        self.flags(vif_plugging_timeout=2, vif_plugging_is_fatal=True)
        self.pvm_neutron.agent_alive = False
        server = self.boot_from_image([{"port": self.neutron.port_1["id"]}], expected_state="ERROR")
        self.assertIn("fault", server)
        self.assert_nothing_left()
        self.assertEqual([], self.nl_view.client_macs())

    def test_a_dead_agent_does_not_stop_the_boot_when_not_fatal(self):
        self.flags(vif_plugging_timeout=2, vif_plugging_is_fatal=False)
        self.pvm_neutron.agent_alive = False
        server = self.boot_from_image([{"port": self.neutron.port_1["id"]}])
        self.assertEqual("ACTIVE", server["status"])
        self.assertEqual("DOWN", self.port_of(self.neutron.port_1["id"])["status"])
        self.assertIn(
            self.mac(self.neutron.port_1), {a["mac"] for a in self.adapters(self.lpar()["uuid"])}
        )


class TestAdapters(_NetworkTestBase):
    def test_the_sea_adapter_carries_the_vlan_and_the_rmc_adapter_follows_the_option(self):
        port = self.neutron.port_1
        server = self.boot_from_image([{"port": port["id"]}])
        sea = {"mac": self.mac(port), "vlan": str(powervm.NETWORK_VLAN), "vswitch": "ETHERNET0"}
        adapters = self.adapters(self.lpar()["uuid"])
        self.assertEqual(2, len(adapters), adapters)
        self.assertIn(sea, adapters)
        (rmc,) = [a for a in adapters if a != sea]
        self.assertEqual(("4094", "MGMTSWITCH"), (rmc["vlan"], rmc["vswitch"]))
        self._delete_server(server)

        self.flags(group="powervm", use_rmc_mgmt_vif=False)
        server = self.boot_from_image([{"port": port["id"]}])
        self.assertEqual([sea], self.adapters(self.lpar()["uuid"]))


class _Recorder(pvm_adpt.RawEventHandler):
    def __init__(self) -> None:
        self.events: list[dict] = []
        self.lock = threading.Lock()

    def process(self, events):
        with self.lock:
            self.events.extend(events)

    def vif_events(self) -> list[tuple[dict, str]]:
        with self.lock:
            return [
                (json.loads(e["EventDetail"]), e["EventData"])
                for e in self.events
                if e["EventType"] == "CUSTOM_CLIENT_EVENT"
            ]


def _vif_event(action: str, port: dict, vif_type: str) -> dict:
    """The detail of a NOVA_PVM_VIF event as contract.py documents it."""
    return {
        "provider": contract.PVM_VIF_EVENT_PROVIDER,
        "action": action,
        "mac": contract.pvm_mac(port["mac_address"]),
        "type": vif_type,
    }


class TestVifEvents(_NetworkTestBase):
    def _listen(self) -> _Recorder:
        """An L2 agent's own NovaLink session and event listener."""
        session = pvm_adpt.Session(
            "127.0.0.1", "neo", "passw0rd", protocol="http", port=self.novalink.port
        )
        self.addCleanup(session._logoff)
        listener = session.get_event_listener()
        recorder = _Recorder()
        listener.subscribe(recorder)
        self.addCleanup(listener.shutdown)
        return recorder

    def test_plug_and_unplug_reach_the_event_feed(self):
        recorder = self._listen()
        boot_port = self.neutron.port_1
        server = self.boot_from_image([{"port": boot_port["id"]}])
        lpar = self.lpar()
        ((plug, data),) = powervm.wait_for(recorder.vif_events, "the plug event")
        self.assertEqual(_vif_event("plug", boot_port, "pvm_sea"), plug)
        self.assertIn(f"LogicalPartition/{lpar['uuid']}/ClientNetworkAdapter/", data)

        port = self.new_port()
        self.api.attach_interface(server["id"], {"interfaceAttachment": {"port_id": port["id"]}})
        self.api.detach_interface(server["id"], port["id"])

        def attach_and_detach():
            events = recorder.vif_events()
            return events[1:] if len(events) >= 3 else None

        events = powervm.wait_for(attach_and_detach, "the attach and detach events")
        self.assertEqual(
            [_vif_event("plug", port, "pvm_sea"), _vif_event("unplug", port, "pvm_sea")],
            [detail for detail, _ in events],
        )
        # Both name the adapter (the unplug by the link of a read, with its ?group=).
        self.assertEqual(events[0][1].split("?")[0], events[1][1].split("?")[0])
        self.assertIn(f"LogicalPartition/{lpar['uuid']}/ClientNetworkAdapter/", events[0][1])
