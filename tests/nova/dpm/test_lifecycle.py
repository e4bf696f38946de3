"""Servers on an emulated DPM CPC, driven through the Nova API.

Each scenario runs on a z13-style CPC (HBAs, MAC not settable at NIC creation)
and on a z15-style CPC (DPM storage management, MAC set at creation), and
checks what a user sees through Nova and what an operator sees on the HMC.
"""

import fixtures
from nova.tests.functional.api import client
from oslo_utils.fixture import uuidsentinel as uuids

from ibmvirt.dpm import bootparams
from ibmvirt.emulators.hmc import inventories
from ibmvirt.sandbox import dpm, fcarray


class LifecycleScenarios:
    """Shared by the z13 and z15 classes below."""

    def setUp(self):
        super().setUp()
        self.view = dpm.HMCView(self.hmc)

    def _boot(self):
        port = self.neutron.port_1
        server = self._create_server_boot_from_volume(networks=[{"port": port["id"]}])
        return server, port

    def _partition_name(self, server):
        return f"OpenStack-compute-{server['id']}"

    def _wwpns(self, name):
        """Host WWPNs of the partition, as the HMC shows them."""
        if self.inventory == inventories.Z13:
            return {h["wwpn"].lower() for h in self.view.hbas(name)}
        group = self.view.storage_groups()[name]
        return {v["world-wide-port-name"].lower() for v in group["vsrs"]}

    def test_boot_from_volume_shows_up_on_the_hmc(self):
        before = len(self.hmc.request_log)
        server, port = self._boot()
        self.assertEqual("ACTIVE", server["status"])
        # Request budget: at most 10 HMC requests besides job polls (and logon).
        spawn = [
            r
            for r in self.hmc.request_log[before:]
            if not r.path.startswith(("/api/jobs/", "/api/sessions"))
        ]
        self.assertLessEqual(len(spawn), 10, [f"{r.method} {r.path}" for r in spawn])
        name = self._partition_name(server)
        partition = self.view.partition(name)
        self.assertEqual("active", partition["status"])
        self.assertIn("compute", partition["description"])

        # One NIC on the configured vswitch, recognisable as this port's.
        (nic,) = self.view.nics(name)
        self.assertIn(port["id"], nic["name"])
        self.assertTrue(nic["virtual-switch-uri"].endswith(self.ids.vswitch_osa_port0))
        (record,) = bootparams.parse(partition["boot-os-specific-parameters"])
        self.assertEqual(nic["device-number"].lower(), record.devno)
        self.assertEqual(0, record.port)

        # The array masked the boot LUN to exactly the partition's WWPNs, one
        # per configured adapter port.
        wwpns = self._wwpns(name)
        self.assertEqual(len(self.ids.fcp_adapters), len(wwpns))
        (volume_id,) = self.array.masking
        self.assertEqual(wwpns, self.array.masking[volume_id])
        return server, port, partition, nic, volume_id

    def test_stop_start_reboot_console_delete(self):
        server, _ = self._boot()
        name = self._partition_name(server)

        server = self._stop_server(server)
        self.assertEqual("SHUTOFF", server["status"])
        self.assertEqual("stopped", self.view.partition(name)["status"])

        server = self._start_server(server)
        self.assertEqual("ACTIVE", server["status"])
        self.assertEqual("active", self.view.partition(name)["status"])

        self._reboot_server(server, hard=True)
        self.assertEqual("active", self.view.partition(name)["status"])

        self._check_console(server)

        self._delete_server(server)
        self.assertEqual([], self.view.owned_by("compute"))
        self.assertEqual({}, self.array.masking)

    def test_attach_and_detach_volume_and_interface(self):
        server, _ = self._boot()
        name = self._partition_name(server)

        self._attach_volume(server, uuids.data_volume)
        self.assertEqual(self._wwpns(name), self.array.masking[uuids.data_volume])
        self._detach_volume(server, uuids.data_volume)
        self.assertNotIn(uuids.data_volume, self.array.masking)

        attachment = self.api.attach_interface(
            server["id"], {"interfaceAttachment": {"net_id": self.neutron.network_1["id"]}}
        ).body["interfaceAttachment"]
        self.notifier.wait_for_versioned_notifications("instance.interface_attach.end")
        new_port = attachment["port_id"]
        nics = self.view.nics(name)
        self.assertEqual(2, len(nics))
        self.assertTrue(any(new_port in n["name"] for n in nics))
        records = bootparams.parse(self.view.partition(name)["boot-os-specific-parameters"])
        self.assertEqual(
            sorted(n["device-number"].lower() for n in nics), sorted(r.devno for r in records)
        )

        self._detach_interface(server, new_port)
        nics = self.view.nics(name)
        self.assertEqual(1, len(nics))
        records = bootparams.parse(self.view.partition(name)["boot-os-specific-parameters"])
        self.assertEqual([nics[0]["device-number"].lower()], [r.devno for r in records])

        self._delete_server(server)
        self.assertEqual([], self.view.owned_by("compute"))

    def _detach_volume(self, server, volume_id):
        self.api.delete_server_volume(server["id"], volume_id)
        self._wait_for_volume_detach(server["id"], volume_id)


class TestZ15(LifecycleScenarios, dpm.DPMSingleComputeTestBase):
    inventory = inventories.Z15

    def _check_console(self, server):
        output = self.api.post_server_action(server["id"], {"os-getConsoleOutput": {"length": 50}})
        self.assertIn("Linux", output["output"])

    def test_boot_from_volume_shows_up_on_the_hmc(self):
        server, port, partition, nic, volume_id = (
            super().test_boot_from_volume_shows_up_on_the_hmc()
        )
        # z14+: the NIC carries the Neutron MAC; the record does not need it.
        self.assertEqual(port["mac_address"].lower(), nic["mac-address"].lower())
        (record,) = bootparams.parse(partition["boot-os-specific-parameters"])
        self.assertIsNone(record.mac)
        # Boot from the storage volume of the Cinder volume, fulfilled at its LUN.
        self.assertEqual("storage-volume", partition["boot-device"])
        group = self.view.storage_groups()[self._partition_name(server)]
        (volume,) = group["volumes"]
        self.assertEqual(partition["boot-storage-volume"], volume["element-uri"])
        self.assertEqual("complete", volume["fulfillment-state"])
        lun = f"{self.array.lun_of(volume_id):04x}000000000000"
        self.assertIn(lun, [p["logical-unit-number"] for p in volume["paths"]])


class TestZ13(LifecycleScenarios, dpm.DPMSingleComputeTestBase):
    inventory = inventories.Z13

    def _check_console(self, server):
        # The HMC lists OS messages from SE 2.14 on: Nova answers "not implemented".
        exc = self.assertRaises(
            client.OpenStackApiException,
            self.api.post_server_action,
            server["id"],
            {"os-getConsoleOutput": {"length": 50}},
        )
        self.assertEqual(501, exc.response.status_code)

    def test_boot_from_volume_shows_up_on_the_hmc(self):
        server, port, partition, nic, volume_id = (
            super().test_boot_from_volume_shows_up_on_the_hmc()
        )
        # z13: the MAC reaches the guest through the NIC record.
        (record,) = bootparams.parse(partition["boot-os-specific-parameters"])
        self.assertEqual(port["mac_address"].replace(":", "").lower(), record.mac)
        # Boot through the first configured HBA, target and LUN from Cinder.
        self.assertEqual("storage-adapter", partition["boot-device"])
        hbas = {h["element-uri"]: h for h in self.view.hbas(self._partition_name(server))}
        boot_hba = hbas[partition["boot-storage-device"]]
        self.assertIn(self.ids.fcp_adapters[0], boot_hba["adapter-port-uri"])
        self.assertIn(partition["boot-world-wide-port-name"].lower(), fcarray.ARRAY_TARGET_WWPNS)
        lun = self.array.lun_of(volume_id)
        self.assertEqual(f"{lun:04x}000000000000", partition["boot-logical-unit-number"])


class TestPasswordNeverLogged(dpm.DPMSingleComputeTestBase):
    """Everything logged at DEBUG during start-up and a server's life."""

    inventory = inventories.Z15

    def setUp(self):
        self.useFixture(fixtures.EnvironmentVariable("OS_DEBUG", "1"))
        super().setUp()

    def test_hmc_password_is_not_in_the_logs(self):
        server = self._create_server_boot_from_volume(
            networks=[{"port": self.neutron.port_1["id"]}]
        )
        self.hmc.expire_sessions()  # force a re-logon, which sends the password again
        self._stop_server(server)
        self._delete_server(server)
        output = self.stdlog.logger.output
        self.assertIn("ibmvirt.dpm", output)  # the driver's debug logs were captured
        self.assertNotIn(dpm.HMC_PASSWORD, output)
