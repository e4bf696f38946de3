"""Boot disks as files: localdisk on a file-backed volume group of the
NovaLink partition (NovaLink hosting I/O), through the Nova API: boot,
resize (the file grows; nova-powervm refused this), delete leaves no file."""

from __future__ import annotations

from ibmvirt.emulators.novalink import inventory
from ibmvirt.sandbox import powervm

from .test_resize import ResizeHelpers

VG = "filevg"
DIR = "/var/lib/novalink/vg/filevg"


def _inventory() -> dict:
    inv = inventory.load("small")
    inv["management_partition"].update(
        io_server=True, volume_groups=[{"name": VG, "path": DIR, "size_gb": 20}]
    )
    return inv


class TestFileBackedBootDisks(ResizeHelpers, powervm.PowerVMSingleComputeTestBase):
    inventory = _inventory()
    volume_group = VG

    def setUp(self):
        super().setUp()
        self.flags(allow_resize_to_same_host=True)
        self._make_flavors()

    def files(self) -> dict[str, float]:
        """The files of the file-backed group on the NovaLink partition, with GB."""
        emu = self.novalink.emu
        with emu.lock:
            (mgmt,) = [
                v
                for v in emu.store.list("VirtualIOServer")
                if v.field("IsManagementPartition") == "true"
            ]
            return {p: s for p, s in mgmt.ext.get("files", {}).items() if p.startswith(DIR)}

    def test_boot_resize_and_delete_a_file_backed_boot_disk(self):
        server = self._boot(self.small)
        self.assertEqual("ACTIVE", server["status"])
        boot = f"{DIR}/b_" + server["id"].replace("-", "")[:13]
        self.assertEqual(1.0, self.files()[boot])
        self.assertEqual(1.0, self._boot_disk_gb(server))

        server = self._resize(server, self.big)
        self.assertEqual(2.0, self.files()[boot])  # the file grew in place
        server = self._confirm_resize(server)
        self.assertEqual(2.0, self._boot_disk_gb(server))
        self.assertEqual("running", self._lpar(server)["state"])

        self._delete_server(server)
        self.assertNotIn(boot, self.files())
        self.assertEqual({}, self.nl_view.lpars())
        self.assertEqual([], self.nl_view.scsi_mappings())
