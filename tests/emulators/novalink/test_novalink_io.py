"""The NovaLink partition as an I/O server (inventory
``management_partition.io_server``): File I/O and RBD vSCSI mappings through
it and the RBDExists job, driven through pypowervm as nova-powervm's
``local``/``nfs``/``gpfs``/``rbd`` volume drivers did (``vios_uuids`` =
``[get_mgmt_partition(adapter).uuid]``)."""

from __future__ import annotations

import gc
import json
import logging
import urllib.error

import pypowervm.adapter as pvm_adpt
import pypowervm.const as pvm_const
import pypowervm.exceptions as pvm_exc
import pytest
from pypowervm.tasks import cna as tsk_cna
from pypowervm.tasks import hdisk
from pypowervm.tasks import partition as pvm_part
from pypowervm.tasks import scsi_mapper as tsk_map
from pypowervm.tasks import storage as tsk_stg
from pypowervm.wrappers import cluster as pvm_clust
from pypowervm.wrappers import logical_partition as pvm_lpar
from pypowervm.wrappers import managed_system as pvm_ms
from pypowervm.wrappers import storage as pvm_stg
from pypowervm.wrappers import virtual_io_server as pvm_vios

from ibmvirt.emulators.novalink import app, inventory

from .test_control import ctl
from .test_fidelity import UNLINKED, _captured, _filled, _links, missing_fields
from .test_lpar import build, refusal
from .test_vscsibus import client_slots

FILE = "/var/lib/pvm/fileio/vol-1"
NFS_FILE = "/var/lib/nova/mnt/0a1b/volume-2"
IMAGE = "volumes/volume-3"
SMAP = [pvm_const.XAG.VIO_SMAP]


def io_inventory() -> dict:
    inv = inventory.load("small")
    inv["management_partition"].update(
        io_server=True,
        files=[FILE, {"path": NFS_FILE, "size_gb": 20}],
        rbd_images=[{"name": IMAGE, "size_gb": 8}],
    )
    return inv


@pytest.fixture
def emulator(tmp_path):
    """Overrides conftest's: the small inventory with NovaLink hosting I/O."""
    srv = app.start(io_inventory(), token_dir=str(tmp_path))
    yield srv
    gc.collect()
    srv.stop()


@pytest.fixture
def mgmt(adapter):
    return pvm_part.get_mgmt_partition(adapter)


def vios_named(adapter, name, xag=()):
    return next(v for v in pvm_vios.VIOS.get(adapter, xag=list(xag)) if v.name == name)


def maps_of(adapter, vios_uuid, lpar_uuid):
    vios_w = pvm_vios.VIOS.get(adapter, uuid=vios_uuid, xag=SMAP)
    return tsk_map.find_maps(vios_w.scsi_mappings, client_lpar_id=lpar_uuid)


def test_management_partition_is_served_as_an_io_server(adapter, host, mgmt):
    assert isinstance(mgmt, pvm_vios.VIOS)
    assert mgmt.is_mgmt_partition and mgmt.name == "novalink" and mgmt.id == 1
    assert (mgmt.state, mgmt.rmc_state) == ("running", "active")
    # As the captured NovaLink I/O partition shows it (not "Virtual IO Server").
    assert mgmt.env == "AIX/Linux"
    assert pvm_lpar.LPAR.search(adapter, is_mgmt_partition=True) == []
    assert pvm_vios.VIOS.get(adapter, uuid=mgmt.uuid, xag=SMAP).scsi_mappings == []
    # pypowervm puts a management I/O partition first among the active VIOSes.
    assert [v.name for v in pvm_part.get_active_vioses(adapter)] == ["novalink", "vios1", "vios2"]
    # It runs no SSP: the inventory's cluster keeps only the VIOSes.
    nodes = pvm_clust.Cluster.get(adapter)[0].nodes
    assert mgmt.uuid not in [n.vios_uuid for n in nodes] and len(nodes) == 2


def test_memory_and_processors_are_accounted_as_for_the_lpar_form(tmp_path, host, mgmt):
    """The running I/O partition holds its memory and processing units, as
    the LogicalPartition form does: the default inventory leaves the same free."""
    plain = app.start("small", token_dir=str(tmp_path / "plain"))
    try:
        ms = plain.emu.ms
        free_mem = ms.field("AssociatedSystemMemoryConfiguration/CurrentAvailableSystemMemory")
        free_units = ms.field(
            "AssociatedSystemProcessorConfiguration/CurrentAvailableSystemProcessorUnits"
        )
    finally:
        plain.stop()
    assert (host.memory_free, host.proc_units_avail) == (int(free_mem), float(free_units))
    assert mgmt.mem_config.current == 2048
    assert mgmt.proc_config.shared_proc_cfg.desired_units == 0.5


def test_file_io_mapping_added_and_removed(adapter, host, mgmt):
    lpar = build(adapter, host).create(parent=host)
    # Other adapters on the client: a CNA and a vdisk mapped from vios1.
    cna = tsk_cna.crt_cna(adapter, host.uuid, lpar.uuid, 100, vswitch="ETHERNET0")
    vios1 = vios_named(adapter, "vios1")
    vg = next(v for v in pvm_stg.VG.get(adapter, parent=vios1) if v.name == "datavg")
    vdisk = tsk_stg.crt_vdisk(adapter, vios1.uuid, vg.uuid, "boot_vm1", 1)
    tsk_map.add_vscsi_mapping(host.uuid, vios1.uuid, lpar.uuid, vdisk)

    fio = pvm_stg.FileIO.bld_ref(adapter, FILE, backstore_type="loop", tag="vol-1")
    tsk_map.add_vscsi_mapping(host.uuid, mgmt.uuid, lpar.uuid, fio)

    (mapping,) = maps_of(adapter, mgmt.uuid, lpar.uuid)
    stg = mapping.backing_storage
    assert stg.schema_type == "VirtualDisk"
    assert (stg.vdtype, stg.name, stg.label, stg.backstore_type) == ("File", FILE, FILE, "loop")
    assert stg.tag == "vol-1" and stg.capacity == 1 and stg.udid
    # Server-built adapters, as for a VIOS: the server adapter backs the file
    # and the client slot differs from the client's CNA and vios1 adapter.
    assert mapping.server_adapter.backing_dev_name == FILE
    assert (mapping.server_adapter.vios_id, mapping.client_adapter.vios_id) == (mgmt.id, mgmt.id)
    assert (mapping.server_adapter.lpar_id, mapping.client_adapter.lpar_id) == (lpar.id, lpar.id)
    (vdisk_map,) = maps_of(adapter, vios1.uuid, lpar.uuid)
    slot = mapping.client_adapter.lpar_slot_num
    assert slot not in (cna.slot, vdisk_map.client_adapter.lpar_slot_num)
    assert mapping.client_adapter.vios_slot_num == mapping.server_adapter.vios_slot_num
    assert mapping.server_adapter.lpar_slot_num == slot
    # The NovaLink partition's SCSI target numbers LUNs as captured.
    assert mapping.target_dev.lua == "lun1"
    assert isinstance(mapping.target_dev, pvm_stg.VDiskTargetDev)
    # The client partition sees the new client adapter next to vios1's.
    assert sorted(client_slots(adapter, lpar)) == sorted(
        [slot, vdisk_map.client_adapter.lpar_slot_num]
    )

    # A second file for the same client shares the adapter pair.
    tsk_map.add_vscsi_mapping(
        host.uuid, mgmt.uuid, lpar.uuid, pvm_stg.FileIO.bld_ref(adapter, NFS_FILE)
    )
    maps = maps_of(adapter, mgmt.uuid, lpar.uuid)
    assert len(maps) == 2
    second = next(m for m in maps if m.backing_storage.name == NFS_FILE)
    assert second.client_adapter.lpar_slot_num == slot
    assert second.target_dev.lua == "lun2" and second.backing_storage.capacity == 20
    assert second.backing_storage.backstore_type is None  # none asked for

    # Removal as nova-powervm's file I/O driver matched it (name = path).
    vios_w = pvm_vios.VIOS.get(adapter, uuid=mgmt.uuid, xag=SMAP)
    match = tsk_map.gen_match_func(pvm_stg.VDisk, names=[FILE])
    removed = tsk_map.remove_maps(vios_w, lpar.uuid, match_func=match)
    assert [m.backing_storage.name for m in removed] == [FILE]
    vios_w.update()
    assert [m.backing_storage.name for m in maps_of(adapter, mgmt.uuid, lpar.uuid)] == [NFS_FILE]
    vios_w = pvm_vios.VIOS.get(adapter, uuid=mgmt.uuid, xag=SMAP)
    tsk_map.remove_maps(vios_w, lpar.uuid)
    vios_w.update()
    assert maps_of(adapter, mgmt.uuid, lpar.uuid) == []
    assert client_slots(adapter, lpar) == [vdisk_map.client_adapter.lpar_slot_num]
    # The vios1 mapping is untouched.
    assert len(maps_of(adapter, vios1.uuid, lpar.uuid)) == 1


def test_rbd_mapping_through_a_feed_task(adapter, host, mgmt):
    """nova-powervm's RBD driver: one FeedTask over the VIOSes, mapping only
    on the management partition."""
    lpar = build(adapter, host).create(parent=host)
    ftsk = pvm_part.build_active_vio_feed_task(adapter, xag=SMAP)
    assert mgmt.uuid in ftsk.wrapper_tasks

    def map_rbd(vios_w):
        if vios_w.uuid != mgmt.uuid:
            return False
        rbd = pvm_stg.RBD.bld_ref(adapter, IMAGE, tag="volume-3", user="cinder")
        mapping = tsk_map.build_vscsi_mapping(host.uuid, vios_w, lpar.uuid, rbd)
        return tsk_map.add_map(vios_w, mapping) is not None

    for wt in ftsk.wrapper_tasks.values():
        wt.add_functor_subtask(map_rbd)
    ftsk.execute()

    (mapping,) = maps_of(adapter, mgmt.uuid, lpar.uuid)
    stg = mapping.backing_storage
    assert (stg.vdtype, stg.name, stg.label) == ("RBD", IMAGE, IMAGE)
    assert (stg.backstore_type, stg.tag, stg.capacity) == ("user:rbd", "volume-3", 8)
    assert stg._get_val_str("RbdUser") == "cinder"
    assert mapping.server_adapter.backing_dev_name == IMAGE
    assert mapping.target_dev.lua == "lun1"
    for name in ("vios1", "vios2"):
        assert maps_of(adapter, vios_named(adapter, name).uuid, lpar.uuid) == []
    # Mapping it again through add_map is a no-op (pypowervm finds it by name).
    vios_w = pvm_vios.VIOS.get(adapter, uuid=mgmt.uuid, xag=SMAP)
    again = tsk_map.build_vscsi_mapping(
        host.uuid, vios_w, lpar.uuid, pvm_stg.RBD.bld_ref(adapter, IMAGE)
    )
    assert tsk_map.add_map(vios_w, again) is None

    ftsk = pvm_part.build_active_vio_feed_task(adapter, xag=SMAP)
    match = tsk_map.gen_match_func(pvm_stg.VDisk, names=[IMAGE])
    ftsk.wrapper_tasks[mgmt.uuid].add_functor_subtask(
        tsk_map.remove_maps, lpar.uuid, match_func=match
    )
    ftsk.execute()
    assert maps_of(adapter, mgmt.uuid, lpar.uuid) == []


@pytest.mark.parametrize(
    "stg, status, code, words",
    [
        (
            lambda a: pvm_stg.FileIO.bld_ref(a, "var/lib/vol-1"),
            400,
            "EMUL0009",
            ("'var/lib/vol-1' is not absolute",),
        ),
        (
            lambda a: pvm_stg.FileIO.bld_ref(a, "/var/lib/pvm/fileio/missing"),
            500,
            "EMUL0050",
            ("file '/var/lib/pvm/fileio/missing' does not exist", "novalink"),
        ),
        (
            lambda a: pvm_stg.RBD.bld_ref(a, "volumes/missing"),
            500,
            "EMUL0050",
            ("RBD image 'volumes/missing' does not exist",),
        ),
        (
            lambda a: pvm_stg.FileIO.bld_ref(a, FILE, backstore_type="user:rbd"),
            400,
            "EMUL0009",
            ("BackStoreType 'user:rbd' does not apply to File I/O",),
        ),
    ],
)
def test_file_io_and_rbd_refusals_on_the_management_partition(
    adapter, host, mgmt, stg, status, code, words
):
    lpar = build(adapter, host).create(parent=host)
    with pytest.raises(pvm_exc.HttpError) as exc:
        tsk_map.add_vscsi_mapping(host.uuid, mgmt.uuid, lpar.uuid, stg(adapter))
    refusal(exc, status, code, *words)
    assert maps_of(adapter, mgmt.uuid, lpar.uuid) == []


@pytest.mark.parametrize(
    "stg",
    [lambda a: pvm_stg.FileIO.bld_ref(a, FILE), lambda a: pvm_stg.RBD.bld_ref(a, IMAGE)],
)
def test_file_io_and_rbd_refused_on_a_vios(adapter, host, mgmt, stg):
    lpar = build(adapter, host).create(parent=host)
    vios1 = vios_named(adapter, "vios1")
    with pytest.raises(pvm_exc.HttpError) as exc:
        tsk_map.add_vscsi_mapping(host.uuid, vios1.uuid, lpar.uuid, stg(adapter))
    refusal(
        exc,
        400,
        "EMUL0009",
        "only through the NovaLink management partition serving as an I/O server",
        "VIOS 'vios1' is not it",
        mgmt.uuid,
    )
    assert maps_of(adapter, vios1.uuid, lpar.uuid) == []


def test_without_the_option_nothing_maps_file_io(tmp_path):
    """The default inventory: NovaLink is a plain LPAR, no VIOS maps files."""
    srv = app.start("small", token_dir=str(tmp_path))
    logging.getLogger("pypowervm.adapter").setLevel(logging.ERROR)
    sess = pvm_adpt.Session(
        "127.0.0.1", "neo", "passw0rd", protocol="http", port=srv.port, conn_tries=1
    )
    try:
        adapter = pvm_adpt.Adapter(sess)
        host = pvm_ms.System.get(adapter)[0]
        mgmt = pvm_part.get_mgmt_partition(adapter)
        assert isinstance(mgmt, pvm_lpar.LPAR)
        with pytest.raises(pvm_exc.HttpError) as exc:
            pvm_vios.VIOS.get(adapter, uuid=mgmt.uuid)
        assert exc.value.response.status == 404
        lpar = build(adapter, host).create(parent=host)
        vios1 = vios_named(adapter, "vios1")
        with pytest.raises(pvm_exc.HttpError) as exc:
            tsk_map.add_vscsi_mapping(
                host.uuid, vios1.uuid, lpar.uuid, pvm_stg.FileIO.bld_ref(adapter, FILE)
            )
        refusal(exc, 400, "EMUL0009", "not an I/O server", "management_partition.io_server")
        with pytest.raises(pvm_exc.JobRequestFailed) as exc:
            hdisk.rbd_exists(adapter, vios1.uuid, IMAGE)
        assert "not an I/O server" in str(exc.value)
        status, out = _ctl_error(srv, "/rbd-images", {"name": IMAGE})
        assert status == 400 and "io_server" in out["error"]
    finally:
        sess._logoff()
        srv.stop()


def _ctl_error(srv, sub, body):
    """A control-endpoint POST expected to be refused: (status, JSON body)."""
    try:
        return ctl(srv, "POST", sub, body)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_rbd_exists_answers_from_the_declared_images(emulator, adapter, mgmt):
    assert hdisk.rbd_exists(adapter, mgmt.uuid, IMAGE) is True
    assert hdisk.rbd_exists(adapter, mgmt.uuid, "volumes/volume-9") is False
    status, _ = ctl(emulator, "POST", "/rbd-images", {"name": "volumes/volume-9"})
    assert status == 201
    assert hdisk.rbd_exists(adapter, mgmt.uuid, "volumes/volume-9") is True
    with pytest.raises(pvm_exc.JobRequestFailed) as exc:
        hdisk.rbd_exists(adapter, vios_named(adapter, "vios1").uuid, IMAGE)
    assert "RBDExists runs on the NovaLink management partition" in str(exc.value)


def test_files_declared_through_the_control_endpoint_can_be_mapped(emulator, adapter, host, mgmt):
    path = "/gpfs/cinder/volume-7"
    lpar = build(adapter, host).create(parent=host)
    with pytest.raises(pvm_exc.HttpError) as exc:
        tsk_map.add_vscsi_mapping(
            host.uuid, mgmt.uuid, lpar.uuid, pvm_stg.FileIO.bld_ref(adapter, path)
        )
    refusal(exc, 500, "EMUL0050", path)
    status, out = ctl(emulator, "POST", "/management-files", {"path": path, "size_gb": 5})
    assert (status, out) == (201, {"path": path, "size_gb": 5.0})
    tsk_map.add_vscsi_mapping(
        host.uuid, mgmt.uuid, lpar.uuid, pvm_stg.FileIO.bld_ref(adapter, path)
    )
    (mapping,) = maps_of(adapter, mgmt.uuid, lpar.uuid)
    assert (mapping.backing_storage.name, mapping.backing_storage.capacity) == (path, 5)
    status, out = _ctl_error(emulator, "/management-files", {"path": "relative/file"})
    assert status == 400 and "must be absolute" in out["error"]


# What the captured NovaLink I/O partition has and the emulated one does not.
NOT_MODELLED = {
    "media_repository": "the NovaLink partition's own media repository is not in the inventory",
    "phys_vols": "the NovaLink partition's local disks are not in the inventory",
    "trunk_adapters": (
        "the emulator keeps trunk adapters on VIOS SEAs; NovaLink's own (OVS) trunk "
        "adapters are not modelled on an I/O-server management partition"
    ),
    "vfc_mappings": "the emulated NovaLink partition has no physical FC ports to host NPIV",
}


def test_file_io_mapping_has_the_fields_of_the_captured_novalink_partition(adapter, host, mgmt):
    """fake_vios_hosting_vios_feed.txt starts with a real NovaLink partition
    hosting File I/O mappings: the emulated one fills the same fields."""
    lpar = build(adapter, host).create(parent=host)
    tsk_map.add_vscsi_mapping(
        host.uuid, mgmt.uuid, lpar.uuid, pvm_stg.FileIO.bld_ref(adapter, FILE)
    )
    emulated = pvm_vios.VIOS.get(
        adapter,
        uuid=mgmt.uuid,
        xag=[
            pvm_const.XAG.VIO_SMAP,
            pvm_const.XAG.VIO_STOR,
            pvm_const.XAG.VIO_NET,
            pvm_const.XAG.VIO_FMAP,
        ],
    )
    real = _captured(pvm_vios.VIOS, "fake_vios_hosting_vios_feed.txt")
    assert real.is_mgmt_partition and real.scsi_mappings[0].backing_storage.vdtype == "File"
    missing = missing_fields(_filled(real), _filled(emulated), NOT_MODELLED)
    assert not missing, "; ".join(missing)
    real_links, emu_links = _links(real), _links(emulated)
    wrong = {k for k in set(real_links) & set(emu_links) if emu_links[k] - real_links[k]}
    assert not wrong
    unlinked = set(UNLINKED) | {"TrunkAdapters/TrunkAdapter/AssociatedVirtualSwitch/link"}
    assert sorted(set(real_links) - set(emu_links) - unlinked) == []


@pytest.mark.parametrize(
    "mgmt_part, words",
    [
        ({"io_server": "yes"}, "io_server must be true or false"),
        ({"files": ["/a"]}, "files needs management_partition.io_server: true"),
        ({"io_server": True, "files": ["a/b"]}, "must be absolute"),
        ({"io_server": True, "rbd_images": [{"size_gb": 1}]}, "needs a 'name'"),
        ({"io_server": True, "rbd_images": [{"name": "p/i", "size_gb": 0}]}, "greater than 0"),
    ],
)
def test_inventory_io_server_keys_are_checked(mgmt_part, words):
    with pytest.raises(inventory.InventoryError) as exc:
        inventory.load({"management_partition": {"name": "novalink", **mgmt_part}})
    assert words in str(exc.value)


def test_io_inventory_normalises_twice():
    once = inventory.load(io_inventory())
    twice = inventory.load(once)
    assert twice["management_partition"]["files"] == [
        {"path": FILE, "size_gb": 1.0},
        {"path": NFS_FILE, "size_gb": 20.0},
    ]


def test_cluster_create_refuses_the_management_partition_as_a_node(adapter, mgmt):
    from pypowervm.tasks import cluster_ssp

    vios1 = vios_named(adapter, "vios1", [pvm_const.XAG.VIO_STOR])
    node = pvm_clust.Node.bld(adapter, vios_uri=mgmt.href)
    with pytest.raises(pvm_exc.JobRequestFailed) as exc:
        cluster_ssp.crt_cluster_ssp("c2", "p2", vios1.phys_vols[0], node, vios1.phys_vols[1:])
    assert "nodes are Virtual I/O Servers" in str(exc.value)


def test_trunk_adapters_on_the_io_partition_get_linux_device_names(adapter, host, mgmt):
    from pypowervm.tasks import cna as pvm_cna

    (trunk,) = pvm_cna.crt_trunk_with_free_vlan(
        adapter, host.uuid, [mgmt.uuid], "OVSSW", crt_vswitch=True
    )
    assert trunk.is_trunk and trunk.dev_name.startswith("ibmveth")
