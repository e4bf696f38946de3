"""Rebuild on the same host with a new image through the Nova API (Nova's
default rebuild: destroy, then spawn): the boot disk holds the new image's
bytes, the LPAR runs with the server's port, nothing of the old disk is left."""

from __future__ import annotations

import hashlib

from ibmvirt.sandbox import powervm

NEW_IMAGE = "7d2b1f0e-5bc5-4e2d-8a3b-2f6e4c7a9d02"
NEW_BYTES = hashlib.sha256(b"ibmvirt ppc64le image, release 2").digest() * 4096


class RebuildChecks:
    # Casts stay casts, as between real services: the spawn waits for
    # network-vif-plugged, which reaches Nova through its API.
    CAST_AS_CALL = False

    def _boot_disks(self) -> dict[str, str]:
        raise NotImplementedError

    def test_rebuild_with_a_new_image(self):
        image = dict(self.glance.images[powervm.IMAGE_ID])
        image.update(id=NEW_IMAGE, name="rhel-ppc64le-2")
        self.glance.create(None, image, data=powervm._Bytes(NEW_BYTES))
        server = self.boot_from_image([{"port": self.neutron.port_1["id"]}])
        name = server["OS-EXT-SRV-ATTR:instance_name"]
        mac = self.nl_view.adapters_of(self.nl_view.lpars()[name]["uuid"])[0]["mac"]
        (old_udid,) = self._boot_disks().values()
        self.assertEqual(
            hashlib.sha256(powervm.IMAGE_BYTES).hexdigest(),
            self.nl_view.disk_bytes(old_udid)["sha256"],
        )

        self.api.post_server_action(server["id"], {"rebuild": {"imageRef": NEW_IMAGE}})
        server = self._wait_for_state_change(server, "ACTIVE")
        server = powervm.wait_for(
            lambda: (s := self.api.get_server(server["id"]))["OS-EXT-STS:task_state"] is None and s,
            "the rebuild to end",
        )
        self.assertEqual(NEW_IMAGE, server["image"]["id"])
        lpar = self.nl_view.lpars()[name]
        self.assertEqual("running", lpar["state"])
        self.assertIn(mac, [a["mac"] for a in self.nl_view.adapters_of(lpar["uuid"])])
        disks = self._boot_disks()
        self.assertEqual(1, len(disks))  # the old boot disk is gone
        (udid,) = disks.values()
        self.assertEqual(
            hashlib.sha256(NEW_BYTES).hexdigest(), self.nl_view.disk_bytes(udid)["sha256"]
        )
        self._delete_server(server)
        self.assertEqual({}, self.nl_view.lpars())
        self.assertEqual([], self.nl_view.scsi_mappings())


class TestRebuildLocalDisk(RebuildChecks, powervm.PowerVMSingleComputeTestBase):
    def _boot_disks(self):
        emu = self.novalink.emu
        with emu.lock:
            return {
                d.findtext("{*}DiskName"): d.findtext("{*}UniqueDeviceID")
                for vg in emu.store.list("VolumeGroup")
                for d in vg.elem.iter("{*}VirtualDisk")
                if (d.findtext("{*}DiskName") or "").startswith("b_")
            }


class TestRebuildSSP(RebuildChecks, powervm.PowerVMSingleComputeTestBase):
    disk_driver = "ssp"

    def _boot_disks(self):
        emu = self.novalink.emu
        with emu.lock:
            return {
                lu.field("UnitName"): lu.field("UniqueDeviceID")
                for lu in emu.store.list("LogicalUnit")
                if lu.field("UnitName").startswith("boot_")
            }
