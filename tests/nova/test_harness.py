"""The harness itself, with Nova's in-tree fake driver as the hypervisor."""

from ibmvirt.sandbox import harness


class TestHarnessWithNovasFakeDriver(harness.SingleComputeTestBase):
    compute_driver = "fake.MediumFakeDriver"

    def test_server_lifecycle_through_the_api(self):
        server = self._create_server(networks="none")
        self.assertEqual("ACTIVE", server["status"])
        self.assertIn(server["id"], self.drivers()["compute"].list_instance_uuids())
        server = self._stop_server(server)
        self.assertEqual("SHUTOFF", server["status"])
        self._delete_server(server)
        self.assertEqual([], self.drivers()["compute"].list_instance_uuids())
