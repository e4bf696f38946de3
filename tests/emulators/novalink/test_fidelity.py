"""Fidelity against real captured responses: for each object type that has a
captured real response in pypowervm's test data, every wrapper field that the
real response populates is also populated (with the same type) in the
emulator's response to the same kind of request."""

from __future__ import annotations

import inspect
import io
import os
import re
import warnings

import pypowervm.const as pvm_const
import pytest
from pypowervm.tasks import cna as tsk_cna
from pypowervm.tasks import hdisk, vfc_mapper
from pypowervm.tasks import management_console as tsk_mc
from pypowervm.tasks import network_bridger as net_br
from pypowervm.tasks import power as pvm_power
from pypowervm.tasks import scsi_mapper as tsk_map
from pypowervm.tasks import storage as tsk_stg
from pypowervm.tests.test_utils import pvmhttp
from pypowervm.wrappers import cluster as pvm_clust
from pypowervm.wrappers import entry_wrapper as ewrap
from pypowervm.wrappers import iocard as pvm_card
from pypowervm.wrappers import logical_partition as pvm_lpar
from pypowervm.wrappers import managed_system as pvm_ms
from pypowervm.wrappers import management_console as pvm_mc
from pypowervm.wrappers import network as pvm_net
from pypowervm.wrappers import shared_proc_pool as pvm_spp
from pypowervm.wrappers import storage as pvm_stg
from pypowervm.wrappers import vios_file as pvm_file
from pypowervm.wrappers import virtual_io_server as pvm_vios

from .test_lpar import build

# Fields the captured system/partition has but the emulated inventory does not
# model (each names why); everything else must match.
NOT_MODELLED = {
    "System": {
        "metered_pool_id": "metered-capacity (Enterprise Pools 2.0) pools are not emulated",
    },
    "VNIC": {
        "ip_address": "the guest's IP configuration is not known to the emulator",
        "subnet_mask": "the guest's IP configuration is not known to the emulator",
        "gateway": "the guest's IP configuration is not known to the emulator",
    },
    "LPAR": {
        "cur_dram_pmem_volumes": "persistent-memory volumes are not emulated",
        "cur_pmem_volumes": "persistent-memory volumes are not emulated",
        "max_dram_pmem_volumes": "persistent-memory volumes are not emulated",
        "max_pmem_volumes": "persistent-memory volumes are not emulated",
    },
    "CNA": {
        "vsi_type_id": "no VSI manager (802.1Qbg) is emulated",
        "vsi_type_manager_id": "no VSI manager (802.1Qbg) is emulated",
        "vsi_type_version": "no VSI manager (802.1Qbg) is emulated",
        "ip_address": "the guest's IP configuration is not known to the emulator",
        "subnet_mask": "the guest's IP configuration is not known to the emulator",
        "gateway": "the guest's IP configuration is not known to the emulator",
    },
    "SEA": {},
    # Nested paths (``a.b``) and whole captures can be allowed too.
    "managedsystem.txt": {
        "asio_config.io_slots.part_id": "physical I/O slots are not assigned to partitions",
        "asio_config.io_slots.part_name": "physical I/O slots are not assigned to partitions",
        "asio_config.io_slots.part_type": "physical I/O slots are not assigned to partitions",
        "asio_config.io_slots.part_uuid": "physical I/O slots are not assigned to partitions",
    },
}
# The inventory's SEA runs on one VIOS without failover: no control channel.
_NO_HA = "the emulated SEA has no failover partner, so no control channel"
for _cap in (
    "fake_vios_feed.txt",
    "fake_vios_mappings.txt",
    "fake_vios_ssp_npiv.txt",
    "fake_vios_feed_multi.txt",
):
    NOT_MODELLED[_cap] = {"seas.control_channel": _NO_HA}
NOT_MODELLED["nbbr_network_bridge.txt"] = {"seas.control_channel": _NO_HA}
NOT_MODELLED["fake_network_bridge.txt"] = {"control_channel_id": _NO_HA}
MAX_DEPTH = 4
_SKIP = {
    "adapter",
    "traits",
    "entry",
    "element",
    "etag",
    "href",
    "schema_type",
    "uuid",
    "related_href",
    "child_order",
}


def _props(cls):
    return [
        n
        for n, o in inspect.getmembers(cls)
        if isinstance(o, property) and not n.startswith("_") and n not in _SKIP
    ]


def _value(w, name):
    try:
        with warnings.catch_warnings():  # pypowervm warns on some deprecated properties
            warnings.simplefilter("ignore")
            return True, getattr(w, name)
    except Exception:  # a wrapper property that cannot parse the payload
        return False, None


def _empty(v):
    return v is None or (isinstance(v, str | list | tuple | dict) and len(v) == 0)


def _captured(cls, name):
    here = os.getcwd()
    os.chdir(os.path.dirname(os.path.dirname(os.path.dirname(pvmhttp.__file__))) + "/..")
    try:
        wrapped = cls.wrap(pvmhttp.load_pvm_resp(name).get_response())
    finally:
        os.chdir(here)
    return wrapped[0] if isinstance(wrapped, list) else wrapped


@pytest.fixture
def objects(emulator, adapter, host):
    """One of each object type, made the way a driver makes them."""
    lpar = build(adapter, host).create(parent=host)
    pvm_power.power_on(lpar, host.uuid)
    vs = pvm_net.VSwitch.search(
        adapter, parent_type=pvm_ms.System, parent_uuid=host.uuid, one_result=True, name="ETHERNET0"
    )
    cna = pvm_net.CNA.bld(
        adapter,
        100,
        vs.related_href,
        trunk_pri=1,
        ovs_bridge="br-int",
        ovs_ext_ids="iface-id=1",
        configured_mtu=1500,
        addl_tagged_vlans=[2227],
    )
    mgmt = pvm_lpar.LPAR.search(adapter, name="novalink")[0]
    cna = cna.create(parent=mgmt)
    plain_cna = tsk_cna.crt_cna(adapter, host.uuid, lpar.uuid, 101, vswitch="ETHERNET0")
    ssp = pvm_stg.SSP.get(adapter)[0]
    tier = tsk_stg.default_tier_for_ssp(ssp)
    _, image = tsk_stg.crt_lu(tier, "image", 1, typ=pvm_stg.LUType.IMAGE)
    _, clone = tsk_stg.crt_lu(tier, "clone", 1, clone=image)
    vios1 = next(v for v in pvm_vios.VIOS.get(adapter, xag=[]) if v.name == "vios1")
    vg = next(v for v in pvm_stg.VG.get(adapter, parent=vios1) if v.name == "rootvg")
    vdisk = tsk_stg.crt_vdisk(adapter, vios1.uuid, vg.uuid, "disk1", 1)
    # I/O limits a client may set on the disks of a volume group.
    vg = vg.refresh()
    next(d for d in vg.virtual_disks if d.name == "disk1").read_iops_limit = 22
    next(d for d in vg.virtual_disks if d.name == "disk1").write_iops_limit = 33
    vg.phys_vols[0].read_iops_limit = 44
    vg.phys_vols[0].write_iops_limit = 55
    vg = vg.update()
    tsk_stg.upload_vopt(adapter, vios1.uuid, io.BytesIO(b"iso"), "media1", 3)
    f = pvm_file.File.bld(
        adapter, "f1", pvm_file.FileType.DISK_IMAGE, vios1.uuid, f_size=3, tdev_udid=vdisk.udid
    ).create()
    tsk_map.add_vscsi_mapping(host.uuid, vios1.uuid, lpar.uuid, vdisk)
    vios_fc = next(
        v for v in pvm_vios.VIOS.get(adapter, xag=[pvm_const.XAG.VIO_FMAP]) if v.name == "vios1"
    )
    wwpns = "c05076079cff0e56 c05076079cff0e57"
    vfc_mapper.add_map(vios_fc, host.uuid, lpar.uuid, (vios_fc.pfc_ports[0].wwpn, wwpns))
    vios_fc.update()
    # Storage of every kind mapped to the partition (vdisk above, an LU, a
    # discovered hdisk, a virtual optical medium).
    tsk_map.add_vscsi_mapping(host.uuid, vios1.uuid, lpar.uuid, clone)
    vios_stg = next(
        v for v in pvm_vios.VIOS.get(adapter, xag=[pvm_const.XAG.VIO_STOR]) if v.name == "vios1"
    )
    itls = hdisk.build_itls([vios_stg.pfc_ports[0].wwpn], ["500507680b215660"], 0)
    _status, hd_name, hd_udid = hdisk.discover_hdisk(adapter, vios1.uuid, itls)
    tsk_map.add_vscsi_mapping(
        host.uuid, vios1.uuid, lpar.uuid, pvm_stg.PV.bld(adapter, hd_name, udid=hd_udid)
    )
    media = pvm_stg.VOptMedia.bld_ref(adapter, "media1")
    tsk_map.add_vscsi_mapping(host.uuid, vios1.uuid, lpar.uuid, media)
    # Enough VLANs on the bridge that the bridger adds a second trunk adapter.
    nb = pvm_net.NetBridge.get(adapter, parent=host)[0]
    net_br.ensure_vlans_on_nb(adapter, host.uuid, nb.uuid, list(range(2001, 2022)))
    back = pvm_card.VNICBackDev.bld(
        adapter,
        vios1.uuid,
        host.asio_config.sriov_adapters[0].sriov_adap_id,
        host.asio_config.sriov_adapters[0].phys_ports[0].port_id,
    )
    vnic = pvm_card.VNIC.bld(adapter, pvid=5, back_devs=[back]).create(parent=lpar)
    vios_maps = next(
        v
        for v in pvm_vios.VIOS.get(
            adapter,
            xag=[
                pvm_const.XAG.VIO_NET,
                pvm_const.XAG.VIO_SMAP,
                pvm_const.XAG.VIO_FMAP,
                pvm_const.XAG.VIO_STOR,
            ],
        )
        if v.name == "vios1"
    )
    tsk_mc.add_authorized_key(adapter, "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ== peer@host2")
    console = pvm_mc.ManagementConsole.get(adapter)[0]
    vnets = pvm_net.VNet.get(adapter, parent=host)
    return {
        "sys_with_sriov.txt": (pvm_ms.System, host.refresh()),
        "managedsystem.txt": (pvm_ms.System, host.refresh()),
        "lpar.txt": (pvm_lpar.LPAR, lpar.refresh()),
        "fake_vios_feed.txt": (
            pvm_vios.VIOS,
            next(v for v in pvm_vios.VIOS.get(adapter, xag=[]) if v.name == "vios1"),
        ),
        "fake_volume_group2.txt": (pvm_stg.VG, vg.refresh()),
        "cluster.txt": (pvm_clust.Cluster, pvm_clust.Cluster.get(adapter)[0]),
        "ssp.txt": (pvm_stg.SSP, ssp.refresh()),
        "tier.txt": (pvm_stg.Tier, tier.refresh()),
        "lufeed.txt": (
            pvm_stg.LUEnt,
            next(lu for lu in pvm_stg.LUEnt.get(adapter, parent=tier) if lu.name == "clone"),
        ),
        "vswitch_feed.txt": (pvm_net.VSwitch, vs),
        "cna_feed1.txt": (pvm_net.CNA, cna),
        "fake_cna.txt": (pvm_net.CNA, [cna, plain_cna.refresh()]),
        "nbbr_network_bridge.txt": (
            pvm_net.NetBridge,
            pvm_net.NetBridge.get(adapter, parent=host)[0],
        ),
        "managementconsole.txt": (pvm_mc.ManagementConsole, console),
        "managementconsole_ssh.txt": (pvm_mc.ManagementConsole, console),
        "shrprocpool.txt": (
            pvm_spp.SharedProcPool,
            pvm_spp.SharedProcPool.get(adapter, parent=host)[0],
        ),
        "nbbr_virtual_network.txt": (pvm_net.VNet, vnets),
        "fake_virtual_network_feed.txt": (pvm_net.VNet, vnets),
        "vfc_client_adapter_feed.txt": (
            pvm_stg.VFCClientAdapter,
            pvm_stg.VFCClientAdapter.get(adapter, parent=lpar),
        ),
        "fake_vios_mappings.txt": (pvm_vios.VIOS, vios_maps),
        "fake_vios_ssp_npiv.txt": (pvm_vios.VIOS, vios_maps),
        "vio_multi_vscsi_mapping.txt": (pvm_vios.VIOS, vios_maps),
        "vnic_feed.txt": (pvm_card.VNIC, vnic),
        "file_feed.txt": (pvm_file.File, f),
    }


# More captures of types compared above (other machines, other moments): each
# must be matched by the same emulated object.
SAME_TYPE = {
    "fake_managedsystem.txt": "managedsystem.txt",
    "fake_lpar_feed.txt": "lpar.txt",
    "fake_vios.txt": "fake_vios_mappings.txt",
    "fake_vios_feed2.txt": "fake_vios_mappings.txt",
    "fake_vios_feed3.txt": "fake_vios_mappings.txt",
    "fake_vios_feed_multi.txt": "fake_vios_mappings.txt",
    "fake_vios_feed_no_vg.txt": "fake_vios_mappings.txt",
    "fake_vios_hosting_vios_feed.txt": "fake_vios_mappings.txt",
    "fake_vios_with_volume_group_data.txt": "fake_vios_mappings.txt",
    "fake_volume_group.txt": "fake_volume_group2.txt",
    "fake_volume_group_with_vio_data.txt": "fake_volume_group2.txt",
    "get_volume_group.txt": "fake_volume_group2.txt",
    "get_volume_group_no_rep.txt": "fake_volume_group2.txt",
    "upload_volgrp.txt": "fake_volume_group2.txt",
    "upload_volgrp2.txt": "fake_volume_group2.txt",
    "fake_vswitch_feed.txt": "vswitch_feed.txt",
    "fake_virtual_switch.txt": "vswitch_feed.txt",
    "nbbr_virtual_switch.txt": "vswitch_feed.txt",
    "fake_network_bridge.txt": "nbbr_network_bridge.txt",
    "nbbr_network_bridge_failover.txt": "nbbr_network_bridge.txt",
    "nbbr_network_bridge_peer.txt": "nbbr_network_bridge.txt",
    "cna_feed.txt": "fake_cna.txt",
    "upload_file.txt": "file_feed.txt",
}


CAPTURES = [
    "sys_with_sriov.txt",
    "managedsystem.txt",
    "lpar.txt",
    "fake_vios_feed.txt",
    "fake_volume_group2.txt",
    "cluster.txt",
    "ssp.txt",
    "tier.txt",
    "lufeed.txt",
    "vswitch_feed.txt",
    "cna_feed1.txt",
    "fake_cna.txt",
    "nbbr_network_bridge.txt",
    "vnic_feed.txt",
    "file_feed.txt",
    "managementconsole.txt",
    "managementconsole_ssh.txt",
    "shrprocpool.txt",
    "nbbr_virtual_network.txt",
    "fake_virtual_network_feed.txt",
    "vfc_client_adapter_feed.txt",
    "fake_vios_mappings.txt",
    "fake_vios_ssp_npiv.txt",
    "vio_multi_vscsi_mapping.txt",
]


def _filled(w, prefix="", depth=0, out=None):
    """{dotted path: type name} of every filled wrapper property, recursing
    into nested ElementWrappers and lists of them (union over list items)."""
    out = {} if out is None else out
    for name in _props(type(w)):
        ok, v = _value(w, name)
        if not ok or _empty(v):
            continue
        path = prefix + name
        items = v if isinstance(v, list | tuple) else [v]
        nested = [i for i in items if isinstance(i, ewrap.ElementWrapper)]
        if nested:
            out.setdefault(path, "wrapper")
            if depth < MAX_DEPTH:
                for item in nested:
                    _filled(item, path + ".", depth + 1, out)
            continue
        kind = type(v).__name__
        if isinstance(v, bool):
            kind = "bool"
        elif isinstance(v, int | float):
            kind = "number"
        out.setdefault(path, kind)
    return out


def _allowed(allowed, path):
    return any(path == a or path.startswith(a + ".") for a in allowed)


def missing_fields(real_f, emu_f, allowed):
    """Paths the real object fills that the emulated one does not (or with
    another type), apart from the allowed ones; inputs are ``_filled`` maps."""
    out = []
    for path, kind in sorted(real_f.items()):
        if _allowed(allowed, path):
            continue
        if path not in emu_f:
            out.append(path)
        elif emu_f[path] != kind:
            out.append(f"{path} type {emu_f[path]} != {kind}")
    return out


@pytest.mark.parametrize("capture", CAPTURES + list(SAME_TYPE))
def test_emulated_object_fills_the_fields_the_real_one_does(objects, capture):
    cls, emulated = objects[SAME_TYPE.get(capture, capture)]
    real = _captured(cls, capture)
    allowed = {**NOT_MODELLED.get(cls.__name__, {}), **NOT_MODELLED.get(capture, {})}
    real_f = _filled(real)
    emu_f = {}
    for one in emulated if isinstance(emulated, list) else [emulated]:
        _filled(one, out=emu_f)
    missing = missing_fields(real_f, emu_f, allowed)
    assert not missing, f"{cls.__name__} from {capture}: " + "; ".join(missing)


_UUID = re.compile(r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")

# Link lists the real server fills and the emulator does not keep. No pypowervm
# wrapper property reads them (they appear only in the wrappers' child orders).
UNLINKED = {
    "AssociatedPartitionProfile": "partition profiles are an HMC object",
    "PartitionProfiles/link": "partition profiles are an HMC object",
    "ProcessorPool": "not read by any wrapper",
    "VirtualSCSIClientAdapters/link": "served as LPAR children, not listed",
    "VirtualFibreChannelClientAdapters/link": "served as LPAR children, not listed",
    "StoragePools/link": "volume groups are served as VIOS children, not listed",
    "ClientNetworkAdapters/link": "not read by any wrapper",
    "AssociatedSystemIOConfiguration/AssociatedSystemVirtualNetwork/VirtualSwitches/link": (
        "virtual switches are served as system children, not listed"
    ),
    "AssociatedSystemIOConfiguration/ChannelAdapter/link": "no host channel adapters",
    "AssociatedSystemIOConfiguration/EthernetAdapter/link": "no host Ethernet adapters",
    "AssociatedSystemIOConfiguration/SRIOVAdapters/link": (
        "the adapters are inlined, as in sys_with_sriov.txt"
    ),
    "AssociatedSystemProcessorConfiguration/SharedProcessorPool/link": "not read by any wrapper",
    "AssignedPartitions/link": "not read by any wrapper",
}


def _links(wrappers):
    """Every link of the wrappers' XML: element path -> href shapes (server and
    UUIDs blanked, query dropped)."""
    out = {}
    for w in wrappers if isinstance(wrappers, list) else [wrappers]:
        root = getattr(w.element, "element", w.element)
        for el in root.iter():
            href = el.get("href")
            if not href:
                continue
            path = []
            node = el
            while node is not None and node is not root:
                path.append(re.sub(r"\{.*\}", "", node.tag))
                node = node.getparent()
            shape = _UUID.sub("{uuid}", re.sub(r"^https?://[^/]+", "", href).split("?")[0])
            out.setdefault("/".join(reversed(path)), set()).add(shape)
    return out


@pytest.mark.parametrize("capture", CAPTURES + list(SAME_TYPE))
def test_emulated_links_have_the_real_shape(objects, capture):
    """Links name their target the way the real server does: a VIOS or partition
    under its ManagedSystem, an SSP under its Cluster. Clients take UUIDs out of
    these paths (nova-powervm picks its host's cluster nodes by the root UUID)."""
    cls, emulated = objects[SAME_TYPE.get(capture, capture)]
    real = _links(_captured(cls, capture))
    emu = _links(emulated)
    wrong = {k: (sorted(emu[k]), sorted(real[k])) for k in set(real) & set(emu) if emu[k] - real[k]}
    assert not wrong, f"{capture}: emulated link shapes (emulated, real): {wrong}"
    missing = sorted(set(real) - set(emu) - set(UNLINKED))
    assert not missing, f"{capture}: links the real server fills: {missing}"


# Captures compared by the test module of their area.
COMPARED_ELSEWHERE = {
    "sriov_lp_feed.txt": "test_sriov.py",
    "vscsibus_feed.txt": "test_vscsibus.py",
    "lpar_ibmi.txt": "test_ibmi_pool.py",
    "enterprise_pool_feed.txt": "test_ibmi_pool.py",
    "enterprise_pool_member_feed.txt": "test_ibmi_pool.py",
    "event_feed.txt": "test_monitor_fidelity.py",
    "cluster_create_job_template.txt": "test_cluster.py",
    "cluster_LULinkedClone_job_template.txt": "test_cluster.py",
}


def test_every_captured_real_response_is_compared():
    """pypowervm's captures of real servers (marked as generated from a live
    system) each have a comparison; a new pypowervm release adding one fails here."""
    data = os.path.join(os.path.dirname(os.path.dirname(pvmhttp.__file__)), "data")
    real = {
        n
        for n in os.listdir(data)
        if n.endswith(".txt") and "AUTOMATICALLY GENERATED" in open(os.path.join(data, n)).read(300)
    }
    here = os.path.dirname(__file__)
    covered = set(CAPTURES) | set(SAME_TYPE)
    for capture, module in COMPARED_ELSEWHERE.items():
        with open(os.path.join(here, module)) as f:
            assert capture in f.read(), f"{module} does not compare {capture}"
        covered.add(capture)
    assert sorted(real - covered) == []
