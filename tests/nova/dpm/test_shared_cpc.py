"""Two compute services sharing one CPC, each managing its own CPC subset."""

from ibmvirt.emulators.hmc import inventories
from ibmvirt.sandbox import dpm


class TestTwoHostsOneCPC(dpm.DPMMultiComputeTestBase):
    inventory = inventories.Z15

    def setUp(self):
        super().setUp()
        self.view = dpm.HMCView(self.hmc)
        self._start_compute("subset1")
        self._start_compute("subset2")

    def test_each_host_sees_and_touches_only_its_own_partitions(self):
        one = self.boot_from_volume([{"port": self.neutron.port_1["id"]}], host="subset1")
        two = self.boot_from_volume([{"uuid": self.neutron.network_1["id"]}], host="subset2")
        self.assertEqual("subset1", one["OS-EXT-SRV-ATTR:host"])
        self.assertEqual("subset2", two["OS-EXT-SRV-ATTR:host"])

        drivers = self.drivers()
        self.assertEqual([one["id"]], drivers["subset1"].list_instance_uuids())
        self.assertEqual([two["id"]], drivers["subset2"].list_instance_uuids())
        self.assertEqual([f"OpenStack-subset1-{one['id']}"], self.view.owned_by("subset1")[:1])
        self.assertEqual([f"OpenStack-subset2-{two['id']}"], self.view.owned_by("subset2")[:1])

        # Periodic tasks on both hosts leave the other host's partition alone.
        self._run_periodics()
        self.assertEqual("active", self.view.partition(f"OpenStack-subset2-{two['id']}")["status"])

        self._delete_server(one)
        self.assertEqual([], self.view.owned_by("subset1"))
        self.assertEqual("active", self.view.partition(f"OpenStack-subset2-{two['id']}")["status"])
        self.assertEqual([two["id"]], drivers["subset2"].list_instance_uuids())

    def test_each_host_offers_its_own_subset_to_placement(self):
        for host in ("subset1", "subset2"):
            rp_uuid = self._get_provider_uuid_by_host(host)
            inventory = self._get_provider_inventory(rp_uuid)
            self.assertEqual(self.max_processors, inventory["VCPU"]["total"])
            self.assertEqual(self.max_memory, inventory["MEMORY_MB"]["total"])
            traits = self._get_provider_traits(rp_uuid)
            self.assertIn("HW_ARCH_S390X", traits)
        self.assertNotEqual(
            self._get_provider_uuid_by_host("subset1"), self._get_provider_uuid_by_host("subset2")
        )
