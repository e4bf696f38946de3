"""HMC requests per agent poll, counted in the emulator's request log: a
constant number whatever the number of NICs (networking-dpm read every NIC's
description at every poll)."""

from __future__ import annotations

from unittest import mock

import fixtures
import testtools
from oslo_config import cfg

from ibmvirt.emulators.hmc import inventories
from ibmvirt.neutron.agent import dpm
from tests.neutron.dpm_fixtures import DpmHmc


class BudgetTestCase(testtools.TestCase):
    inventory = inventories.Z15

    def setUp(self):
        super().setUp()
        inventory = self.inventory
        if inventory is None:  # a z15 managed by an HMC 2.16.0
            tmp = self.useFixture(fixtures.TempDir()).path
            inventory = inventories.with_hmc_version(inventories.Z15, "2.16.0", "4.10", tmp)
        self.hmc = self.useFixture(DpmHmc(inventory, inventories.Z15_IDS))
        self.ids = self.hmc.ids
        conf = cfg.ConfigOpts()
        # oslo.config keeps overrides in the option group, which is shared by every
        # ConfigOpts the group is registered on: drop them after the test.
        self.addCleanup(conf.reset)
        conf.register_opt(cfg.StrOpt("host"))
        conf([], project="ibmvirt-test")
        self.hmc.configure(conf, [f"physnet1:{self.ids.osa_adapter}"])
        self.manager = dpm.make_manager(conf)
        # make_manager logs off (the worker logs on anew): log on as it does,
        # so that polls count only their own requests.
        self.manager.client.session.logon()
        self.ports: list[str] = []
        self.nics = []

    def add_nics(self, count: int, host: str = "host1", per_partition: int = 4) -> None:
        part = None
        for i in range(count):
            if i % per_partition == 0:
                part = self.hmc.partition(host)
            port = f"{host}-port-{len(self.nics)}"
            self.nics.append(self.hmc.create_nic(part, port, self.ids.vswitch_osa_port0, host))
            if host == "host1":
                self.ports.append(port)

    def poll(self) -> tuple[set[str], int]:
        """One get_all_devices: the devices and the HMC requests it made."""
        before = self.hmc.emu.request_count()
        devices = self.manager.get_all_devices()
        return devices, self.hmc.emu.request_count() - before


class TestHmcBefore216(BudgetTestCase):
    def test_one_get_inventory_per_poll_whatever_the_nics(self):
        self.assertFalse(self.manager.features.list_additional_properties)
        self.add_nics(10)
        self.add_nics(4, host="host2")
        self.assertEqual((set(self.ports), 1), self.poll())
        self.assertEqual((set(self.ports), 1), self.poll())
        self.add_nics(40)
        self.assertEqual((set(self.ports), 1), self.poll())
        self.assertEqual(50, len(self.ports))
        self.assertEqual(3, self.hmc.emu.request_count("POST", r"^/api/services/inventory$"))

    def test_incomplete_inventory_is_an_outage_not_a_deletion(self):
        self.add_nics(2)
        self.assertEqual(set(self.ports), self.poll()[0])
        # The NICs are all there, but the HMC says it could not inventory
        # something: what is missing cannot be told, so nothing is reported
        # (not only what the partial answer lacks).
        error = {"class": "inventory-error", "inventory-error-code": 1}
        real = self.manager.client.get_inventory
        with mock.patch.object(
            self.manager.client, "get_inventory", side_effect=lambda res: real(res) + [error]
        ):
            self.assertEqual(set(), self.manager.get_all_devices())
        self.assertEqual(set(self.ports), self.poll()[0])


class TestHmc216(BudgetTestCase):
    inventory = None

    def test_one_list_and_one_backing_list_per_poll_new_nics_read_once(self):
        self.assertTrue(self.manager.features.list_additional_properties)
        bulk = r"^/api/services/aggregation/submit$"
        bulk_at_start = self.hmc.emu.request_count("POST", bulk)  # the vswitch list's
        self.add_nics(10)
        self.add_nics(4, host="host2")  # partitions named for host2: never read
        # List Partitions, one Submit Requests for the 10 new NICs, the vswitch list.
        self.assertEqual((set(self.ports), 3), self.poll())
        self.assertEqual((set(self.ports), 2), self.poll())
        self.add_nics(3)
        self.assertEqual((set(self.ports), 3), self.poll())
        self.nics[0].delete()
        self.assertEqual((set(self.ports[1:]), 2), self.poll())
        self.assertEqual((set(self.ports[1:]), 2), self.poll())
        listed = self.hmc.emu.request_count(
            "GET", r"^/api/cpcs/[^/]+/partitions\?name=.*&additional-properties=nic-uris$"
        )
        self.assertEqual(5, listed)
        self.assertEqual(2, self.hmc.emu.request_count("POST", bulk) - bulk_at_start)

    def test_a_nic_of_another_host_in_our_partition_is_read_once(self):
        part = self.hmc.partition("host1")
        self.hmc.create_nic(part, "theirs", self.ids.vswitch_osa_port0, "host2")
        self.assertEqual((set(), 3), self.poll())
        self.assertEqual((set(), 2), self.poll())

    def test_an_hmc_refusing_additional_properties_is_read_by_inventory(self):
        self.add_nics(3)
        self.hmc.emu.inject_fault(
            "GET", r"/partitions\?.*additional-properties=", status=400, reason=1
        )
        devices, _ = self.poll()
        self.assertEqual(set(self.ports), devices)
        self.assertFalse(self.manager.features.list_additional_properties)
        self.assertEqual((set(self.ports), 1), self.poll())

    def test_an_hmc_ignoring_additional_properties_is_read_by_inventory(self):
        """A List Partitions answered without nic-uris is not "no NICs"."""
        self.add_nics(3)
        partitions = self.manager.cpc.partitions
        real = partitions.list

        def without_nic_uris(*args, **kwargs):
            listed = real(*args, **kwargs)
            for part in listed:
                part._properties.pop("nic-uris", None)
            return listed

        with mock.patch.object(partitions, "list", side_effect=without_nic_uris):
            devices, _ = self.poll()
        self.assertEqual(set(self.ports), devices)
        self.assertFalse(self.manager.features.list_additional_properties)
