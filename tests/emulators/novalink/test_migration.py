"""Live partition mobility between two emulated hosts with pypowervm's
migration tasks."""

from __future__ import annotations

import gc
import io
import json
import logging
import urllib.request

import pypowervm.adapter as pvm_adpt
import pypowervm.const as pvm_const
import pypowervm.exceptions as pvm_exc
import pytest
from pypowervm.tasks import hdisk
from pypowervm.tasks import migration as pvm_mig
from pypowervm.tasks import power as pvm_power
from pypowervm.tasks import scsi_mapper as tsk_map
from pypowervm.tasks import storage as tsk_stg
from pypowervm.tasks import vopt as tsk_vopt
from pypowervm.wrappers import logical_partition as pvm_lpar
from pypowervm.wrappers import managed_system as pvm_ms
from pypowervm.wrappers import storage as pvm_stg
from pypowervm.wrappers import virtual_io_server as pvm_vios

from ibmvirt.emulators.novalink import app, inventory

from .test_lpar import build

#: Control requests with a body must say they are JSON (faults.control_refusal).
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def target(tmp_path):
    inv = inventory.load("small")
    inv["host"] = dict(inv["host"], name="pvm-host-2", mtms="8408-E8E*10678CW")
    srv = app.start(inv, token_dir=str(tmp_path / "t"))
    yield srv
    gc.collect()
    srv.stop()


def _session(srv):
    logging.getLogger("pypowervm.adapter").setLevel(logging.ERROR)
    return pvm_adpt.Session(
        "127.0.0.1", "neo", "passw0rd", protocol="http", port=srv.port, conn_tries=1
    )


def _peer(src, dst, name):
    body = json.dumps({"name": name, "url": dst.url}).encode()
    req = urllib.request.Request(
        src.url + "/_emulator/peers", data=body, method="POST", headers=JSON
    )
    assert urllib.request.urlopen(req).status == 201


def _discover(adapter, vios_name):
    vios = next(
        v for v in pvm_vios.VIOS.get(adapter, xag=[pvm_const.XAG.VIO_STOR]) if v.name == vios_name
    )
    itls = hdisk.build_itls([vios.pfc_ports[0].wwpn], ["500507680b215660"], 0)
    status, name, udid = hdisk.discover_hdisk(adapter, vios.uuid, itls)
    assert status == hdisk.LUAStatus.DEVICE_AVAILABLE
    return vios, name, udid


def test_live_migration_moves_partition_and_storage(emulator, target, adapter, host):
    _peer(emulator, target, "pvm-host-2")
    tsess = _session(target)
    tadapter = pvm_adpt.Adapter(tsess)
    try:
        thost = pvm_ms.System.get(tadapter)[0]
        t_free = thost.memory_free
        _discover(tadapter, "vios1")
        vios, hd, udid = _discover(adapter, "vios1")
        lpar = build(adapter, host, mem=4096).create(parent=host)
        tsk_map.add_vscsi_mapping(
            host.uuid, vios.uuid, lpar.uuid, pvm_stg.PV.bld(adapter, hd, udid=udid)
        )
        pvm_power.power_on(lpar, host.uuid)
        lpar = lpar.refresh()
        free_before = host.refresh().memory_free

        pvm_mig.migrate_lpar(lpar, "pvm-host-2", validate_only=True)
        assert pvm_lpar.LPAR.get(adapter, uuid=lpar.uuid).state == "running"
        pvm_mig.migrate_lpar(lpar, "pvm-host-2", tgt_mgmt_svr="127.0.0.1")

        with pytest.raises(pvm_exc.HttpNotFound):
            pvm_lpar.LPAR.get(adapter, uuid=lpar.uuid)
        assert host.refresh().memory_free == free_before + 4096
        moved = pvm_lpar.LPAR.get(tadapter, uuid=lpar.uuid)
        assert (moved.name, moved.state, moved.mem_config.desired) == ("vm1", "running", 4096)
        assert pvm_ms.System.get(tadapter)[0].memory_free == t_free - 4096
        tv = next(
            v
            for v in pvm_vios.VIOS.get(tadapter, xag=[pvm_const.XAG.VIO_SMAP])
            if v.name == "vios1"
        )
        maps = tsk_map.find_maps(tv.scsi_mappings, client_lpar_id=lpar.uuid)
        assert [m.backing_storage.udid for m in maps] == [udid]
        sv = next(
            v for v in pvm_vios.VIOS.get(adapter, xag=[pvm_const.XAG.VIO_SMAP]) if v.name == "vios1"
        )
        assert tsk_map.find_maps(sv.scsi_mappings, client_lpar_id=lpar.uuid) == []
    finally:
        tsess._logoff()


def test_migration_with_vopt_mapped_is_refused(emulator, target, adapter, host):
    _peer(emulator, target, "pvm-host-2")
    lpar = build(adapter, host).create(parent=host)
    vios_uuid, _vg = tsk_vopt.validate_vopt_repo_exists(adapter)
    ref, _ = tsk_stg.upload_vopt(adapter, vios_uuid, io.BytesIO(b"x" * 10), "cfg.iso", 10)
    tsk_map.add_vscsi_mapping(host.uuid, vios_uuid, lpar.uuid, ref)
    pvm_power.power_on(lpar, host.uuid)
    with pytest.raises(pvm_exc.JobRequestFailed) as exc:
        pvm_mig.migrate_lpar(lpar.refresh(), "pvm-host-2", validate_only=True)
    assert "virtual optical media" in str(exc.value)
    assert pvm_lpar.LPAR.get(adapter, uuid=lpar.uuid).state == "running"


def test_unknown_target_names_the_fix(emulator, adapter, host):
    lpar = build(adapter, host).create(parent=host)
    with pytest.raises(pvm_exc.JobRequestFailed) as exc:
        pvm_mig.migrate_lpar(lpar, "nowhere", validate_only=True)
    assert "/_emulator/peers" in str(exc.value)


def test_peer_must_be_loopback(emulator):
    body = json.dumps({"name": "x", "url": "http://192.0.2.1:12080"}).encode()
    req = urllib.request.Request(
        emulator.url + "/_emulator/peers", data=body, method="POST", headers=JSON
    )
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(req)
    assert exc.value.code == 400


def test_migrate_abort_keeps_partition_on_source(emulator, target, adapter, host):
    import threading

    _peer(emulator, target, "pvm-host-2")
    emulator.emu.jobs.delays["Migrate"] = 2.0
    lpar = build(adapter, host).create(parent=host)
    pvm_power.power_on(lpar, host.uuid)
    lpar = lpar.refresh()
    outcome = []

    def run():
        try:
            pvm_mig.migrate_lpar(lpar, "pvm-host-2")
            outcome.append("migrated")
        except pvm_exc.JobRequestFailed as exc:
            outcome.append(str(exc))

    t = threading.Thread(target=run)
    t.start()
    res = emulator.emu.store.get("LogicalPartition", lpar.uuid)
    stop = threading.Event()
    for _ in range(200):
        if res.field("MigrationState") == "Migration Starting":
            break
        stop.wait(0.01)
    pvm_mig.migrate_abort(lpar)
    t.join(30)
    assert len(outcome) == 1 and "aborted" in outcome[0]
    back = pvm_lpar.LPAR.get(adapter, uuid=lpar.uuid)
    assert back.state == "running" and back.migration_state == "Not_Migrating"
    tsess = _session(target)
    try:
        with pytest.raises(pvm_exc.HttpNotFound):
            pvm_lpar.LPAR.get(pvm_adpt.Adapter(tsess), uuid=lpar.uuid)
    finally:
        tsess._logoff()
