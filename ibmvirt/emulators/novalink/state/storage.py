"""VIOS storage: physical volumes, volume groups with virtual disks and a
virtual media repository, File uploads (``web/File``) and vSCSI mappings.

Rules, as on the real server: virtual disks and media fit in the free space
of their volume group; names are unique; a disk, medium or volume that is
mapped cannot be removed; new vSCSI mappings get server-created server and
client adapters in free slots, device names (vhostN, vtscsiN, vtoptN) and
LUAs; adding an adapter to a running client needs its RMC connection.
"""

from __future__ import annotations

import base64
import hashlib
import math
import uuid as uuidlib
from typing import Any

from lxml import etree

from ibmvirt.emulators.novalink import atom, errors, schema
from ibmvirt.emulators.novalink import xmlutil as x
from ibmvirt.emulators.novalink.emulator import Emulator, Kind
from ibmvirt.emulators.novalink.state import lpar, vios
from ibmvirt.emulators.novalink.store import Resource

MB_PER_GB = 1024
FIRST_SERVER_SLOT = 11
FIRST_CLIENT_SLOT = 2
STORAGE_KINDS = ("VirtualDisk", "VirtualOpticalMedia", "PhysicalVolume", "LogicalUnit")
TARGET_DEV = {
    "VirtualDisk": ("LogicalVolumeVirtualTargetDevice", "vtscsi"),
    "VirtualOpticalMedia": ("VirtualOpticalTargetDevice", "vtopt"),
    "PhysicalVolume": ("PhysicalVolumeVirtualTargetDevice", "vtscsi"),
    "LogicalUnit": ("SharedStoragePoolLogicalUnitVirtualTargetDevice", "vtscsi"),
}


# ---- identifiers ------------------------------------------------------------------
def pv_udid(seed: str) -> str:
    """A physical-volume UDID (01M0lCT + base64), stable for a seed."""
    digest = hashlib.sha256(seed.encode()).hexdigest()[:32].upper()
    return "01M0lCT" + base64.b64encode(f"ibmvirt-{digest}".encode()).decode()


def _serial(seed: str) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()[:32]


def gb(value: float) -> str:
    """Sizes in GB as the server writes them (no trailing zeros)."""
    return f"{value:.4f}".rstrip("0").rstrip(".") or "0"


# ---- element builders -----------------------------------------------------------------
def pv_element(name: str, size_mb: int, udid: str, in_use: bool, fc: bool = False):
    el = etree.Element(x.q("PhysicalVolume"), schemaVersion="V1_0")
    md = etree.SubElement(el, x.q("Metadata"))
    etree.SubElement(md, x.q("Atom"))
    x.sub(el, "Description", "MPIO IBM 2076 FC Disk" if fc else "SAS Disk Drive", kb="CUD")
    x.sub(el, "LocationCode", f"U78C9.001.WZS0095-P1-C14-T1-L{abs(hash(udid)) % 10**6:06d}")
    x.sub(el, "ReservePolicy", "NoReserve", kb="CUD")
    x.sub(el, "ReservePolicyAlgorithm", "Failover", kb="CUD")
    x.sub(el, "UniqueDeviceID", udid)
    x.sub(el, "AvailableForUsage", "false" if in_use else "true", kb="CUD")
    x.sub(el, "VolumeCapacity", str(size_mb), kb="CUR")
    x.sub(el, "VolumeName", name, kb="CUR")
    x.sub(el, "VolumeState", "active")
    x.sub(el, "VolumeUniqueID", "391B" + _serial(udid)[:24])
    x.sub(el, "IsFibreChannelBacked", "true" if fc else "false")
    return el


def vg_element(name: str, pvs: list[etree._Element], serial: str) -> etree._Element:
    cap_gb = sum(int(p.findtext(x.q("VolumeCapacity"))) for p in pvs) / MB_PER_GB
    el = x.container("VolumeGroup")
    x.sub(el, "AvailableSize", gb(cap_gb))
    x.sub(el, "FreeSpace", gb(cap_gb))
    x.sub(el, "GroupCapacity", gb(cap_gb), kb="CUR")
    x.sub(el, "GroupName", name, kb="CUR")
    x.sub(el, "GroupSerialID", serial)
    x.sub(el, "MaximumLogicalVolumes", "1024")
    x.sub(el, "MediaRepositories", None, kb="CUD")
    pvs_el = x.sub(el, "PhysicalVolumes", None, kb="CUD")
    for p in pvs:
        pvs_el.append(x.deep(p))
    x.sub(el, "UniqueDeviceID", "0400" + serial)
    x.sub(el, "VirtualDisks", None, kb="CUD")
    return el


def vopt_element(name: str, size_gb: float, mount: str = "rw") -> etree._Element:
    el = etree.Element(x.q("VirtualOpticalMedia"), schemaVersion="V1_0")
    md = etree.SubElement(el, x.q("Metadata"))
    etree.SubElement(md, x.q("Atom"))
    x.sub(el, "MediaName", name, kb="CUR")
    x.sub(el, "MediaUDID", "0e" + name)
    x.sub(el, "MountType", mount, kb="CUD")
    x.sub(el, "Size", gb(size_gb), kb="CUR")
    return el


def repo_element(name: str, size_gb: float) -> etree._Element:
    el = etree.Element(x.q("VirtualMediaRepository"), schemaVersion="V1_0")
    md = etree.SubElement(el, x.q("Metadata"))
    etree.SubElement(md, x.q("Atom"))
    x.sub(el, "OpticalMedia", None, kb="CUD")
    x.sub(el, "RepositoryName", name, kb="CUR")
    x.sub(el, "RepositorySize", gb(size_gb), kb="CUR")
    return el


# ---- lookups ------------------------------------------------------------------------------
def vgs_of(emu: Emulator, v: Resource) -> list[Resource]:
    return emu.store.list("VolumeGroup", parent=v)


def vios_of(emu: Emulator, res: Resource) -> Resource:
    assert res.parent is not None
    return res.parent


def _items(el: etree._Element | None, container: str, item: str) -> list[etree._Element]:
    if el is None:
        return []
    c = el.find(x.q(container))
    return [] if c is None else c.findall(x.q(item))


def vdisks(vg: etree._Element) -> list[etree._Element]:
    return _items(vg, "VirtualDisks", "VirtualDisk")


def repo(vg: etree._Element) -> etree._Element | None:
    reps = _items(vg, "MediaRepositories", "VirtualMediaRepository")
    return reps[0] if reps else None


def vopts(vg: etree._Element) -> list[etree._Element]:
    r = repo(vg)
    return _items(r, "OpticalMedia", "VirtualOpticalMedia") if r is not None else []


def mappings(v: etree._Element) -> list[etree._Element]:
    return _items(v, "VirtualSCSIMappings", "VirtualSCSIMapping")


def storage_key(stg: etree._Element | None) -> tuple[str, str] | None:
    """Identity of a mapping's backing storage: (type, name-or-udid)."""
    if stg is None or not len(stg):
        return None
    item = stg[0]
    kind = x.local(item)
    if kind == "VirtualDisk":
        return kind, item.findtext(x.q("DiskName")) or item.findtext(x.q("UniqueDeviceID")) or ""
    if kind == "VirtualOpticalMedia":
        return kind, item.findtext(x.q("MediaName")) or ""
    if kind == "PhysicalVolume":
        return kind, item.findtext(x.q("VolumeName")) or item.findtext(x.q("UniqueDeviceID")) or ""
    if kind == "LogicalUnit":
        return kind, item.findtext(x.q("UniqueDeviceID")) or item.findtext(x.q("UnitName")) or ""
    return kind, ""


def mapped_storage(emu: Emulator) -> dict[tuple[str, str, str], int]:
    """(vios uuid, storage type, name) -> number of mappings, over all VIOSes."""
    out: dict[tuple[str, str, str], int] = {}
    for v in emu.store.list("VirtualIOServer"):
        for m in mappings(v.elem):
            key = storage_key(m.find(x.q("Storage")))
            if key:
                k = (v.uuid, *key)
                out[k] = out.get(k, 0) + 1
    return out


# ---- VolumeGroup kind -------------------------------------------------------------------
def _vg_capacity(el: etree._Element) -> float:
    return float(el.findtext(x.q("GroupCapacity")) or 0)


def _vg_used(el: etree._Element) -> float:
    used = sum(float(d.findtext(x.q("DiskCapacity")) or 0) for d in vdisks(el))
    r = repo(el)
    if r is not None:
        used += float(r.findtext(x.q("RepositorySize")) or 0)
    return used


def _refresh_free(el: etree._Element) -> None:
    free = max(_vg_capacity(el) - _vg_used(el), 0.0)
    schema.set_field(el, "FreeSpace", gb(free))
    schema.set_field(el, "AvailableSize", gb(free))


def _vg_update(emu: Emulator, res: Resource, new: etree._Element) -> None:
    old = res.elem
    v = vios_of(emu, res)
    vg_name = old.findtext(x.q("GroupName"))
    who = f"VolumeGroup {vg_name!r} on VIOS {lpar.name_of(v.elem)!r}"
    if new.findtext(x.q("GroupName")) != vg_name:
        raise errors.bad_request(f"{who}: renaming a volume group is not supported")
    # Server-owned parts the client cannot change.
    for tag in ("PhysicalVolumes", "UniqueDeviceID", "GroupSerialID", "GroupCapacity"):
        src = old.find(x.q(tag))
        dst = new.find(x.q(tag))
        if src is not None:
            if dst is not None:
                new.replace(dst, x.deep(src))
            else:
                schema.insert_ordered(new, x.deep(src))
    used_names = _lv_names(emu, v, exclude=res)
    mapped = mapped_storage(emu)
    # -- virtual disks
    old_disks = {d.findtext(x.q("DiskName")): d for d in vdisks(old)}
    new_disks = vdisks(new)
    seen: set[str] = set()
    serial = old.findtext(x.q("GroupSerialID")) or _serial(res.uuid)
    counter = res.ext.setdefault("next_lv", len(old_disks) + 1)
    for d in new_disks:
        name = d.findtext(x.q("DiskName")) or ""
        if not name:
            raise errors.bad_request(f"{who}: a VirtualDisk needs a DiskName")
        if name in seen or name in used_names:
            raise errors.bad_request(
                f"{who}: a logical volume named {name!r} already exists on this VIOS",
                errors.DUPLICATE_NAME,
            )
        seen.add(name)
        if len(name) > 15:
            raise errors.bad_request(
                f"{who}: logical volume name {name!r} is longer than 15 characters"
            )
        cap = float(d.findtext(x.q("DiskCapacity")) or 0)
        if cap <= 0:
            raise errors.bad_request(f"{who}: VirtualDisk {name!r} needs a DiskCapacity > 0 GB")
        prev = old_disks.get(name)
        if prev is not None:
            if cap < float(prev.findtext(x.q("DiskCapacity")) or 0):
                raise errors.bad_request(
                    f"{who}: VirtualDisk {name!r} cannot shrink; create a new disk instead"
                )
            for tag in ("UniqueDeviceID", "VolumeGroup"):
                src, dst = prev.find(x.q(tag)), d.find(x.q(tag))
                if src is not None and dst is None:
                    schema.insert_ordered(d, x.deep(src))
        else:
            if d.find(x.q("DiskLabel")) is None:
                schema.set_field(d, "DiskLabel", "None", kb="CUR")
            link = etree.Element(
                x.q("VolumeGroup"), kb="ROR", kxe="false", href=emu.base + res.path, rel="related"
            )
            schema.insert_ordered(d, link)
            schema.set_field(d, "UniqueDeviceID", f"0300{serial}.{counter}")
            counter += 1
    res.ext["next_lv"] = counter
    for name in set(old_disks) - seen:
        if mapped.get((v.uuid, "VirtualDisk", name)):
            raise errors.bad_request(
                f"{who}: VirtualDisk {name!r} is mapped to a client; remove its vSCSI mapping "
                "first",
                errors.IN_USE,
            )
    # -- media repository
    old_repo, new_repo = repo(old), repo(new)
    if old_repo is not None and new_repo is None:
        if vopts(old):
            raise errors.bad_request(
                f"{who}: the media repository still holds media; remove them first", errors.IN_USE
            )
    if new_repo is not None:
        if old_repo is None and any(repo(o.elem) is not None for o in vgs_of(emu, v)):
            raise errors.bad_request(
                f"{who}: VIOS {lpar.name_of(v.elem)!r} already has a media repository "
                "(one per VIOS)"
            )
        old_media = {m.findtext(x.q("MediaName")): m for m in vopts(old)}
        new_media = {m.findtext(x.q("MediaName")): m for m in vopts(new)}
        for name in set(old_media) - set(new_media):
            if mapped.get((v.uuid, "VirtualOpticalMedia", name)):
                raise errors.bad_request(
                    f"{who}: virtual optical media {name!r} is mapped to a client; remove its "
                    "vSCSI mapping first",
                    errors.IN_USE,
                )
        for name, m in new_media.items():
            if name not in old_media:
                # Blank media created by the client.
                if m.find(x.q("MediaUDID")) is None:
                    schema.set_field(m, "MediaUDID", "0e" + (name or ""))
            else:
                src, dst = old_media[name].find(x.q("Size")), m.find(x.q("Size"))
                if src is not None and dst is not None:
                    dst.text = src.text
    if _vg_used(new) > _vg_capacity(new) + 1e-6:
        raise errors.bad_request(
            f"{who}: not enough free space ({gb(_vg_capacity(old) - _vg_used(old))} GB free, "
            f"{gb(_vg_used(new) - _vg_used(old))} GB more requested)",
            errors.NO_SPACE,
        )
    _refresh_free(new)
    res.elem = new
    _sync_vios_storage(emu, v)


def _lv_names(emu: Emulator, v: Resource, exclude: Resource | None = None) -> set[str]:
    names: set[str] = set()
    for vg in vgs_of(emu, v):
        if vg is not exclude:
            names.update(d.findtext(x.q("DiskName")) or "" for d in vdisks(vg.elem))
    return names


def _sync_vios_storage(emu: Emulator, v: Resource) -> None:
    """Mirror the media repository into the VIOS ViosStorage section."""
    reps = vios.section(v.elem, "MediaRepositories")
    for c in list(reps):
        reps.remove(c)
    for vg in vgs_of(emu, v):
        r = repo(vg.elem)
        if r is not None:
            reps.append(x.deep(r))
    v.bump("ViosStorage")


# ---- seeding --------------------------------------------------------------------------------
def seed(emu: Emulator, inv: dict[str, Any]) -> None:
    for spec in inv["vioses"]:
        v = next(
            o for o in emu.store.list("VirtualIOServer") if lpar.name_of(o.elem) == spec["name"]
        )
        in_vg = {p for vg in spec.get("volume_groups", []) for p in vg.get("physical_volumes", [])}
        ssp_disks = set((inv.get("shared_storage_pool") or {}).get("disks", []))
        pv_section = vios.section(v.elem, "PhysicalVolumes")
        pvs: dict[str, etree._Element] = {}
        for p in spec.get("physical_volumes", []):
            seed_key = p.get("udid_seed") or f"{inv['host']['name']}/{spec['name']}/{p['name']}"
            el = pv_element(
                p["name"],
                int(p.get("size_gb", 100)) * MB_PER_GB,
                pv_udid(seed_key),
                in_use=p["name"] in in_vg or p.get("udid_seed") in ssp_disks,
                fc=bool(p.get("udid_seed")),
            )
            pvs[p["name"]] = el
            pv_section.append(el)
        for vg_spec in spec.get("volume_groups", []):
            members = []
            for n in vg_spec.get("physical_volumes", []):
                if n not in pvs:
                    raise ValueError(
                        f"volume group {vg_spec['name']!r} on {spec['name']} names unknown "
                        f"physical volume {n!r}; list it under physical_volumes"
                    )
                members.append(pvs[n])
            uuid = str(uuidlib.uuid5(uuidlib.NAMESPACE_DNS, f"{v.uuid}/{vg_spec['name']}"))
            el = vg_element(vg_spec["name"], members, _serial(uuid))
            mr = vg_spec.get("media_repository")
            if mr:
                el.find(x.q("MediaRepositories")).append(
                    repo_element(mr.get("name", "VMLibrary"), float(mr.get("size_gb", 10)))
                )
            _refresh_free(el)
            x.set_atom(el, uuid)
            emu.store.add(Resource("VolumeGroup", uuid, el, parent=v, rootable=False))
        _sync_vios_storage(emu, v)


# ---- web/File uploads ------------------------------------------------------------------------
class Upload:
    """One web/File: metadata, and what was received."""

    def __init__(self, el: etree._Element, file_uuid: str) -> None:
        self.el = el
        self.uuid = file_uuid
        self.received = 0
        self.sha256 = ""
        self.done = False


def _file_entry(emu: Emulator, up: Upload) -> etree._Element:
    def build(root: etree._Element) -> None:
        for c in up.el:
            if isinstance(c.tag, str) and x.local(c) != "Metadata":
                root.append(x.deep(c))

    e = atom.web_entry(
        "File", build, self_href=f"{emu.base}/rest/api/web/File/{up.uuid}", entry_id=up.uuid
    )
    root = e.find(x.q("content", x.ATOM_NS))[0]
    x.set_atom(root, up.uuid)
    return e


def _w(el: etree._Element, tag: str) -> str | None:
    return el.findtext(x.q(tag, x.WEB_NS))


def _wset(el: etree._Element, tag: str, value: str, after: str | None = None) -> None:
    c = el.find(x.q(tag, x.WEB_NS))
    if c is None:
        c = etree.Element(x.q(tag, x.WEB_NS), kb="ROR", kxe="false")
        anchor = el.find(x.q(after, x.WEB_NS)) if after else None
        if anchor is not None:
            anchor.addnext(c)
        else:
            el.append(c)
    c.text = value


def file_route(handler: Any, verb: str, segs: list[str], qs: dict[str, str], body: bytes) -> None:
    emu: Emulator = handler.emu
    files: dict[str, Upload] = emu.files
    if len(segs) == 1:
        if verb == "PUT":
            up = _create_file(emu, body)
            files[up.uuid] = up
            return handler.send_xml(200, _file_entry(emu, up))
        if verb == "GET":
            entries = [_file_entry(emu, u) for u in list(files.values())]
            if not entries:
                return handler.send(204)
            return handler.send_xml(200, atom.feed(f"{emu.base}/rest/api/web/File", entries))
    elif segs[1] == "contents" and len(segs) == 3:
        up = files.get(segs[2])
        if up is None:
            raise errors.not_found("File", segs[2])
        if verb in ("PUT", "POST"):
            _receive(emu, up, handler.read_stream())
            return handler.send(204)
    elif len(segs) == 2:
        up = files.get(segs[1])
        if up is None:
            raise errors.not_found("File", segs[1])
        if verb == "GET":
            return handler.send_xml(200, _file_entry(emu, up))
        if verb == "DELETE":
            files.pop(segs[1], None)
            return handler.send(204)
    raise errors.RestError(405, f"{verb} web/{'/'.join(segs)} is not supported")


def _create_file(emu: Emulator, body: bytes) -> Upload:
    try:
        el = x.parse(body)
    except etree.XMLSyntaxError as exc:
        raise errors.bad_request(f"File payload is not well-formed: {exc}") from exc
    if el.tag != x.q("File", x.WEB_NS):
        raise errors.bad_request(f"Expected a File element in the web namespace, got {el.tag}")
    name = _w(el, "Filename")
    ftype = _w(el, "FileEnumType")
    v_uuid = _w(el, "TargetVirtualIOServerUUID") or ""
    if not name:
        raise errors.bad_request("File needs a Filename")
    if ftype not in ("BROKERED_DISK_IMAGE", "BROKERED_MEDIA_ISO"):
        raise errors.bad_request(
            f"FileEnumType {ftype!r} is not supported; use BROKERED_DISK_IMAGE or "
            "BROKERED_MEDIA_ISO"
        )
    v = emu.store.find("VirtualIOServer", v_uuid)
    if v is None:
        raise errors.bad_request(
            f"TargetVirtualIOServerUUID {v_uuid!r} is not a VIOS on this system"
        )
    if ftype == "BROKERED_DISK_IMAGE":
        udid = _w(el, "TargetDeviceUniqueDeviceID")
        if not udid or _find_target(emu, v, udid) is None:
            raise errors.bad_request(
                f"TargetDeviceUniqueDeviceID {udid!r} is not a virtual disk or logical unit "
                f"reachable from VIOS {lpar.name_of(v.elem)!r}"
            )
    else:
        if _repo_vg(emu, v) is None:
            raise errors.bad_request(
                f"VIOS {lpar.name_of(v.elem)!r} has no virtual media repository; create one "
                "in a volume group first"
            )
        for vg in vgs_of(emu, v):
            if any(m.findtext(x.q("MediaName")) == name for m in vopts(vg.elem)):
                raise errors.bad_request(
                    f"Virtual optical media {name!r} already exists in the repository of "
                    f"{lpar.name_of(v.elem)!r}",
                    errors.DUPLICATE_NAME,
                )
    file_uuid = str(uuidlib.uuid4())
    _wset(el, "DateModified", x.now_ms(), after="Filename")
    _wset(el, "FileUUID", file_uuid, after="InternetMediaType")
    link = el.find(x.q("AssetLink", x.WEB_NS))
    if link is None:
        link = etree.Element(x.q("AssetLink", x.WEB_NS), kb="ROR", kxe="false", rel="related")
        el.find(x.q("FileUUID", x.WEB_NS)).addnext(link)
    link.set("href", f"{emu.base}/rest/api/web/File/contents/{file_uuid}")
    _wset(
        el,
        "CurrentFileSizeInBytes",
        "0",
        after="ExpectedFileSizeInBytes" if _w(el, "ExpectedFileSizeInBytes") else "AssetLink",
    )
    return Upload(el, file_uuid)


def _find_target(emu: Emulator, v: Resource, udid: str) -> etree._Element | None:
    for vg in vgs_of(emu, v):
        for d in vdisks(vg.elem):
            if d.findtext(x.q("UniqueDeviceID")) == udid:
                return d
    for lu in emu.store.list("LogicalUnit"):
        if lu.field("UniqueDeviceID") == udid:
            return lu.elem
    return None


def _repo_vg(emu: Emulator, v: Resource) -> Resource | None:
    return next((vg for vg in vgs_of(emu, v) if repo(vg.elem) is not None), None)


def _receive(emu: Emulator, up: Upload, chunks: Any) -> None:
    sha = hashlib.sha256()
    n = 0
    for chunk in chunks:
        sha.update(chunk)
        n += len(chunk)
    el = up.el
    expected = _w(el, "ExpectedFileSizeInBytes")
    if expected and int(expected) != n:
        raise errors.bad_request(
            f"File {_w(el, 'Filename')!r}: received {n} bytes but ExpectedFileSizeInBytes is "
            f"{expected}"
        )
    if _w(el, "SHA256") and _w(el, "SHA256").lower() != sha.hexdigest():
        raise errors.bad_request(f"File {_w(el, 'Filename')!r}: SHA256 does not match the data")
    up.received, up.sha256, up.done = n, sha.hexdigest(), True
    _wset(el, "CurrentFileSizeInBytes", str(n))
    v = emu.store.get("VirtualIOServer", _w(el, "TargetVirtualIOServerUUID") or "")
    with emu.lock:
        if _w(el, "FileEnumType") == "BROKERED_DISK_IMAGE":
            udid = _w(el, "TargetDeviceUniqueDeviceID") or ""
            target = _find_target(emu, v, udid)
            cap_gb = float(
                (target.findtext(x.q("DiskCapacity")) if target is not None else 0)
                or (target.findtext(x.q("UnitCapacity")) if target is not None else 0)
                or 0
            )
            if n > cap_gb * 1024**3:
                raise errors.bad_request(
                    f"{n} bytes do not fit on the {gb(cap_gb)} GB target device {udid}"
                )
            emu.uploads[udid] = {"bytes": n, "sha256": up.sha256, "file": _w(el, "Filename")}
        else:
            vg = _repo_vg(emu, v)
            assert vg is not None
            new = x.deep(vg.elem)
            r = repo(new)
            media = r.find(x.q("OpticalMedia"))
            held = sum(float(m.findtext(x.q("Size")) or 0) for m in vopts(new))
            size = float(r.findtext(x.q("RepositorySize")) or 0)
            if held + n / 1024**3 > size + 1e-9:
                raise errors.bad_request(
                    f"Media repository {r.findtext(x.q('RepositoryName'))!r} on "
                    f"{lpar.name_of(v.elem)!r} is full ({gb(held)} of {gb(size)} GB used); "
                    "remove media or grow the repository",
                    errors.NO_SPACE,
                )
            media.append(vopt_element(_w(el, "Filename") or "", n / 1024**3, "rw"))
            vg.elem = new
            vg.bump()
            emu.uploads["vopt:" + (_w(el, "Filename") or "")] = {"bytes": n, "sha256": up.sha256}
            _sync_vios_storage(emu, v)
    emu.publish("MODIFY_URI", v, "Other")


# ---- vSCSI mappings (VIOS update hook) ----------------------------------------------------
class _Slots:
    """Free virtual slots of one partition."""

    def __init__(self, used: set[int], first: int, limit: int) -> None:
        self.used, self.first, self.limit = set(used), first, limit

    def take(self, wanted: int | None, who: str) -> int:
        if wanted is not None:
            if wanted in self.used:
                raise errors.bad_request(f"{who}: virtual slot {wanted} is already in use")
            self.used.add(wanted)
            return wanted
        for s in range(self.first, self.limit):
            if s not in self.used:
                self.used.add(s)
                return s
        raise errors.bad_request(
            f"{who}: no free virtual slot below {self.limit}; raise MaximumVirtualIOSlots"
        )


def _int(el: etree._Element | None, tag: str) -> int | None:
    if el is None:
        return None
    t = el.findtext(x.q(tag))
    return int(t) if t and t.strip().lstrip("-").isdigit() else None


def server_slots_in_use(v: etree._Element) -> set[int]:
    used: set[int] = set()
    for section, item in (
        ("VirtualSCSIMappings", "VirtualSCSIMapping"),
        ("VirtualFibreChannelMappings", "VirtualFibreChannelMapping"),
    ):
        for m in _items(v, section, item):
            s = _int(m.find(x.q("ServerAdapter")), "VirtualSlotNumber")
            if s is not None:
                used.add(s)
    for t in _items(v, "TrunkAdapters", "TrunkAdapter"):
        s = _int(t, "VirtualSlotNumber")
        if s is not None:
            used.add(s)
    return used


def client_slots_in_use(emu: Emulator, client_uuid: str) -> set[int]:
    used: set[int] = set()
    for v in emu.store.list("VirtualIOServer"):
        for section, item in (
            ("VirtualSCSIMappings", "VirtualSCSIMapping"),
            ("VirtualFibreChannelMappings", "VirtualFibreChannelMapping"),
        ):
            for m in _items(v.elem, section, item):
                link = m.find(x.q("AssociatedLogicalPartition"))
                href = link.get("href") if link is not None else None
                if href and href.rstrip("/").upper().endswith(client_uuid.upper()):
                    s = _int(m.find(x.q("ClientAdapter")), "VirtualSlotNumber")
                    if s is not None:
                        used.add(s)
    c = emu.store.find("LogicalPartition", client_uuid)
    if c is not None:
        for cna in emu.store.list("ClientNetworkAdapter", parent=c):
            s = _int(cna.elem, "VirtualSlotNumber")
            if s is not None:
                used.add(s)
    return used


def client_of(emu: Emulator, m: etree._Element, who: str) -> Resource | None:
    link = m.find(x.q("AssociatedLogicalPartition"))
    if link is None or not link.get("href"):
        return None
    uuid = link.get("href").split("?")[0].rstrip("/").rsplit("/", 1)[-1]
    client = emu.store.find("LogicalPartition", uuid) or emu.store.find("VirtualIOServer", uuid)
    if client is None:
        raise errors.bad_request(
            f"{who}: AssociatedLogicalPartition {uuid} is not a partition on this system"
        )
    return client


def resolve_storage(emu: Emulator, v: Resource, item: etree._Element, who: str) -> etree._Element:
    """The server's full element for a client's storage reference (or refuse)."""
    kind = x.local(item)
    vname = lpar.name_of(v.elem)
    if kind == "VirtualDisk":
        name = item.findtext(x.q("DiskName"))
        udid = item.findtext(x.q("UniqueDeviceID"))
        for vg in vgs_of(emu, v):
            for d in vdisks(vg.elem):
                if (name and d.findtext(x.q("DiskName")) == name) or (
                    udid and d.findtext(x.q("UniqueDeviceID")) == udid
                ):
                    return _strip_links(d)
        raise errors.bad_request(f"{who}: no virtual disk {name or udid!r} on VIOS {vname!r}")
    if kind == "VirtualOpticalMedia":
        name = item.findtext(x.q("MediaName"))
        for vg in vgs_of(emu, v):
            for m in vopts(vg.elem):
                if m.findtext(x.q("MediaName")) == name:
                    return x.deep(m)
        raise errors.bad_request(
            f"{who}: no virtual optical media {name!r} in the repository of VIOS {vname!r}"
        )
    if kind == "PhysicalVolume":
        name = item.findtext(x.q("VolumeName"))
        udid = item.findtext(x.q("UniqueDeviceID"))
        for p in _items(v.elem, "PhysicalVolumes", "PhysicalVolume"):
            if (udid and p.findtext(x.q("UniqueDeviceID")) == udid) or (
                not udid and name and p.findtext(x.q("VolumeName")) == name
            ):
                return x.deep(p)
        raise errors.bad_request(
            f"{who}: no physical volume {name or udid!r} on VIOS {vname!r}; run LUARecovery or "
            "iSCSI discovery first"
        )
    if kind == "LogicalUnit":
        udid = item.findtext(x.q("UniqueDeviceID"))
        name = item.findtext(x.q("UnitName"))
        for lu in emu.store.list("LogicalUnit"):
            if (udid and lu.field("UniqueDeviceID") == udid) or (
                not udid and name and lu.field("UnitName") == name
            ):
                return _lu_ref(lu.elem)
        raise errors.bad_request(f"{who}: no logical unit {name or udid!r} in the storage pool")
    raise errors.bad_request(f"{who}: unsupported backing storage type {kind}")


def _strip_links(el: etree._Element) -> etree._Element:
    out = x.deep(el)
    for c in list(out):
        if isinstance(c.tag, str) and x.local(c) == "VolumeGroup":
            out.remove(c)
    return out


def _lu_ref(el: etree._Element) -> etree._Element:
    out = etree.Element(x.q("LogicalUnit"), schemaVersion="V1_0")
    md = etree.SubElement(out, x.q("Metadata"))
    etree.SubElement(md, x.q("Atom"))
    for c in el:
        if isinstance(c.tag, str) and x.local(c) in (
            "ThinDevice",
            "UniqueDeviceID",
            "UnitCapacity",
            "LogicalUnitType",
            "InUse",
            "UnitName",
        ):
            out.append(x.deep(c))
    return out


def _adapter(parent: etree._Element, tag: str, side: str, fields: list[tuple[str, str, str]]):
    el = parent.find(x.q(tag))
    if el is not None:
        parent.remove(el)
    el = etree.Element(x.q(tag), kb="CUR", kxe="false", schemaVersion="V1_0")
    md = etree.SubElement(el, x.q("Metadata"))
    etree.SubElement(md, x.q("Atom"))
    x.sub(el, "AdapterType", side)
    for name, value, kb in fields:
        x.sub(el, name, value, kb=kb)
    schema.insert_ordered(parent, el)
    return el


def _loc(emu: Emulator, part: Resource, slot: int) -> str:
    assert emu.ms is not None
    mtms = emu.ms.elem.find(x.q("MachineTypeModelAndSerialNumber"))
    mt = mtms.findtext(x.q("MachineType")) if mtms is not None else "8408"
    model = mtms.findtext(x.q("Model")) if mtms is not None else "E8E"
    serial = mtms.findtext(x.q("SerialNumber")) if mtms is not None else "0000000"
    return f"U{mt}.{model}.{serial}-V{part.field('PartitionID')}-C{slot}"


def _next_name(v: Resource, prefix: str, existing: list[etree._Element], path: str) -> str:
    used = set()
    for m in existing:
        el = m.find(path)
        if el is not None and el.text:
            used.add(el.text)
    i = 0
    while f"{prefix}{i}" in used:
        i += 1
    return f"{prefix}{i}"


def scsi_hook(emu: Emulator, v: Resource, old: etree._Element, new: etree._Element) -> None:
    """Complete new vSCSI mappings and refuse invalid ones."""
    if new.find(x.q("VirtualSCSIMappings")) is None:
        return
    vname = lpar.name_of(v.elem)
    old_maps = mappings(old)
    old_by_sig = {_sig(m): m for m in old_maps}
    sslots = _Slots(server_slots_in_use(old), FIRST_SERVER_SLOT, 2000)
    kept_sslots = set()
    for m in mappings(new):
        if _sig(m) in old_by_sig and _sig(m)[0] is not None:
            kept_sslots.add(_sig(m)[0])
    sslots.used = (sslots.used - {_sig(m)[0] for m in old_maps}) | kept_sslots
    client_slot_cache: dict[str, _Slots] = {}
    all_new = mappings(new)
    for idx, m in enumerate(all_new):
        sig = _sig(m)
        if sig in old_by_sig and sig[0] is not None:
            m.getparent().replace(m, x.deep(old_by_sig[sig]))
            continue
        who = f"vSCSI mapping on VIOS {vname!r}"
        client = client_of(emu, m, who)
        stg = m.find(x.q("Storage"))
        if stg is not None and len(stg):
            full = resolve_storage(emu, v, stg[0], who)
            stg.replace(stg[0], full)
        if client is None:
            continue
        cname = lpar.name_of(client.elem)
        if (
            lpar.state(client) != lpar.NOT_ACTIVATED
            and client.field("ResourceMonitoringControlState") != "active"
        ):
            raise errors.bad_request(
                f"{who}: cannot add a virtual SCSI adapter to {cname!r} while it is "
                f"{lpar.state(client)} without an active RMC connection",
                errors.DLPAR_LIMIT,
            )
        # Reuse the server adapter of an existing mapping to the same client slot.
        wanted_cslot = _int(m.find(x.q("ClientAdapter")), "VirtualSlotNumber")
        sibling = None
        for other in list(old_maps) + all_new[:idx]:
            if other is m:
                continue
            if (
                client_of(emu, other, who) is client
                and wanted_cslot is not None
                and _int(other.find(x.q("ClientAdapter")), "VirtualSlotNumber") == wanted_cslot
                and _int(other.find(x.q("ServerAdapter")), "VirtualSlotNumber")
            ):
                sibling = other
                break
        if sibling is not None:
            sa = x.deep(sibling.find(x.q("ServerAdapter")))
            ca = x.deep(sibling.find(x.q("ClientAdapter")))
            for tag, el in (("ServerAdapter", sa), ("ClientAdapter", ca)):
                cur = m.find(x.q(tag))
                if cur is not None:
                    m.replace(cur, el)
                else:
                    schema.insert_ordered(m, el)
            sslot = _int(sa, "VirtualSlotNumber")
            cslot = wanted_cslot
        else:
            cache = client_slot_cache.get(client.uuid)
            if cache is None:
                limit = int(
                    client.field("PartitionIOConfiguration/MaximumVirtualIOSlots", "64") or 64
                )
                cache = _Slots(client_slots_in_use(emu, client.uuid), FIRST_CLIENT_SLOT, limit)
                client_slot_cache[client.uuid] = cache
            cslot = cache.take(wanted_cslot, f"{who} for {cname!r}")
            sslot = sslots.take(None, who)
            vhost = _next_name(
                v, "vhost", old_maps + all_new[:idx], f"{x.q('ServerAdapter')}/{x.q('AdapterName')}"
            )
            _adapter(
                m,
                "ClientAdapter",
                "Client",
                [
                    ("DynamicReconfigurationConnectorName", _loc(emu, client, cslot), "CUD"),
                    ("LocationCode", _loc(emu, client, cslot), "ROR"),
                    ("LocalPartitionID", client.field("PartitionID") or "0", "CUR"),
                    ("RequiredAdapter", "false", "CUD"),
                    ("VariedOn", "true", "CUD"),
                    ("VirtualSlotNumber", str(cslot), "COD"),
                    ("RemoteLogicalPartitionID", v.field("PartitionID") or "0", "CUR"),
                    ("RemoteSlotNumber", str(sslot), "CUA"),
                    ("ServerLocationCode", _loc(emu, v, sslot), "CUR"),
                ],
            )
            _adapter(
                m,
                "ServerAdapter",
                "Server",
                [
                    ("DynamicReconfigurationConnectorName", _loc(emu, v, sslot), "CUD"),
                    ("LocationCode", _loc(emu, v, sslot), "ROR"),
                    ("LocalPartitionID", v.field("PartitionID") or "0", "CUR"),
                    ("RequiredAdapter", "false", "CUD"),
                    ("VariedOn", "true", "CUD"),
                    ("VirtualSlotNumber", str(sslot), "COD"),
                    ("AdapterName", vhost, "CUR"),
                    ("RemoteLogicalPartitionID", client.field("PartitionID") or "0", "CUR"),
                    ("RemoteSlotNumber", str(cslot), "CUA"),
                    ("ServerLocationCode", _loc(emu, client, cslot), "CUR"),
                    ("UniqueDeviceID", "1e" + _loc(emu, v, sslot), "ROR"),
                ],
            )
        if stg is not None and len(stg):
            kind = x.local(stg[0])
            sa = m.find(x.q("ServerAdapter"))
            name = storage_key(stg)[1]
            bdn = sa.find(x.q("BackingDeviceName"))
            if bdn is None:
                bdn = etree.Element(x.q("BackingDeviceName"), kb="CUR", kxe="false")
                schema.insert_ordered(sa, bdn)
            bdn.text = (
                stg[0].findtext(x.q("DiskName"))
                or stg[0].findtext(x.q("MediaName"))
                or stg[0].findtext(x.q("VolumeName"))
                or name
            )
            td_tag, prefix = TARGET_DEV[kind]
            td = m.find(x.q("TargetDevice"))
            given_name = given_lua = None
            if td is not None and len(td):
                given_name = td[0].findtext(x.q("TargetName"))
                given_lua = td[0].findtext(x.q("LogicalUnitAddress"))
                m.remove(td)
            luas = {
                (
                    o.find(f"{x.q('TargetDevice')}/*/{x.q('LogicalUnitAddress')}") is not None
                    and o.find(f"{x.q('TargetDevice')}/*/{x.q('LogicalUnitAddress')}").text
                )
                for o in old_maps + all_new[:idx]
                if _int(o.find(x.q("ServerAdapter")), "VirtualSlotNumber") == sslot
            }
            lua = given_lua
            n = 1
            while lua is None or (lua in luas and given_lua is None):
                lua = f"0x8{n:01x}00000000000000"
                n += 1
            tname = given_name or _next_name(
                v,
                prefix,
                old_maps + all_new[:idx],
                f"{x.q('TargetDevice')}/*/{x.q('TargetName')}",
            )
            td = etree.Element(x.q("TargetDevice"), kb="CUR", kxe="false")
            dev = etree.SubElement(td, x.q(td_tag), schemaVersion="V1_0")
            dmd = etree.SubElement(dev, x.q("Metadata"))
            etree.SubElement(dmd, x.q("Atom"))
            x.sub(dev, "LogicalUnitAddress", lua, kb="CUR")
            x.sub(dev, "TargetName", tname, kb="CUR")
            x.sub(dev, "UniqueDeviceID", "09" + _serial(f"{v.uuid}/{tname}")[:16])
            schema.insert_ordered(m, td)


def _sig(m: etree._Element) -> tuple[int | None, Any, str | None]:
    """Identity of a mapping: (server slot, storage, target name)."""
    sslot = _int(m.find(x.q("ServerAdapter")), "VirtualSlotNumber")
    tname = m.findtext(f"{x.q('TargetDevice')}/*/{x.q('TargetName')}")
    return sslot, storage_key(m.find(x.q("Storage"))), tname


def register(emu: Emulator) -> None:
    emu.register(
        Kind("VolumeGroup", rootable=False, parents=("VirtualIOServer",), update=_vg_update)
    )
    emu.web_routes["File"] = file_route
    vios.add_update_hook(emu, scsi_hook)
    emu.seed_hooks.append(seed)


def ceil_gb(n_bytes: int) -> int:
    return max(1, math.ceil(n_bytes / 1024**3))
