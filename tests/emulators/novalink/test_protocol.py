"""Protocol core, driven by the real pypowervm Session/Adapter over HTTP."""

from __future__ import annotations

import json
import os
import urllib.request

import pypowervm.adapter as pvm_adpt
import pypowervm.const as pvm_const
import pypowervm.exceptions as pvm_exc
import pytest
from pypowervm.utils import transaction as pvm_tx
from pypowervm.wrappers import logical_partition as pvm_lpar
from pypowervm.wrappers import managed_system as pvm_ms
from pypowervm.wrappers import virtual_io_server as pvm_vios


def test_password_logon_reports_novalink_traits(session):
    assert session.mc_type == "PVM"
    assert session.traits.vnet_aware is False  # PVM traits, not HMC
    assert session.traits.local_api is False


def test_file_logon_writes_private_token_file(emulator, tmp_path):
    sess = pvm_adpt.Session("localhost", port=emulator.port, conn_tries=1)
    try:
        assert sess.traits.local_api is True
        files = [p for p in tmp_path.iterdir() if p.name.startswith("token-")]
        assert len(files) == 1
        assert (os.stat(files[0]).st_mode & 0o777) == 0o600
        names = [w.system_name for w in pvm_ms.System.get(pvm_adpt.Adapter(sess))]
        assert names == ["pvm-host-1"]
    finally:
        sess._logoff()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("token-")]


def test_wrong_password_is_refused(emulator):
    with pytest.raises(pvm_exc.Error) as exc:
        pvm_adpt.Session(
            "127.0.0.1", "neo", "wrong", protocol="http", port=emulator.port, conn_tries=1
        )
    assert "401" in str(exc.value) or "Unauthorized" in str(exc.value)


def test_request_without_session_gets_401(emulator):
    req = urllib.request.Request(emulator.url + "/rest/api/uom/ManagedSystem")
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(req)
    assert exc.value.code == 401


def test_atom_responses_have_no_xml_declaration(adapter):
    resp = adapter.read("ManagedSystem")
    assert not resp.body.lstrip().startswith("<?xml")
    assert resp.headers["content-type"].startswith("application/atom+xml")


def test_host_capacity_fields(host):
    assert host.system_name == "pvm-host-1"
    assert host.mtms.mtms_str == "8408-E8E*10678CV"
    assert host.memory_total == 524288
    assert host.memory_region_size == 256
    # NovaLink (2 GB, 0.5) and two VIOSes (4 GB, 1.0 each) are running.
    assert host.memory_free == 524288 - 2048 - 2 * 4096
    assert host.proc_units_avail == pytest.approx(40 - 0.5 - 2.0)


def test_mgmt_partition_and_two_vioses_with_rmc(adapter):
    from pypowervm.tasks import partition

    mgmt = partition.get_mgmt_partition(adapter)
    assert mgmt.name == "novalink" and isinstance(mgmt, pvm_lpar.LPAR)
    vioses = pvm_vios.VIOS.get(adapter)
    assert sorted(v.name for v in vioses) == ["vios1", "vios2"]
    assert {(v.state, v.rmc_state) for v in vioses} == {("running", "active")}
    active = partition.get_active_vioses(adapter)
    assert len(active) == 2


def test_search_with_quoted_value_and_not_equal(adapter):
    hits = pvm_lpar.LPAR.search(adapter, name="novalink")
    assert [h.name for h in hits] == ["novalink"]
    resp = adapter.read(
        "LogicalPartition", suffix_type="search", suffix_parm="(PartitionName!='novalink')"
    )
    assert resp.status == 204  # no other LPAR yet: empty feed


def test_quick_properties_are_json(adapter):
    mgmt = pvm_lpar.LPAR.search(adapter, name="novalink")[0]
    one = adapter.read(
        "LogicalPartition", root_id=mgmt.uuid, suffix_type="quick", suffix_parm="PartitionState"
    )
    assert json.loads(one.body) == "running"
    allq = json.loads(adapter.read("LogicalPartition", root_id=mgmt.uuid, suffix_type="quick").body)
    assert allq["PartitionID"] == mgmt.id and allq["PartitionName"] == "novalink"


def test_quick_all_of_a_collection_is_one_json_list(adapter, host):
    """``ManagedSystem/{ms}/LogicalPartition/quick/All`` (the path IBM's
    ansible-power-hmc client reads): every partition's quick properties and
    UUID in one request."""
    states = json.loads(
        adapter.read(
            "ManagedSystem",
            root_id=host.uuid,
            child_type="LogicalPartition",
            suffix_type="quick",
            suffix_parm="All",
        ).body
    )
    lpars = pvm_lpar.LPAR.get(adapter)
    assert {q["UUID"]: q["PartitionState"] for q in states} == {lp.uuid: lp.state for lp in lpars}
    vioses = json.loads(
        adapter.read("VirtualIOServer", suffix_type="quick", suffix_parm="All").body
    )
    assert sorted(q["PartitionName"] for q in vioses) == ["vios1", "vios2"]
    with pytest.raises(pvm_exc.HttpError) as exc:
        adapter.read("LogicalPartition", suffix_type="quick", suffix_parm="PartitionState")
    assert exc.value.response.status == 404


def test_extended_groups_change_payload_and_etag(adapter):
    vios = pvm_vios.VIOS.get(adapter)[0]
    base = adapter.read("VirtualIOServer", root_id=vios.uuid)  # group=None
    scsi = adapter.read("VirtualIOServer", root_id=vios.uuid, xag=[pvm_const.XAG.VIO_SMAP])
    everything = adapter.read("VirtualIOServer", root_id=vios.uuid, xag=[])
    assert "VirtualSCSIMappings" not in base.body
    assert 'group="ViosSCSIMapping"' in scsi.body and 'group="ViosStorage"' not in scsi.body
    assert 'group="ViosStorage"' in everything.body
    assert len({base.etag, scsi.etag, everything.etag}) == 3
    # The SELF link carries the group, so an update goes back to the same view.
    wrapped = pvm_vios.VIOS.wrap(scsi)
    assert wrapped.href.endswith("?group=ViosSCSIMapping")


def test_not_modified_with_if_none_match(adapter):
    first = adapter.read("ManagedSystem")
    again = adapter.read("ManagedSystem", etag=first.etag)
    assert again.status == 304


def test_stale_etag_gives_412_and_wrappertask_retries(adapter):
    lpar = pvm_lpar.LPAR.search(adapter, name="novalink")[0]
    fresh = lpar.refresh()
    fresh.avail_priority = 150
    fresh.update()
    lpar.avail_priority = 10  # stale copy
    with pytest.raises(pvm_exc.HttpError) as exc:
        lpar.update()
    assert exc.value.response.status == 412

    def bump(wrapper):
        wrapper.avail_priority = 200
        return True

    task = pvm_tx.WrapperTask("bump", lpar)  # starts from the stale wrapper
    task.add_functor_subtask(bump)
    result, _ = task.execute()
    assert result.avail_priority == 200
    assert pvm_lpar.LPAR.get(adapter, uuid=lpar.uuid).avail_priority == 200


def test_error_entries_parse_as_httperror(adapter):
    with pytest.raises(pvm_exc.HttpNotFound) as exc:
        pvm_lpar.LPAR.get(adapter, uuid="01234567-89AB-4DEF-8123-456789ABCDEF")
    assert "01234567-89AB-4DEF-8123-456789ABCDEF" in exc.value.her_wrap.message
    assert exc.value.her_wrap.status == 404


def test_events_new_client_then_changes_and_custom_events(emulator, adapter):
    from pypowervm.wrappers import event as pvm_evt

    emulator.emu.events.wait = 0.2
    first = pvm_evt.Event.get(adapter, "app1")
    assert [e.etype for e in first] == ["NEW_CLIENT"]
    lpar = pvm_lpar.LPAR.search(adapter, name="novalink")[0]
    lpar.avail_priority = 99
    lpar.update()
    pvm_evt.Event.bld(adapter, "my-data", "my-detail").create()
    evs = pvm_evt.Event.get(adapter, "app1")
    kinds = [(e.etype, e.detail) for e in evs]
    assert ("MODIFY_URI", "Other") in kinds
    modified = [e.data for e in evs if e.etype == "MODIFY_URI"]
    assert any(d.endswith("/LogicalPartition/" + lpar.uuid) for d in modified)
    assert ("CUSTOM_CLIENT_EVENT", "my-detail") in kinds
    assert [e.data for e in evs if e.etype == "CUSTOM_CLIENT_EVENT"] == ["my-data"]
    assert pvm_evt.Event.get(adapter, "app1") == []  # drained; long poll times out


def test_search_values_with_special_characters(adapter, host):
    from pypowervm.utils import lpar_builder as lpar_bldr

    for name in ("web 01+a", "db/02", "it's"):
        attrs = {lpar_bldr.NAME: name, lpar_bldr.MEM: 1024, lpar_bldr.VCPU: 1}
        lpar_bldr.LPARBuilder(adapter, attrs, lpar_bldr.DefaultStandardize(host)).build().create(
            parent=host
        )
    for name in ("web 01+a", "db/02", "it's"):
        assert [w.name for w in pvm_lpar.LPAR.search(adapter, name=name)] == [name]
