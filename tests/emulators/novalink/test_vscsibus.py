"""VirtualSCSIBus under a VIOS, driven through pypowervm's VSCSIBus/STDev
wrappers and its scsi_mapper helpers: one bus per adapter pair, the same
state through the bus API and the VIOS mapping API, refusals, and the
fields the captured real bus feed fills."""

from __future__ import annotations

import io
import os
import uuid as uuidlib

import pypowervm.adapter as pvm_adpt
import pypowervm.const as pvm_const
import pypowervm.exceptions as pvm_exc
import pytest
from pypowervm.tasks import hdisk
from pypowervm.tasks import migration as pvm_mig
from pypowervm.tasks import power as pvm_power
from pypowervm.tasks import scsi_mapper as tsk_map
from pypowervm.tasks import storage as tsk_stg
from pypowervm.tests.test_utils import pvmhttp
from pypowervm.utils import uuid as pvm_uuid
from pypowervm.wrappers import logical_partition as pvm_lpar
from pypowervm.wrappers import storage as pvm_stg
from pypowervm.wrappers import virtual_io_server as pvm_vios

from .test_fidelity import _captured, _filled, missing_fields
from .test_lpar import build, refusal
from .test_migration import _discover, _peer, _session, target  # noqa: F401 (fixture)

SMAP = [pvm_const.XAG.VIO_SMAP]

# Fields the captured bus feed fills that the emulated bus leaves empty.
NOT_MODELLED: dict[str, str] = {}


def vios_named(adapter, name, xag=()):
    return next(v for v in pvm_vios.VIOS.get(adapter, xag=list(xag)) if v.name == name)


def buses(adapter, vios):
    return pvm_vios.VSCSIBus.get(adapter, parent=vios)


def new_bus(adapter, vios, lpar, slot=None):
    return pvm_vios.VSCSIBus.bld(adapter, lpar.uuid, lpar_slot_num=slot).create(parent=vios)


def vdisk(adapter, vios, name, vg="datavg", gb=1):
    vg_w = next(v for v in pvm_stg.VG.get(adapter, parent=vios) if v.name == vg)
    return tsk_stg.crt_vdisk(adapter, vios.uuid, vg_w.uuid, name, gb)


def vopt(adapter, vios, name):
    ref, _ = tsk_stg.upload_vopt(adapter, vios.uuid, io.BytesIO(b"CD001"), name, 5)
    return ref


def fc_hdisk(adapter, vios):
    """The inventory's FC volume, discovered on ``vios`` (LUARecovery)."""
    v = vios_named(adapter, vios.name, [pvm_const.XAG.VIO_STOR])
    itls = hdisk.build_itls([v.pfc_ports[0].wwpn], ["500507680b215660"], 0)
    _status, name, udid = hdisk.discover_hdisk(adapter, vios.uuid, itls)
    return pvm_stg.PV.bld(adapter, name, udid=udid)


def storage_names(bus):
    return [m.backing_storage.name for m in bus.mappings]


def lpar_maps(adapter, vios, lpar):
    v = vios_named(adapter, vios.name, SMAP)
    return tsk_map.find_maps(v.scsi_mappings, client_lpar_id=lpar.uuid, include_orphans=True)


def client_slots(adapter, lpar):
    """Slots of the partition's VirtualSCSIClientAdapter children (no entry
    wrapper for them in pypowervm 1.1.27: read the feed)."""
    resp = adapter.read(
        pvm_lpar.LPAR.schema_type, root_id=lpar.uuid, child_type="VirtualSCSIClientAdapter"
    )
    entries = resp.feed.entries if resp.feed is not None else []
    return [pvm_stg.VSCSIClientAdapterElement.wrap(e.element).lpar_slot_num for e in entries]


def refused(call):
    with pytest.raises(pvm_exc.HttpError) as exc:
        call()
    return exc.value


@pytest.fixture
def vios1(adapter):
    return vios_named(adapter, "vios1")


@pytest.fixture
def lpar(adapter, host):
    return build(adapter, host).create(parent=host)


def test_bus_per_adapter_pair_mirrors_vios_mappings(adapter, host, vios1, lpar):
    disk = vdisk(adapter, vios1, "boot_vm1")
    media = vopt(adapter, vios1, "cfg_vm1.iso")
    tsk_map.add_vscsi_mapping(host.uuid, vios1.uuid, lpar.uuid, disk)
    tsk_map.add_vscsi_mapping(host.uuid, vios1.uuid, lpar.uuid, media)
    other = build(adapter, host, name="vm2").create(parent=host)
    tsk_map.add_vscsi_mapping(host.uuid, vios1.uuid, other.uuid, vdisk(adapter, vios1, "vm2"))

    feed = buses(adapter, vios1)
    assert len(feed) == 2
    bus = next(b for b in feed if pvm_uuid.convert_uuid_to_pvm(lpar.uuid) in b.client_lpar_href)
    maps = lpar_maps(adapter, vios1, lpar)
    assert len(maps) == 2
    # Both mappings share the pair; the bus shows it once with both devices.
    assert bus.client_adapter.lpar_slot_num == maps[0].client_adapter.lpar_slot_num
    assert bus.client_adapter.lpar_id == lpar.id
    assert bus.server_adapter.name == maps[0].server_adapter.name
    assert bus.server_adapter.lpar_slot_num == maps[0].server_adapter.lpar_slot_num
    assert storage_names(bus) == ["boot_vm1", "cfg_vm1.iso"]
    assert isinstance(bus.mappings[0].backing_storage, pvm_stg.VDisk)
    assert isinstance(bus.mappings[1].target_dev, pvm_stg.VOptTargetDev)
    assert [m.target_dev.name for m in bus.mappings] == [m.target_dev.name for m in maps]
    assert [m.target_dev.lua for m in bus.mappings] == [m.target_dev.lua for m in maps]
    assert len({m.target_dev.lua for m in bus.mappings}) == 2
    # The entry has the same content and is reachable by its own href.
    one = pvm_vios.VSCSIBus.get(adapter, parent=vios1, uuid=bus.uuid)
    assert one.uuid == bus.uuid and storage_names(one) == storage_names(bus)
    assert one.href.split("?")[0].endswith(
        f"/VirtualIOServer/{vios1.uuid}/VirtualSCSIBus/{bus.uuid}"
    )
    # The other VIOS has no vSCSI connections.
    assert buses(adapter, vios_named(adapter, "vios2")) == []


def test_bus_create_assigns_adapters_like_a_mapping(adapter, host, vios1, lpar):
    disk = vdisk(adapter, vios1, "boot_vm1")
    tsk_map.add_vscsi_mapping(host.uuid, vios1.uuid, lpar.uuid, disk)
    mapped = lpar_maps(adapter, vios1, lpar)[0]

    bus = new_bus(adapter, vios1, lpar)
    assert bus.mappings == []
    ca, sa = bus.client_adapter, bus.server_adapter
    assert ca.lpar_slot_num != mapped.client_adapter.lpar_slot_num
    assert sa.name != mapped.server_adapter.name and sa.name.startswith("vhost")
    assert ca.lpar_id == lpar.id
    assert ca.vios_id == mapped.client_adapter.vios_id
    # Same server-owned fields as the adapters a mapping request creates.
    for side in ("client_adapter", "server_adapter"):
        got = {p for p in _filled(getattr(bus, side))}
        want = {p for p in _filled(getattr(mapped, side))}
        assert got == want - {"backing_dev_name"}, side  # a new bus has no storage yet
    # Server slots from 11 up: the mapping took 11, the bus the next free one.
    assert mapped.server_adapter.loc_code.endswith("-C11") and sa.loc_code.endswith("-C12")

    # A client slot can be asked for, but not one already in use.
    bus7 = new_bus(adapter, vios1, lpar, slot=7)
    assert bus7.client_adapter.lpar_slot_num == 7
    err = refused(lambda: new_bus(adapter, vios1, lpar, slot=7))
    assert err.response.status == 400
    assert "virtual slot 7 is already in use" in err.her_wrap.message
    assert len(buses(adapter, vios1)) == 3
    # The client partition sees one VirtualSCSIClientAdapter per bus.
    assert sorted(client_slots(adapter, lpar)) == sorted(
        b.client_adapter.lpar_slot_num for b in buses(adapter, vios1)
    )


def test_storage_added_through_bus_appears_on_vios(adapter, host, vios1, lpar):
    bus = new_bus(adapter, vios1, lpar)
    # The new pair is an adapters-only mapping on the VIOS.
    (empty,) = lpar_maps(adapter, vios1, lpar)
    assert empty.backing_storage is None
    assert empty.server_adapter.name == bus.server_adapter.name
    v_before = vios_named(adapter, "vios1", SMAP)

    disk = vdisk(adapter, vios1, "boot_vm1")
    ssp = pvm_stg.SSP.get(adapter)[0]
    _, lu = tsk_stg.crt_lu(tsk_stg.default_tier_for_ssp(ssp), "lu_vm1", 1)
    media = vopt(adapter, vios1, "cfg_vm1.iso")
    bus_etag = bus.etag
    bus.mappings.extend(
        [
            pvm_vios.STDev.bld(adapter, pvm_stg.VDisk.bld_ref(adapter, disk.name)),
            pvm_vios.STDev.bld(adapter, pvm_stg.LU.bld_ref(adapter, lu.name, lu.udid)),
            pvm_vios.STDev.bld(adapter, media, lua="0x8300000000000000"),
        ]
    )
    bus = bus.update()
    assert bus.etag != bus_etag
    assert storage_names(bus) == ["boot_vm1", "lu_vm1", "cfg_vm1.iso"]
    assert [m.target_dev.lua for m in bus.mappings][2] == "0x8300000000000000"
    assert len({m.target_dev.lua for m in bus.mappings}) == 3
    assert all(m.target_dev.name for m in bus.mappings)

    v_after = vios_named(adapter, "vios1", SMAP)
    assert v_after.etag != v_before.etag
    maps = tsk_map.find_maps(v_after.scsi_mappings, client_lpar_id=lpar.uuid, include_orphans=True)
    assert [m.backing_storage.name for m in maps] == storage_names(bus)
    assert {m.server_adapter.name for m in maps} == {bus.server_adapter.name}
    assert {m.client_adapter.lpar_slot_num for m in maps} == {bus.client_adapter.lpar_slot_num}
    assert [m.target_dev.name for m in maps] == [m.target_dev.name for m in bus.mappings]
    # The storage is now in use, as if mapped through the VIOS.
    vg = next(v for v in pvm_stg.VG.get(adapter, parent=vios1) if v.name == "datavg")
    err = refused(lambda: tsk_stg.rm_vg_storage(vg, vdisks=[disk]))
    assert "remove its vSCSI mapping first" in err.her_wrap.message


def test_mapping_added_through_vios_appears_on_bus(adapter, host, vios1, lpar):
    bus = new_bus(adapter, vios1, lpar)
    disk = vdisk(adapter, vios1, "boot_vm1")
    # scsi_mapper reuses the bus's adapter pair (it clones the existing mapping).
    tsk_map.add_vscsi_mapping(host.uuid, vios1.uuid, lpar.uuid, disk)
    again = bus.refresh()
    assert again.etag != bus.etag
    assert storage_names(again) == ["boot_vm1"]
    assert again.mappings[0].target_dev.name.startswith("vtscsi")
    # One mapping per device: the adapters-only mapping is gone.
    maps = lpar_maps(adapter, vios1, lpar)
    assert [m.backing_storage.name for m in maps] == ["boot_vm1"]
    assert maps[0].server_adapter.name == bus.server_adapter.name
    assert len(buses(adapter, vios1)) == 1

    # Removing the last mapping through the VIOS removes the pair, and the bus.
    v = vios_named(adapter, "vios1", SMAP)
    tsk_map.remove_maps(v, lpar.uuid)
    v.update()
    assert buses(adapter, vios1) == []
    err = refused(lambda: again.refresh())
    assert err.response.status == 404


def test_storage_removed_from_bus_keeps_the_pair(adapter, host, vios1, lpar):
    bus = new_bus(adapter, vios1, lpar)
    disk = vdisk(adapter, vios1, "boot_vm1")
    bus.mappings.append(pvm_vios.STDev.bld(adapter, disk))
    bus = bus.update()
    bus.mappings = []
    bus = bus.update()
    assert bus.mappings == []
    (m,) = lpar_maps(adapter, vios1, lpar)
    assert m.backing_storage is None and m.target_dev is None
    assert m.server_adapter.name == bus.server_adapter.name
    assert m.server_adapter.backing_dev_name is None
    # The disk is free again.
    vg = next(v for v in pvm_stg.VG.get(adapter, parent=vios1) if v.name == "datavg")
    tsk_stg.rm_vg_storage(vg, vdisks=[disk])


def test_delete_refused_with_storage_then_removes_the_pair(adapter, host, vios1, lpar):
    bus = new_bus(adapter, vios1, lpar, slot=5)
    bus.mappings.append(pvm_vios.STDev.bld(adapter, vdisk(adapter, vios1, "boot_vm1")))
    bus = bus.update()
    refusal(refused(bus.delete), 500, "EMUL0008", "boot_vm1")
    assert len(buses(adapter, vios1)) == 1

    bus.mappings = []
    bus = bus.update()
    v_etag = vios_named(adapter, "vios1", SMAP).etag
    bus.delete()
    assert buses(adapter, vios1) == []
    assert lpar_maps(adapter, vios1, lpar) == []
    assert vios_named(adapter, "vios1", SMAP).etag != v_etag
    assert client_slots(adapter, lpar) == []
    # The client slot is free again.
    assert new_bus(adapter, vios1, lpar, slot=5).client_adapter.lpar_slot_num == 5


def test_bus_for_missing_partition_refused(adapter, vios1):
    missing = str(uuidlib.uuid4()).upper()
    bus = pvm_vios.VSCSIBus.bld(adapter, missing)
    err = refused(lambda: bus.create(parent=vios1))
    assert err.response.status == 400
    assert f"{missing} is not a partition on this system" in err.her_wrap.message
    assert buses(adapter, vios1) == []


def test_bus_with_wrong_adapter_side_refused(adapter, vios1, lpar):
    bus = pvm_vios.VSCSIBus.bld(adapter, lpar.uuid)
    bus.client_adapter.set_parm_value("AdapterType", "Server")
    err = refused(lambda: bus.create(parent=vios1))
    assert "ClientAdapter.AdapterType must be Client" in err.her_wrap.message
    assert buses(adapter, vios1) == []


def test_storage_not_on_this_vios_refused(adapter, vios1, lpar):
    vios2 = vios_named(adapter, "vios2")
    vdisk(adapter, vios1, "only_on_vios1")
    bus = new_bus(adapter, vios2, lpar).refresh()
    etag = bus.etag
    bus.mappings.append(
        pvm_vios.STDev.bld(adapter, pvm_stg.VDisk.bld_ref(adapter, "only_on_vios1"))
    )
    err = refused(bus.update)
    assert err.response.status == 400
    assert "no virtual disk 'only_on_vios1' on VIOS 'vios2'" in err.her_wrap.message
    bus.mappings = [pvm_vios.STDev.bld(adapter, pvm_stg.PV.bld(adapter, "hdisk99"))]
    err = refused(bus.update)
    assert "no physical volume 'hdisk99' on VIOS 'vios2'" in err.her_wrap.message
    # Nothing changed, on the bus or on the VIOS.
    assert bus.refresh().etag == etag and bus.refresh().mappings == []
    assert [m.backing_storage for m in lpar_maps(adapter, vios2, lpar)] == [None]
    # Storage cannot come with a new bus either.
    new = pvm_vios.VSCSIBus.bld(adapter, lpar.uuid)
    new.mappings.append(pvm_vios.STDev.bld(adapter, pvm_stg.VDisk.bld_ref(adapter, "nope")))
    refused(lambda: new.create(parent=vios2))
    assert len(buses(adapter, vios2)) == 1


def test_duplicate_storage_on_one_bus_refused(adapter, host, vios1, lpar):
    disk = vdisk(adapter, vios1, "boot_vm1")
    bus = new_bus(adapter, vios1, lpar)
    bus.mappings.extend(
        [
            pvm_vios.STDev.bld(adapter, pvm_stg.VDisk.bld_ref(adapter, disk.name)),
            pvm_vios.STDev.bld(adapter, pvm_stg.VDisk.bld_ref(adapter, disk.name)),
        ]
    )
    err = refused(bus.update)
    assert err.response.status == 400
    assert "[EMUL0004]" in err.her_wrap.message and "given twice" in err.her_wrap.message

    bus = bus.refresh()
    bus.mappings.append(pvm_vios.STDev.bld(adapter, disk))
    bus = bus.update()
    # The same disk again, through the VIOS mapping API on the same pair.
    v = vios_named(adapter, "vios1", SMAP)
    (existing,) = tsk_map.find_maps(v.scsi_mappings, client_lpar_id=lpar.uuid)
    v.scsi_mappings.append(pvm_vios.VSCSIMapping.bld_from_existing(existing, disk))
    err = refused(v.update)
    assert "[EMUL0004]" in err.her_wrap.message
    assert "already mapped to " + bus.server_adapter.name in err.her_wrap.message
    # The same disk on another bus (another adapter pair) is a separate path.
    other = new_bus(adapter, vios1, lpar)
    other.mappings.append(pvm_vios.STDev.bld(adapter, disk))
    assert storage_names(other.update()) == ["boot_vm1"]


def test_stale_etag_and_client_change_refused(adapter, host, vios1, lpar):
    bus = new_bus(adapter, vios1, lpar)
    tsk_map.add_vscsi_mapping(host.uuid, vios1.uuid, lpar.uuid, vdisk(adapter, vios1, "d1"))
    bus.mappings = []
    err = refused(bus.update)
    assert err.response.status == 412
    bus = bus.refresh()
    other = build(adapter, host, name="vm2").create(parent=host)
    bus._client_lpar_href(pvm_vios.VSCSIBus.crt_related_href(adapter, None, other.uuid))
    err = refused(bus.update)
    assert "[EMUL0003]" in err.her_wrap.message
    assert storage_names(bus.refresh()) == ["d1"]


def test_running_client_without_rmc(emulator, adapter, host, vios1, lpar):
    """A new bus hot-plugs a client adapter (needs RMC); more storage on an
    existing bus does not."""
    bus = new_bus(adapter, vios1, lpar)
    emulator.emu.config.rmc_on_boot = False
    pvm_power.power_on(lpar, host.uuid)
    bus.mappings.append(pvm_vios.STDev.bld(adapter, vdisk(adapter, vios1, "d1")))
    assert storage_names(bus.update()) == ["d1"]
    refusal(refused(lambda: new_bus(adapter, vios1, lpar)), 500, "EMUL0010", "RMC")


def test_bus_follows_a_migrating_partition(emulator, target, adapter, host, vios1, lpar):  # noqa: F811
    """The server moves the mappings itself (no VIOS request): the source bus
    goes (404 even for a client that only reads the bus entry) and the target
    VIOS shows one for the partition."""
    _peer(emulator, target, "pvm-host-2")
    tsess = _session(target)
    try:
        tadapter = pvm_adpt.Adapter(tsess)
        _discover(tadapter, "vios1")
        _vios, name, udid = _discover(adapter, "vios1")
        bus = new_bus(adapter, vios1, lpar)
        bus.mappings.append(pvm_vios.STDev.bld(adapter, pvm_stg.PV.bld(adapter, name, udid=udid)))
        bus = bus.update()
        pvm_power.power_on(lpar, host.uuid)
        pvm_mig.migrate_lpar(lpar.refresh(), "pvm-host-2", tgt_mgmt_svr="127.0.0.1")

        err = refused(bus.refresh)
        assert err.response.status == 404
        assert buses(adapter, vios1) == []
        tvios = vios_named(tadapter, "vios1")
        (moved,) = buses(tadapter, tvios)
        assert pvm_uuid.convert_uuid_to_pvm(lpar.uuid) in moved.client_lpar_href
        assert [m.backing_storage.udid for m in moved.mappings] == [udid]
        assert moved.mappings[0].target_dev.name.startswith("vtscsi")
    finally:
        tsess._logoff()


# ---- fidelity against the captured real bus feed --------------------------------------------
def _captured_all(cls, name):
    """Every entry of a capture (``_captured`` gives the first)."""
    here = os.getcwd()
    os.chdir(os.path.dirname(os.path.dirname(os.path.dirname(pvmhttp.__file__))) + "/..")
    try:
        return cls.wrap(pvmhttp.load_pvm_resp(name).get_response())
    finally:
        os.chdir(here)


def test_emulated_bus_fills_the_fields_the_captured_feed_does(adapter, host, vios1, lpar):
    """vscsibus_feed.txt: buses with a physical volume and a virtual optical
    medium, and with a virtual disk and a medium (plus an LU, not captured)."""
    first = _captured(pvm_vios.VSCSIBus, "vscsibus_feed.txt")
    real = _captured_all(pvm_vios.VSCSIBus, "vscsibus_feed.txt")
    assert real[0].uuid == first.uuid and len(real) == 4
    kinds = {type(m.backing_storage).__name__ for b in real for m in b.mappings}
    assert kinds == {"PV", "VOptMedia", "VDisk"}

    pv_bus = new_bus(adapter, vios1, lpar)
    pv_bus.mappings.extend(
        [
            pvm_vios.STDev.bld(adapter, fc_hdisk(adapter, vios1)),
            pvm_vios.STDev.bld(adapter, vopt(adapter, vios1, "cfg_vm1.iso")),
        ]
    )
    pv_bus.update()
    other = build(adapter, host, name="vm2").create(parent=host)
    tsk_map.add_vscsi_mapping(host.uuid, vios1.uuid, other.uuid, vdisk(adapter, vios1, "vm2"))
    tsk_map.add_vscsi_mapping(
        host.uuid, vios1.uuid, other.uuid, vopt(adapter, vios1, "cfg_vm2.iso")
    )
    emulated = buses(adapter, vios1)
    assert len(emulated) == 2

    real_f: dict[str, str] = {}
    for b in real:
        _filled(b, out=real_f)
    emu_f: dict[str, str] = {}
    for b in emulated:
        _filled(b, out=emu_f)
    missing = missing_fields(real_f, emu_f, NOT_MODELLED)
    assert not missing, "VSCSIBus from vscsibus_feed.txt: " + "; ".join(missing)
