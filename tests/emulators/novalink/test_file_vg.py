"""File-backed volume groups on the NovaLink partition served as an I/O
server (state/storage.py): disks are files (BackStoreType user:qcow) that
exist while the disk does, grow with it and go with it."""

from __future__ import annotations

import gc

import pypowervm.exceptions as pvm_exc
import pytest
from pypowervm.tasks import partition as pvm_part
from pypowervm.tasks import storage as pvm_stg
from pypowervm.wrappers import storage as pvm_stor
from pypowervm.wrappers import virtual_io_server as pvm_vios

from ibmvirt.emulators.novalink import app, inventory

VG = "filevg"
DIR = "/var/lib/novalink/vg/filevg"


def file_vg_inventory(size_gb: float = 10) -> dict:
    inv = inventory.load("small")
    inv["management_partition"].update(
        io_server=True, volume_groups=[{"name": VG, "path": DIR, "size_gb": size_gb}]
    )
    return inv


@pytest.fixture
def emulator(tmp_path):
    """Overrides conftest's: NovaLink hosting I/O with a 10 GB file-backed group."""
    srv = app.start(file_vg_inventory(), token_dir=str(tmp_path))
    yield srv
    gc.collect()
    srv.stop()


@pytest.fixture
def mgmt(adapter):
    return pvm_part.get_mgmt_partition(adapter)


def _vg(adapter, mgmt) -> pvm_stor.VG:
    (vg,) = [g for g in pvm_stor.VG.get(adapter, parent=mgmt) if g.name == VG]
    return vg


def _files(emulator) -> dict:
    emu = emulator.emu
    with emu.lock:
        (v,) = [
            o
            for o in emu.store.list("VirtualIOServer")
            if o.field("IsManagementPartition") == "true"
        ]
        return dict(v.ext.get("files", {}))


def test_the_group_is_on_the_novalink_partition_without_physical_volumes(adapter, mgmt):
    vg = _vg(adapter, mgmt)
    assert vg.capacity == 10 and vg.available_size == 10
    assert list(vg.phys_vols) == []
    # Not on the VIOSes.
    for vios_w in pvm_vios.VIOS.get(adapter):
        if vios_w.uuid != mgmt.uuid:
            assert VG not in [g.name for g in pvm_stor.VG.get(adapter, parent=vios_w)]


def test_a_disk_is_a_file_that_grows_and_goes_with_it(emulator, adapter, mgmt):
    vg = _vg(adapter, mgmt)
    disk = pvm_stg.crt_vdisk(adapter, mgmt.uuid, vg.uuid, "b_disk1", 2)
    assert disk.backstore_type == pvm_stor.BackStoreType.USER_QCOW
    assert disk.file_format == pvm_stor.FileFormatType.QCOW2
    assert _files(emulator) == {f"{DIR}/b_disk1": 2.0}

    vg = _vg(adapter, mgmt)
    (d,) = [x for x in vg.virtual_disks if x.name == "b_disk1"]
    d.capacity = 5
    vg = vg.update()
    assert [x.capacity for x in vg.virtual_disks if x.name == "b_disk1"] == [5]
    assert _files(emulator) == {f"{DIR}/b_disk1": 5.0}
    assert vg.available_size == 5

    pvm_stg.rm_vg_storage(_vg(adapter, mgmt), vdisks=[d])
    assert _files(emulator) == {}
    assert _vg(adapter, mgmt).available_size == 10


def test_raw_files_and_the_group_size_exactly(emulator, adapter, mgmt):
    vg = _vg(adapter, mgmt)
    disk = pvm_stg.crt_vdisk(
        adapter, mgmt.uuid, vg.uuid, "b_full", 10, file_format=pvm_stor.FileFormatType.RAW
    )
    assert disk.file_format == pvm_stor.FileFormatType.RAW
    assert _vg(adapter, mgmt).available_size == 0
    with pytest.raises(pvm_exc.HttpError) as exc:
        pvm_stg.crt_vdisk(adapter, mgmt.uuid, vg.uuid, "b_more", 1)
    assert "not enough free space" in exc.value.her_wrap.message
    assert list(_files(emulator)) == [f"{DIR}/b_full"]


def test_an_unknown_file_format_is_refused(emulator, adapter, mgmt):
    vg = _vg(adapter, mgmt)
    vg.virtual_disks.append(pvm_stor.VDisk.bld(adapter, "b_vmdk", 1, file_format="vmdk"))
    with pytest.raises(pvm_exc.HttpError) as exc:
        vg.update()
    assert exc.value.response.status == 400
    assert "FileFormat 'vmdk'" in exc.value.her_wrap.message
    assert _files(emulator) == {}


def test_a_file_backed_group_needs_an_io_server_partition():
    inv = file_vg_inventory()
    inv["management_partition"]["io_server"] = False
    with pytest.raises(inventory.InventoryError, match="io_server: true"):
        inventory.normalise(inv)
