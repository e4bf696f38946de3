"""Resize and cold migration through the Nova API, on one and on two emulated
PowerVM hosts: the flavor Nova shows, the LPAR's processors, memory and boot
disk on the emulated systems, and what is left on each host afterwards."""

from __future__ import annotations

from ibmvirt.sandbox import powervm


class ResizeHelpers:
    """Flavors and looks at the emulated hosts shared by the resize tests."""

    # Casts stay casts, as between real services: a refusal on the source host
    # must leave the server as the compute host sets it, not as a failed call
    # would travel back through the destination and the conductor.
    CAST_AS_CALL = False

    def _flavor(self, name, memory_mb, vcpu, disk):
        return self._create_flavor(
            name=name, memory_mb=memory_mb, vcpu=vcpu, disk=disk, ephemeral=0
        )

    def _make_flavors(self):
        self.small = self._flavor("pvm.small", 2048, 1, 1)
        self.big = self._flavor("pvm.big", 4096, 2, 2)
        self.big_same_disk = self._flavor("pvm.bigmem", 8192, 2, 2)

    def _boot(self, flavor_id, networks=None, **kwargs):
        networks = networks if networks is not None else [{"port": self.neutron.port_1["id"]}]
        return self.boot_from_image(networks, flavor_id=flavor_id, **kwargs)

    def _lpar(self, server, view=None):
        view = view or self.nl_view
        return view.lpars().get(server["OS-EXT-SRV-ATTR:instance_name"])

    def _boot_disk_gb(self, server, view=None):
        view = view or self.nl_view
        sizes = view.disk_sizes_gb()
        names = [n for n in sizes if n.startswith(("b_", "boot_"))]
        mine = [
            n
            for n in names
            if n == f"boot_{server['id']}" or n == "b_" + server["id"].replace("-", "")[:13]
        ]
        return sizes[mine[0]] if mine else None

    def _resize(self, server, flavor_id):
        self.api.post_server_action(server["id"], {"resize": {"flavorRef": flavor_id}})
        return self._wait_for_state_change(server, "VERIFY_RESIZE")

    def _refused(self, server, action, event):
        """The action's failed event, as ``openstack server event show`` gives it."""
        failed = self._wait_for_action_fail_completion(server, action, event)
        return failed.get("details") or ""


class TestResizeOnOneHost(ResizeHelpers, powervm.PowerVMSingleComputeTestBase):
    def setUp(self):
        super().setUp()
        self.flags(allow_resize_to_same_host=True)
        self._make_flavors()

    def test_resize_gives_the_lpar_the_new_flavor_and_a_larger_root_disk(self):
        server = self._boot(self.small)
        lpar = self._lpar(server)
        self.assertEqual((2048, 1, "running"), (lpar["memory_mb"], lpar["vcpus"], lpar["state"]))
        self.assertEqual(1.0, self._boot_disk_gb(server))
        uuid_before = self._lpar(server)["uuid"]
        macs_before = self.nl_view.adapters_of(uuid_before)

        server = self._resize(server, self.big)
        self.assertEqual("pvm.big", server["flavor"]["original_name"])
        lpar = self._lpar(server)
        self.assertEqual((4096, 2, "running"), (lpar["memory_mb"], lpar["vcpus"], lpar["state"]))
        self.assertEqual(uuid_before, lpar["uuid"])  # the same LPAR, resized in place
        self.assertEqual(macs_before, self.nl_view.adapters_of(lpar["uuid"]))
        self.assertEqual(2.0, self._boot_disk_gb(server))

        server = self._confirm_resize(server)
        self.assertEqual("pvm.big", server["flavor"]["original_name"])
        self.assertEqual([server["OS-EXT-SRV-ATTR:instance_name"]], list(self.nl_view.lpars()))
        self.assertEqual((4096, 2), (self._lpar(server)["memory_mb"], self._lpar(server)["vcpus"]))
        self.assertEqual(2.0, self._boot_disk_gb(server))
        self._delete_server(server)
        self.assertEqual({}, self.nl_view.lpars())
        self.assertEqual([], self.nl_view.scsi_mappings())

    def test_revert_gives_the_lpar_its_old_processors_and_memory(self):
        server = self._boot(self.small)
        server = self._resize(server, self.big)
        server = self._revert_resize(server)
        self.assertEqual("pvm.small", server["flavor"]["original_name"])
        lpar = self._lpar(server)
        self.assertEqual((2048, 1, "running"), (lpar["memory_mb"], lpar["vcpus"], lpar["state"]))
        # A disk cannot shrink: the reverted server keeps the grown root disk.
        self.assertEqual(2.0, self._boot_disk_gb(server))
        self.assertEqual([server["OS-EXT-SRV-ATTR:instance_name"]], list(self.nl_view.lpars()))
        self._delete_server(server)
        self.assertEqual([], self.nl_view.scsi_mappings())

    def test_a_root_disk_of_the_same_size_is_allowed_one_gib_less_refused(self):
        # Booted with 1 GB and grown to 2 GB: Nova's API only knows the image
        # needs 1 GB, so the driver is what refuses going back to 1 GB.
        server = self._confirm_resize(self._resize(self._boot(self.small), self.big))
        server = self._resize(server, self.big_same_disk)
        self.assertEqual("pvm.bigmem", server["flavor"]["original_name"])
        self.assertEqual(8192, self._lpar(server)["memory_mb"])
        self.assertEqual(2.0, self._boot_disk_gb(server))
        server = self._confirm_resize(server)

        self.api.post_server_action(server["id"], {"resize": {"flavorRef": self.small}})
        details = self._refused(server, "resize", "compute_resize_instance")
        self.assertIn("a PowerVM disk cannot shrink", details)
        self.assertIn("at least 2 GB", details)
        server = self._wait_for_state_change(server, "ACTIVE")
        self.assertEqual("pvm.bigmem", server["flavor"]["original_name"])
        lpar = self._lpar(server)
        self.assertEqual((8192, "running"), (lpar["memory_mb"], lpar["state"]))
        self.assertEqual(2.0, self._boot_disk_gb(server))
        self._delete_server(server)

    def test_a_server_booted_from_a_volume_resizes_and_reverts_with_its_volume(self):
        server = self.boot_from_volume([{"port": self.neutron.port_1["id"]}], flavor_id=self.small)
        volume_maps = [m for m in self.nl_view.scsi_mappings() if m[1].startswith("hdisk")]
        pvs = self.nl_view.physical_volumes()
        self.assertEqual(2, len(volume_maps))
        server = self._resize(server, self.big)
        self.assertEqual(4096, self._lpar(server)["memory_mb"])
        self.assertEqual(
            volume_maps, [m for m in self.nl_view.scsi_mappings() if m[1].startswith("hdisk")]
        )
        server = self._revert_resize(server)
        lpar = self._lpar(server)
        self.assertEqual((2048, "running"), (lpar["memory_mb"], lpar["state"]))
        self.assertEqual(
            volume_maps, [m for m in self.nl_view.scsi_mappings() if m[1].startswith("hdisk")]
        )
        self.assertEqual(pvs, self.nl_view.physical_volumes())  # no hdisk left twice
        self._delete_server(server)
        self.assertEqual([], self.nl_view.scsi_mappings())
        self.assertEqual({}, self.array.masking)

    def test_a_revert_after_a_restart_of_nova_compute(self):
        server = self._resize(self._boot(self.small), self.big)
        self.restart_compute("compute")
        server = self._revert_resize(server)
        lpar = self._lpar(server)
        self.assertEqual((2048, 1, "running"), (lpar["memory_mb"], lpar["vcpus"], lpar["state"]))

    def test_a_flavor_this_host_cannot_give_the_lpar_is_refused_before_it_stops(self):
        server = self._boot(self.small)
        no_pool = self._create_flavor(
            name="pvm.nopool",
            memory_mb=4096,
            vcpu=2,
            disk=2,
            ephemeral=0,
            extra_spec={"powervm:shared_proc_pool_name": "no-such-pool"},
        )
        self.api.post_server_action(server["id"], {"resize": {"flavorRef": no_pool}})
        details = self._refused(server, "resize", "compute_resize_instance")
        self.assertIn("powervm:shared_proc_pool_name", details)
        server = self._wait_for_state_change(server, "ACTIVE")
        self.assertEqual("pvm.small", server["flavor"]["original_name"])
        lpar = self._lpar(server)
        self.assertEqual((2048, "running"), (lpar["memory_mb"], lpar["state"]))
        self.assertEqual(1.0, self._boot_disk_gb(server))


class TwoHosts(ResizeHelpers):
    """``compute`` and ``host2``, each with its own emulated system; the two
    systems' VIOSes are in one SSP cluster."""

    def setUp(self):
        super().setUp()
        self._make_flavors()
        self._start_compute("host2")
        self.one, self.two = self.view_of("compute"), self.view_of("host2")

    def _boot_on_one(self, flavor_id, **kwargs):
        server = self._boot(flavor_id, host="compute", **kwargs)
        self.assertEqual("compute", server["OS-EXT-SRV-ATTR:host"])
        return server

    def _control(self, host):
        return self.novalinks[host].httpd.RequestHandlerClass.control

    def _mapped(self, view, name):
        return sorted(v for v, stg in view.scsi_mappings() if stg == name)


class TestMovesInOneCluster(TwoHosts, powervm.PowerVMSingleComputeTestBase):
    disk_driver = "ssp"

    def test_cold_migration_moves_the_lpar_and_keeps_the_boot_lu(self):
        server = self._boot_on_one(self.small, config_drive=True)
        name, lu = server["OS-EXT-SRV-ATTR:instance_name"], f"boot_{server['id']}"
        media = f"cfg_{server['id'].replace('-', '')}.iso"
        self.assertEqual([media], self.one.optical_media())
        mac = self.one.adapters_of(self._lpar(server, self.one)["uuid"])[0]["mac"]
        self.assertEqual(["vios1", "vios2"], self._mapped(self.one, lu))

        server = self._migrate_server(server, host="host2")
        self.assertEqual("host2", server["OS-EXT-SRV-ATTR:host"])
        self.assertEqual("pvm.small", server["flavor"]["original_name"])
        there = self._lpar(server, self.two)
        self.assertEqual((2048, 1, "running"), (there["memory_mb"], there["vcpus"], there["state"]))
        self.assertIn(mac, [a["mac"] for a in self.two.adapters_of(there["uuid"])])
        self.assertEqual(["vios1", "vios2"], self._mapped(self.two, lu))
        self.assertEqual([media], self.two.optical_media())  # a config drive of its own
        # The source LPAR waits, stopped, for a confirm or a revert.
        self.assertEqual("not activated", self._lpar(server, self.one)["state"])

        server = self._confirm_resize(server)
        self.assertEqual({}, self.one.lpars())
        self.assertEqual([], self.one.scsi_mappings())
        self.assertEqual([], self.one.optical_media())
        self.assertEqual([name], list(self.two.lpars()))
        self.assertIn(lu, self.one.logical_units())  # one pool: the disk stays for host2
        self.assertEqual(1.0, self._boot_disk_gb(server, self.two))
        self._delete_server(server)
        for view in (self.one, self.two):
            self.assertEqual({}, view.lpars())
            self.assertEqual([], view.scsi_mappings())
            self.assertEqual([], view.optical_media())
            self.assertNotIn(lu, view.logical_units())

    def test_resize_to_another_host_grows_the_lu_and_revert_brings_the_lpar_back(self):
        server = self._boot_on_one(self.small)
        lu = f"boot_{server['id']}"
        server = self._resize(server, self.big)
        self.assertEqual("host2", server["OS-EXT-SRV-ATTR:host"])
        there = self._lpar(server, self.two)
        self.assertEqual((4096, 2, "running"), (there["memory_mb"], there["vcpus"], there["state"]))
        # The old driver could not grow an SSP disk; the cluster's job does.
        self.assertEqual(2.0, self._boot_disk_gb(server, self.two))
        self.assertEqual(2.0, self._boot_disk_gb(server, self.one))

        server = self._revert_resize(server)
        self.assertEqual("compute", server["OS-EXT-SRV-ATTR:host"])
        self.assertEqual("pvm.small", server["flavor"]["original_name"])
        here = self._lpar(server, self.one)
        self.assertEqual((2048, 1, "running"), (here["memory_mb"], here["vcpus"], here["state"]))
        self.assertEqual({}, self.two.lpars())
        self.assertEqual([], self.two.scsi_mappings())
        self.assertEqual(["vios1", "vios2"], self._mapped(self.one, lu))
        self.assertIn(lu, self.two.logical_units())  # the revert kept the (shared) disk
        self._delete_server(server)
        self.assertNotIn(lu, self.one.logical_units())

    def test_a_confirm_after_a_restart_of_both_hosts(self):
        server = self._migrate_server(self._boot_on_one(self.small), host="host2")
        self.restart_compute("compute")
        self.restart_compute("host2")
        server = self._confirm_resize(server)
        self.assertEqual({}, self.one.lpars())
        self.assertEqual([], self.one.scsi_mappings())
        self.assertEqual("running", self._lpar(server, self.two)["state"])

    def test_a_failure_on_the_destination_leaves_nothing_there(self):
        server = self._boot_on_one(self.small)
        lu = f"boot_{server['id']}"
        self._control("host2").injector.add(
            "PUT",
            r"/LogicalPartition(\?|$)",
            status=500,
            times=5,
            message="[EMUL0099] partition create refused",
        )
        self.api.post_server_action(server["id"], {"migrate": {"host": "host2"}})
        server = self._wait_for_state_change(server, "ERROR")
        self.assertIn("partition create refused", server["fault"]["message"])
        self.assertEqual({}, self.two.lpars())
        self.assertEqual([], self.two.scsi_mappings())
        # The source still holds the stopped LPAR and its disk for the operator.
        self.assertEqual("not activated", self._lpar(server, self.one)["state"])
        self.assertEqual(["vios1", "vios2"], self._mapped(self.one, lu))


class TestMovesWithoutSharedStorage(TwoHosts, powervm.PowerVMSingleComputeTestBase):
    disk_driver = "localdisk"

    def test_a_localdisk_server_cannot_move_to_another_host(self):
        server = self._boot_on_one(self.small)
        disk = "b_" + server["id"].replace("-", "")[:13]
        self.api.post_server_action(server["id"], {"migrate": {"host": "host2"}})
        details = self._refused(server, "migrate", "compute_resize_instance")
        self.assertIn("a localdisk boot disk stays on its host", details)
        self.assertIn("host2", details)
        server = self._wait_for_state_change(server, "ACTIVE")
        self.assertEqual("compute", server["OS-EXT-SRV-ATTR:host"])
        self.assertEqual("running", self._lpar(server, self.one)["state"])
        self.assertIn(disk, self.one.virtual_disks())
        self.assertEqual({}, self.two.lpars())
        self.assertEqual([], self.two.scsi_mappings())

    def test_a_server_booted_from_a_volume_cold_migrates(self):
        server = self.boot_from_volume(
            [{"port": self.neutron.port_1["id"]}], host="compute", flavor_id=self.small
        )
        (volume_id,) = self.array.masking
        pvs_one = self.one.physical_volumes()
        hdisks = [m for m in self.one.scsi_mappings() if m[1].startswith("hdisk")]
        self.assertEqual(["vios1", "vios2"], sorted(v for v, _ in hdisks))

        server = self._migrate_server(server, host="host2")
        self.assertEqual("running", self._lpar(server, self.two)["state"])
        self.assertEqual(
            ["vios1", "vios2"],
            sorted(v for v, stg in self.two.scsi_mappings() if stg.startswith("hdisk")),
        )
        # The source VIOSes forgot the LUN before Cinder unmasked it from them.
        self.assertEqual([], [m for m in self.one.scsi_mappings() if m[1].startswith("hdisk")])
        self.assertLess(len(self.one.physical_volumes()), len(pvs_one))
        server = self._confirm_resize(server)
        self.assertEqual({}, self.one.lpars())
        self.assertEqual([], self.one.scsi_mappings())
        self.assertIn(volume_id, self.array.masking)
        self._delete_server(server)
        self.assertEqual({}, self.two.lpars())
        self.assertEqual([], self.two.scsi_mappings())
        self.assertEqual({}, self.array.masking)

    def test_a_failure_on_the_source_leaves_the_server_running_with_its_volume(self):
        server = self.boot_from_volume(
            [{"port": self.neutron.port_1["id"]}], host="compute", flavor_id=self.small
        )
        mappings = self.one.scsi_mappings()
        self._control("compute").injector.add(
            "POST",
            r"VirtualIOServer/[^/?]+\?group=",
            status=500,
            times=10,
            message="[EMUL0099] VIOS update refused",
        )
        self.api.post_server_action(server["id"], {"migrate": {"host": "host2"}})
        details = self._refused(server, "migrate", "compute_resize_instance")
        self.assertIn("VIOS update refused", details)
        self._control("compute").injector.reset()
        server = self._wait_for_state_change(server, "ACTIVE")
        self.assertEqual("compute", server["OS-EXT-SRV-ATTR:host"])
        self.assertEqual("running", self._lpar(server, self.one)["state"])
        self.assertEqual(mappings, self.one.scsi_mappings())
        self.assertEqual({}, self.two.lpars())
