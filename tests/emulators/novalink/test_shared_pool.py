"""Two emulated hosts in one Shared Storage Pool cluster, and partition
mobility that carries logical units, virtual Fibre Channel and virtual
Ethernet adapters across, as pypowervm sees it on both hosts."""

from __future__ import annotations

import gc
import json
import logging
import urllib.request

import pypowervm.adapter as pvm_adpt
import pypowervm.const as pvm_const
import pypowervm.exceptions as pvm_exc
import pytest
from pypowervm import util as pvm_util
from pypowervm.tasks import cna as tsk_cna
from pypowervm.tasks import migration as pvm_mig
from pypowervm.tasks import power as pvm_power
from pypowervm.tasks import scsi_mapper as tsk_map
from pypowervm.tasks import storage as tsk_stg
from pypowervm.tasks import vfc_mapper
from pypowervm.wrappers import cluster as pvm_clust
from pypowervm.wrappers import job as pvm_job
from pypowervm.wrappers import logical_partition as pvm_lpar
from pypowervm.wrappers import managed_system as pvm_ms
from pypowervm.wrappers import network as pvm_net
from pypowervm.wrappers import storage as pvm_stg
from pypowervm.wrappers import virtual_io_server as pvm_vios

from ibmvirt.emulators.novalink import app, inventory

from .test_lpar import build

#: Control requests with a body must say they are JSON (faults.control_refusal).
JSON = {"Content-Type": "application/json"}


def _start(tmp_path, name, **changes):
    inv = inventory.load("small")
    inv["host"] = dict(inv["host"], name=name, mtms=f"8408-E8E*{abs(hash(name)) % 10**7:07d}")
    inv.update(changes)
    return app.start(inv, token_dir=str(tmp_path / name))


class Host:
    """One emulated host as a pypowervm user sees it."""

    def __init__(self, srv):
        logging.getLogger("pypowervm.adapter").setLevel(logging.ERROR)
        self.srv = srv
        self.sess = pvm_adpt.Session(
            "127.0.0.1", "neo", "passw0rd", protocol="http", port=srv.port, conn_tries=1
        )
        self.adapter = pvm_adpt.Adapter(self.sess)
        self.sys = pvm_ms.System.get(self.adapter)[0]

    def ssp(self):
        return pvm_stg.SSP.get(self.adapter)[0]

    def tier(self):
        return tsk_stg.default_tier_for_ssp(self.ssp())

    def lus(self):
        return {lu.udid: lu for lu in pvm_stg.LUEnt.get(self.adapter, parent=self.tier())}

    def vios(self, name, *xags):
        return next(v for v in pvm_vios.VIOS.get(self.adapter, xag=list(xags)) if v.name == name)

    def close(self):
        self.sess._logoff()


@pytest.fixture
def pair(tmp_path):
    a = _start(tmp_path, "pvm-host-a")
    b = _start(tmp_path, "pvm-host-b")
    ha, hb = Host(a), Host(b)
    yield ha, hb
    ha.close()
    hb.close()
    gc.collect()
    a.stop()
    b.stop()


def _peer(src, dst, name):
    body = json.dumps({"name": name, "url": dst.url}).encode()
    req = urllib.request.Request(
        src.url + "/_emulator/peers", data=body, method="POST", headers=JSON
    )
    assert urllib.request.urlopen(req).status == 201


def test_logical_units_are_shared_both_ways(pair):
    a, b = pair
    _, before = tsk_stg.crt_lu(a.tier(), "made-before-peering", 2)
    _peer(a.srv, b.srv, "pvm-host-b")
    assert before.udid in b.lus()  # the exchange when they became peers
    _, on_b = tsk_stg.crt_lu(b.tier(), "made-on-b", 3)
    assert on_b.udid in a.lus()  # b learned of a from that exchange
    assert a.ssp().free_space == b.ssp().free_space
    b.lus()[before.udid].delete()
    assert before.udid not in a.lus()
    assert set(a.lus()) == set(b.lus()) == {on_b.udid}


def test_logical_unit_mapped_on_one_host_is_in_use_on_the_other(pair):
    a, b = pair
    _peer(a.srv, b.srv, "pvm-host-b")
    _, lu = tsk_stg.crt_lu(a.tier(), "boot", 4)
    lpar = build(a.adapter, a.sys).create(parent=a.sys)
    vios = a.vios("vios1")
    tsk_map.add_vscsi_mapping(a.sys.uuid, vios.uuid, lpar.uuid, lu)
    assert b.lus()[lu.udid].in_use is True
    with pytest.raises(pvm_exc.HttpError) as exc:
        b.lus()[lu.udid].delete()
    assert "mapped to a client on pvm-host-a" in str(exc.value.her_wrap.message)
    v = a.vios("vios1", pvm_const.XAG.VIO_SMAP)
    tsk_map.remove_maps(v, lpar.uuid)
    v.update()
    assert b.lus()[lu.udid].in_use is False
    b.lus()[lu.udid].delete()
    assert lu.udid not in a.lus()


def test_host_of_another_cluster_does_not_take_the_pool(tmp_path):
    a = _start(tmp_path, "pvm-host-a")
    inv = inventory.load("small")
    other = _start(
        tmp_path,
        "pvm-host-c",
        shared_storage_pool=dict(inv["shared_storage_pool"], cluster="other-cluster"),
    )
    ha, hc = Host(a), Host(other)
    try:
        _peer(a, other, "pvm-host-c")
        _, lu = tsk_stg.crt_lu(ha.tier(), "private", 1)
        assert lu.udid not in hc.lus()
        lpar = build(ha.adapter, ha.sys).create(parent=ha.sys)
        tsk_map.add_vscsi_mapping(ha.sys.uuid, ha.vios("vios1").uuid, lpar.uuid, lu)
        with pytest.raises(pvm_exc.JobRequestFailed) as exc:
            pvm_mig.migrate_lpar(lpar, "pvm-host-c", validate_only=True)
        assert "no VIOS on the target sees LogicalUnit" in str(exc.value)
    finally:
        ha.close()
        hc.close()
        gc.collect()
        a.stop()
        other.stop()


def _partition_with_everything(a):
    """A running partition on an SSP logical unit, two vFC adapters (one per
    VIOS) and a virtual Ethernet adapter."""
    _, lu = tsk_stg.crt_lu(a.tier(), "boot", 4)
    lpar = build(a.adapter, a.sys).create(parent=a.sys)
    tsk_map.add_vscsi_mapping(a.sys.uuid, a.vios("vios1").uuid, lpar.uuid, lu)
    wwpns = {}
    for name in ("vios1", "vios2"):
        v = a.vios(name, pvm_const.XAG.VIO_FMAP)
        pair_ = vfc_mapper.build_wwpn_pair(a.adapter, a.sys.uuid)
        vfc_mapper.add_map(v, a.sys.uuid, lpar.uuid, (v.pfc_ports[0].wwpn, " ".join(pair_)))
        v.update()
        wwpns[name] = {w.upper() for w in pair_}
    cna = tsk_cna.crt_cna(a.adapter, a.sys.uuid, lpar.uuid, 2227, vswitch="ETHERNET0")
    pvm_power.power_on(lpar, a.sys.uuid)
    return lpar.refresh(), lu, wwpns, cna


def _client_vfc(host, lpar_id):
    out = {}
    for name in ("vios1", "vios2"):
        v = host.vios(name, pvm_const.XAG.VIO_FMAP)
        for m in vfc_mapper.find_maps(v.vfc_mappings, lpar_id):
            out[name] = (set(m.client_adapter.wwpns), m.client_adapter.lpar_slot_num)
    return out


def _free_npiv(host):
    return {
        (name, p.name): p.npiv_available_ports
        for name in ("vios1", "vios2")
        for p in host.vios(name, pvm_const.XAG.VIO_FMAP).pfc_ports
    }


def test_migration_moves_lu_npiv_and_network(pair):
    a, b = pair
    _peer(a.srv, b.srv, "pvm-host-b")
    a_free_npiv = _free_npiv(a)
    b_free_npiv = _free_npiv(b)
    lpar, lu, wwpns, cna = _partition_with_everything(a)
    src_vfc = _client_vfc(a, lpar.id)
    assert _free_npiv(a) != a_free_npiv

    pvm_mig.migrate_lpar(lpar, "pvm-host-b", validate_only=True)
    pvm_mig.migrate_lpar(lpar, "pvm-host-b", tgt_mgmt_svr="127.0.0.1")

    with pytest.raises(pvm_exc.HttpNotFound):
        pvm_lpar.LPAR.get(a.adapter, uuid=lpar.uuid)
    moved = pvm_lpar.LPAR.get(b.adapter, uuid=lpar.uuid)
    assert moved.state == "running"
    # The logical unit is mapped on the target and still in use cluster-wide.
    maps = tsk_map.find_maps(
        b.vios("vios1", pvm_const.XAG.VIO_SMAP).scsi_mappings, client_lpar_id=lpar.uuid
    )
    assert [m.backing_storage.udid for m in maps] == [lu.udid]
    assert a.lus()[lu.udid].in_use is True
    # Each vFC adapter keeps its WWPNs and client slot, on a different VIOS as before.
    dst_vfc = _client_vfc(b, moved.id)
    assert sorted(map(sorted, (w for w, _s in dst_vfc.values()))) == sorted(
        map(sorted, wwpns.values())
    )
    assert sorted(s for _w, s in dst_vfc.values()) == sorted(s for _w, s in src_vfc.values())
    assert len(dst_vfc) == 2
    # NPIV ports: freed on the source, taken on the target.
    assert _free_npiv(a) == a_free_npiv
    assert sum(b_free_npiv.values()) - sum(_free_npiv(b).values()) == 2
    # The virtual Ethernet adapter: same MAC, VLAN and slot, on the same switch.
    (moved_cna,) = pvm_net.CNA.get(b.adapter, parent=moved)
    assert (moved_cna.mac, moved_cna.pvid, moved_cna.slot) == (cna.mac, 2227, cna.slot)
    vs = pvm_net.VSwitch.get(b.adapter, parent=b.sys)
    assert moved_cna.vswitch_uri.rstrip("/").endswith(
        next(v for v in vs if v.name == "ETHERNET0").uuid
    )
    left = [
        c.mac for p in pvm_lpar.LPAR.get(a.adapter) for c in pvm_net.CNA.get(a.adapter, parent=p)
    ]
    assert cna.mac not in left


def test_target_without_free_npiv_ports_refuses(pair):
    a, b = pair
    _peer(a.srv, b.srv, "pvm-host-b")
    for v in b.srv.emu.store.list("VirtualIOServer"):
        for p in v.elem.iter("{*}PhysicalFibreChannelPort"):
            p.find("{*}AvailablePorts").text = "0"
    lpar, _lu, _wwpns, _cna = _partition_with_everything(a)
    with pytest.raises(pvm_exc.JobRequestFailed) as exc:
        pvm_mig.migrate_lpar(lpar, "pvm-host-b", validate_only=True)
    assert "no VIOS on the target has a free NPIV port" in str(exc.value)
    assert pvm_lpar.LPAR.get(a.adapter, uuid=lpar.uuid).state == "running"


def test_target_without_the_virtual_switch_refuses(pair):
    a, b = pair
    _peer(a.srv, b.srv, "pvm-host-b")
    vs = pvm_net.VSwitch.bld(a.adapter, "PRIVATE").create(parent=a.sys)
    lpar = build(a.adapter, a.sys).create(parent=a.sys)
    tsk_cna.crt_cna(a.adapter, a.sys.uuid, lpar.uuid, 5, vswitch=vs.name)
    with pytest.raises(pvm_exc.JobRequestFailed) as exc:
        pvm_mig.migrate_lpar(lpar, "pvm-host-b", validate_only=True)
    assert "no virtual switch 'PRIVATE'" in str(exc.value)


def test_partition_with_a_direct_sriov_logical_port_does_not_move(pair):
    from pypowervm.wrappers import iocard as pvm_card

    a, b = pair
    _peer(a.srv, b.srv, "pvm-host-b")
    lpar = build(a.adapter, a.sys).create(parent=a.sys)
    adapter_ = a.sys.asio_config.sriov_adapters[0]
    pvm_card.SRIOVEthLPort.bld(
        a.adapter, adapter_.sriov_adap_id, adapter_.phys_ports[0].port_id, pvid=5
    ).create(parent=lpar)
    with pytest.raises(pvm_exc.JobRequestFailed) as exc:
        pvm_mig.migrate_lpar(lpar, "pvm-host-b", validate_only=True)
    assert "SR-IOV logical ports assigned directly" in str(exc.value)


def _this_hosts_vios_uuids(host):
    """The cluster nodes on this host, picked the way nova-powervm's SSP disk
    driver does: by the ManagedSystem UUID at the root of the node's VIOS link."""
    nodes = pvm_clust.Cluster.get(host.adapter)[0].nodes
    return sorted(
        n.vios_uuid
        for n in nodes
        if n.vios_uri
        and pvm_util.get_req_path_uuid(n.vios_uri, preserve_case=True, root=True) == host.sys.uuid
    )


def test_cluster_lists_every_hosts_nodes_and_links_only_its_own(pair):
    a, b = pair
    assert len(pvm_clust.Cluster.get(a.adapter)[0].nodes) == 2  # not peers yet
    _peer(a.srv, b.srv, "pvm-host-b")
    for me, other in ((a, b), (b, a)):
        nodes = pvm_clust.Cluster.get(me.adapter)[0].nodes
        by_host = {}
        for n in nodes:
            by_host.setdefault(n.mtms.mtms_str, []).append(n)
        assert sorted(by_host) == sorted([me.sys.mtms.mtms_str, other.sys.mtms.mtms_str])
        # The other host's VIOSes are members without a link (the real server
        # links only VIOSes of its own system).
        assert [(n.vios_uri, n.state) for n in by_host[other.sys.mtms.mtms_str]] == [
            (None, "Up"),
            (None, "Up"),
        ]
        mine = _this_hosts_vios_uuids(me)
        assert mine == sorted(v.uuid for v in pvm_vios.VIOS.get(me.adapter))
        # The link resolves on this server.
        node = next(n for n in nodes if n.vios_uri)
        assert pvm_vios.VIOS.wrap(me.adapter.read_by_href(node.vios_uri)).uuid == node.vios_uuid


def _grow(host, lu, size_gb):
    cluster = pvm_clust.Cluster.get(host.adapter)[0]
    job = pvm_job.Job.wrap(
        host.adapter.read(
            pvm_clust.Cluster.schema_type,
            cluster.uuid,
            suffix_type=pvm_const.SUFFIX_TYPE_DO,
            suffix_parm="GrowLogicalUnit",
        )
    )
    job.run_job(
        cluster.uuid,
        job_parms=[
            job.create_job_parameter("LogicalUnitUDID", lu.udid),
            job.create_job_parameter("Capacity", str(size_gb)),
        ],
    )
    return job.get_job_results_as_dict()


def test_a_logical_unit_grows_on_every_host_and_never_shrinks(pair):
    a, b = pair
    _peer(a.srv, b.srv, "pvm-host-b")
    _, lu = tsk_stg.crt_lu(a.tier(), "boot_grow", 2, thin=False)
    free = a.ssp().free_space
    assert _grow(a, lu, 5)["Capacity"] == "5"
    assert a.lus()[lu.udid].capacity == 5.0
    assert b.lus()[lu.udid].capacity == 5.0  # one pool: the other host sees it at once
    assert a.ssp().free_space == b.ssp().free_space == pytest.approx(free - 3)
    for size, message in ((5, "can only grow"), (4, "can only grow"), (5000, "GB free")):
        with pytest.raises(pvm_exc.JobRequestFailed) as exc:
            _grow(b, lu, size)
        assert message in str(exc.value)
    assert a.lus()[lu.udid].capacity == 5.0
    # The LU's size is create-only in the schema: a POST of the LU is no way to grow it.
    posted = a.lus()[lu.udid]
    posted.set_float_gb_value("UnitCapacity", 6)
    with pytest.raises(pvm_exc.HttpError):
        posted.update()
