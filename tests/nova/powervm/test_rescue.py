"""Rescue and unrescue (``openstack server rescue`` / ``unrescue``) through
the Nova API, on localdisk and SSP: the LPAR boots a rescue disk made from
the rescue image (its boot list says so, not the SMS menu), then its boot
disk again, and the rescue disk is gone."""

from __future__ import annotations

import hashlib

from nova import context as nova_context
from nova import objects
from nova.tests.functional.api import client

from ibmvirt.emulators.novalink.state import bootlist
from ibmvirt.sandbox import powervm
from tests.nova.powervm.test_failures import request_pattern

RESCUE_IMAGE_ID = "9b0c2f4e-7d1a-4c55-8e3b-2a6f1d0c9e42"
RESCUE_IMAGE_BYTES = hashlib.sha256(b"ibmvirt ppc64le rescue image").digest() * 2048  # 64 KiB
#: Requests that are not the rescue's own: the event feed, logon, job polls, state reads.
_BACKGROUND = ("/rest/api/uom/Event", "/rest/api/web/Logon", "/rest/api/uom/jobs/", "/quick/")


class _RescueTests:
    """The cases every disk driver must pass; subclasses name the disks."""

    #: Each VIOS the backend maps a disk through.
    vioses: tuple[str, ...] = ("vios1",)

    def boot_disk(self, server) -> str:
        raise NotImplementedError

    def rescue_disk(self, server) -> str:
        raise NotImplementedError

    def disks(self) -> list[str]:
        raise NotImplementedError

    def setUp(self):
        super().setUp()
        self.glance.create(
            None,
            {
                "id": RESCUE_IMAGE_ID,
                "name": "rescue-ppc64le",
                "status": "active",
                "container_format": "bare",
                "disk_format": "raw",
                "size": len(RESCUE_IMAGE_BYTES),
                "visibility": "public",
                "properties": {"architecture": "ppc64le"},
            },
            data=powervm._Bytes(RESCUE_IMAGE_BYTES),
        )

    # -- helpers ------------------------------------------------------------------

    def _boot(self):
        return self.boot_from_image([{"port": self.neutron.port_1["id"]}])

    def _lpar(self, server) -> str:
        return server["OS-EXT-SRV-ATTR:instance_name"]

    def _rescue(self, server, expected="RESCUE", image_ref=None):
        body = {"rescue_image_ref": image_ref} if image_ref else {}
        try:
            self.api.post_server_action(server["id"], {"rescue": body})
        except client.OpenStackApiException:
            # The harness runs the compute call synchronously: its failure shows here too.
            if expected != "ERROR":
                raise
        return self._wait_for_state_change(server, expected)

    def _unrescue(self, server):
        self.api.post_server_action(server["id"], {"unrescue": None})
        return self._wait_for_state_change(server, "ACTIVE")

    def _mapped(self, name: str) -> list[str]:
        """The VIOSes mapping storage ``name``."""
        return sorted(v for v, stg in self.nl_view.scsi_mappings() if stg == name)

    def _disk_sha(self, name: str) -> str | None:
        emu, udid = self.novalink.emu, None
        with emu.lock:
            for vg in emu.store.list("VolumeGroup"):
                for d in vg.elem.iter("{*}VirtualDisk"):
                    if d.findtext("{*}DiskName") == name:
                        udid = d.findtext("{*}UniqueDeviceID")
            for lu in emu.store.list("LogicalUnit"):
                if lu.field("UnitName") == name:
                    udid = lu.field("UniqueDeviceID")
        record = self.nl_view.disk_bytes(udid)
        return record["sha256"] if record else None

    def _paths_of(self, server, name: str) -> list[str]:
        paths = self.nl_view.boot_list(self._lpar(server))["paths"]
        return [p for p, stg in paths.items() if stg == name]

    def _fault(self, server) -> str:
        ctx = nova_context.get_admin_context()
        cell = objects.InstanceMapping.get_by_instance_uuid(ctx, server["id"]).cell_mapping
        with nova_context.target_cell(ctx, cell) as cctx:
            fault = objects.InstanceFault.get_latest_for_instance(cctx, server["id"])
        self.assertIsNotNone(fault, "Nova recorded no fault")
        return f"{fault.message} {fault.details}"

    def _running(self, server) -> bool:
        return self.nl_view.lpars()[self._lpar(server)]["state"] == "running"

    # -- the cases ------------------------------------------------------------------

    def test_rescue_boots_the_rescue_disk_and_unrescue_the_boot_disk(self):
        server = self._boot()
        lpar, boot = self._lpar(server), self.boot_disk(server)
        self.assertEqual(boot, self.nl_view.boot_list(lpar)["booted"])

        server = self._rescue(server)

        rescue = self.rescue_disk(server)
        self.assertIn(rescue, self.disks())
        self.assertEqual(list(self.vioses), self._mapped(rescue))
        self.assertEqual(list(self.vioses), self._mapped(boot), "the boot disk stays mapped")
        seen = self.nl_view.boot_list(lpar)
        self.assertEqual(rescue, seen["booted"])
        self.assertEqual(self._paths_of(server, rescue), seen["list"])
        self.assertEqual(len(self.vioses), len(seen["list"]))
        self.assertEqual([], seen["pending"])
        self.assertTrue(self._running(server))
        # The rescue disk holds the image the server was booted from.
        self.assertEqual(hashlib.sha256(powervm.IMAGE_BYTES).hexdigest(), self._disk_sha(rescue))

        server = self._unrescue(server)

        self.assertEqual("ACTIVE", server["status"])
        self.assertNotIn(rescue, self.disks())
        self.assertEqual([], self._mapped(rescue))
        self.assertEqual(list(self.vioses), self._mapped(boot))
        seen = self.nl_view.boot_list(lpar)
        self.assertEqual(boot, seen["booted"])
        self.assertEqual(self._paths_of(server, boot), seen["list"])
        self.assertTrue(self._running(server))

        self._delete_server(server)
        self.assertEqual([], [d for d in self.disks() if d in (boot, rescue)])

    def test_rescue_with_another_image(self):
        server = self._boot()
        server = self._rescue(server, image_ref=RESCUE_IMAGE_ID)
        rescue = self.rescue_disk(server)
        self.assertEqual(hashlib.sha256(RESCUE_IMAGE_BYTES).hexdigest(), self._disk_sha(rescue))
        self.assertEqual(rescue, self.nl_view.boot_list(self._lpar(server))["booted"])
        self._unrescue(server)
        self.assertNotIn(rescue, self.disks())

    def test_rescue_of_a_stopped_server(self):
        server = self._boot()
        server = self._stop_server(server)
        self.assertFalse(self._running(server))
        server = self._rescue(server)
        self.assertTrue(self._running(server))
        self.assertEqual(
            self.rescue_disk(server), self.nl_view.boot_list(self._lpar(server))["booted"]
        )
        server = self._unrescue(server)
        self.assertTrue(self._running(server))
        self.assertEqual(
            self.boot_disk(server), self.nl_view.boot_list(self._lpar(server))["booted"]
        )

    def test_unrescue_gives_back_the_boot_list_the_guest_had_across_a_restart(self):
        server = self._boot()
        lpar, boot = self._lpar(server), self.boot_disk(server)
        # The guest's own boot list (what ``bootlist`` in the OS writes to NVRAM).
        guest_list = [*self._paths_of(server, boot), "/vdevice/l-lan@30000002"]
        emu = self.novalink.emu
        with emu.lock:
            (lp,) = [
                p for p in emu.store.list("LogicalPartition") if p.field("PartitionName") == lpar
            ]
            lp.elem.find(f"{{*}}{bootlist.CONTAINER}/{{*}}{bootlist.LIST}").text = " ".join(
                guest_list
            )
            lp.bump(bootlist.GROUP)

        server = self._rescue(server)
        self.assertEqual(self.rescue_disk(server), self.nl_view.boot_list(lpar)["booted"])
        self.restart_compute("compute")
        server = self._unrescue(server)

        seen = self.nl_view.boot_list(lpar)
        self.assertEqual(guest_list, seen["list"])
        self.assertEqual(boot, seen["booted"])
        self.assertNotIn(self.rescue_disk(server), self.disks())

    def test_deleting_a_rescued_server_leaves_no_rescue_disk(self):
        server = self._rescue(self._boot())
        rescue = self.rescue_disk(server)
        self._delete_server(server)
        self.assertNotIn(rescue, self.disks())
        self.assertEqual([], self.nl_view.scsi_mappings())

    def test_a_failure_at_any_rescue_request_leaves_no_rescue_disk(self):
        server = self._boot()
        lpar, boot = self._lpar(server), self.boot_disk(server)
        log = self.nl_control.log
        start = len(log.records())
        server = self._unrescue(self._rescue(server))
        records = log.records()[start:]
        rescue_requests = []
        for r in records:
            if any(b in r.path for b in _BACKGROUND):
                continue
            rescue_requests.append((r.method, request_pattern(r.path)))
            if r.method == "PUT" and r.path.split("?")[0].endswith("/do/PowerOn"):
                break  # the rescue's last request; unrescue's follow
        self.assertGreater(len(rescue_requests), 5)
        injected = []
        for i, (method, pattern) in enumerate(rescue_requests):
            if method == "GET" or pattern.endswith("/do/PowerOff(\\?|$)"):
                continue  # reads; Nova's OS shutdown first (it falls back to a hard stop)
            with self.subTest(request=f"{method} {pattern}"):
                nth = rescue_requests[: i + 1].count((method, pattern))
                rule = self.nl_control.injector.add(
                    method, pattern, nth=nth, status=500, message="[EMUL0099] injected failure"
                )
                try:
                    server = self._rescue(server, expected="ERROR")
                finally:
                    self.nl_control.injector.reset()
                self.assertEqual(1, rule.fired)
                injected.append(pattern)
                self.assertIn("injected failure", self._fault(server))
                self.assertNotIn(self.rescue_disk(server), self.disks())
                self.assertEqual([], self._mapped(self.rescue_disk(server)))
                self.assertEqual(list(self.vioses), self._mapped(boot))
                pending = self.nl_view.boot_list(lpar)["pending"]
                self.assertTrue(
                    all(p in self._paths_of(server, boot) for p in pending),
                    f"the next boot would not boot the boot disk: {pending}",
                )
                # Back to ACTIVE for the next round (from ERROR, as an operator would).
                self.api.post_server_action(server["id"], {"os-resetState": {"state": "active"}})
                self.api.post_server_action(server["id"], {"reboot": {"type": "HARD"}})
                server = self._wait_for_state_change(server, "ACTIVE")
                self.assertEqual(boot, self.nl_view.boot_list(lpar)["booted"])
        # The disk's creation, its mapping, the boot list and the power-on at least.
        self.assertGreaterEqual(len(injected), 4, injected)


class TestLocalDiskRescue(_RescueTests, powervm.PowerVMSingleComputeTestBase):
    def boot_disk(self, server):
        return "b_" + server["id"].replace("-", "")[:13]

    def rescue_disk(self, server):
        return "r_" + server["id"].replace("-", "")[:13]

    def disks(self):
        return self.nl_view.virtual_disks()


class TestSSPRescue(_RescueTests, powervm.PowerVMSingleComputeTestBase):
    disk_driver = "ssp"
    vioses = ("vios1", "vios2")

    def boot_disk(self, server):
        return f"boot_{server['id']}"

    def rescue_disk(self, server):
        return f"rescue_{server['id']}"

    def disks(self):
        return self.nl_view.logical_units()
