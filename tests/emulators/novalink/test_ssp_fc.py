"""Shared storage pool LUs with linked clones, hdisk discovery jobs and NPIV."""

from __future__ import annotations

import io
import json
import urllib.request

import pypowervm.const as pvm_const
import pypowervm.exceptions as pvm_exc
import pytest
from pypowervm.tasks import hdisk, vfc_mapper
from pypowervm.tasks import scsi_mapper as tsk_map
from pypowervm.tasks import storage as tsk_stg
from pypowervm.wrappers import cluster as pvm_clust
from pypowervm.wrappers import storage as pvm_stg
from pypowervm.wrappers import virtual_io_server as pvm_vios

from .test_lpar import build
from .test_storage import vios_named

#: Control requests with a body must say they are JSON (faults.control_refusal).
JSON = {"Content-Type": "application/json"}


def test_cluster_pool_and_default_tier(adapter):
    cluster = pvm_clust.Cluster.get(adapter)[0]
    assert cluster.name == "cluster-1"
    assert sorted(n.vios_uuid for n in cluster.nodes) == sorted(
        v.uuid for v in pvm_vios.VIOS.get(adapter)
    )
    ssp = pvm_stg.SSP.get(adapter)[0]
    assert ssp.name == "ssp-1" and ssp.capacity == 1024
    tier = tsk_stg.default_tier_for_ssp(ssp)
    assert tier.name == "SYSTEM" and tier.is_default


def test_image_lu_upload_and_linked_clone(emulator, adapter):
    ssp = pvm_stg.SSP.get(adapter)[0]
    tier = tsk_stg.default_tier_for_ssp(ssp)
    data = b"\x7fELF" * 300000
    image, leftover = tsk_stg.upload_new_lu(
        vios_named(adapter, "vios1").uuid, ssp, io.BytesIO(data), "image_base", len(data)
    )
    assert leftover is None
    assert emulator.emu.uploads[image.udid]["bytes"] == len(data)
    _, clone = tsk_stg.crt_lu(tier, "boot_vm1", 10, typ=pvm_stg.LUType.DISK, clone=image)
    assert clone.cloned_from_udid == image.udid
    assert clone.capacity >= image.capacity
    lus = {lu.name: lu for lu in pvm_stg.LUEnt.get(adapter, parent=tier)}
    assert set(lus) == {"image_base", "boot_vm1"}
    assert lus["boot_vm1"].lu_type == pvm_stg.LUType.DISK
    # The pool lists them and accounts their size.
    ssp = ssp.refresh()
    assert {lu.name for lu in ssp.logical_units} == {"image_base", "boot_vm1"}
    # The image cannot go while a clone depends on it; rm_tier_storage removes
    # the clone and then the no-longer-used image.
    with pytest.raises(pvm_exc.HttpError):
        lus["image_base"].delete()
    tsk_stg.rm_tier_storage([lus["boot_vm1"]], tier=tier)
    assert pvm_stg.LUEnt.get(adapter, parent=tier) == []


def test_mapped_lu_is_in_use_and_cannot_be_deleted(adapter, host):
    ssp = pvm_stg.SSP.get(adapter)[0]
    tier = tsk_stg.default_tier_for_ssp(ssp)
    _, lu = tsk_stg.crt_lu(tier, "disk_vm1", 5, thin=True)
    lpar = build(adapter, host).create(parent=host)
    tsk_map.add_vscsi_mapping(
        host.uuid,
        vios_named(adapter, "vios2").uuid,
        lpar.uuid,
        pvm_stg.LU.bld_ref(adapter, lu.name, lu.udid),
    )
    lu = lu.refresh()
    assert lu.in_use is True
    with pytest.raises(pvm_exc.HttpError) as exc:
        lu.delete()
    assert "mapped" in exc.value.her_wrap.message
    v2 = vios_named(adapter, "vios2", [pvm_const.XAG.VIO_SMAP])
    assert (
        tsk_map.find_maps(v2.scsi_mappings, client_lpar_id=lpar.uuid)[0].backing_storage.udid
        == lu.udid
    )


def test_thick_lu_larger_than_pool_refused(adapter):
    ssp = pvm_stg.SSP.get(adapter)[0]
    tier = tsk_stg.default_tier_for_ssp(ssp)
    with pytest.raises(pvm_exc.HttpError) as exc:
        tsk_stg.crt_lu(tier, "huge", 5000, thin=False)
    assert "free" in exc.value.her_wrap.message


def test_lua_recovery_discovers_fc_volume(emulator, adapter):
    vios1 = vios_named(adapter, "vios1", [pvm_const.XAG.VIO_STOR])
    port = vios1.pfc_ports[0]
    itls = hdisk.build_itls([port.wwpn], ["500507680b215660"], 0)
    status, name, udid = hdisk.discover_hdisk(adapter, vios1.uuid, itls)
    assert status == hdisk.LUAStatus.DEVICE_AVAILABLE
    assert name == "hdisk10"
    vios1 = vios_named(adapter, "vios1", [pvm_const.XAG.VIO_STOR])
    assert udid in [p.udid for p in vios1.phys_vols]
    # An initiator that is not one of the VIOS's ports is reported as a bad ITL.
    bad = hdisk.build_itls(["c0507606d56e03aa"], ["500507680b215660"], 0)
    status, name, _ = hdisk.lua_recovery(adapter, vios1.uuid, bad)
    assert status == hdisk.LUAStatus.INCORRECT_ITL and name is None


def test_iscsi_discovery_of_volume_added_at_run_time(emulator, adapter):
    body = json.dumps(
        {"vios": "vios2", "name": "hdisk20", "iqn": "iqn.2026-01.org:tgt1", "lun": 1, "size_gb": 5}
    ).encode()
    req = urllib.request.Request(
        emulator.url + "/_emulator/volumes", data=body, method="POST", headers=JSON
    )
    assert urllib.request.urlopen(req).status == 201
    vios2 = vios_named(adapter, "vios2")
    devname, udid = hdisk.discover_iscsi(
        adapter, "192.0.2.10:3260", "chap", "secret", "iqn.2026-01.org:tgt1", vios2.uuid, lunid=1
    )
    assert devname == "hdisk20"
    vios2 = vios_named(adapter, "vios2", [pvm_const.XAG.VIO_STOR])
    assert udid in [p.udid for p in vios2.phys_vols]


def test_npiv_mapping_with_generated_wwpns(adapter, host):
    lpar = build(adapter, host).create(parent=host)
    wwpns = vfc_mapper.build_wwpn_pair(adapter, host.uuid)
    assert len(wwpns) == 2 and wwpns[0] != wwpns[1]
    vios1 = vios_named(adapter, "vios1", [pvm_const.XAG.VIO_FMAP])
    port = vios1.pfc_ports[0]
    port_map = (port.wwpn, " ".join(wwpns))
    vfc_mapper.add_map(vios1, host.uuid, lpar.uuid, port_map)
    vios1 = vios1.update()
    maps = vfc_mapper.find_maps(vios1.vfc_mappings, lpar.id)
    assert len(maps) == 1
    assert sorted(maps[0].client_adapter.wwpns) == sorted(w.upper() for w in wwpns)
    assert maps[0].backing_port.wwpn == port.wwpn
    assert maps[0].server_adapter.name.startswith("vfchost")
    # Remove it again.
    vios1 = vios_named(adapter, "vios1", [pvm_const.XAG.VIO_FMAP])
    vfc_mapper.remove_maps(vios1, lpar.id)
    vios1 = vios1.update()
    assert vfc_mapper.find_maps(vios1.vfc_mappings, lpar.id) == []


def test_lpar_lists_its_vfc_client_adapters(adapter, host):
    lpar = build(adapter, host).create(parent=host)
    vios1 = vios_named(adapter, "vios1", [pvm_const.XAG.VIO_FMAP])
    wwpns = vfc_mapper.build_wwpn_pair(adapter, host.uuid)
    vfc_mapper.add_map(vios1, host.uuid, lpar.uuid, (vios1.pfc_ports[0].wwpn, " ".join(wwpns)))
    vios1.update()
    adapters = pvm_stg.VFCClientAdapter.get(adapter, parent=lpar)
    assert len(adapters) == 1
    assert sorted(adapters[0].wwpns) == sorted(w.upper() for w in wwpns)
    assert adapters[0].lpar_id == lpar.id


def test_san_present_zones_a_lun_to_the_vioses_with_the_wwpns(emulator, adapter):
    """What the cloud's Cinder SAN driver does: a LUN masked to one VIOS's
    physical port WWPN becomes discoverable there (LUA recovery), nowhere else."""
    vios1 = vios_named(adapter, "vios1", [pvm_const.XAG.VIO_STOR])
    wwpn = vios1.pfc_ports[0].wwpn
    body = {
        "wwpns": [wwpn.lower(), "c0507606d56e03aa"],
        "lun": 7,
        "target_wwpn": "500507680b214ac1",
        "size_gb": 1,
        "udid_seed": "cinder-volume-1",
    }
    req = urllib.request.Request(
        emulator.url + "/_emulator/san/present",
        data=json.dumps(body).encode(),
        method="POST",
        headers=JSON,
    )
    with urllib.request.urlopen(req) as resp:
        assert json.loads(resp.read()) == {"vioses": ["vios1"]}
    # Presenting again (a second attach of the volume) adds no second disk.
    urllib.request.urlopen(req).read()
    itls = hdisk.build_itls([wwpn], ["500507680b214ac1"], 7)
    status, name, udid = hdisk.discover_hdisk(adapter, vios1.uuid, itls)
    assert status == hdisk.LUAStatus.DEVICE_AVAILABLE
    vios1 = vios_named(adapter, "vios1", [pvm_const.XAG.VIO_STOR])
    assert [p.udid for p in vios1.phys_vols].count(udid) == 1
    vios2 = vios_named(adapter, "vios2", [pvm_const.XAG.VIO_STOR])
    assert udid not in [p.udid for p in vios2.phys_vols]
