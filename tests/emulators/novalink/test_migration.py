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
    _wait_state(emulator, lpar, "Migration_Starting")
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


def _other_host(tmp_path, name, **host):
    inv = inventory.load("small")
    inv["host"] = dict(inv["host"], name=name, mtms="8408-E8E*20678CW", **host)
    return app.start(inv, token_dir=str(tmp_path / name))


def _running(adapter, host, name="vm1", **extra):
    lpar = build(adapter, host, name=name, **extra).create(parent=host)
    pvm_power.power_on(lpar, host.uuid)
    return lpar.refresh()


def _in_background(fn):
    import threading

    outcome = []

    def run():
        try:
            fn()
            outcome.append("ok")
        except pvm_exc.JobRequestFailed as exc:
            outcome.append(str(exc))

    t = threading.Thread(target=run)
    t.start()
    return t, outcome


def _wait_state(emulator, lpar, value):
    import time

    res = emulator.emu.store.get("LogicalPartition", lpar.uuid)
    deadline = time.monotonic() + 20
    while res.field("MigrationState") != value:
        assert time.monotonic() < deadline, f"never reached {value}"
        time.sleep(0.01)


def test_a_target_without_the_partitions_processor_mode_refuses(emulator, adapter, host, tmp_path):
    old = _other_host(tmp_path, "p7-host", proc_compat_modes=["default", "POWER6", "POWER7"])
    try:
        _peer(emulator, old, "p7-host")
        lpar = _running(adapter, host)  # mode "default": runs as POWER8 here
        assert lpar.proc_compat_mode == "POWER8"
        with pytest.raises(pvm_exc.JobRequestFailed) as exc:
            pvm_mig.migrate_lpar(lpar, "p7-host", validate_only=True)
        assert "processor compatibility mode POWER8" in str(exc.value)
        assert "POWER7" in str(exc.value)
        # A partition pinned to POWER7 moves.
        p7 = _running(adapter, host, name="vm2", processor_compatibility="POWER7")
        assert p7.proc_compat_mode == "POWER7"
        pvm_mig.migrate_lpar(p7, "p7-host")
        with pytest.raises(pvm_exc.HttpNotFound):
            pvm_lpar.LPAR.get(adapter, uuid=p7.uuid)
    finally:
        gc.collect()
        old.stop()


def test_a_target_with_no_free_migration_slot_refuses(emulator, adapter, host, tmp_path):
    full = _other_host(tmp_path, "full-host", max_active_migrations=0)
    try:
        _peer(emulator, full, "full-host")
        lpar = _running(adapter, host)
        with pytest.raises(pvm_exc.JobRequestFailed) as exc:
            pvm_mig.migrate_lpar(lpar, "full-host")
        assert "0 of the 0 active migrations" in str(exc.value)
        back = pvm_lpar.LPAR.get(adapter, uuid=lpar.uuid)
        assert (back.state, back.migration_state) == ("running", "Not_Migrating")
    finally:
        gc.collect()
        full.stop()


def test_a_migration_in_progress_counts_against_the_source_and_shows_its_phase(
    emulator, target, adapter, host
):
    _peer(emulator, target, "pvm-host-2")
    emulator.emu.jobs.delays["Migrate"] = 1.0
    lpar = _running(adapter, host)
    t, outcome = _in_background(lambda: pvm_mig.migrate_lpar(lpar, "pvm-host-2"))
    _wait_state(emulator, lpar, "Migration_In_Progress")
    data = pvm_ms.System.get(adapter)[0].migration_data
    assert data["active_migrations_in_progress"] == 1
    t.join(30)
    assert outcome == ["ok"]
    assert pvm_ms.System.get(adapter)[0].migration_data["active_migrations_in_progress"] == 0


def test_abort_in_the_memory_copy_leaves_the_partition_running_here(
    emulator, target, adapter, host
):
    _peer(emulator, target, "pvm-host-2")
    emulator.emu.jobs.delays["Migrate"] = 2.0
    lpar = _running(adapter, host)
    t, outcome = _in_background(lambda: pvm_mig.migrate_lpar(lpar, "pvm-host-2"))
    _wait_state(emulator, lpar, "Migration_In_Progress")
    pvm_mig.migrate_abort(lpar)  # returns once the partition is back
    back = pvm_lpar.LPAR.get(adapter, uuid=lpar.uuid)
    assert (back.state, back.migration_state) == ("running", "Not_Migrating")
    t.join(30)
    assert "aborted" in outcome[0]
    assert pvm_ms.System.get(adapter)[0].migration_data["active_migrations_in_progress"] == 0
    assert lpar.uuid.upper() not in {
        r.uuid.upper() for r in target.emu.store.list("LogicalPartition")
    }


def test_abort_past_the_hand_over_is_refused_and_the_partition_moves(
    emulator, target, adapter, host
):
    _peer(emulator, target, "pvm-host-2")
    emulator.emu.jobs.delays["Migrate"] = 2.0
    lpar = _running(adapter, host)
    t, outcome = _in_background(lambda: pvm_mig.migrate_lpar(lpar, "pvm-host-2"))
    import time

    deadline = time.monotonic() + 20
    while not any(j.stage == "committed" for j in emulator.emu.jobs.live()):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    with pytest.raises(pvm_exc.JobRequestFailed) as exc:
        pvm_mig.migrate_abort(lpar)
    assert "can no longer be aborted" in str(exc.value)
    t.join(30)
    assert outcome == ["ok"]
    assert target.emu.store.get("LogicalPartition", lpar.uuid) is not None


def test_abort_with_no_migration_is_refused(emulator, adapter, host):
    lpar = _running(adapter, host)
    with pytest.raises(pvm_exc.JobRequestFailed) as exc:
        pvm_mig.migrate_abort(lpar)
    assert "No migration of 'vm1' is in progress" in str(exc.value)


def test_vlan_mappings_give_the_adapter_its_pvid_on_the_target(emulator, target, adapter, host):
    from pypowervm.wrappers import network as pvm_net

    _peer(emulator, target, "pvm-host-2")
    lpar = _running(adapter, host)
    switch = pvm_net.VSwitch.get(adapter, parent=host)[0]
    cna = pvm_net.CNA.bld(adapter, "100", switch.related_href, mac_addr="FA163E000001").create(
        parent=lpar
    )
    with pytest.raises(pvm_exc.JobRequestFailed) as exc:
        pvm_mig.migrate_lpar(lpar, "pvm-host-2", vlan_mappings=["FA163E000001/0"])
    assert "not MAC/PVID" in str(exc.value)
    pvm_mig.migrate_lpar(lpar, "pvm-host-2", vlan_mappings=[f"{cna.mac}/205"])
    tsess = _session(target)
    try:
        moved = pvm_net.CNA.get(
            pvm_adpt.Adapter(tsess), parent_type=pvm_lpar.LPAR, parent_uuid=lpar.uuid
        )
        assert [(c.mac, c.pvid) for c in moved] == [("FA163E000001", 205)]
    finally:
        tsess._logoff()
