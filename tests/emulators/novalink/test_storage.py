"""Local storage: volume groups, virtual disks, uploads, media repository and
vSCSI mappings across both VIOSes, with pypowervm's own task helpers."""

from __future__ import annotations

import hashlib
import io

import pypowervm.const as pvm_const
import pypowervm.exceptions as pvm_exc
import pytest
from pypowervm.tasks import partition as pvm_part
from pypowervm.tasks import scsi_mapper as tsk_map
from pypowervm.tasks import storage as tsk_stg
from pypowervm.tasks import vopt as tsk_vopt
from pypowervm.wrappers import storage as pvm_stg
from pypowervm.wrappers import virtual_io_server as pvm_vios

from .test_lpar import build, refusal


def vios_named(adapter, name, xag=()):
    return next(v for v in pvm_vios.VIOS.get(adapter, xag=list(xag)) if v.name == name)


def vg_named(adapter, vios, name):
    return next(vg for vg in pvm_stg.VG.get(adapter, parent=vios) if vg.name == name)


def test_volume_groups_and_physical_volumes_from_inventory(adapter):
    vios1 = vios_named(adapter, "vios1", [pvm_const.XAG.VIO_STOR])
    assert sorted(p.name for p in vios1.phys_vols) == ["hdisk1", "hdisk2", "hdisk3"]
    vgs = {vg.name: vg for vg in pvm_stg.VG.get(adapter, parent=vios1)}
    assert set(vgs) == {"rootvg", "datavg"}
    assert vgs["rootvg"].capacity == 500
    assert vgs["rootvg"].vmedia_repos[0].name == "VMLibrary"
    assert vgs["rootvg"].available_size == pytest.approx(480)
    assert [p.name for p in vgs["datavg"].phys_vols] == ["hdisk2"]


def test_create_vdisk_takes_space_and_gets_udid(adapter):
    vios1 = vios_named(adapter, "vios1")
    vg = vg_named(adapter, vios1, "datavg")
    before = vg.available_size
    vdisk = tsk_stg.crt_vdisk(adapter, vios1.uuid, vg.uuid, "boot_vm1", 20)
    assert vdisk.name == "boot_vm1" and vdisk.capacity == 20
    assert vdisk.udid.startswith("0300")
    vg = vg_named(adapter, vios1, "datavg")
    assert vg.available_size == pytest.approx(before - 20)
    with pytest.raises(pvm_exc.HttpError) as exc:  # same name again
        tsk_stg.crt_vdisk(adapter, vios1.uuid, vg.uuid, "boot_vm1", 1)
    assert "already exists" in exc.value.her_wrap.message


def test_vdisk_larger_than_free_space_refused(adapter):
    vios1 = vios_named(adapter, "vios1")
    vg = vg_named(adapter, vios1, "datavg")
    with pytest.raises(pvm_exc.HttpError) as exc:
        tsk_stg.crt_vdisk(adapter, vios1.uuid, vg.uuid, "huge", 10000)
    refusal(exc, 500, "EMUL0013", "not enough free space")
    assert [d.name for d in vg_named(adapter, vios1, "datavg").virtual_disks] == []


def test_upload_new_vdisk_streams_image(emulator, adapter):
    vios1 = vios_named(adapter, "vios1")
    vg = vg_named(adapter, vios1, "rootvg")
    data = bytes(range(256)) * 4096 * 3  # 3 MiB
    vdisk, leftover = tsk_stg.upload_new_vdisk(
        adapter, vios1.uuid, vg.uuid, io.BytesIO(data), "image_x", len(data)
    )
    assert leftover is None  # the File metadata was cleaned up
    got = emulator.emu.uploads[vdisk.udid]
    assert got["bytes"] == len(data)
    assert got["sha256"] == hashlib.sha256(data).hexdigest()
    assert emulator.emu.files == {}


def test_upload_size_mismatch_is_refused(emulator, adapter):
    from pypowervm.wrappers import vios_file as pvm_file

    vios1 = vios_named(adapter, "vios1")
    vg = vg_named(adapter, vios1, "rootvg")
    vdisk = tsk_stg.crt_vdisk(adapter, vios1.uuid, vg.uuid, "img", 1)
    f = pvm_file.File.bld(
        adapter, "img", pvm_file.FileType.DISK_IMAGE, vios1.uuid, f_size=100, tdev_udid=vdisk.udid
    ).create()
    with pytest.raises(pvm_exc.HttpError) as exc:
        adapter.upload_file(f.element, io.BytesIO(b"x" * 10))
    assert "ExpectedFileSizeInBytes" in exc.value.her_wrap.message


def test_vopt_repository_upload_and_mapping(emulator, adapter):
    vios_uuid, vg_uuid = tsk_vopt.validate_vopt_repo_exists(adapter)
    vios1 = vios_named(adapter, "vios1")
    assert vios_uuid == vios1.uuid
    iso = b"CD001" * 1000
    ref, leftover = tsk_stg.upload_vopt(
        adapter, vios_uuid, io.BytesIO(iso), "cfg_vm1.iso", len(iso)
    )
    assert leftover is None
    vg = pvm_stg.VG.get(adapter, parent=vios1, uuid=vg_uuid)
    assert [m.media_name for m in vg.vmedia_repos[0].optical_media] == ["cfg_vm1.iso"]
    lpar = build(adapter, pvm_ms_host(adapter)).create(parent=pvm_ms_host(adapter))
    tsk_map.add_vscsi_mapping(pvm_ms_host(adapter).uuid, vios_uuid, lpar.uuid, ref)
    vios1 = vios_named(adapter, "vios1", [pvm_const.XAG.VIO_SMAP])
    maps = tsk_map.find_maps(vios1.scsi_mappings, client_lpar_id=lpar.uuid)
    assert len(maps) == 1
    assert maps[0].target_dev.name.startswith("vtopt")
    assert maps[0].backing_storage.media_name == "cfg_vm1.iso"
    # A mapped medium cannot be removed from the repository.
    vg = pvm_stg.VG.get(adapter, parent=vios1, uuid=vg_uuid)
    with pytest.raises(pvm_exc.HttpError) as exc:
        tsk_stg.rm_vg_storage(vg, vopts=vg.vmedia_repos[0].optical_media)
    assert "mapped" in exc.value.her_wrap.message


def pvm_ms_host(adapter):
    from pypowervm.wrappers import managed_system as pvm_ms

    return pvm_ms.System.get(adapter)[0]


def test_vscsi_mappings_across_both_vioses_with_feedtask(emulator, adapter, host):
    lpar = build(adapter, host).create(parent=host)
    vios1 = vios_named(adapter, "vios1")
    vg = vg_named(adapter, vios1, "datavg")
    vdisk = tsk_stg.crt_vdisk(adapter, vios1.uuid, vg.uuid, "boot_vm1", 10)

    ftsk = pvm_part.build_active_vio_feed_task(adapter, xag=[pvm_const.XAG.VIO_SMAP])
    assert len(ftsk.wrapper_tasks) == 2

    def map_vdisk(vios_w):
        if vios_w.name != "vios1":
            return False
        m = tsk_map.build_vscsi_mapping(host.uuid, vios_w, lpar.uuid, vdisk)
        return tsk_map.add_map(vios_w, m) is not None

    def map_pv(vios_w):
        if vios_w.name != "vios2":
            return False
        pv = pvm_stg.PV.bld(adapter, "hdisk1")
        m = tsk_map.build_vscsi_mapping(host.uuid, vios_w, lpar.uuid, pv)
        return tsk_map.add_map(vios_w, m) is not None

    for wt in ftsk.wrapper_tasks.values():
        wt.add_functor_subtask(map_vdisk)
        wt.add_functor_subtask(map_pv)
    ftsk.execute()

    v1 = vios_named(adapter, "vios1", [pvm_const.XAG.VIO_SMAP])
    v2 = vios_named(adapter, "vios2", [pvm_const.XAG.VIO_SMAP])
    m1 = tsk_map.find_maps(v1.scsi_mappings, client_lpar_id=lpar.uuid)
    m2 = tsk_map.find_maps(v2.scsi_mappings, client_lpar_id=lpar.uuid)
    assert len(m1) == 1 and len(m2) == 1
    assert m1[0].backing_storage.name == "boot_vm1"
    assert m2[0].backing_storage.name == "hdisk1"
    # Server-created adapters: vhost names, distinct client slots on the LPAR.
    assert m1[0].server_adapter.name.startswith("vhost")
    assert m1[0].client_adapter.lpar_slot_num != m2[0].client_adapter.lpar_slot_num
    assert m1[0].client_adapter.lpar_id == lpar.id
    assert m1[0].target_dev.lua.startswith("0x8")
    # pypowervm sent a ROOT client link; the server shows it under the system.
    assert f"/ManagedSystem/{host.uuid}/LogicalPartition/{lpar.uuid}" in m1[0].client_lpar_href

    # Deleting a mapped disk is refused while the mapping exists.
    with pytest.raises(pvm_exc.HttpError) as exc:
        tsk_stg.rm_vg_storage(vg_named(adapter, vios1, "datavg"), vdisks=[vdisk])
    refusal(exc, 500, "EMUL0008", "remove its vSCSI mapping first")

    # Remove every mapping of the LPAR on both VIOSes, again via FeedTask.
    ftsk = pvm_part.build_active_vio_feed_task(adapter, xag=[pvm_const.XAG.VIO_SMAP])
    for wt in ftsk.wrapper_tasks.values():
        wt.add_functor_subtask(tsk_map.remove_maps, lpar.uuid)
    ftsk.execute()
    for name in ("vios1", "vios2"):
        v = vios_named(adapter, name, [pvm_const.XAG.VIO_SMAP])
        assert tsk_map.find_maps(v.scsi_mappings, client_lpar_id=lpar.uuid) == []
    tsk_stg.rm_vg_storage(vg_named(adapter, vios1, "datavg"), vdisks=[vdisk])
    assert vg_named(adapter, vios1, "datavg").virtual_disks == []


def test_mapping_to_missing_storage_refused(adapter, host):
    lpar = build(adapter, host).create(parent=host)
    vios1 = vios_named(adapter, "vios1", [pvm_const.XAG.VIO_SMAP])
    ref = pvm_stg.VDisk.bld_ref(adapter, "nosuchdisk")
    with pytest.raises(pvm_exc.HttpError) as exc:
        tsk_map.add_vscsi_mapping(host.uuid, vios1, lpar.uuid, ref)
    refusal(exc, 400, "EMUL0009", "no virtual disk 'nosuchdisk'")


def test_mapped_device_keeps_the_clients_tag(adapter, host):
    """Drivers tag a volume's device when they map it (nova-powervm: the volume
    id); the mapping shows the tag afterwards."""
    lpar = build(adapter, host).create(parent=host)
    vios1 = vios_named(adapter, "vios1", [pvm_const.XAG.VIO_SMAP])
    pv = pvm_stg.PV.bld(adapter, "hdisk1", tag="vol-9f3c")
    tsk_map.add_vscsi_mapping(host.uuid, vios1, lpar.uuid, pv)
    vios1 = vios_named(adapter, "vios1", [pvm_const.XAG.VIO_SMAP])
    (mapping,) = tsk_map.find_maps(vios1.scsi_mappings, client_lpar_id=lpar.uuid)
    assert (mapping.backing_storage.name, mapping.backing_storage.tag) == ("hdisk1", "vol-9f3c")


def test_mapping_change_event_names_the_mappings(emulator, adapter, host):
    from pypowervm.wrappers import event as pvm_evt

    emulator.emu.events.wait = 0.2
    pvm_evt.Event.get(adapter, "maps")
    lpar = build(adapter, host).create(parent=host)
    vios1 = vios_named(adapter, "vios1", [pvm_const.XAG.VIO_SMAP])
    vg = vg_named(adapter, vios1, "datavg")
    vdisk = tsk_stg.crt_vdisk(adapter, vios1.uuid, vg.uuid, "boot_vm1", 1)
    pvm_evt.Event.get(adapter, "maps")
    fc_view = vios_named(adapter, "vios1", [pvm_const.XAG.VIO_FMAP]).etag
    tsk_map.add_vscsi_mapping(host.uuid, vios1, lpar.uuid, vdisk)
    # The Fibre Channel view did not change, nor did its ETag.
    assert vios_named(adapter, "vios1", [pvm_const.XAG.VIO_FMAP]).etag == fc_view
    assert vios_named(adapter, "vios1", [pvm_const.XAG.VIO_SMAP]).etag != vios1.etag
    mine = [
        (e.etype, e.detail)
        for e in pvm_evt.Event.get(adapter, "maps")
        if e.data.endswith(f"/ManagedSystem/{host.uuid}/VirtualIOServer/{vios1.uuid}")
    ]
    # As in the real event_feed.txt: the detail names the changed mappings.
    assert mine == [("MODIFY_URI", "VirtualSCSIMappings")]


def test_comprehensive_scrub_cleans_mappings_of_deleted_lpar(adapter, host):
    """What a driver's init_host does: orphaned mappings and their disks go."""
    lpar = build(adapter, host).create(parent=host)
    vios1 = vios_named(adapter, "vios1")
    vg = vg_named(adapter, vios1, "datavg")
    vdisk = tsk_stg.crt_vdisk(adapter, vios1.uuid, vg.uuid, "boot_vm1", 1)
    tsk_map.add_vscsi_mapping(host.uuid, vios1.uuid, lpar.uuid, vdisk)
    lpar.delete()  # the mapping stays behind, as on the real server
    v = vios_named(adapter, "vios1", [pvm_const.XAG.VIO_SMAP])
    assert len(v.scsi_mappings) == 1
    tsk_stg.ComprehensiveScrub(adapter).execute()
    v = vios_named(adapter, "vios1", [pvm_const.XAG.VIO_SMAP])
    assert v.scsi_mappings == []
    assert vg_named(adapter, vios1, "datavg").virtual_disks == []


def test_feedtask_with_scsi_and_fc_groups(adapter, host):
    """nova-powervm builds one FeedTask with both mapping groups."""
    from pypowervm.tasks import vfc_mapper

    lpar = build(adapter, host).create(parent=host)
    vios1 = vios_named(adapter, "vios1")
    vdisk = tsk_stg.crt_vdisk(
        adapter, vios1.uuid, vg_named(adapter, vios1, "rootvg").uuid, "boot_vm1", 1
    )
    xags = [pvm_const.XAG.VIO_SMAP, pvm_const.XAG.VIO_FMAP]
    ftsk = pvm_part.build_active_vio_feed_task(adapter, xag=xags)

    def add(vios_w):
        if vios_w.name == "vios1":
            m = tsk_map.build_vscsi_mapping(host.uuid, vios_w, lpar.uuid, vdisk)
            return tsk_map.add_map(vios_w, m) is not None
        port = vios_w.pfc_ports[0]
        vfc_mapper.add_map(
            vios_w, host.uuid, lpar.uuid, (port.wwpn, "c05076079cff0fa0 c05076079cff0fa1")
        )
        return True

    for wt in ftsk.wrapper_tasks.values():
        wt.add_functor_subtask(add)
    ftsk.execute()
    v1 = vios_named(adapter, "vios1", xags)
    v2 = vios_named(adapter, "vios2", xags)
    assert len(tsk_map.find_maps(v1.scsi_mappings, client_lpar_id=lpar.uuid)) == 1
    assert len(vfc_mapper.find_maps(v2.vfc_mappings, lpar.id)) == 1
    assert vfc_mapper.find_maps(v1.vfc_mappings, lpar.id) == []


def test_disk_data_kept_for_snapshot_seam(tmp_path):
    """With disk_dir, uploaded bytes land in a file a driver seam can read."""
    import gc
    import json
    import urllib.request

    import pypowervm.adapter as pvm_adpt

    from ibmvirt.emulators.novalink import app

    with app.running("small", token_dir=str(tmp_path / "t"), disk_dir=str(tmp_path / "d")) as srv:
        sess = pvm_adpt.Session(
            "127.0.0.1", "neo", "passw0rd", protocol="http", port=srv.port, conn_tries=1
        )
        adapter = pvm_adpt.Adapter(sess)
        vios1 = vios_named(adapter, "vios1")
        data = b"bootable-image" * 1000
        vdisk, _ = tsk_stg.upload_new_vdisk(
            adapter,
            vios1.uuid,
            vg_named(adapter, vios1, "rootvg").uuid,
            io.BytesIO(data),
            "img1",
            len(data),
        )
        ssp = pvm_stg.SSP.get(adapter)[0]
        image, _ = tsk_stg.upload_new_lu(vios1.uuid, ssp, io.BytesIO(data), "image", len(data))
        _, clone = tsk_stg.crt_lu(tsk_stg.default_tier_for_ssp(ssp), "clone", 1, clone=image)
        with urllib.request.urlopen(srv.url + "/_emulator/disks") as resp:
            disks = json.loads(resp.read())["disks"]
        with open(disks[vdisk.udid]["path"], "rb") as f:
            assert f.read() == data
        assert disks[clone.udid]["clone_of"] == image.udid
        assert disks[clone.udid]["path"] == disks[image.udid]["path"]
        sess._logoff()
        del sess, adapter
        gc.collect()


def test_volume_group_physical_volume_changes_are_refused_not_dropped(adapter):
    from pypowervm.wrappers import storage as pvm_stg
    from pypowervm.wrappers import virtual_io_server as pvm_vios

    vios1 = next(v for v in pvm_vios.VIOS.get(adapter, xag=[]) if v.name == "vios1")
    vg = next(v for v in pvm_stg.VG.get(adapter, parent=vios1) if v.name == "datavg")
    spare = next(p for p in vios1.phys_vols if p.name == "hdisk3")
    vg.phys_vols.append(pvm_stg.PV.bld(adapter, spare.name, udid=spare.udid))
    with pytest.raises(pvm_exc.HttpError) as exc:
        vg.update()
    assert exc.value.response.status == 501
    assert "not emulated" in exc.value.her_wrap.message
    again = next(v for v in pvm_stg.VG.get(adapter, parent=vios1) if v.name == "datavg")
    assert [p.name for p in again.phys_vols] == ["hdisk2"]
