"""Snapshot of a server's boot disk to Glance (``openstack server image create``),
through the Nova API, on localdisk and SSP."""

from __future__ import annotations

import dataclasses
import hashlib

import fixtures
from nova import context as nova_context
from nova import exception, objects

from ibmvirt.powervm import exceptions as pvm_exc
from ibmvirt.sandbox import powervm


def mgmt_mappings(novalink) -> list[tuple[str, str]]:
    """(VIOS, storage name) of every vSCSI mapping to the NovaLink partition."""
    emu = novalink.emu
    with emu.lock:
        (mgmt,) = [
            lp.uuid
            for lp in emu.store.list("LogicalPartition")
            if lp.field("IsManagementPartition") == "true"
        ]
        out = []
        for v in emu.store.list("VirtualIOServer"):
            for m in v.elem.iter("{*}VirtualSCSIMapping"):
                link = m.find("{*}AssociatedLogicalPartition")
                if link is None or not link.get("href", "").rstrip("/").endswith(mgmt):
                    continue
                stg = m.find("{*}Storage")
                name = None
                if stg is not None and len(stg):
                    name = stg[0].findtext("{*}DiskName") or stg[0].findtext("{*}UnitName")
                out.append((v.field("PartitionName"), name))
        return sorted(out)


class _SnapshotTests:
    """The cases every disk driver must pass; subclasses name the boot disk."""

    def boot_disk(self, server) -> tuple[str, str]:
        """(name, UDID) of the server's boot disk on the emulator."""
        raise NotImplementedError

    def _glance(self):
        return self.glance

    def _image(self, image_id):
        return self._glance().images.get(image_id)

    def _boot(self):
        return self.boot_from_image([{"port": self.neutron.port_1["id"]}])

    def _create_image(self, server, name="snap"):
        resp = self.api.post_server_action(server["id"], {"createImage": {"name": name}})
        return resp["image_id"]

    def _wait_settled(self, server):
        return powervm.wait_for(
            lambda: (s := self.api.get_server(server["id"]))["OS-EXT-STS:task_state"] is None and s,
            what="the snapshot to end",
        )

    def _watch_upload(self):
        """Record, while Glance receives the data, the task state and mgmt mappings."""
        seen = []
        original = powervm.GlanceImages.update

        def update(glance, context, image_id, metadata, data=None, purge_props=False):
            if data is not None:
                server = self.api.get_servers()[0]
                seen.append((server["OS-EXT-STS:task_state"], mgmt_mappings(self.novalink)))
            return original(glance, context, image_id, metadata, data, purge_props)

        self.useFixture(fixtures.MonkeyPatch(f"{powervm.__name__}.GlanceImages.update", update))
        return seen

    def _fault(self, server) -> str:
        """The fault Nova recorded for the instance (an ACTIVE server's API hides it)."""
        ctx = nova_context.get_admin_context()
        cell = objects.InstanceMapping.get_by_instance_uuid(ctx, server["id"]).cell_mapping
        with nova_context.target_cell(ctx, cell) as cctx:
            fault = objects.InstanceFault.get_latest_for_instance(cctx, server["id"])
        self.assertIsNotNone(fault, "Nova recorded no fault")
        return f"{fault.message} {fault.details}"

    # -- the cases ---------------------------------------------------------------------

    def test_snapshot_holds_the_boot_disk_bytes(self):
        server = self._boot()
        name, udid = self.boot_disk(server)
        record = self.nl_view.disk_bytes(udid)
        self.assertIsNotNone(record, f"the emulator holds no data for {name}")
        self.assertEqual(hashlib.sha256(powervm.IMAGE_BYTES).hexdigest(), record["sha256"])
        seen = self._watch_upload()

        image_id = self._create_image(server)
        server = self._wait_settled(server)

        image = self._image(image_id)
        self.assertIsNotNone(image, "the snapshot image was deleted")
        self.assertEqual("active", image["status"])
        self.assertEqual(("raw", "bare"), (image["disk_format"], image["container_format"]))
        self.assertEqual("snapshot", image["properties"]["image_location"])
        data = self._glance()._imagedata[image_id]
        self.assertEqual(record["bytes"], len(data))
        self.assertEqual(record["sha256"], hashlib.sha256(data).hexdigest())
        self.assertEqual(powervm.IMAGE_BYTES, data)
        # Read while a VIOS mapped the boot disk to the NovaLink partition.
        self.assertEqual(1, len(seen))
        task_state, mapped = seen[0]
        self.assertEqual("image_uploading", task_state)
        self.assertEqual(1, len(mapped))
        self.assertEqual(name, mapped[0][1])
        # Afterwards: the server as before, nothing left on the NovaLink partition.
        self.assertEqual("ACTIVE", server["status"])
        self.assertIsNone(server["OS-EXT-STS:task_state"])
        self.assertEqual([], mgmt_mappings(self.novalink))
        self.assertIn(name, {stg for _, stg in self.nl_view.scsi_mappings()})

    def test_a_failed_upload_leaves_no_mapping_to_the_novalink_partition(self):
        server = self._boot()
        name, _ = self.boot_disk(server)
        mapped_during = []

        def broken(glance, context, image_id, metadata, data=None, purge_props=False):
            data.read(65536)
            mapped_during.append(mgmt_mappings(self.novalink))
            raise exception.CouldNotUploadImage(image_id=image_id)

        self.useFixture(fixtures.MonkeyPatch(f"{powervm.__name__}.GlanceImages.update", broken))
        image_id = self._create_image(server)
        server = self._wait_settled(server)
        powervm.wait_for(
            lambda: self._image(image_id) is None, what="Nova to delete the failed image"
        )

        self.assertEqual([[name]], [[stg for _, stg in m] for m in mapped_during])
        self.assertEqual([], mgmt_mappings(self.novalink))
        self.assertEqual("ACTIVE", server["status"])
        self.assertIn("CouldNotUploadImage", self._fault(server))
        self.assertIn(name, {stg for _, stg in self.nl_view.scsi_mappings()})

    def test_a_novalink_failure_mapping_the_disk_leaves_nothing(self):
        server = self._boot()
        rule = self.nl_control.injector.add(
            "POST", r"/VirtualIOServer/[^/?]+(\?|$)", status=500, message="[EMUL0099] map broke"
        )
        image_id = self._create_image(server)
        server = self._wait_settled(server)
        self.nl_control.injector.reset()
        self.assertEqual(1, rule.fired)
        powervm.wait_for(
            lambda: self._image(image_id) is None, what="Nova to delete the failed image"
        )
        self.assertEqual([], mgmt_mappings(self.novalink))
        self.assertEqual("ACTIVE", server["status"])
        fault = self._fault(server)
        self.assertIn("map broke", fault)
        self.assertIn("snapshot failed", fault)


class TestLocalDiskSnapshot(_SnapshotTests, powervm.PowerVMSingleComputeTestBase):
    def boot_disk(self, server):
        name = "b_" + server["id"].replace("-", "")[:13]
        emu = self.novalink.emu
        with emu.lock:
            for vg in emu.store.list("VolumeGroup"):
                for d in vg.elem.iter("{*}VirtualDisk"):
                    if d.findtext("{*}DiskName") == name:
                        return name, d.findtext("{*}UniqueDeviceID")
        raise AssertionError(f"no boot disk {name}")

    def test_a_disk_driver_that_cannot_snapshot_refuses(self):
        server = self._boot()
        disk = self.computes["compute"].driver.disk
        disk.capabilities = dataclasses.replace(disk.capabilities, snapshot=False)
        requests_before = len(self.nl_control.log.records())
        image_id = self._create_image(server)
        server = self._wait_settled(server)
        powervm.wait_for(
            lambda: self._image(image_id) is None, what="Nova to delete the refused image"
        )
        self.assertEqual("ACTIVE", server["status"])
        fault = self._fault(server)
        self.assertIn("cannot be snapshotted", fault)
        self.assertIn("the localdisk disk driver cannot read its disks", fault)
        self.assertEqual([], mgmt_mappings(self.novalink))
        vios_changes = [
            r
            for r in self.nl_control.log.records()[requests_before:]
            if r.method == "POST" and "VirtualIOServer" in r.path
        ]
        self.assertEqual([], vios_changes)


class TestSSPSnapshot(_SnapshotTests, powervm.PowerVMSingleComputeTestBase):
    disk_driver = "ssp"

    def boot_disk(self, server):
        name = "boot_" + server["id"]
        emu = self.novalink.emu
        with emu.lock:
            for lu in emu.store.list("LogicalUnit"):
                if lu.field("UnitName") == name:
                    return name, lu.field("UniqueDeviceID")
        raise AssertionError(f"no boot LU {name}")

    def test_the_boot_lu_is_a_linked_clone_of_the_image(self):
        server = self._boot()
        _, udid = self.boot_disk(server)
        self.assertIn("clone_of", self.nl_view.disk_bytes(udid))


class TestVolumeBackedSnapshot(powervm.PowerVMSingleComputeTestBase):
    """Nova's API snapshots a volume-backed server's volumes; the driver is not asked."""

    def test_boot_from_volume_snapshots_the_volume(self):
        server = self.boot_from_volume([{"port": self.neutron.port_1["id"]}])
        (volume_id,) = [v["id"] for v in server["os-extended-volumes:volumes_attached"]]
        requests_before = len(self.nl_control.log.records())
        resp = self.api.post_server_action(server["id"], {"createImage": {"name": "bfv-snap"}})
        image = self.glance.images[resp["image_id"]]
        bdms = image["properties"]["block_device_mapping"]
        snapshots = self.array.volume_snapshots
        self.assertEqual(1, len(bdms))
        self.assertEqual(volume_id, snapshots[bdms[0]["snapshot_id"]]["volume_id"])
        server = self.api.get_server(server["id"])
        self.assertEqual("ACTIVE", server["status"])
        self.assertIsNone(server["OS-EXT-STS:task_state"])
        vios_changes = [
            r
            for r in self.nl_control.log.records()[requests_before:]
            if r.method == "POST" and "VirtualIOServer" in r.path
        ]
        self.assertEqual([], vios_changes)

    def test_the_driver_refuses_a_server_without_a_boot_disk(self):
        server = self.boot_from_volume([{"port": self.neutron.port_1["id"]}])
        ctx = nova_context.get_admin_context()
        cell = objects.InstanceMapping.get_by_instance_uuid(ctx, server["id"]).cell_mapping
        with nova_context.target_cell(ctx, cell) as cctx:
            instance = objects.Instance.get_by_uuid(cctx, server["id"])
        states = []
        with self.assertRaises(pvm_exc.SnapshotNotSupported) as caught:
            self.computes["compute"].driver.snapshot(
                ctx, instance, "an-image", lambda *a, **k: states.append(a)
            )
        self.assertIn("booted from a volume", caught.exception.format_message())
        self.assertEqual([], states)
        self.assertEqual([], mgmt_mappings(self.novalink))
