"""Driver-shaped flows end to end: spawn and destroy the way nova-powervm does
(create, network, disk upload, config drive, one FeedTask, power on), then
check that destroy leaves nothing behind on the emulated host."""

from __future__ import annotations

import io

import pypowervm.const as pvm_const
from pypowervm.tasks import cna as tsk_cna
from pypowervm.tasks import partition as pvm_part
from pypowervm.tasks import power as pvm_power
from pypowervm.tasks import scsi_mapper as tsk_map
from pypowervm.tasks import storage as tsk_stg
from pypowervm.tasks import vopt as tsk_vopt
from pypowervm.wrappers import logical_partition as pvm_lpar
from pypowervm.wrappers import network as pvm_net

from .test_lpar import build
from .test_storage import vg_named, vios_named


def _snapshot(adapter, host):
    """What an operator would compare before/after: capacity, mappings, disks."""
    host = host.refresh()
    v1 = vios_named(adapter, "vios1", [pvm_const.XAG.VIO_SMAP])
    v2 = vios_named(adapter, "vios2", [pvm_const.XAG.VIO_SMAP])
    disks = sorted(d.name for d in vg_named(adapter, v1, "rootvg").virtual_disks)
    media = sorted(
        m.media_name for m in vg_named(adapter, v1, "rootvg").vmedia_repos[0].optical_media
    )
    return (
        host.memory_free,
        host.proc_units_avail,
        len(v1.scsi_mappings),
        len(v2.scsi_mappings),
        disks,
        media,
        len(pvm_lpar.LPAR.get(adapter)),
    )


def test_spawn_then_destroy_leaves_nothing_behind(emulator, adapter, host):
    before = _snapshot(adapter, host)
    # spawn
    lpar = build(adapter, host, name="instance-1").create(parent=host)
    tsk_cna.crt_cna(adapter, host.uuid, lpar.uuid, 100, vswitch="ETHERNET0")
    vios1 = vios_named(adapter, "vios1")
    vg = vg_named(adapter, vios1, "rootvg")
    image = b"\x00\x01" * 50000
    vdisk, _ = tsk_stg.upload_new_vdisk(
        adapter, vios1.uuid, vg.uuid, io.BytesIO(image), "b_instance_1", len(image)
    )
    vios_uuid, _ = tsk_vopt.validate_vopt_repo_exists(adapter)
    vopt, _ = tsk_stg.upload_vopt(adapter, vios_uuid, io.BytesIO(b"cfg"), "cfg_instance_1", 3)
    ftsk = pvm_part.build_active_vio_feed_task(adapter, xag=[pvm_const.XAG.VIO_SMAP])

    def attach(vios_w):
        if vios_w.uuid != vios1.uuid:
            return False
        for stg in (vdisk, vopt):
            m = tsk_map.build_vscsi_mapping(host.uuid, vios_w, lpar.uuid, stg)
            tsk_map.add_map(vios_w, m)
        return True

    ftsk.wrapper_tasks[vios1.uuid].add_functor_subtask(attach)
    ftsk.execute()
    pvm_power.power_on(lpar, host.uuid)
    assert pvm_lpar.LPAR.get(adapter, uuid=lpar.uuid).state == "running"
    during = _snapshot(adapter, host)
    assert during[2] == before[2] + 2 and "b_instance_1" in during[4]

    # destroy
    pvm_power.power_off_progressive(lpar.refresh())
    ftsk = pvm_part.build_active_vio_feed_task(adapter, xag=[pvm_const.XAG.VIO_SMAP])
    removed = {}

    def detach(vios_w):
        removed[vios_w.uuid] = tsk_map.remove_maps(vios_w, lpar.uuid)
        return bool(removed[vios_w.uuid])

    for wt in ftsk.wrapper_tasks.values():
        wt.add_functor_subtask(detach)
    ftsk.execute()
    vg = vg_named(adapter, vios1, "rootvg")
    tsk_stg.rm_vg_storage(
        vg,
        vdisks=[vdisk],
        vopts=[m for m in vg.vmedia_repos[0].optical_media if m.media_name == "cfg_instance_1"],
    )
    for cna in pvm_net.CNA.get(adapter, parent=lpar):
        cna.delete()
    lpar.refresh().delete()
    assert _snapshot(adapter, host) == before


def test_failed_power_on_can_be_rolled_back(emulator, adapter, host):
    """Spawn fails at power-on (not enough memory); the revert path works."""
    import pypowervm.exceptions as pvm_exc
    import pytest

    before = _snapshot(adapter, host)
    big = host.memory_free - host.memory_free % 256 + 512
    lpar = build(adapter, host, name="instance-2", mem=big, validate=False).create(parent=host)
    vios1 = vios_named(adapter, "vios1")
    vdisk = tsk_stg.crt_vdisk(
        adapter, vios1.uuid, vg_named(adapter, vios1, "rootvg").uuid, "b_instance_2", 1
    )
    tsk_map.add_vscsi_mapping(host.uuid, vios1.uuid, lpar.uuid, vdisk)
    with pytest.raises(pvm_exc.VMPowerOnFailure):
        pvm_power.power_on(lpar, host.uuid)
    # revert: unmap, delete disk, delete LPAR
    v = vios_named(adapter, "vios1", [pvm_const.XAG.VIO_SMAP])
    tsk_map.remove_maps(v, lpar.uuid)
    v.update()
    tsk_stg.rm_vg_storage(vg_named(adapter, vios1, "rootvg"), vdisks=[vdisk])
    lpar.refresh().delete()
    assert _snapshot(adapter, host) == before
