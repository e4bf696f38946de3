"""Shared Storage Pool: Cluster, SharedStoragePool, Tier and LogicalUnits.

Logical units are created under a Tier (``PUT Tier/{uuid}/LogicalUnit``), as
thin or thick disks or images, optionally as linked clones of an image
(``ClonedFrom``). Rules: names need not be unique (as on the real server) but
UDIDs are server-assigned; space is checked against the pool's free space
(thin LUs count against over-commit only); a clone's source must exist and a
clone is at least as big as its source; a mapped LU (InUse) cannot be deleted.

A pool is shared by every emulated host whose inventory names the same
cluster and which know each other as peers (``state.peers``): when two hosts
become peers they exchange their logical units, and from then on each LU
created or deleted on one host appears or disappears on the other, and each
host tells the others which LUs its VIOSes map. So an LU mapped on host A
shows InUse and cannot be deleted from host B, and a partition on an LU can
move between the hosts (``state.migration``). Hosts with a different cluster
refuse these messages.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid as uuidlib
from typing import Any

from lxml import etree

from ibmvirt.emulators.novalink import errors, schema
from ibmvirt.emulators.novalink import xmlutil as x
from ibmvirt.emulators.novalink.emulator import Emulator, Kind
from ibmvirt.emulators.novalink.jobs import Job
from ibmvirt.emulators.novalink.state import partition, peers, slots, storage, system, vios
from ibmvirt.emulators.novalink.store import Resource


def _hex(seed: str, n: int) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()[:n]


class Pool:
    """Server-side bookkeeping for one SSP (held on the SSP resource)."""

    def __init__(self, cluster_id: str) -> None:
        self.cluster_id = cluster_id
        # LUs that other hosts of the cluster map, by host name.
        self.remote_in_use: dict[str, set[str]] = {}
        self.announced_in_use: set[str] | None = None

    def next_udid(self, taken: set[str]) -> str:
        """A UDID no host of the cluster has used (hosts allocate independently)."""
        while True:
            udid = f"27{self.cluster_id[2:34]}{secrets.token_hex(3)}"
            if udid not in taken:
                return udid


def seed(emu: Emulator, inv: dict[str, Any]) -> None:
    spec = inv.get("shared_storage_pool")
    if not spec:
        return
    # Pool disks: the inventory's PVs whose udid_seed is listed under disks.
    pv_els: list[etree._Element] = []
    for seed_name in spec.get("disks", []):
        udid = storage.pv_udid(seed_name)
        for v in emu.store.list("VirtualIOServer"):
            for p in slots.items(v.elem, "PhysicalVolumes", "PhysicalVolume"):
                if p.findtext(x.q("UniqueDeviceID")) == udid:
                    pv_els.append(p)
                    break
            else:
                continue
            break
    create_pool(
        emu,
        spec.get("cluster", "cluster-1"),
        spec.get("pool", "ssp-1"),
        spec.get("tier", "SYSTEM"),
        pv_els[0] if pv_els else None,
        pv_els,
        # SSP is a VIOS feature: a NovaLink partition hosting I/O is no node.
        [v for v in emu.store.list("VirtualIOServer") if not vios.is_management_io(v)],
        float(spec.get("size_gb", 1024)),
    )


def create_pool(
    emu: Emulator,
    cname: str,
    pname: str,
    tier_name: str,
    repo_pv: etree._Element | None,
    pv_els: list[etree._Element],
    node_vioses: list[Resource],
    size_gb: float,
) -> Resource:
    """Cluster, SharedStoragePool and default Tier, as the inventory or the
    ClusterCreate job describe them. UUIDs follow the names, so hosts whose
    inventories name the same cluster see the same objects."""
    cluster_uuid = str(uuidlib.uuid5(uuidlib.NAMESPACE_DNS, f"cluster/{cname}"))
    ssp_uuid = str(uuidlib.uuid5(uuidlib.NAMESPACE_DNS, f"ssp/{pname}"))
    tier_uuid = str(uuidlib.uuid5(uuidlib.NAMESPACE_DNS, f"tier/{pname}/{tier_name}"))
    cluster_id = "22" + _hex(cname, 32)
    # Cluster
    cl = x.container("Cluster")
    x.set_atom(cl, cluster_uuid)
    x.sub(cl, "ClusterName", cname, kb="COR")
    x.sub(cl, "ClusterID", cluster_id, kb="CUD")
    repo = x.sub(cl, "RepositoryDisk", None, kb="CUD")
    if repo_pv is not None:
        repo.append(x.deep(repo_pv))
    x.link(cl, "ClusterSharedStoragePool", f"{emu.base}/rest/api/uom/SharedStoragePool/{ssp_uuid}")
    nodes = x.sub(cl, "Node", None, kb="CUD")
    assert emu.ms is not None
    mtms = emu.ms.elem.find(x.q("MachineTypeModelAndSerialNumber"))
    for v in node_vioses:
        node = x.sub_container(nodes, "Node")
        x.sub(node, "HostName", f"{partition.name_of(v.elem)}.emulated", kb="CUD")
        x.sub(node, "PartitionID", v.field("PartitionID"), kb="CUD")
        if mtms is not None:
            node.append(x.deep(mtms))
        x.sub(node, "VirtualIOServerLevel", "3.1.3.00", kb="CUD")
        # Under the ManagedSystem, as the real server links it: clients such as
        # nova-powervm pick this host's nodes by that root UUID.
        x.link(node, "VirtualIOServer", emu.base + v.ms_path)
        x.sub(node, "State", "Up")
    cluster = Resource("Cluster", cluster_uuid, cl)
    emu.store.add(cluster)
    # SharedStoragePool
    sp = x.container("SharedStoragePool")
    x.set_atom(sp, ssp_uuid)
    x.sub(sp, "LogicalUnits", None, kb="CUD")
    x.sub(sp, "MultiDataTierConfigured", "false", kb="CUD")
    x.sub(sp, "MultiFailureGroupConfigured", "false", kb="CUD")
    pvs = x.sub(sp, "PhysicalVolumes", None, kb="CUR")
    for p in pv_els:
        pvs.append(x.deep(p))
    x.sub(sp, "Capacity", storage.gb(size_gb), kb="CUR")
    x.sub(sp, "FreeSpace", storage.gb(size_gb), kb="CUR")
    x.sub(sp, "OverCommitSpace", "0", kb="CUR")
    x.sub(sp, "TotalLogicalUnitSize", "0", kb="CUR")
    x.sub(sp, "AlertThreshold", "35%", kb="CUD")
    x.sub(sp, "StoragePoolName", pname, kb="CUR")
    x.sub(sp, "UniqueDeviceID", "24" + cluster_id[2:34] + "00000000")
    ssp = Resource("SharedStoragePool", ssp_uuid, sp)
    ssp.ext["pool"] = Pool(cluster_id)
    emu.store.add(ssp)
    # Tier (default)
    t = x.container("Tier")
    x.set_atom(t, tier_uuid)
    x.sub(t, "Name", tier_name, kb="CUR")
    x.sub(t, "UniqueDeviceID", "25" + _hex(tier_uuid, 38))
    x.sub(t, "Type", "UnrestrictedSystemTier", kb="CUD")
    x.sub(t, "IsDefault", "true", kb="CUD")
    x.sub(t, "Capacity", storage.gb(size_gb))
    x.sub(t, "MirrorState", "NotMirrored")
    x.link(
        t,
        "AssociatedSharedStoragePool",
        f"{emu.base}/rest/api/uom/Cluster/{cluster_uuid}/SharedStoragePool/{ssp_uuid}",
    )
    emu.store.add(Resource("Tier", tier_uuid, t, parent=ssp))
    return cluster


def _udid(lu: Resource) -> str:
    return lu.field("UniqueDeviceID", "") or ""


def _ssp_of_tier(tier: Resource) -> Resource:
    assert tier.parent is not None
    return tier.parent


def _lus(emu: Emulator, ssp: Resource) -> list[Resource]:
    tiers = emu.store.list("Tier", parent=ssp)
    return [lu for t in tiers for lu in emu.store.list("LogicalUnit", parent=t)]


def _local_in_use(emu: Emulator) -> set[str]:
    """UDIDs of the LUs this host's VIOSes map."""
    out = set()
    for v in emu.store.list("VirtualIOServer"):
        for m in slots.mappings(v.elem):
            key = slots.storage_key(m.find(x.q("Storage")))
            if key is not None and key[0] == "LogicalUnit":
                out.add(key[1])
    return out


def _mapped_on(emu: Emulator, udid: str) -> str | None:
    """Which host maps the LU: this one or, as its peers last said, another
    host of the cluster (None: nobody)."""
    if udid in _local_in_use(emu):
        return _host_name(emu)
    for ssp in emu.store.list("SharedStoragePool"):
        for host, used in ssp.ext["pool"].remote_in_use.items():
            if udid in used:
                return host
    return None


def _in_use(emu: Emulator, udid: str) -> bool:
    return _mapped_on(emu, udid) is not None


def refresh_pool(emu: Emulator, ssp: Resource) -> None:
    """Recompute pool space and the LogicalUnits list from the LU objects."""
    lus = _lus(emu, ssp)
    cap = float(ssp.field("Capacity", "0") or 0)
    thick = sum(
        float(lu.field("UnitCapacity", "0") or 0) for lu in lus if lu.field("ThinDevice") != "true"
    )
    thin = sum(
        float(lu.field("UnitCapacity", "0") or 0) for lu in lus if lu.field("ThinDevice") == "true"
    )
    # Thin LUs use a little real space (metadata + written blocks).
    used = thick + 0.01 * thin
    schema.set_field(ssp.elem, "FreeSpace", storage.gb(max(cap - used, 0)), kb="CUR")
    schema.set_field(ssp.elem, "TotalLogicalUnitSize", storage.gb(thick + thin), kb="CUR")
    schema.set_field(ssp.elem, "OverCommitSpace", storage.gb(max(thick + thin - cap, 0)), kb="CUR")
    container = ssp.elem.find(x.q("LogicalUnits"))
    for c in list(container):
        container.remove(c)
    for lu in lus:
        schema.set_field(lu.elem, "InUse", "true" if _in_use(emu, _udid(lu)) else "false")
        el = x.deep(lu.elem)
        md = el.find(x.q("Metadata"))
        if md is not None:
            el.remove(md)
        el.insert(0, etree.Element(x.q("Metadata")))
        etree.SubElement(el[0], x.q("Atom"))
        el.tag = x.q("LogicalUnit")
        container.append(el)
    ssp.bump()


def _lu_create(emu: Emulator, parent: Resource | None, el: etree._Element) -> Resource:
    assert parent is not None
    ssp = _ssp_of_tier(parent)
    pool: Pool = ssp.ext["pool"]
    name = el.findtext(x.q("UnitName")) or ""
    if not name:
        raise errors.bad_request("LogicalUnit needs a UnitName")
    try:
        cap = float(el.findtext(x.q("UnitCapacity")) or 0)
    except ValueError as exc:
        raise errors.bad_request("LogicalUnit UnitCapacity must be a number of GB") from exc
    if cap <= 0:
        raise errors.bad_request(f"LogicalUnit {name!r} needs a UnitCapacity > 0 GB")
    lu_type = el.findtext(x.q("LogicalUnitType")) or "VirtualIO_Disk"
    if lu_type not in ("VirtualIO_Disk", "VirtualIO_Image"):
        raise errors.bad_request(
            f"LogicalUnitType {lu_type!r} is not valid; use VirtualIO_Disk or VirtualIO_Image"
        )
    thin = (el.findtext(x.q("ThinDevice")) or "true") == "true"
    src_udid = el.findtext(x.q("ClonedFrom"))
    if src_udid:
        src = next((lu for lu in _lus(emu, ssp) if _udid(lu) == src_udid), None)
        if src is None:
            raise errors.bad_request(
                f"LogicalUnit {name!r}: ClonedFrom {src_udid} is not a logical unit in pool "
                f"{ssp.field('StoragePoolName')!r}"
            )
        if cap < float(src.field("UnitCapacity", "0") or 0):
            raise errors.bad_request(
                f"LogicalUnit {name!r}: a linked clone must be at least as big as its source "
                f"({src.field('UnitCapacity')} GB)"
            )
    free = float(ssp.field("FreeSpace", "0") or 0)
    if not thin and cap > free:
        raise errors.refused(
            f"Shared storage pool {ssp.field('StoragePoolName')!r} has {free} GB free; "
            f"cannot create a {cap} GB thick logical unit",
            errors.NO_SPACE,
        )
    udid = pool.next_udid({_udid(lu) for lu in _lus(emu, ssp)})
    out = x.container("LogicalUnit")
    x.sub(out, "ThinDevice", "true" if thin else "false", kb="CUR")
    x.sub(out, "UniqueDeviceID", udid)
    x.sub(out, "UnitCapacity", storage.gb(cap), kb="COR")
    x.sub(out, "LogicalUnitType", lu_type, kb="COD")
    if src_udid:
        x.sub(out, "ClonedFrom", src_udid, kb="COD")
    x.sub(out, "InUse", "false")
    x.sub(out, "UnitName", name, kb="CUR")
    lu_uuid = str(uuidlib.uuid5(uuidlib.NAMESPACE_URL, udid))
    x.set_atom(out, lu_uuid)
    res = Resource("LogicalUnit", lu_uuid, out, parent=parent, rootable=False)
    if src_udid and src_udid in emu.uploads:
        # A linked clone reads its source until written: share the source's data.
        emu.uploads[udid] = {**emu.uploads[src_udid], "clone_of": src_udid}
    emu.store.add(res)
    refresh_pool(emu, ssp)
    _announce(emu, ssp, added=[res])
    return res


def _lu_delete(emu: Emulator, res: Resource) -> None:
    host = _mapped_on(emu, _udid(res))
    if host is not None:
        raise errors.refused(
            f"LogicalUnit {res.field('UnitName')!r} ({_udid(res)}) is mapped to a client "
            f"on {host}; remove its vSCSI mapping first",
            errors.IN_USE,
        )
    for other in emu.store.list("LogicalUnit"):
        if other is not res and other.field("ClonedFrom") == _udid(res):
            raise errors.refused(
                f"LogicalUnit {res.field('UnitName')!r} is the source of linked clone "
                f"{other.field('UnitName')!r}; delete the clone first",
                errors.IN_USE,
            )


def _lu_deleted(emu: Emulator, res: Resource) -> None:
    assert res.parent is not None
    emu.store.remove(res)
    ssp = _ssp_of_tier(res.parent)
    refresh_pool(emu, ssp)
    _announce(emu, ssp, deleted=[_udid(res)])


def _ssp_update(emu: Emulator, res: Resource, new: etree._Element) -> None:
    """SSP POST: the client may drop LUs (rm_ssp_storage) or add new ones."""
    tier = next(iter(emu.store.list("Tier", parent=res)), None)
    assert tier is not None
    wanted = {lu.findtext(x.q("UniqueDeviceID")) for lu in new.iter(x.q("LogicalUnit"))}
    current = _lus(emu, res)
    for lu in current:
        if _udid(lu) not in wanted:
            _lu_delete(emu, lu)
    gone = [lu for lu in current if _udid(lu) not in wanted]
    for lu in gone:
        emu.store.remove(lu)
    if gone:
        _announce(emu, res, deleted=[_udid(lu) for lu in gone])
    for lu_el in new.iter(x.q("LogicalUnit")):
        if not lu_el.findtext(x.q("UniqueDeviceID")):
            _lu_create(emu, tier, lu_el)
    keep = res.elem
    for tag in ("AlertThreshold",):
        v = new.findtext(x.q(tag))
        if v is not None:
            schema.set_field(keep, tag, v, kb="CUD")
    refresh_pool(emu, res)


# ---- jobs ------------------------------------------------------------------------------------
def _job_xml(job: Job, name: str, kind: str) -> etree._Element:
    raw = job.params.get(name)
    if not raw:
        raise errors.JobFailure(f"Job parameter {name} (the {kind} XML) is missing")
    try:
        el = x.parse(raw)
    except etree.XMLSyntaxError as exc:
        raise errors.JobFailure(f"Job parameter {name} is not well-formed XML: {exc}") from exc
    if el.tag != x.q(kind):
        raise errors.JobFailure(f"Job parameter {name} must hold a {kind}, not {x.local(el)}")
    return el


def _node_vios(emu: Emulator, node: etree._Element) -> Resource:
    link = node.find(x.q("VirtualIOServer"))
    if link is not None and link.get("href"):
        uuid = link.get("href", "").split("?")[0].rstrip("/").rsplit("/", 1)[-1]
        found = emu.store.find("VirtualIOServer", uuid)
        if found is not None:
            return found
    pid = node.findtext(x.q("PartitionID"))
    for v in emu.store.list("VirtualIOServer"):
        if pid and v.field("PartitionID") == pid:
            return v
    raise errors.JobFailure(
        f"The cluster node ({node.findtext(x.q('HostName')) or pid or 'unnamed'}) is not a "
        "Virtual I/O Server of this system"
    )


def _pv_on(v: Resource, want: etree._Element) -> etree._Element:
    udid, name = want.findtext(x.q("UniqueDeviceID")), want.findtext(x.q("VolumeName"))
    for p in slots.items(v.elem, "PhysicalVolumes", "PhysicalVolume"):
        if (udid and p.findtext(x.q("UniqueDeviceID")) == udid) or (
            not udid and name and p.findtext(x.q("VolumeName")) == name
        ):
            return p
    raise errors.JobFailure(
        f"Physical volume {name or udid} is not visible on VIOS {partition.name_of(v.elem)!r}"
    )


def _pv_user(emu: Emulator, udid: str) -> str | None:
    """What already uses a physical volume (a volume group or a client mapping)."""
    for vg in emu.store.list("VolumeGroup"):
        for p in slots.items(vg.elem, "PhysicalVolumes", "PhysicalVolume"):
            if p.findtext(x.q("UniqueDeviceID")) == udid:
                return f"volume group {vg.field('GroupName')!r}"
    for v in emu.store.list("VirtualIOServer"):
        for m in slots.mappings(v.elem):
            if slots.storage_key(m.find(x.q("Storage"))) == ("PhysicalVolume", udid):
                return f"a client mapping on VIOS {partition.name_of(v.elem)!r}"
    return None


def cluster_create(emu: Emulator, job: Job) -> dict[str, str]:
    """Cluster/do/Create (pypowervm cluster_ssp.crt_cluster_ssp): a one-node
    cluster and its pool from a repository disk and data disks the node sees."""
    cl = _job_xml(job, "clusterXml", "Cluster")
    sp = _job_xml(job, "sspXml", "SharedStoragePool")
    cname = (cl.findtext(x.q("ClusterName")) or "").strip()
    pname = (sp.findtext(x.q("StoragePoolName")) or "").strip()
    if not cname or not pname:
        raise errors.JobFailure("A cluster needs a ClusterName and its pool a StoragePoolName")
    nodes = list(cl.iter(x.q("Node")))
    nodes = [n for n in nodes if n.find(x.q("Node")) is None]
    if len(nodes) != 1:
        raise errors.JobFailure("A cluster is created with exactly one node; add others later")
    repo_req = cl.find(f"{x.q('RepositoryDisk')}/{x.q('PhysicalVolume')}")
    if repo_req is None:
        raise errors.JobFailure("The cluster needs a RepositoryDisk")
    data_req = list(sp.iter(x.q("PhysicalVolume")))
    if not data_req:
        raise errors.JobFailure(f"Pool {pname!r} needs at least one physical volume")
    with emu.lock:
        v = _node_vios(emu, nodes[0])
        if vios.is_management_io(v):
            raise errors.JobFailure(
                f"{partition.name_of(v.elem)!r} is the NovaLink partition; shared storage pool "
                "nodes are Virtual I/O Servers"
            )
        for other in emu.store.list("Cluster"):
            members = {
                n.find(x.q("VirtualIOServer")).get("href", "").rsplit("/", 1)[-1].upper()
                for n in other.elem.iter(x.q("Node"))
                if n.find(x.q("VirtualIOServer")) is not None
            }
            if v.uuid.upper() in members:
                raise errors.JobFailure(
                    f"VIOS {partition.name_of(v.elem)!r} is already a node of cluster "
                    f"{other.field('ClusterName')!r}; a VIOS belongs to one cluster"
                )
        repo = _pv_on(v, repo_req)
        data = [_pv_on(v, p) for p in data_req]
        udids = [p.findtext(x.q("UniqueDeviceID")) or "" for p in data]
        repo_udid = repo.findtext(x.q("UniqueDeviceID")) or ""
        if repo_udid in udids:
            raise errors.JobFailure(
                f"{repo.findtext(x.q('VolumeName'))} cannot be both the repository disk and a "
                "pool disk"
            )
        for p in [repo, *data]:
            user = _pv_user(emu, p.findtext(x.q("UniqueDeviceID")) or "")
            if user is not None:
                raise errors.JobFailure(
                    f"Physical volume {p.findtext(x.q('VolumeName'))} is in use by {user}"
                )
        size_gb = sum(int(p.findtext(x.q("VolumeCapacity")) or 0) for p in data) / 1024
        cluster = create_pool(emu, cname, pname, "SYSTEM", repo, data, [v], size_gb)
    for kind in ("Cluster", "SharedStoragePool", "Tier"):
        for res in emu.store.list(kind):
            if kind != "Cluster" or res is cluster:
                emu.publish("ADD_URI", res)
    for name, peer in peers.all_peers(emu).items():
        _sync_with(emu, name, peer)  # peers already in a cluster of that name share it now
    return {}


def lu_linked_clone(emu: Emulator, job: Job) -> dict[str, str]:
    """Cluster/{uuid}/do/LULinkedClone: make an existing disk LU a linked
    clone of another LU (the older way, before ClonedFrom on create)."""
    src_udid, dst_udid = job.params.get("SourceUDID"), job.params.get("DestinationUDID")
    if not src_udid or not dst_udid:
        raise errors.JobFailure("LULinkedClone needs SourceUDID and DestinationUDID")
    with emu.lock:
        ssp = next(iter(emu.store.list("SharedStoragePool")), None)
        lus = {_udid(lu): lu for lu in _lus(emu, ssp)} if ssp is not None else {}
        src, dst = lus.get(src_udid), lus.get(dst_udid)
        for udid, lu in ((src_udid, src), (dst_udid, dst)):
            if lu is None:
                raise errors.JobFailure(f"No logical unit {udid} in the cluster's pool")
        assert src is not None and dst is not None and ssp is not None
        if dst.field("ClonedFrom"):
            raise errors.JobFailure(
                f"Logical unit {dst.field('UnitName')!r} is already a clone of "
                f"{dst.field('ClonedFrom')}"
            )
        if float(dst.field("UnitCapacity", "0") or 0) < float(src.field("UnitCapacity", "0") or 0):
            raise errors.JobFailure(
                f"Logical unit {dst.field('UnitName')!r} is smaller than its source "
                f"{src.field('UnitName')!r}"
            )
        if _in_use(emu, dst_udid):
            raise errors.JobFailure(
                f"Logical unit {dst.field('UnitName')!r} is mapped; clone into an unmapped LU"
            )
        schema.set_field(dst.elem, "ClonedFrom", src_udid, kb="COD")
        if src_udid in emu.uploads:
            emu.uploads[dst_udid] = {**emu.uploads[src_udid], "clone_of": src_udid}
        dst.bump()
        refresh_pool(emu, ssp)
        _announce(emu, ssp, updated=[dst])
    emu.publish("MODIFY_URI", dst, "Other")
    return {}


def grow_logical_unit(emu: Emulator, job: Job) -> dict[str, str]:
    """Cluster/{uuid}/do/GrowLogicalUnit (``lu -resize``): a logical unit grows
    in place, for every host of the cluster. Parameters as IBM documents the
    job (LogicalUnitUDID, Capacity); Capacity in GB is a *guess* (the
    documentation gives no unit; CreateLogicalUnit's LUSize is GB)."""
    udid = job.params.get("LogicalUnitUDID") or ""
    raw = job.params.get("Capacity") or ""
    if not udid or not raw:
        raise errors.JobFailure("GrowLogicalUnit needs LogicalUnitUDID and Capacity")
    try:
        cap = float(raw)
    except ValueError as exc:
        raise errors.JobFailure(f"Capacity {raw!r} is not a number of GB") from exc
    with emu.lock:
        ssp = next(iter(emu.store.list("SharedStoragePool")), None)
        lu = next((lu for lu in _lus(emu, ssp) if _udid(lu) == udid), None) if ssp else None
        if lu is None or ssp is None:
            raise errors.JobFailure(f"No logical unit {udid} in the cluster's pool")
        who = f"Logical unit {lu.field('UnitName')!r} ({udid})"
        old = float(lu.field("UnitCapacity", "0") or 0)
        if cap <= old:
            raise errors.JobFailure(f"{who} is {old:g} GB: it can only grow (asked for {cap:g} GB)")
        free = float(ssp.field("FreeSpace", "0") or 0)
        if lu.field("ThinDevice") != "true" and cap - old > free:
            raise errors.JobFailure(
                f"Shared storage pool {ssp.field('StoragePoolName')!r} has {free:g} GB free; "
                f"{who} cannot grow by {cap - old:g} GB",
                errors.NO_SPACE,
            )
        schema.set_field(lu.elem, "UnitCapacity", storage.gb(cap), kb="COR")
        lu.bump()
        refresh_pool(emu, ssp)
        _announce(emu, ssp, updated=[lu])
    emu.publish("MODIFY_URI", lu, "Other")
    return {"LogicalUnitUDID": udid, "Capacity": storage.gb(cap)}


# ---- the pool shared with peer hosts ----------------------------------------------------------
def _host_name(emu: Emulator) -> str:
    assert emu.ms is not None
    return emu.ms.field("SystemName", "") or ""


def _lu_record(lu: Resource) -> dict[str, str]:
    assert lu.parent is not None
    return {"tier": lu.parent.uuid, "uuid": lu.uuid, "xml": x.tostring(lu.elem).decode()}


def _cluster_of(emu: Emulator, cluster_id: str) -> Resource | None:
    return next((c for c in emu.store.list("Cluster") if c.field("ClusterID") == cluster_id), None)


def _local_nodes(emu: Emulator, cluster_id: str) -> list[str]:
    """This host's nodes of the cluster as another host shows them: without the
    VirtualIOServer link, which the real server sets only for its own VIOSes."""
    cluster = _cluster_of(emu, cluster_id)
    out = []
    for node in _nodes(cluster):
        link = node.find(x.q("VirtualIOServer"))
        if link is not None:
            copy = x.deep(node)
            copy.remove(copy.find(x.q("VirtualIOServer")))
            out.append(x.tostring(copy).decode())
    return out


def _nodes(cluster: Resource | None) -> list[etree._Element]:
    if cluster is None:
        return []
    return [n for n in cluster.elem.iter(x.q("Node")) if n.find(x.q("Node")) is None]


def _take_nodes(emu: Emulator, cluster_id: str, mtms: str, xmls: list[str]) -> None:
    """Show a peer host's nodes (identified by its MTMS) in this host's Cluster."""
    cluster = _cluster_of(emu, cluster_id)
    container = cluster.elem.find(x.q("Node")) if cluster is not None else None
    if cluster is None or container is None or not mtms:
        return
    theirs = [
        n
        for n in _nodes(cluster)
        if system.mtms_of(n) == mtms and n.find(x.q("VirtualIOServer")) is None
    ]
    new = [x.parse(xml) for xml in xmls]
    if [x.tostring(n) for n in theirs] == [x.tostring(n) for n in new]:
        return
    for n in theirs:
        container.remove(n)
    container.extend(new)
    cluster.bump()
    emu.publish("MODIFY_URI", cluster, "Other")


def _message(emu: Emulator, ssp: Resource, **extra: Any) -> dict[str, Any]:
    cluster_id = ssp.ext["pool"].cluster_id
    return {
        "cluster_id": cluster_id,
        "host": _host_name(emu),
        "url": emu.base,
        "mtms": system.mtms_of(emu.ms.elem if emu.ms is not None else None),
        "nodes": _local_nodes(emu, cluster_id),
        "in_use": sorted(_local_in_use(emu)),
        **extra,
    }


def _announce(
    emu: Emulator,
    ssp: Resource,
    added: list[Resource] | None = None,
    deleted: list[str] | None = None,
    updated: list[Resource] | None = None,
) -> None:
    """Tell every peer about LUs this host created or deleted and what it maps."""
    pool: Pool = ssp.ext["pool"]
    pool.announced_in_use = _local_in_use(emu)
    msg = _message(
        emu,
        ssp,
        added=[_lu_record(lu) for lu in added or []],
        deleted=list(deleted or []),
        updated=[_lu_record(lu) for lu in updated or []],
        sync=False,
    )
    for peer in peers.all_peers(emu).values():
        peers.notify(emu, peer, "/ssp/replicate", msg)


def _announce_in_use(emu: Emulator) -> None:
    """After a mapping change: tell peers if the set of LUs mapped here changed."""
    for ssp in emu.store.list("SharedStoragePool"):
        if _local_in_use(emu) != ssp.ext["pool"].announced_in_use:
            _announce(emu, ssp)


def _sync_with(emu: Emulator, _name: str, peer: dict[str, str]) -> None:
    """A new peer: send it every LU here; its answer brings every LU there."""
    for ssp in emu.store.list("SharedStoragePool"):
        msg = _message(emu, ssp, added=[_lu_record(lu) for lu in _lus(emu, ssp)], sync=True)
        peers.notify(emu, peer, "/ssp/replicate", msg, lambda reply: _apply(emu, reply))


def _apply(emu: Emulator, msg: dict[str, Any]) -> dict[str, Any]:
    """Take another host's LU changes (under the emulator's lock)."""
    ssp = next(
        (
            s
            for s in emu.store.list("SharedStoragePool")
            if s.ext["pool"].cluster_id == msg.get("cluster_id")
        ),
        None,
    )
    if ssp is None:
        raise ValueError(
            f"this host is not a member of cluster {msg.get('cluster_id')}; "
            "its shared storage pool is not shared with the sender"
        )
    pool: Pool = ssp.ext["pool"]
    pool.remote_in_use[str(msg.get("host"))] = set(msg.get("in_use") or [])
    _take_nodes(emu, pool.cluster_id, str(msg.get("mtms") or ""), list(msg.get("nodes") or []))
    tiers = {t.uuid: t for t in emu.store.list("Tier", parent=ssp)}
    have = {_udid(lu): lu for lu in _lus(emu, ssp)}
    for rec in msg.get("added") or []:
        el = x.parse(rec["xml"])
        udid = el.findtext(x.q("UniqueDeviceID")) or ""
        if udid in have:
            continue
        tier = tiers.get(rec["tier"]) or next(iter(tiers.values()))
        lu = Resource("LogicalUnit", rec["uuid"], el, parent=tier, rootable=False)
        emu.store.add(lu)
        have[udid] = lu
        emu.publish("ADD_URI", lu)
    for rec in msg.get("updated") or []:
        el = x.parse(rec["xml"])
        lu = have.get(el.findtext(x.q("UniqueDeviceID")) or "")
        if lu is not None:
            lu.elem = el
            lu.bump()
            emu.publish("MODIFY_URI", lu, "Other")
    for udid in msg.get("deleted") or []:
        lu = have.pop(udid, None)
        if lu is not None:
            emu.store.remove(lu)
            emu.publish("DELETE_URI", lu)
    refresh_pool(emu, ssp)
    emu.publish("MODIFY_URI", ssp, "Other")
    url = str(msg.get("url") or "")
    host = str(msg.get("host") or "")
    if host and url.startswith("http://") and peers.find(emu, host) is None:
        # The sender knows this host; let it hear back (an https sender must be
        # registered here by hand, with its CA certificate).
        peers.all_peers(emu)[host] = {"url": url, "ca_file": ""}
    if msg.get("sync"):
        return _message(emu, ssp, added=[_lu_record(lu) for lu in _lus(emu, ssp)], sync=False)
    return {"in_use": sorted(_local_in_use(emu))}


def register(emu: Emulator) -> None:
    emu.register(Kind("Cluster"))
    emu.register(Kind("SharedStoragePool", update=_ssp_update))
    emu.register(Kind("Tier", parents=("SharedStoragePool",)))

    def delete(e: Emulator, res: Resource) -> None:
        _lu_delete(e, res)

    kind = Kind("LogicalUnit", rootable=False, parents=("Tier",), create=_lu_create, delete=delete)
    kind.after_delete.append(_lu_deleted)
    emu.register(kind)
    emu.seed_hooks.append(seed)

    def after_vios_update(e: Emulator, _vios: Resource) -> None:
        for s in e.store.list("SharedStoragePool"):
            refresh_pool(e, s)
        _announce_in_use(e)

    vios.add_after_update(emu, after_vios_update)
    peers.on_added(emu, _sync_with)
    emu.jobs.register("Cluster", "Create", lambda j: cluster_create(emu, j), collection=True)
    emu.jobs.register("Cluster", "LULinkedClone", lambda j: lu_linked_clone(emu, j))
    emu.jobs.register("Cluster", "GrowLogicalUnit", lambda j: grow_logical_unit(emu, j))
    emu.control_routes["/ssp/replicate"] = lambda body: (200, _apply(emu, body))
