"""Evacuate through the Nova API between two emulated PowerVM hosts of one
SSP cluster, with the NVRAM kept in Swift (a Keystone + Swift server over
HTTP) or in a shared directory: the LPAR on the destination has the slots
and the NVRAM it had on the source; the source cleans up once it is back;
deleting the server forgets the NVRAM."""

from __future__ import annotations

import base64
import tempfile

from ibmvirt.emulators.novalink.state import power as nl_power
from ibmvirt.powervm.nvram.local import LocalNvramStore
from ibmvirt.sandbox import powervm
from ibmvirt.sandbox.powervm import wait_for
from ibmvirt.sandbox.swift import SwiftServer
from tests.nova.powervm.test_resize import TwoHosts


class EvacuateChecks(TwoHosts):
    disk_driver = "ssp"

    def _stored(self, server):
        raise NotImplementedError

    def _force_down(self, down: bool):
        svc = self.api.get_services(host="compute", binary="nova-compute")[0]
        self.api.put_service_force_down(svc["id"], down)

    def _source_down(self):
        self.computes["compute"].stop()
        self._force_down(True)

    def _source_back(self):
        self.restart_compute("compute")
        self._force_down(False)

    def _evacuate(self, server):
        """``openstack server evacuate`` (microversion 2.94: the server runs
        on the destination as it ran on the source; 2.95 would stop it)."""
        self._source_down()
        self.api.microversion = "2.94"
        try:
            self.api.post_server_action(server["id"], {"evacuate": {}})
        finally:
            self.api.microversion = "latest"
        server = self._wait_for_server_parameter(
            server, {"status": "ACTIVE", "OS-EXT-SRV-ATTR:host": "host2"}
        )
        wait_for(
            lambda: [
                m
                for m in self.api.api_get("/os-migrations").body["migrations"]
                if m["instance_uuid"] == server["id"] and m["status"] == "done"
            ],
            "the evacuation done",
            timeout=60,
        )
        return server

    def _assert_same_slots(self, before, after, server):
        """The port's adapter (same MAC) and the RMC adapter (a MAC of each
        host's own) in the slots they had; each vSCSI adapter too."""
        self.assertEqual(before["scsi"], after["scsi"])
        port_mac = self.neutron.port_1["mac_address"].replace(":", "").upper()
        self.assertEqual(before["cna"][port_mac], after["cna"][port_mac])
        self.assertEqual(sorted(before["cna"].values()), sorted(after["cna"].values()))

    def _wait_nvram_saved(self, server):
        name = server["OS-EXT-SRV-ATTR:instance_name"]
        current = self.one.nvram_of(name)
        self.assertTrue(current)
        wait_for(lambda: self._stored(server) == current.encode(), "the NVRAM saved")
        return current

    def _nvram_after_a_power_cycle(self, server):
        """The NVRAM once the hypervisor rewrote it (a power-off does), saved:
        no longer what any new LPAR of that UUID starts with, so only a
        restore can give the destination's LPAR these bytes."""
        server = self._start_server(self._stop_server(server))
        nvram = self._wait_nvram_saved(server)
        uuid = self._lpar(server, self.one)["uuid"]
        self.assertNotEqual(nl_power.nvram_blob(uuid, 1), nvram)
        return nvram

    def test_evacuate_recreates_the_lpar_with_its_slots_and_nvram(self):
        server = self._boot_on_one(self.small, config_drive=True)
        name, lu = server["OS-EXT-SRV-ATTR:instance_name"], f"boot_{server['id']}"
        before = self._lpar(server, self.one)
        nvram = self._nvram_after_a_power_cycle(server)
        slots_before = self.one.client_slots(before["uuid"])
        self.assertEqual(2, len(slots_before["cna"]))  # the port and the RMC adapter
        self.assertIn(f"vios1/{lu}", slots_before["scsi"])
        self.assertIn(f"vios2/{lu}", slots_before["scsi"])

        server = self._evacuate(server)
        after = self._lpar(server, self.two)
        self.assertEqual("running", after["state"])
        self.assertEqual(before["uuid"], after["uuid"])
        self.assertEqual(nvram, self.two.nvram_of(name))  # the bytes saved, restored
        self._assert_same_slots(slots_before, self.two.client_slots(after["uuid"]), server)
        self.assertEqual(["vios1", "vios2"], self._mapped(self.two, lu))
        # The source is down: what it had is still there.
        self.assertIn(name, self.one.lpars())

        self._source_back()
        wait_for(lambda: name not in self.one.lpars(), "the source's LPAR removed")
        self.assertEqual([], self.one.scsi_mappings())
        self.assertEqual([], self.one.optical_media())
        self.assertIn(lu, self.two.logical_units())  # shared: the destination uses it
        self.assertEqual(["vios1", "vios2"], self._mapped(self.two, lu))
        self.assertEqual(nvram.encode(), self._stored(server))  # kept for the instance
        self.assertEqual("running", self._lpar(server, self.two)["state"])

        self._delete_server(server)
        self.assertEqual({}, self.two.lpars())
        self.assertNotIn(lu, self.two.logical_units())
        self.assertIsNone(self._stored(server))

    def test_an_interface_attached_later_keeps_its_slot(self):
        """A fresh LPAR would get its adapters in another order: the slots
        kept after the attach are what puts the port back where it was."""
        server = self._boot_on_one(self.small)
        port = self.neutron.create_port({"port": {"network_id": self.neutron.network_1["id"]}})
        port = port["port"]
        self.api.attach_interface(server["id"], {"interfaceAttachment": {"port_id": port["id"]}})
        mac = port["mac_address"].replace(":", "").upper()
        uuid = self._lpar(server, self.one)["uuid"]
        wait_for(lambda: mac in self.one.client_slots(uuid)["cna"], "the new adapter")
        self._wait_nvram_saved(server)
        before = self.one.client_slots(uuid)
        # A new LPAR gets its ports first (slots 2 and 3), then the RMC adapter
        # and the disks: the attached port is behind those here.
        self.assertGreater(before["cna"][mac], 4)

        server = self._evacuate(server)
        after = self.two.client_slots(self._lpar(server, self.two)["uuid"])
        self.assertEqual(before["cna"][mac], after["cna"][mac])
        self._assert_same_slots(before, after, server)

    def test_evacuate_of_a_server_booted_from_a_volume(self):
        server = self.boot_from_volume(
            [{"port": self.neutron.port_1["id"]}], flavor_id=self.small, host="compute"
        )
        name = server["OS-EXT-SRV-ATTR:instance_name"]
        before = self._lpar(server, self.one)
        nvram = self._nvram_after_a_power_cycle(server)
        slots_before = self.one.client_slots(before["uuid"])
        self.assertEqual(2, len(slots_before["scsi"]))  # the volume on each VIOS

        server = self._evacuate(server)
        after = self._lpar(server, self.two)
        self.assertEqual("running", after["state"])
        self.assertEqual(nvram, self.two.nvram_of(name))
        slots_after = self.two.client_slots(after["uuid"])
        # The hdisk names are each host's own: the slots per VIOS are the same.
        self.assertEqual(
            sorted((k.split("/")[0], v) for k, v in slots_before["scsi"].items()),
            sorted((k.split("/")[0], v) for k, v in slots_after["scsi"].items()),
        )
        self._assert_same_slots(
            {"cna": slots_before["cna"], "scsi": {}},
            {"cna": slots_after["cna"], "scsi": {}},
            server,
        )

        self._source_back()
        wait_for(lambda: name not in self.one.lpars(), "the source's LPAR removed")
        self.assertEqual([], self.one.scsi_mappings())
        self._delete_server(server)
        self.assertEqual([], self.two.scsi_mappings())
        self.assertIsNone(self._stored(server))


class TestEvacuateWithSwift(EvacuateChecks, powervm.PowerVMSingleComputeTestBase):
    def driver_flags(self):
        super().driver_flags()
        self.swift = SwiftServer("powervm", "nvram-pw", "service")
        self.addCleanup(self.swift.stop)
        self.flags(
            group="powervm",
            nvram_store="swift",
            swift_auth_url=self.swift.auth_url,
            swift_username="powervm",
            swift_password="nvram-pw",
            swift_project_name="service",
        )

    def _stored(self, server):
        return self.swift.objects("powervm_nvram").get(server["id"])

    def test_the_nvram_is_saved_again_after_the_token_expired(self):
        server = self._boot_on_one(self.small)
        self._wait_nvram_saved(server)
        self.swift.expire_tokens()
        server = self._stop_server(server)  # a power-off rewrites the NVRAM
        name = server["OS-EXT-SRV-ATTR:instance_name"]
        wait_for(
            lambda: self._stored(server) == self.one.nvram_of(name).encode(),
            "the new NVRAM saved",
        )
        self.assertIn(401, [status for _m, _p, status in self.swift.log])
        base64.b64decode(self._stored(server))  # NovaLink's base64 text, unchanged


class TestEvacuateWithLocalFiles(EvacuateChecks, powervm.PowerVMSingleComputeTestBase):
    def driver_flags(self):
        super().driver_flags()
        self.nvram_dir = tempfile.mkdtemp(prefix="ibmvirt-nvram-")
        self.addCleanup(powervm._rmtree, self.nvram_dir)
        # Both hosts see the one directory, as hosts sharing it over NFS would.
        self.flags(group="powervm", nvram_store="local", nvram_local_path=self.nvram_dir)

    def _stored(self, server):
        return LocalNvramStore(self.nvram_dir).fetch(server["id"])
