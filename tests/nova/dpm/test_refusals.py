"""What users see when a request cannot be served, and partitions that change
status behind Nova's back."""

from nova import context as nova_context

from ibmvirt.emulators.hmc import inventories
from ibmvirt.sandbox import dpm


class TestRefusalsAndOutOfBandChanges(dpm.DPMSingleComputeTestBase):
    inventory = inventories.Z15
    # The power-state sync casts stop_instance to its own compute while it
    # holds the instance lock; as a synchronous call that would deadlock.
    CAST_AS_CALL = False

    def setUp(self):
        super().setUp()
        self.view = dpm.HMCView(self.hmc)
        self.flags(max_attempts=1, group="scheduler")

    def _assert_nothing_on_the_hmc(self):
        self.assertEqual([], self.view.owned_by("compute"))
        self.assertEqual({}, self.array.masking)

    def test_boot_from_image_is_refused_with_a_clear_message(self):
        image = self.glance.create(
            None,
            {
                "name": "rhel9-s390x",
                "status": "active",
                "container_format": "bare",
                "disk_format": "raw",
                "size": 1024,
                "properties": {"architecture": "s390x"},
            },
        )
        # With a disk in the flavor, placement already refuses (the CPC subset
        # offers no DISK_GB); a zero-disk flavor reaches the driver.
        server = self._create_server(
            image_uuid=image["id"], networks="none", expected_state="ERROR"
        )
        self.assertIn("No valid host", server["fault"]["message"])
        self._assert_nothing_on_the_hmc()
        flavor = self.api.post_flavor(
            {"flavor": {"name": "zero-disk", "ram": 1024, "vcpus": 1, "disk": 0}}
        )
        server = self._create_server(
            image_uuid=image["id"],
            flavor_id=flavor["id"],
            networks="none",
            expected_state="ERROR",
        )
        self.assertIn("must boot from a Cinder volume", server["fault"]["message"])
        self._assert_nothing_on_the_hmc()

    def test_no_vif_plugged_event_fails_the_boot_and_cleans_up(self):
        # The DPM agent is down: ports never go ACTIVE, Nova hears nothing.
        self.flags(vif_plugging_timeout=2)
        self.neutron.agent_alive = False
        server = self.boot_from_volume(
            [{"port": self.neutron.port_1["id"]}], expected_state="ERROR"
        )
        self.assertIn("Failed to allocate the network(s)", server["fault"]["message"])
        self._assert_nothing_on_the_hmc()

    def test_guest_shutdown_from_inside_then_start_through_nova(self):
        server = self._create_server_boot_from_volume(
            networks=[{"port": self.neutron.port_1["id"]}]
        )
        name = f"OpenStack-compute-{server['id']}"
        # `shutdown -P` in a DPM guest leaves the partition paused.
        self.hmc.set_partition_status(name, "paused")
        self.compute.manager._sync_power_states(nova_context.get_admin_context())
        server = self._wait_for_state_change(server, "SHUTOFF")
        # Starting a paused partition needs a stop first; the user just starts.
        server = self._start_server(server)
        self.assertEqual("ACTIVE", server["status"])
        self.assertEqual("active", self.view.partition(name)["status"])

    def test_partition_gone_behind_novas_back_is_deleted_cleanly(self):
        server = self._create_server_boot_from_volume(
            networks=[{"port": self.neutron.port_1["id"]}]
        )
        name = f"OpenStack-compute-{server['id']}"
        self.hmc.set_partition_status(name, "terminated")
        self.compute.manager._sync_power_states(nova_context.get_admin_context())
        server = self._wait_for_state_change(server, "SHUTOFF")
        server = self._start_server(server)
        self.assertEqual("active", self.view.partition(name)["status"])
        self._delete_server(server)
        self._assert_nothing_on_the_hmc()


class TestZ13NicLimit(dpm.DPMSingleComputeTestBase):
    """On z13 each NIC record carries the MAC: 12 NICs fit in 256 characters."""

    inventory = inventories.Z13

    def setUp(self):
        super().setUp()
        self.view = dpm.HMCView(self.hmc)
        self.flags(max_attempts=1, group="scheduler")

    def test_more_nics_than_boot_parameters_can_carry_creates_nothing(self):
        ports = [self.neutron.create_port({"port": {}})["port"] for _ in range(13)]
        server = self.boot_from_volume([{"port": p["id"]} for p in ports], expected_state="ERROR")
        self.assertIn("256", server["fault"]["message"])
        self.assertEqual([], self.view.owned_by("compute"))
        self.assertEqual({}, self.array.masking)
