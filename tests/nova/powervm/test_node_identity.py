"""Nova's node identity file: nova-compute restarts on a PowerVM host.

Nova 34 refuses to start a compute service that ran before unless
``state_path/compute_id`` exists; Nova's own test fixture normally stubs that
check away, so these tests keep it and give the service a real state_path.
"""

from __future__ import annotations

import os

import fixtures

from ibmvirt.common import nodes
from ibmvirt.sandbox import powervm


class TestNodeIdentity(powervm.PowerVMSingleComputeTestBase):
    STUB_COMPUTE_ID = False

    def driver_flags(self):
        super().driver_flags()
        self.state_path = self.useFixture(fixtures.TempDir()).path
        self.flags(state_path=self.state_path)

    def _identity_file(self) -> str:
        with open(os.path.join(self.state_path, "compute_id")) as f:
            return f.read().strip()

    def _expected_node(self) -> str:
        system = self.computes["compute"].manager.driver.host.uuid
        return nodes.node_uuid(system, "compute")

    def _hypervisors(self) -> list[dict]:
        self.admin_api.microversion = "2.53"  # hypervisor ids are the node UUIDs
        return self.admin_api.api_get("/os-hypervisors").body["hypervisors"]

    def test_the_first_start_writes_the_derived_node_uuid(self):
        expected = self._expected_node()
        self.assertEqual(expected, self._identity_file())
        self.assertEqual([expected], [h["id"] for h in self._hypervisors()])

    def test_nova_compute_starts_again_with_the_same_node(self):
        before = self._hypervisors()
        self.restart_compute("compute")
        after = self._hypervisors()
        self.assertEqual([h["id"] for h in before], [h["id"] for h in after])
        self.assertEqual("up", self.admin_api.get_services(binary="nova-compute")[0]["state"])
        server = self.boot_from_image([])
        self.assertEqual("ACTIVE", server["status"])
        self._delete_server(server)

    def test_an_identity_file_already_there_is_kept(self):
        other = "6c0c0b3a-52b4-4b0e-9d0e-6f1a8a9b3c11"
        path = os.path.join(self.state_path, "compute_id")
        os.unlink(path)
        with open(path, "w") as f:
            f.write(other + "\n")
        self.restart_compute("compute")
        self.assertEqual(other, self._identity_file())
        # The node is still the derived one: the file does not decide it.
        expected = self._expected_node()
        self.assertEqual([expected], [h["id"] for h in self._hypervisors()])
