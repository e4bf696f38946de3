"""Creating a Shared Storage Pool cluster with pypowervm's ClusterCreate task,
and the older LULinkedClone job, on a host that starts without a pool."""

from __future__ import annotations

import copy
import gc
import logging

import pypowervm.adapter as pvm_adpt
import pypowervm.exceptions as pvm_exc
import pytest
from pypowervm.tasks import cluster_ssp
from pypowervm.tasks import storage as tsk_stg
from pypowervm.wrappers import cluster as pvm_clust
from pypowervm.wrappers import job as pvm_job
from pypowervm.wrappers import storage as pvm_stg
from pypowervm.wrappers import virtual_io_server as pvm_vios

from ibmvirt.emulators.novalink import app, inventory

from .test_fidelity import _captured


@pytest.fixture
def bare(tmp_path):
    """A host without a pool; vios1 sees a 200 GB disk and a 10 GB one to pool."""
    inv = copy.deepcopy(inventory.load("small"))
    inv.pop("shared_storage_pool")
    vios1 = inv["vioses"][0]
    vios1["physical_volumes"].append({"name": "hdisk4", "size_gb": 10, "udid_seed": "repo-1"})
    srv = app.start(inv, token_dir=str(tmp_path))
    logging.getLogger("pypowervm.adapter").setLevel(logging.ERROR)
    sess = pvm_adpt.Session(
        "127.0.0.1", "neo", "passw0rd", protocol="http", port=srv.port, conn_tries=1
    )
    adapter = pvm_adpt.Adapter(sess)
    yield adapter
    sess._logoff()
    gc.collect()
    srv.stop()


def _vios1(adapter):
    return next(v for v in pvm_vios.VIOS.get(adapter, xag=[]) if v.name == "vios1")


def _pv(adapter, name):
    return next(p for p in _vios1(adapter).phys_vols if p.name == name)


def _node(adapter):
    return pvm_clust.Node.bld(adapter, vios_uri=_vios1(adapter).href)


def test_cluster_create_makes_a_pool_of_the_data_disks(bare):
    assert pvm_clust.Cluster.get(bare) == []
    cluster_ssp.crt_cluster_ssp(
        "newcluster", "newpool", _pv(bare, "hdisk4"), _node(bare), [_pv(bare, "hdisk3")]
    )
    (cl,) = pvm_clust.Cluster.get(bare)
    assert cl.name == "newcluster"
    assert cl.repos_pv.name == "hdisk4"
    assert [n.vios_uuid for n in cl.nodes] == [_vios1(bare).uuid]
    ssp = pvm_stg.SSP.get(bare)[0]
    assert ssp.name == "newpool"
    assert ssp.capacity == pytest.approx(200.0)
    assert [p.name for p in ssp.physical_volumes] == ["hdisk3"]
    # The new pool takes logical units.
    _, lu = tsk_stg.crt_lu(tsk_stg.default_tier_for_ssp(ssp), "disk", 5, thin=False)
    assert pvm_stg.SSP.get(bare)[0].free_space == pytest.approx(195.0)
    assert lu.udid


@pytest.mark.parametrize(
    "repo, data, message",
    [
        ("hdisk3", ["hdisk3"], "both the repository disk and a pool disk"),
        ("hdisk4", ["hdisk1"], "in use by volume group 'rootvg'"),
    ],
)
def test_cluster_create_refusals(bare, repo, data, message):
    with pytest.raises(pvm_exc.JobRequestFailed) as exc:
        cluster_ssp.crt_cluster_ssp(
            "c", "p", _pv(bare, repo), _node(bare), [_pv(bare, d) for d in data]
        )
    assert message in str(exc.value)
    assert pvm_clust.Cluster.get(bare) == []


def test_cluster_create_refuses_disk_the_node_cannot_see(bare):
    ghost = pvm_stg.PV.bld(bare, "hdisk99", udid="01M0lCTTIxNDUxMjQ2MDA1MDAwMDAwMDA")
    with pytest.raises(pvm_exc.JobRequestFailed) as exc:
        cluster_ssp.crt_cluster_ssp("c", "p", _pv(bare, "hdisk4"), _node(bare), [ghost])
    assert "hdisk99" in str(exc.value) and "not visible on VIOS 'vios1'" in str(exc.value)


def test_a_vios_belongs_to_one_cluster(bare):
    cluster_ssp.crt_cluster_ssp("c1", "p1", _pv(bare, "hdisk4"), _node(bare), [_pv(bare, "hdisk3")])
    with pytest.raises(pvm_exc.JobRequestFailed) as exc:
        cluster_ssp.crt_cluster_ssp("c2", "p2", _pv(bare, "hdisk2"), _node(bare), [])
    assert "needs at least one physical volume" in str(exc.value)
    with pytest.raises(pvm_exc.JobRequestFailed) as exc:
        cluster_ssp.crt_cluster_ssp(
            "c2", "p2", _pv(bare, "hdisk2"), _node(bare), [_pv(bare, "hdisk2")]
        )
    assert "already a node of cluster 'c1'" in str(exc.value)


def _run_clone(adapter, cluster, src, dst):
    jwrap = pvm_job.Job.wrap(
        adapter.read(pvm_clust.Cluster.schema_type, suffix_type="do", suffix_parm="LULinkedClone")
    )
    jwrap.run_job(
        cluster.uuid,
        job_parms=[
            jwrap.create_job_parameter("SourceUDID", src.udid),
            jwrap.create_job_parameter("DestinationUDID", dst.udid),
        ],
    )


def test_lu_linked_clone_job(emulator, adapter):
    tier = tsk_stg.default_tier_for_ssp(pvm_stg.SSP.get(adapter)[0])
    _, image = tsk_stg.crt_lu(tier, "image", 2, typ=pvm_stg.LUType.IMAGE)
    _, small = tsk_stg.crt_lu(tier, "small", 1)
    _, disk = tsk_stg.crt_lu(tier, "disk", 3)
    cluster = pvm_clust.Cluster.get(adapter)[0]
    with pytest.raises(pvm_exc.JobRequestFailed) as exc:
        _run_clone(adapter, cluster, image, small)
    assert "smaller than its source" in str(exc.value)
    _run_clone(adapter, cluster, image, disk)
    lus = {lu.name: lu for lu in pvm_stg.LUEnt.get(adapter, parent=tier)}
    assert lus["disk"].cloned_from_udid == image.udid
    assert lus["small"].cloned_from_udid is None
    with pytest.raises(pvm_exc.JobRequestFailed) as exc:
        _run_clone(adapter, cluster, image, disk)
    assert "already a clone" in str(exc.value)


@pytest.mark.parametrize(
    "capture, op",
    [
        ("cluster_create_job_template.txt", "Create"),
        ("cluster_LULinkedClone_job_template.txt", "LULinkedClone"),
    ],
)
def test_job_templates_match_the_captured_ones(adapter, capture, op):
    real = _captured(pvm_job.Job, capture)
    emulated = pvm_job.Job.wrap(
        adapter.read(pvm_clust.Cluster.schema_type, suffix_type="do", suffix_parm=op)
    )
    for w in (real, emulated):
        assert w.element.element.tag.endswith("}JobRequest")
    assert [
        (
            e.findtext("{*}RequestedOperation/{*}OperationName"),
            e.findtext("{*}RequestedOperation/{*}GroupName"),
        )
        for e in (real.element.element, emulated.element.element)
    ] == [(op, "Cluster")] * 2


def test_clone_job_runs_on_one_cluster(emulator, adapter):
    jwrap = pvm_job.Job.wrap(
        adapter.read(pvm_clust.Cluster.schema_type, suffix_type="do", suffix_parm="LULinkedClone")
    )
    with pytest.raises(pvm_exc.JobRequestFailed) as exc:
        jwrap.run_job(None, job_parms=[jwrap.create_job_parameter("SourceUDID", "x")])
    assert "HTTP error 404" in str(exc.value)
    assert "PUT Cluster/{uuid}/do/LULinkedClone" in str(exc.value)
