"""Boot disks, volumes and images on an emulated PowerVM host, through the Nova API."""

from __future__ import annotations

import time

import pypowervm.adapter as pvm_adpt
from pypowervm.tasks import power as pvm_power
from pypowervm.tasks import power_opts as pvm_popts
from pypowervm.wrappers import logical_partition as pvm_lpar

from ibmvirt.powervm.disk import ssp
from ibmvirt.sandbox import powervm


def _vios_wwpns(server) -> set[str]:
    emu = server.emu
    with emu.lock:
        return {
            p.findtext("{*}WWPN").lower()
            for v in emu.store.list("VirtualIOServer")
            for p in v.elem.iter("{*}PhysicalFibreChannelPort")
        }


class TestVolumes(powervm.PowerVMSingleComputeTestBase):
    def test_boot_from_volume_maps_the_lun_through_the_vioses(self):
        disks_before = self.nl_view.physical_volumes()
        server = self.boot_from_volume([{"port": self.neutron.port_1["id"]}])
        (volume_id,) = self.array.masking
        # Cinder was given the VIOS physical port WWPNs, not per-instance ones.
        self.assertTrue(self.array.masking[volume_id] <= _vios_wwpns(self.novalink))
        mappings = self.nl_view.scsi_mappings()
        pv_maps = [m for m in mappings if m[1].startswith("hdisk")]
        self.assertEqual({"vios1", "vios2"}, {vios for vios, _ in pv_maps})
        self.assertEqual([], [d for d in self.nl_view.virtual_disks() if d.startswith("b_")])
        self.assertEqual(2, len(set(self.nl_view.physical_volumes()) - set(disks_before)))
        self._delete_server(server)
        self.assertEqual([], self.nl_view.scsi_mappings())
        self.assertEqual({}, self.array.masking)
        self.assertEqual({}, self.nl_view.lpars())
        # The VIOSes forgot the LUN's hdisks before Cinder unmasked it.
        self.assertEqual(disks_before, self.nl_view.physical_volumes())

    def test_a_volume_is_attached_to_and_detached_from_a_running_server(self):
        server = self.boot_from_image([{"port": self.neutron.port_1["id"]}])
        before = self.nl_view.scsi_mappings()
        volume = self.array.SWAP_OLD_VOL
        self.api.post_server_volume(server["id"], {"volumeAttachment": {"volumeId": volume}})
        self._wait_for_volume_attach(server["id"], volume)
        added = sorted(set(self.nl_view.scsi_mappings()) - set(before))
        self.assertEqual({"vios1", "vios2"}, {vios for vios, _ in added})
        self.assertIn(volume, self.array.masking)
        self.api.delete_server_volume(server["id"], volume)
        self._wait_for_volume_detach(server["id"], volume)
        self.assertEqual(before, self.nl_view.scsi_mappings())
        self.assertNotIn(volume, self.array.masking)
        self._delete_server(server)

    def test_a_failed_detach_leaves_the_volume_attached(self):
        server = self.boot_from_image([])
        volume = self.array.SWAP_OLD_VOL
        self.api.post_server_volume(server["id"], {"volumeAttachment": {"volumeId": volume}})
        self._wait_for_volume_attach(server["id"], volume)
        attached = self.nl_view.scsi_mappings()
        self.nl_control.injector.add(
            "POST",
            r"VirtualIOServer/[^/?]+\?group=",
            status=500,
            times=10,
            message="[EMUL0099] VIOS update refused",
        )
        # The harness makes Nova's casts calls, so the API answers with the failure.
        with self.assertRaisesRegex(Exception, "VolumeDetachFailed"):
            self.api.delete_server_volume(server["id"], volume)
        self.nl_control.injector.reset()
        self.assertEqual(attached, self.nl_view.scsi_mappings())
        ids = [a["volumeId"] for a in self.api.get_server_volumes(server["id"])]
        self.assertIn(volume, ids)


class TestSharedStoragePool(powervm.PowerVMSingleComputeTestBase):
    disk_driver = "ssp"

    def test_boot_from_image_clones_the_image_lu(self):
        server = self.boot_from_image([{"port": self.neutron.port_1["id"]}])
        lus = self.nl_view.logical_units()
        boot = f"boot_{server['id']}"
        self.assertIn(boot, lus)
        self.assertIn(ssp.image_lu_name(powervm.IMAGE_ID), lus)
        # Mapped through every VIOS of this host in the cluster (multipath).
        self.assertEqual(
            {"vios1", "vios2"}, {v for v, stg in self.nl_view.scsi_mappings() if stg == boot}
        )
        second = self.boot_from_image([])
        self.assertEqual(
            1,
            sum(1 for lu in self.nl_view.logical_units() if lu.startswith("image_")),
            "the image was uploaded twice",
        )
        self._delete_server(server)
        self._delete_server(second)
        lus = self.nl_view.logical_units()
        self.assertEqual([], [lu for lu in lus if lu.startswith("boot_")])
        self.assertIn(ssp.image_lu_name(powervm.IMAGE_ID), lus)  # kept for the next clone
        self.assertEqual([], self.nl_view.scsi_mappings())


class TestImagesAndLeftovers(powervm.PowerVMSingleComputeTestBase):
    def setUp(self):
        super().setUp()
        self.flags(max_attempts=1, group="scheduler")

    def test_an_image_format_the_vios_cannot_write_is_refused(self):
        image = dict(self.glance.images[powervm.IMAGE_ID])
        image.update(id="8d3c0f8e-1b9b-4c55-9a8e-2b7f8c9d0e11", disk_format="qcow2")
        self.glance.create(None, image)
        body = self._build_server(networks=[], image_uuid=image["id"])
        server = self._wait_for_state_change(self.api.post_server({"server": body}), "ERROR")
        self.assertIn("disk_format 'qcow2'", server["fault"]["message"])
        self.assertEqual({}, self.nl_view.lpars())

    def test_an_lpar_deleted_behind_novas_back_still_has_its_storage_removed(self):
        server = self.boot_from_image([], config_drive=True)
        (lpar,) = self.nl_view.lpars().values()
        session = pvm_adpt.Session(
            "127.0.0.1", "neo", "passw0rd", protocol="http", port=self.novalink.port
        )
        self.addCleanup(session._logoff)
        adapter = pvm_adpt.Adapter(session)
        wrapper = pvm_lpar.LPAR.get(adapter, uuid=lpar["uuid"])
        pvm_power.PowerOp.stop(wrapper, opts=pvm_popts.PowerOffOpts().vsp_hard())
        wrapper.refresh().delete()
        self.assertEqual({}, self.nl_view.lpars())
        self.assertNotEqual([], self.nl_view.scsi_mappings())  # orphaned server adapters
        self._delete_server(server)
        self.assertEqual([], self.nl_view.scsi_mappings())
        self.assertEqual([], [d for d in self.nl_view.virtual_disks() if d.startswith("b_")])
        self.assertEqual([], [m for m in self.nl_view.optical_media() if m.startswith("cfg_")])


class TestVolumeRedundancy(powervm.PowerVMSingleComputeTestBase):
    def setUp(self):
        super().setUp()
        self.flags(max_attempts=1, group="scheduler")

    def test_a_failed_boot_from_volume_leaves_no_hdisk_on_the_vioses(self):
        disks = self.nl_view.physical_volumes()
        self.nl_control.injector.add(
            "PUT", r"/do/PowerOn", status=500, message="[EMUL0099] power on refused"
        )
        server = self.boot_from_volume([], expected_state="ERROR")
        self.assertIn("power on refused", server["fault"]["message"])
        self.assertEqual({}, self.nl_view.lpars())
        self.assertEqual([], self.nl_view.scsi_mappings())
        self.assertEqual(disks, self.nl_view.physical_volumes())

    def test_a_volume_seen_by_fewer_vioses_than_required_is_refused(self):
        self.flags(vscsi_vios_connections_required=3, group="powervm")
        server = self.boot_from_volume([], expected_state="ERROR")
        self.assertIn("visible on 2 Virtual I/O Server", server["fault"]["message"])
        self.assertIn("vscsi_vios_connections_required", server["fault"]["message"])
        self.assertEqual({}, self.nl_view.lpars())
        self.assertEqual([], self.nl_view.scsi_mappings())


def _without_media_repository(inv: dict) -> dict:
    for v in inv["vioses"]:
        for vg in v.get("volume_groups", []):
            vg.pop("media_repository", None)
    return inv


class TestConfigDrive(powervm.PowerVMSingleComputeTestBase):
    @property
    def inventory(self):
        from ibmvirt.emulators.novalink import inventory

        return _without_media_repository(inventory.load("small"))

    def test_the_config_drive_repository_is_created_and_the_drive_names_the_instance(self):
        self.assertEqual([], self.nl_view.optical_media())
        server = self.boot_from_image([], config_drive=True)
        (media,) = [m for m in self.nl_view.optical_media() if m.startswith("cfg_")]
        emu = self.novalink.emu
        with emu.lock:
            repos = [
                (vg.field("GroupName"), r.findtext("{*}RepositorySize"))
                for vg in emu.store.list("VolumeGroup")
                for r in vg.elem.iter("{*}VirtualMediaRepository")
            ]
        self.assertEqual([("rootvg", "1")], [(n, s.split(".")[0]) for n, s in repos])
        record = self.nl_view.disk_bytes(f"vopt:{media}")
        with open(record["path"], "rb") as iso:
            content = iso.read()
        self.assertIn(server["id"].encode(), content)  # meta_data.json: the Nova UUID
        self._delete_server(server)
        self.assertEqual([], self.nl_view.optical_media())

    def test_the_config_drive_is_removed_after_boot_when_asked(self):
        self.flags(remove_vopt_media_on_boot=True, remove_vopt_media_time=0, group="powervm")
        server = self.boot_from_image([], config_drive=True)

        def media():
            return [m for m in self.nl_view.optical_media() if m.startswith("cfg_")]

        for _ in range(100):
            if not media():
                break
            time.sleep(0.05)
        self.assertEqual([], media())
        self.assertEqual([], [m for m in self.nl_view.scsi_mappings() if m[1].startswith("cfg_")])
        self.assertEqual("ACTIVE", self.api.get_server(server["id"])["status"])
        self._delete_server(server)


class TestImageCache(powervm.PowerVMSingleComputeTestBase):
    def _cached(self):
        return [d for d in self.nl_view.virtual_disks() if d.startswith("i_")]

    def _pass(self):
        from nova import context as nova_context

        self.computes["compute"].manager._run_image_cache_manager_pass(
            nova_context.get_admin_context()
        )

    def test_an_image_no_server_uses_is_removed_after_the_minimum_age(self):
        server = self.boot_from_image([])
        keep = self.boot_from_image([])
        self.assertEqual(1, len(self._cached()))
        self._delete_server(server)
        self._pass()
        self.assertEqual(1, len(self._cached()), "an image still used was removed")
        self._delete_server(keep)
        self._pass()  # unused from now on; Nova's default minimum age is a day
        self.assertEqual(1, len(self._cached()))
        self.flags(remove_unused_original_minimum_age_seconds=0, group="image_cache")
        self._pass()
        self.assertEqual([], self._cached())
