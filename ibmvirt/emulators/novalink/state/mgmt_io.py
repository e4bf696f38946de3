"""The NovaLink management partition as an I/O server: File I/O and RBD
storage mapped over vSCSI, and the ``RBDExists`` job.

A NovaLink partition that hosts I/O itself is listed by the REST server among
the VirtualIOServers (pypowervm's ``fake_vios_hosting_vios_feed.txt``) and is
the only partition that maps files (Cinder ``local``/``nfs``/``gpfs`` volumes,
pypowervm ``storage.FileIO``) and Ceph RBD images (``storage.RBD``) to client
partitions: nova-powervm mapped these only through
``partition.get_mgmt_partition(adapter)``. The inventory
(``management_partition.io_server``, ``files``, ``rbd_images``) or the control
endpoint (``/_emulator/management-files``, ``/_emulator/rbd-images``) says
which files and images exist; mapping anything else fails, as the real server
fails when the backing file or image is missing.
"""

from __future__ import annotations

import uuid as uuidlib
from typing import Any

from lxml import etree

from ibmvirt.emulators.novalink import errors, inventory
from ibmvirt.emulators.novalink import xmlutil as x
from ibmvirt.emulators.novalink.emulator import Emulator
from ibmvirt.emulators.novalink.jobs import Job
from ibmvirt.emulators.novalink.state import partition, storage, vios
from ibmvirt.emulators.novalink.store import Resource

FILE = "File"  # VirtualDiskType of storage.FileIO
RBD = "RBD"  # VirtualDiskType of storage.RBD
# BackStoreType values pypowervm's BackStoreType documents for each type.
BACKSTORES = {FILE: ("fileio", "user:qcow", "loop"), RBD: ("user:rbd",)}
# Where the declared backing stores live (the partition's ext), by type.
_DECLARED = {FILE: "files", RBD: "rbd_images"}
_WHAT = {FILE: "File I/O", RBD: "RBD"}


def management_io(emu: Emulator) -> Resource | None:
    """The management partition when it is served as an I/O server, else None."""
    return next((v for v in emu.store.list("VirtualIOServer") if vios.is_management_io(v)), None)


def is_file_or_rbd(item: etree._Element) -> bool:
    """A mapping's storage element that names a file or an RBD image rather
    than a logical volume of a volume group."""
    return x.local(item) == "VirtualDisk" and item.findtext(x.q("VirtualDiskType")) in (FILE, RBD)


def _not_here(emu: Emulator, v: Resource | None) -> str:
    """Why ``v`` cannot serve File I/O or RBD, and where to go instead."""
    mgmt = management_io(emu)
    if mgmt is None or v is None:
        return (
            "this host's management partition is not an I/O server; start the emulator "
            "with management_partition.io_server: true in its inventory"
        )
    return (
        f"VIOS {partition.name_of(v.elem)!r} is not it; map through "
        f"{partition.name_of(mgmt.elem)!r} ({mgmt.uuid})"
    )


def resolve(emu: Emulator, v: Resource, item: etree._Element, who: str) -> etree._Element:
    """The server's element for a client's File I/O or RBD reference (or refuse)."""
    vdtype = item.findtext(x.q("VirtualDiskType")) or ""
    what = _WHAT[vdtype]
    name = (item.findtext(x.q("DiskName")) or item.findtext(x.q("DiskLabel")) or "").strip()
    if not vios.is_management_io(v):
        raise errors.bad_request(
            f"{who}: {what} storage {name!r} can be mapped only through the NovaLink "
            f"management partition serving as an I/O server; {_not_here(emu, v)}"
        )
    if not name:
        hint = "the file's absolute path" if vdtype == FILE else "pool/image"
        raise errors.bad_request(f"{who}: {what} storage needs a DiskName ({hint})")
    backstore = item.findtext(x.q("BackStoreType"))
    if backstore is not None and backstore not in BACKSTORES[vdtype]:
        raise errors.bad_request(
            f"{who}: BackStoreType {backstore!r} does not apply to {what} storage; use one "
            f"of {', '.join(BACKSTORES[vdtype])}"
        )
    if vdtype == FILE and not name.startswith("/"):
        raise errors.bad_request(
            f"{who}: File I/O path {name!r} is not absolute; give the file's full path on "
            "the management partition"
        )
    declared = v.ext.get(_DECLARED[vdtype], {})
    if name not in declared:
        mname = partition.name_of(v.elem)
        if vdtype == FILE:
            problem = f"file {name!r} does not exist on the management partition {mname!r}"
            fix = "management_partition.files or POST /_emulator/management-files"
        else:
            problem = f"RBD image {name!r} does not exist in the Ceph cluster {mname!r} reaches"
            fix = "management_partition.rbd_images or POST /_emulator/rbd-images"
        raise errors.refused(
            f"{who}: {problem}; create it (emulator: {fix}) before mapping it",
            errors.BACKING_NOT_FOUND,
        )
    return _disk_element(item, vdtype, name, declared[name])


def _disk_element(item: etree._Element, vdtype: str, name: str, size_gb: float) -> etree._Element:
    """The VirtualDisk a mapping shows for a file or image, in pypowervm's
    VDisk child order; label and name are the path (or pool/image) as in the
    captured File I/O mappings (scsi.resolve_storage adds the client's tag)."""
    out = etree.Element(x.q("VirtualDisk"), schemaVersion="V1_0")
    md = etree.SubElement(out, x.q("Metadata"))
    etree.SubElement(md, x.q("Atom"))
    x.sub(out, "DiskCapacity", storage.gb(size_gb), kb="CUR")
    x.sub(out, "DiskLabel", name, kb="CUR")
    x.sub(out, "DiskName", name, kb="CUR")
    # Name-based (version 3) UUIDs, as the captured File I/O disks carry.
    x.sub(out, "UniqueDeviceID", str(uuidlib.uuid3(uuidlib.NAMESPACE_URL, f"{vdtype}:{name}")))
    x.sub(out, "VirtualDiskType", vdtype, kb="CUD")
    for tag in ("BackStoreType", "RbdUser"):
        value = item.findtext(x.q(tag))
        if value is not None:
            x.sub(out, tag, value, kb="CUD")
    return out


def size_of_udid(emu: Emulator, v: Resource, udid: str) -> float | None:
    """The size now declared for the file or image a mapping's disk with this
    UDID names (None: not a file or image of this partition)."""
    if not vios.is_management_io(v):
        return None
    for vdtype in (FILE, RBD):
        for name, size in v.ext.get(_DECLARED[vdtype], {}).items():
            if str(uuidlib.uuid3(uuidlib.NAMESPACE_URL, f"{vdtype}:{name}")) == udid:
                return size
    return None


def rbd_exists(emu: Emulator, job: Job) -> dict[str, str]:
    """VirtualIOServer/{uuid}/do/RBDExists (pypowervm tasks.hdisk.rbd_exists):
    whether the named image (pool/image) exists, as the management partition
    sees the Ceph cluster."""
    v = job.target
    assert v is not None
    with emu.lock:
        if not vios.is_management_io(v):
            raise errors.JobFailure(
                "RBDExists runs on the NovaLink management partition serving as an I/O "
                f"server; {_not_here(emu, v)}",
                errors.UNSUPPORTED,
            )
        name = job.params.get("name", "").strip()
        if not name:
            raise errors.JobFailure(
                "RBDExists needs the parameter 'name' (pool/image)", errors.BAD_VALUE
            )
        return {"exists": "true" if name in v.ext.get(_DECLARED[RBD], {}) else "false"}


def declare(emu: Emulator, body: Any, vdtype: str) -> tuple[int, Any]:
    """Control route: a file or RBD image now exists for the management partition."""
    v = management_io(emu)
    if v is None:
        raise ValueError(_not_here(emu, None))
    ident = "path" if vdtype == FILE else "name"
    entry = inventory.backing_entry(body, ident, _DECLARED[vdtype])
    v.ext.setdefault(_DECLARED[vdtype], {})[entry[ident]] = entry["size_gb"]
    return 201, entry


def _seed(emu: Emulator, inv: dict[str, Any]) -> None:
    v = management_io(emu)
    if v is None:
        return
    spec = inv["management_partition"]
    v.ext[_DECLARED[FILE]] = {f["path"]: f["size_gb"] for f in spec.get("files", [])}
    v.ext[_DECLARED[RBD]] = {i["name"]: i["size_gb"] for i in spec.get("rbd_images", [])}


def register(emu: Emulator) -> None:
    emu.jobs.register("VirtualIOServer", "RBDExists", lambda j: rbd_exists(emu, j))
    emu.control_routes["/management-files"] = lambda body: declare(emu, body, FILE)
    emu.control_routes["/rbd-images"] = lambda body: declare(emu, body, RBD)
    emu.seed_hooks.append(_seed)
