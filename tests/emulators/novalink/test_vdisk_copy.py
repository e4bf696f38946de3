"""Virtual disks created as copies of another (pypowervm crt_copy_vdisk)."""

from __future__ import annotations

import io

import pypowervm.exceptions as pvm_exc
import pytest
from pypowervm.tasks import storage as tsk_stg

from .test_storage import vg_named, vios_named


def test_a_copy_holds_the_source_disk_data(emulator, adapter):
    vios = vios_named(adapter, "vios1")
    vg = vg_named(adapter, vios, "datavg")
    data = b"\x07" * 4096
    image, _ = tsk_stg.upload_new_vdisk(
        adapter, vios.uuid, vg.uuid, io.BytesIO(data), "i_img", 4096
    )
    copy = tsk_stg.crt_copy_vdisk(adapter, vios.uuid, vg.uuid, image.udid, 4096, "b_copy")
    uploads = emulator.emu.uploads
    assert uploads[copy.udid]["sha256"] == uploads[image.udid]["sha256"]
    assert uploads[copy.udid]["copy_of"] == image.udid
    assert copy.capacity >= 1


def test_a_copy_of_a_disk_of_another_volume_group_is_refused(emulator, adapter):
    vios = vios_named(adapter, "vios1")
    rootvg, datavg = vg_named(adapter, vios, "rootvg"), vg_named(adapter, vios, "datavg")
    src = tsk_stg.crt_vdisk(adapter, vios.uuid, rootvg.uuid, "src", 1)
    with pytest.raises(pvm_exc.HttpError) as err:
        tsk_stg.crt_copy_vdisk(adapter, vios.uuid, datavg.uuid, src.udid, 1024, "b_copy")
    assert err.value.response.status == 400
    assert "BaseImage" in err.value.her_wrap.message


def test_a_vios_update_echoing_an_older_uptime_is_accepted(emulator, adapter):
    """Uptime is computed when read and changes no ETag: a client that read the
    VIOS a while ago sends its old Uptime back with any update (pypowervm sends
    the whole object), which is not a change of that read-only field."""
    import time

    from pypowervm import const as pvm_const
    from pypowervm.tasks import scsi_mapper as tsk_map

    vios = vios_named(adapter, "vios1", [pvm_const.XAG.VIO_SMAP])
    time.sleep(1.1)
    vios_named(adapter, "vios1")  # another client's read: the server's Uptime moves on
    vdisk = tsk_stg.crt_vdisk(adapter, vios.uuid, vg_named(adapter, vios, "datavg").uuid, "up", 1)
    lpar_uuid = next(iter(emulator.emu.store.list("LogicalPartition"))).uuid
    tsk_map.add_map(vios, tsk_map.build_vscsi_mapping(None, vios, lpar_uuid, vdisk))
    updated = vios.update()
    assert [m.backing_storage.name for m in updated.scsi_mappings if m.backing_storage] == ["up"]


def test_media_go_into_a_repository_a_client_created(tmp_path):
    """pypowervm creates the repository when no VIOS has one (validate_vopt_repo_exists);
    the first upload into it then finds the (empty) media list the server keeps."""
    import pypowervm.adapter as pvm_adpt
    from pypowervm.tasks import vopt as tsk_vopt

    from ibmvirt.emulators.novalink import app, inventory

    inv = inventory.load("small")
    for v in inv["vioses"]:
        for vg in v.get("volume_groups", []):
            vg.pop("media_repository", None)
    srv = app.start(inv, token_dir=str(tmp_path))
    try:
        sess = pvm_adpt.Session(
            "127.0.0.1", "neo", "passw0rd", protocol="http", port=srv.port, conn_tries=1
        )
        adapter = pvm_adpt.Adapter(sess)
        vios_uuid, vg_uuid = tsk_vopt.validate_vopt_repo_exists(adapter, "rootvg", 1)
        vopt, _ = tsk_stg.upload_vopt(adapter, vios_uuid, io.BytesIO(b"iso"), "cfg_new", 3)
        assert vopt.media_name == "cfg_new"
        vios = vios_named(adapter, "vios1")
        assert [
            m.media_name for m in vg_named(adapter, vios, "rootvg").vmedia_repos[0].optical_media
        ] == ["cfg_new"]
        sess._logoff()
    finally:
        srv.stop()


def test_power_on_removes_the_named_medium_after_the_time(emulator, adapter, host):
    """PowerOn with remove_optical_name/_time (pypowervm PowerOnOpts.remove_optical):
    the config drive is unmapped from the partition and deleted from the repository."""
    import time

    from pypowervm import const as pvm_const
    from pypowervm.tasks import power as pvm_power
    from pypowervm.tasks import power_opts as pvm_popts
    from pypowervm.tasks import scsi_mapper as tsk_map
    from pypowervm.tasks import vopt as tsk_vopt

    from ibmvirt.emulators.novalink.state import vopt_removal

    from .test_lpar import build

    lpar = build(adapter, host, name="cfg-eject").create(parent=host)
    vios_uuid, _ = tsk_vopt.validate_vopt_repo_exists(adapter)
    vopt, _ = tsk_stg.upload_vopt(adapter, vios_uuid, io.BytesIO(b"cfg"), "cfg_eject", 3)
    tsk_map.add_vscsi_mapping(host.uuid, vios_uuid, lpar.uuid, vopt)
    timers = []
    real_timer = vopt_removal.threading.Timer
    vopt_removal.threading.Timer = lambda delay, fn, args: (
        timers.append(delay) or real_timer(0, fn, args)
    )
    try:
        opts = pvm_popts.PowerOnOpts().remove_optical("cfg_eject", time=2)
        pvm_power.PowerOp.start(lpar.refresh(), opts=opts)
    finally:
        vopt_removal.threading.Timer = real_timer
    assert timers == [120.0]  # minutes, as NovaLink takes them
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and "vopt:cfg_eject" in emulator.emu.uploads:
        time.sleep(0.05)
    vios = vios_named(adapter, "vios1", [pvm_const.XAG.VIO_SMAP])
    assert not [
        m
        for m in vios.scsi_mappings
        if m.backing_storage is not None
        and getattr(m.backing_storage, "media_name", None) == "cfg_eject"
    ]
    repo = vg_named(adapter, vios, "rootvg").vmedia_repos[0]
    assert "cfg_eject" not in [m.media_name for m in repo.optical_media]
