"""The emulated SAN: iSCSI targets with CHAP seen by every VIOS, LUNs that
grow, and RescanVirtualDisk showing the new size on the VIOS and its mappings."""

from __future__ import annotations

import json
import urllib.request

import pypowervm.const as pvm_const
import pypowervm.exceptions as pvm_exc
import pytest
from pypowervm.tasks import hdisk
from pypowervm.tasks import scsi_mapper as tsk_map
from pypowervm.tasks import storage as tsk_stg
from pypowervm.wrappers import storage as pvm_stg

from .test_lpar import build
from .test_storage import vios_named

JSON = {"Content-Type": "application/json"}
IQN = "iqn.2026-01.com.example:array.vol1"
PORTALS = ["192.0.2.10:3260", "192.0.2.11:3260"]


def _control(emulator, path, body):
    req = urllib.request.Request(
        emulator.url + "/_emulator" + path,
        data=json.dumps(body).encode(),
        method="POST",
        headers=JSON,
    )
    with urllib.request.urlopen(req) as resp:  # noqa: S310 (loopback)
        return resp.status, json.loads(resp.read() or b"{}")


def _target(emulator, **extra):
    body = {"iqn": IQN, "portals": PORTALS, "lun": 3, "size_gb": 5, "udid_seed": "vol1"}
    body.update(extra)
    status, out = _control(emulator, "/iscsi-targets", body)
    assert status == 201
    assert "chap_password" not in out["target"]
    return out["target"]


def _pvs(adapter, name):
    return {p.name: p for p in vios_named(adapter, name, [pvm_const.XAG.VIO_STOR]).phys_vols}


def test_each_vios_reports_its_own_initiator_name(adapter):
    names = {
        hdisk.discover_iscsi_initiator(adapter, vios_named(adapter, n).uuid)
        for n in ("vios1", "vios2")
    }
    assert len(names) == 2 and all(n.startswith("iqn.") for n in names)


def test_chap_login_makes_the_lun_an_hdisk_on_every_vios_and_remove_logs_out(emulator, adapter):
    target = _target(emulator, chap_user="u1", chap_password="s3cret")
    for name in ("vios1", "vios2"):
        uuid = vios_named(adapter, name).uuid
        dev, udid = hdisk.discover_iscsi(
            adapter, PORTALS[0], "u1", "s3cret", IQN, uuid, lunid=3, auth="CHAP"
        )
        assert udid == target["udid"]
        assert _pvs(adapter, name)[dev].capacity == 5 * 1024
    vios1 = vios_named(adapter, "vios1")
    v = emulator.emu.store.get("VirtualIOServer", vios1.uuid)
    from ibmvirt.emulators.novalink.state import san

    assert san.sessions_of(v) == [(IQN, PORTALS[0])]
    hdisk.remove_iscsi(adapter, IQN, vios1.uuid, lun=3, portal=PORTALS[0])
    assert target["udid"] not in {p.udid for p in _pvs(adapter, "vios1").values()}
    assert san.sessions_of(v) == []
    # Logging out twice finds nothing, which pypowervm accepts.
    hdisk.remove_iscsi(adapter, IQN, vios1.uuid, lun=3, portal=PORTALS[0])


def test_a_wrong_chap_secret_or_portal_finds_no_device(emulator, adapter):
    _target(emulator, chap_user="u1", chap_password="s3cret")
    uuid = vios_named(adapter, "vios1").uuid
    with pytest.raises(pvm_exc.ISCSIDiscoveryFailed) as exc:
        hdisk.discover_iscsi(adapter, PORTALS[0], "u1", "wrong", IQN, uuid, lunid=3, auth="CHAP")
    assert "24" in str(exc.value)
    with pytest.raises(pvm_exc.ISCSIDiscoveryFailed):
        hdisk.discover_iscsi(adapter, PORTALS[0], None, None, IQN, uuid, lunid=3)
    with pytest.raises(pvm_exc.ISCSIDiscoveryFailed):
        hdisk.discover_iscsi(
            adapter, "198.51.100.1:3260", "u1", "s3cret", IQN, uuid, lunid=3, auth="CHAP"
        )
    assert not [p for p in _pvs(adapter, "vios1") if p not in ("hdisk1", "hdisk2", "hdisk3")]


def test_discovery_chap_is_checked_on_multipath_logins(emulator, adapter):
    _target(emulator, discovery_user="d1", discovery_password="disc")
    uuid = vios_named(adapter, "vios2").uuid
    with pytest.raises(pvm_exc.ISCSIDiscoveryFailed):
        hdisk.discover_iscsi(
            adapter,
            PORTALS,
            None,
            None,
            [IQN, IQN],
            uuid,
            lunid=[3, 3],
            multipath=True,
            discovery_auth="CHAP",
            discovery_username="d1",
            discovery_password="bad",
        )
    dev, _ = hdisk.discover_iscsi(
        adapter,
        PORTALS,
        None,
        None,
        [IQN, IQN],
        uuid,
        lunid=[3, 3],
        multipath=True,
        discovery_auth="CHAP",
        discovery_username="d1",
        discovery_password="disc",
    )
    assert dev in _pvs(adapter, "vios2")


def test_a_mapped_iscsi_hdisk_cannot_be_logged_out(emulator, adapter, host):
    _target(emulator)
    vios1 = vios_named(adapter, "vios1")
    dev, udid = hdisk.discover_iscsi(adapter, PORTALS[0], None, None, IQN, vios1.uuid, lunid=3)
    lpar = build(adapter, host).create(parent=host)
    tsk_map.add_vscsi_mapping(
        host.uuid, vios1.uuid, lpar.uuid, pvm_stg.PV.bld(adapter, dev, udid=udid)
    )
    with pytest.raises(pvm_exc.JobRequestFailed):
        hdisk.remove_iscsi(adapter, IQN, vios1.uuid, lun=3)


def test_a_grown_lun_shows_its_size_after_a_rescan_on_the_vios_and_mapping(emulator, adapter, host):
    target = _target(emulator)
    vios1 = vios_named(adapter, "vios1")
    dev, udid = hdisk.discover_iscsi(adapter, PORTALS[0], None, None, IQN, vios1.uuid, lunid=3)
    lpar = build(adapter, host).create(parent=host)
    tsk_map.add_vscsi_mapping(
        host.uuid, vios1.uuid, lpar.uuid, pvm_stg.PV.bld(adapter, dev, udid=udid)
    )
    assert _control(emulator, "/volumes/grow", {"udid_seed": "vol1", "size_gb": 8})[0] == 200
    assert _pvs(adapter, "vios1")[dev].capacity == 5 * 1024  # not rescanned yet
    tsk_stg.rescan_vstor(vios1.uuid, target["udid"], adapter=adapter)
    assert _pvs(adapter, "vios1")[dev].capacity == 8 * 1024
    v = vios_named(adapter, "vios1", [pvm_const.XAG.VIO_SMAP])
    (mapping,) = tsk_map.find_maps(v.scsi_mappings, client_lpar_id=lpar.uuid)
    assert mapping.backing_storage.capacity == 8 * 1024
    with pytest.raises(urllib.error.HTTPError):
        _control(emulator, "/volumes/grow", {"udid_seed": "vol1", "size_gb": 2})


def test_rescan_of_an_unknown_udid_is_volume_not_found(adapter):
    with pytest.raises(pvm_exc.VstorNotFound):
        tsk_stg.rescan_vstor(vios_named(adapter, "vios1").uuid, "01M0lCTnosuch", adapter=adapter)
