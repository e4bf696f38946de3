"""A partition's boot list (LogicalPartition.BootListInformation, group
Advanced) and the device its firmware boots, driven by pypowervm."""

from __future__ import annotations

import pypowervm.exceptions as pvm_exc
import pytest
from pypowervm import const as pvm_const
from pypowervm.tasks import power as pvm_power
from pypowervm.tasks import power_opts as pvm_popts
from pypowervm.tasks import scsi_mapper as tsk_map
from pypowervm.tasks import storage as tsk_stg
from pypowervm.wrappers import logical_partition as pvm_lpar

from .test_lpar import build, refusal
from .test_storage import vg_named, vios_named

ADV = [pvm_const.XAG.ADV]


def boot_fields(adapter, uuid) -> dict[str, str]:
    lpar = pvm_lpar.LPAR.get(adapter, uuid=uuid, xag=ADV)
    box = lpar.element.find("BootListInformation")
    assert box is not None, "no BootListInformation in the Advanced view"
    return {
        tag: (box.findtext(tag) or "").strip()
        for tag in ("PendingBootString", "BootDeviceList", "LastBootedDeviceString")
    }


def set_pending(adapter, uuid, text: str):
    lpar = pvm_lpar.LPAR.get(adapter, uuid=uuid, xag=ADV)
    lpar.element.find("BootListInformation/PendingBootString").text = text
    return lpar.update()


def map_disks(adapter, lpar, names):
    """Virtual disks of datavg on vios1 mapped to ``lpar``; their device paths in order."""
    vios = vios_named(adapter, "vios1", [pvm_const.XAG.VIO_SMAP])
    vg = vg_named(adapter, vios, "datavg")
    for name in names:
        disk = tsk_stg.crt_vdisk(adapter, vios.uuid, vg.uuid, name, 1)
        vios = vios_named(adapter, "vios1", [pvm_const.XAG.VIO_SMAP])
        tsk_map.add_map(vios, tsk_map.build_vscsi_mapping(None, vios, lpar.uuid, disk))
        vios.update()
    vios = vios_named(adapter, "vios1", [pvm_const.XAG.VIO_SMAP])
    paths = {}
    for m in vios.scsi_mappings:
        if m.backing_storage is not None and m.backing_storage.name in names:
            slot = m.client_adapter.lpar_slot_num
            lua = m.target_dev.lua
            paths[m.backing_storage.name] = f"/vdevice/v-scsi@{0x30000000 + slot:x}/disk@{lua[2:]}"
    return [paths[n] for n in names]


@pytest.fixture
def lpar(adapter, host):
    return build(adapter, host, name="bootvm").create(parent=host)


def test_a_new_partition_has_an_empty_boot_list_in_group_advanced(adapter, lpar):
    assert boot_fields(adapter, lpar.uuid) == {
        "PendingBootString": "",
        "BootDeviceList": "",
        "LastBootedDeviceString": "",
    }
    base = pvm_lpar.LPAR.get(adapter, uuid=lpar.uuid)  # group=None
    assert base.element.find("BootListInformation") is None


def test_the_pending_list_is_booted_and_becomes_the_boot_list(emulator, adapter, lpar):
    first, second = map_disks(adapter, lpar, ["bl_one", "bl_two"])
    set_pending(adapter, lpar.uuid, f"{second} {first}")
    assert boot_fields(adapter, lpar.uuid)["PendingBootString"] == f"{second} {first}"

    pvm_power.PowerOp.start(lpar.refresh())

    assert boot_fields(adapter, lpar.uuid) == {
        "PendingBootString": "",
        "BootDeviceList": f"{second} {first}",
        "LastBootedDeviceString": second,
    }
    res = emulator.emu.store.get("LogicalPartition", lpar.uuid)
    assert f"Booting from {second} (bl_two)" in bytes(res.ext["vterm"]).decode()


def test_the_stored_list_is_booted_again_and_skips_a_device_gone(adapter, lpar):
    first, second = map_disks(adapter, lpar, ["bl_one", "bl_two"])
    set_pending(adapter, lpar.uuid, f"/vdevice/v-scsi@30000099/disk@8100000000000000 {first}")
    pvm_power.PowerOp.start(lpar.refresh())
    assert boot_fields(adapter, lpar.uuid)["LastBootedDeviceString"] == first
    pvm_power.PowerOp.stop(lpar.refresh(), opts=pvm_popts.PowerOffOpts().vsp_hard())
    pvm_power.PowerOp.start(lpar.refresh())
    fields = boot_fields(adapter, lpar.uuid)
    assert fields["LastBootedDeviceString"] == first
    assert fields["BootDeviceList"].split()[1] == first


def test_an_empty_boot_list_boots_the_first_disk_by_slot(adapter, lpar):
    first, _ = map_disks(adapter, lpar, ["bl_one", "bl_two"])
    pvm_power.PowerOp.start(lpar.refresh())
    fields = boot_fields(adapter, lpar.uuid)
    assert fields["LastBootedDeviceString"] == first
    assert fields["BootDeviceList"] == ""


def test_a_list_of_devices_the_partition_lacks_boots_nothing(adapter, lpar):
    map_disks(adapter, lpar, ["bl_one"])
    set_pending(adapter, lpar.uuid, "/vdevice/v-scsi@30000099/disk@8100000000000000")
    pvm_power.PowerOp.start(lpar.refresh())
    assert boot_fields(adapter, lpar.uuid)["LastBootedDeviceString"] == ""


def test_sms_boots_nothing_and_keeps_the_pending_list(adapter, lpar):
    (first,) = map_disks(adapter, lpar, ["bl_one"])
    set_pending(adapter, lpar.uuid, first)
    pvm_power.PowerOp.start(lpar.refresh(), opts=pvm_popts.PowerOnOpts().bootmode("sms"))
    assert lpar.refresh().bootmode == "System_Management_Services"
    assert boot_fields(adapter, lpar.uuid) == {
        "PendingBootString": first,
        "BootDeviceList": "",
        "LastBootedDeviceString": "",
    }


def test_a_boot_list_change_needs_the_advanced_etag(adapter, lpar):
    stale = pvm_lpar.LPAR.get(adapter, uuid=lpar.uuid, xag=ADV)
    set_pending(adapter, lpar.uuid, "/vdevice/v-scsi@30000002/disk@8100000000000000")
    stale.element.find("BootListInformation/PendingBootString").text = "/vdevice/x@1"
    with pytest.raises(pvm_exc.HttpError) as err:
        stale.update()
    assert err.value.response.status == 412
    # A client that never read the group keeps it as it is.
    base = pvm_lpar.LPAR.get(adapter, uuid=lpar.uuid)  # group=None
    base.desc = "renamed nothing"
    base.update()
    assert boot_fields(adapter, lpar.uuid)["PendingBootString"].startswith("/vdevice/v-scsi")


def test_read_only_boot_fields_and_bad_values_are_refused(adapter, lpar):
    map_disks(adapter, lpar, ["bl_one"])
    pvm_power.PowerOp.start(lpar.refresh())
    lp = pvm_lpar.LPAR.get(adapter, uuid=lpar.uuid, xag=ADV)
    lp.element.find("BootListInformation/LastBootedDeviceString").text = "/vdevice/other@1"
    with pytest.raises(pvm_exc.HttpError) as err:
        lp.update()
    refusal(err, 400, "EMUL0002", "LastBootedDeviceString", "read-only")

    with pytest.raises(pvm_exc.HttpError) as err:
        set_pending(adapter, lpar.uuid, "disk cdrom")
    refusal(err, 400, "EMUL0009", "not an Open Firmware device path")

    set_pending(adapter, lpar.uuid, "/vdevice/v-scsi@30000002/disk@8100000000000000")
    with pytest.raises(pvm_exc.HttpError) as err:
        set_pending(adapter, lpar.uuid, "")
    refusal(err, 500, "EMUL0009", "cannot be emptied")
