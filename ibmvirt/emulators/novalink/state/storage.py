"""VIOS storage: physical volumes and volume groups with virtual disks and a
virtual media repository (uploads: ``upload.py``; mappings: ``scsi.py``).

Rules, as on the real server: virtual disks and media fit in the free space
of their volume group; logical volume names are unique on a VIOS; a virtual
disk cannot shrink; a disk or medium that is mapped cannot be removed; one
media repository per VIOS.

File-backed volume groups (``management_partition.volume_groups`` of an I/O
server NovaLink partition; the "QCOW" volume group nova-powervm's localdisk
accepted): a directory on the NovaLink partition instead of physical
volumes; each virtual disk is a file there (BackStoreType ``user:qcow``,
FileFormat ``qcow2`` unless the client says ``raw``), which exists while the
disk does and can be mapped as File I/O too. *Guess*: how the real server
shows such a group (no capture has one): no PhysicalVolumes, GroupCapacity
the directory's quota, disks named ``<path>/<DiskName>`` in DiskLabel.
"""

from __future__ import annotations

import base64
import hashlib
import uuid as uuidlib
from typing import Any

from lxml import etree

from ibmvirt.emulators.novalink import errors, schema
from ibmvirt.emulators.novalink import xmlutil as x
from ibmvirt.emulators.novalink.emulator import Emulator, Kind
from ibmvirt.emulators.novalink.state import partition, slots, vios
from ibmvirt.emulators.novalink.store import Resource

MB_PER_GB = 1024
#: BackStoreType and default FileFormat of a file-backed group's disks.
FILE_BACKSTORE = "user:qcow"
FILE_FORMATS = ("raw", "qcow2")
#: The files a partition holds (mgmt_io.py maps them as File I/O): path -> GB.
FILES_EXT = "files"


# ---- identifiers ------------------------------------------------------------------
def pv_udid(seed: str) -> str:
    """A physical-volume UDID (01M0lCT + base64), stable for a seed."""
    digest = hashlib.sha256(seed.encode()).hexdigest()[:32].upper()
    return "01M0lCT" + base64.b64encode(f"ibmvirt-{digest}".encode()).decode()


def serial_of(seed: str) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()[:32]


def gb(value: float) -> str:
    """Sizes in GB as the server writes them (no trailing zeros)."""
    return f"{value:.4f}".rstrip("0").rstrip(".") or "0"


# ---- element builders -----------------------------------------------------------------
def _location_number(udid: str) -> str:
    """Six digits for a disk's location code, the same in every run."""
    return f"{int(hashlib.sha256(udid.encode()).hexdigest()[:8], 16) % 10**6:06d}"


def pv_element(
    name: str, size_mb: int, udid: str, in_use: bool, fc: bool = False
) -> etree._Element:
    el = etree.Element(x.q("PhysicalVolume"), schemaVersion="V1_0")
    md = etree.SubElement(el, x.q("Metadata"))
    etree.SubElement(md, x.q("Atom"))
    x.sub(el, "Description", "MPIO IBM 2076 FC Disk" if fc else "SAS Disk Drive", kb="CUD")
    x.sub(el, "LocationCode", f"U78C9.001.WZS0095-P1-C14-T1-L{_location_number(udid)}")
    x.sub(el, "ReservePolicy", "NoReserve", kb="CUD")
    x.sub(el, "ReservePolicyAlgorithm", "Failover", kb="CUD")
    x.sub(el, "UniqueDeviceID", udid)
    x.sub(el, "AvailableForUsage", "false" if in_use else "true", kb="CUD")
    x.sub(el, "VolumeCapacity", str(size_mb), kb="CUR")
    x.sub(el, "VolumeName", name, kb="CUR")
    x.sub(el, "VolumeState", "active")
    x.sub(el, "VolumeUniqueID", "391B" + serial_of(udid)[:24])
    x.sub(el, "IsFibreChannelBacked", "true" if fc else "false")
    # SCSI inquiry page 0x83 identifier (NAA 6), base64 as the server sends it;
    # pypowervm would otherwise run a LUARecovery job to fetch it.
    naa = "6" + serial_of(udid)[:31].upper()
    x.sub(el, "DescriptorPage83", base64.b64encode(naa.encode()).decode())
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


def file_vg_element(name: str, size_gb: float, serial: str) -> etree._Element:
    """A file-backed group: capacity without physical volumes (see the module doc)."""
    el = x.container("VolumeGroup")
    x.sub(el, "AvailableSize", gb(size_gb))
    x.sub(el, "FreeSpace", gb(size_gb))
    x.sub(el, "GroupCapacity", gb(size_gb), kb="CUR")
    x.sub(el, "GroupName", name, kb="CUR")
    x.sub(el, "GroupSerialID", serial)
    x.sub(el, "MaximumLogicalVolumes", "1024")
    x.sub(el, "MediaRepositories", None, kb="CUD")
    x.sub(el, "PhysicalVolumes", None, kb="CUD")
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


# ---- lookups ----------------------------------------------------------------------
def vgs_of(emu: Emulator, v: Resource) -> list[Resource]:
    return emu.store.list("VolumeGroup", parent=v)


def vios_of(emu: Emulator, res: Resource) -> Resource:
    assert res.parent is not None
    return res.parent


def vdisks(vg: etree._Element) -> list[etree._Element]:
    return slots.items(vg, "VirtualDisks", "VirtualDisk")


def repo(vg: etree._Element) -> etree._Element | None:
    reps = slots.items(vg, "MediaRepositories", "VirtualMediaRepository")
    return reps[0] if reps else None


def vopts(vg: etree._Element) -> list[etree._Element]:
    r = repo(vg)
    return slots.items(r, "OpticalMedia", "VirtualOpticalMedia") if r is not None else []


# ---- VolumeGroup kind -------------------------------------------------------------------
def vg_capacity(el: etree._Element) -> float:
    return float(el.findtext(x.q("GroupCapacity")) or 0)


def vg_used(el: etree._Element) -> float:
    used = sum(float(d.findtext(x.q("DiskCapacity")) or 0) for d in vdisks(el))
    r = repo(el)
    if r is not None:
        used += float(r.findtext(x.q("RepositorySize")) or 0)
    return used


def refresh_free(el: etree._Element) -> None:
    free = max(vg_capacity(el) - vg_used(el), 0.0)
    schema.set_field(el, "FreeSpace", gb(free))
    schema.set_field(el, "AvailableSize", gb(free))


def _vg_update(emu: Emulator, res: Resource, new: etree._Element) -> None:
    old = res.elem
    v = vios_of(emu, res)
    vg_name = old.findtext(x.q("GroupName"))
    who = f"VolumeGroup {vg_name!r} on VIOS {partition.name_of(v.elem)!r}"
    if new.findtext(x.q("GroupName")) != vg_name:
        raise errors.bad_request(f"{who}: renaming a volume group is not supported")

    # Growing or shrinking the group (extendvg/reducevg) is not emulated: say so
    # rather than keep the server's list and drop the client's change.
    def _pv_ids(el: etree._Element) -> set[str]:
        return {
            p.findtext(x.q("UniqueDeviceID")) or p.findtext(x.q("VolumeName")) or ""
            for p in slots.items(el, "PhysicalVolumes", "PhysicalVolume")
        }

    if new.find(x.q("PhysicalVolumes")) is not None and _pv_ids(new) != _pv_ids(old):
        raise errors.RestError(
            501,
            f"{who}: adding or removing physical volumes is not emulated (extendvg/reducevg)",
            errors.UNSUPPORTED,
        )
    # The I/O limits a client may set on the group's disks (ReadIOPS/WriteIOPS, CUD).
    limits = {
        p.findtext(x.q("UniqueDeviceID")): [
            x.deep(c) for tag in ("ReadIOPS", "WriteIOPS") for c in p.findall(x.q(tag))
        ]
        for p in slots.items(new, "PhysicalVolumes", "PhysicalVolume")
    }
    # Server-owned parts the client cannot change.
    for tag in ("PhysicalVolumes", "UniqueDeviceID", "GroupSerialID", "GroupCapacity"):
        src = old.find(x.q(tag))
        dst = new.find(x.q(tag))
        if src is not None:
            if dst is not None:
                new.replace(dst, x.deep(src))
            else:
                schema.insert_ordered(new, x.deep(src))
    for p in slots.items(new, "PhysicalVolumes", "PhysicalVolume"):
        for c in limits.get(p.findtext(x.q("UniqueDeviceID")), []):
            x.remove_all(p, [x.local(c)])
            schema.insert_ordered(p, c)
    used_names = _lv_names(emu, v, exclude=res)
    mapped = slots.mapped_storage(emu)
    # -- virtual disks
    old_disks = {d.findtext(x.q("DiskName")): d for d in vdisks(old)}
    new_disks = vdisks(new)
    seen: set[str] = set()
    serial = old.findtext(x.q("GroupSerialID")) or serial_of(res.uuid)
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
            udid = f"0300{serial}.{counter}"
            schema.set_field(d, "UniqueDeviceID", udid)
            counter += 1
            if res.ext.get("file_path"):
                _as_file(d, res.ext["file_path"], name, who)
            base = d.findtext(x.q("BaseImage"))
            if base:
                _copy_base_image(emu, who, old, name, base, udid)
    res.ext["next_lv"] = counter
    for name in set(old_disks) - seen:
        if mapped.get((v.uuid, "VirtualDisk", name)):
            raise errors.refused(
                f"{who}: VirtualDisk {name!r} is mapped to a client; remove its vSCSI mapping "
                "first",
                errors.IN_USE,
            )
    # -- media repository
    old_repo, new_repo = repo(old), repo(new)
    if old_repo is not None and new_repo is None:
        if vopts(old):
            raise errors.refused(
                f"{who}: the media repository still holds media; remove them first", errors.IN_USE
            )
    if new_repo is not None:
        if old_repo is None and any(repo(o.elem) is not None for o in vgs_of(emu, v)):
            raise errors.bad_request(
                f"{who}: VIOS {partition.name_of(v.elem)!r} already has a media repository "
                "(one per VIOS)"
            )
        if new_repo.find(x.q("OpticalMedia")) is None:
            # A client's new repository (VMediaRepos.bld) has no media list; the
            # server's always has one, empty at first, as repo_element builds it.
            schema.insert_ordered(
                new_repo, etree.Element(x.q("OpticalMedia"), kb="CUD", kxe="false")
            )
        old_media = {m.findtext(x.q("MediaName")): m for m in vopts(old)}
        new_media = {m.findtext(x.q("MediaName")): m for m in vopts(new)}
        for name in set(old_media) - set(new_media):
            if mapped.get((v.uuid, "VirtualOpticalMedia", name)):
                raise errors.refused(
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
    if vg_used(new) > vg_capacity(new) + 1e-6:
        raise errors.refused(
            f"{who}: not enough free space ({gb(vg_capacity(old) - vg_used(old))} GB free, "
            f"{gb(vg_used(new) - vg_used(old))} GB more requested)",
            errors.NO_SPACE,
        )
    refresh_free(new)
    res.elem = new
    if res.ext.get("file_path"):
        _sync_files(v, res)
    sync_vios_storage(emu, v)


def _as_file(d: etree._Element, directory: str, name: str, who: str) -> None:
    """A new disk of a file-backed group is a file in its directory."""
    fmt = (d.findtext(x.q("FileFormat")) or "qcow2").strip()
    if fmt not in FILE_FORMATS:
        raise errors.bad_request(
            f"{who}: FileFormat {fmt!r} of VirtualDisk {name!r} is not one of "
            f"{', '.join(FILE_FORMATS)}"
        )
    schema.set_field(d, "BackStoreType", FILE_BACKSTORE, kb="CUD")
    schema.set_field(d, "FileFormat", fmt, kb="CUD")
    schema.set_field(d, "DiskLabel", f"{directory}/{name}", kb="CUR")


def file_of(d: etree._Element) -> str | None:
    """The file behind a file-backed group's disk (None for a logical volume)."""
    if d.findtext(x.q("BackStoreType")) != FILE_BACKSTORE:
        return None
    return d.findtext(x.q("DiskLabel"))


def _sync_files(v: Resource, vg: Resource) -> None:
    """The group's files on the partition follow its disks (created, grown, removed)."""
    files = v.ext.setdefault(FILES_EXT, {})
    prefix = vg.ext["file_path"] + "/"
    for path in [p for p in files if p.startswith(prefix)]:
        files.pop(path)
    for d in vdisks(vg.elem):
        path = file_of(d)
        if path:
            files[path] = float(d.findtext(x.q("DiskCapacity")) or 0)


def _lv_names(emu: Emulator, v: Resource, exclude: Resource | None = None) -> set[str]:
    names: set[str] = set()
    for vg in vgs_of(emu, v):
        if vg is not exclude:
            names.update(d.findtext(x.q("DiskName")) or "" for d in vdisks(vg.elem))
    return names


def sync_vios_storage(emu: Emulator, v: Resource) -> None:
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
            o
            for o in emu.store.list("VirtualIOServer")
            if partition.name_of(o.elem) == spec["name"]
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
            el = vg_element(vg_spec["name"], members, serial_of(uuid))
            mr = vg_spec.get("media_repository")
            if mr:
                el.find(x.q("MediaRepositories")).append(
                    repo_element(mr.get("name", "VMLibrary"), float(mr.get("size_gb", 10)))
                )
            refresh_free(el)
            x.set_atom(el, uuid)
            emu.store.add(Resource("VolumeGroup", uuid, el, parent=v, rootable=False))
        sync_vios_storage(emu, v)
    _seed_file_groups(emu, inv)


def _seed_file_groups(emu: Emulator, inv: dict[str, Any]) -> None:
    """File-backed groups of the NovaLink partition served as an I/O server."""
    spec = inv["management_partition"]
    if not spec.get("io_server"):
        return
    v = next(
        o for o in emu.store.list("VirtualIOServer") if o.field("IsManagementPartition") == "true"
    )
    for vg_spec in spec.get("volume_groups", []):
        uuid = str(uuidlib.uuid5(uuidlib.NAMESPACE_DNS, f"{v.uuid}/{vg_spec['name']}"))
        el = file_vg_element(vg_spec["name"], float(vg_spec["size_gb"]), serial_of(uuid))
        x.set_atom(el, uuid)
        res = Resource("VolumeGroup", uuid, el, parent=v, rootable=False)
        res.ext["file_path"] = str(vg_spec["path"]).rstrip("/")
        emu.store.add(res)


def register(emu: Emulator) -> None:
    emu.register(
        Kind("VolumeGroup", rootable=False, parents=("VirtualIOServer",), update=_vg_update)
    )
    emu.seed_hooks.append(seed)


def _copy_base_image(
    emu: Emulator, who: str, vg: etree._Element, name: str, base: str, udid: str
) -> None:
    """A disk created from ``BaseImage`` (pypowervm crt_copy_vdisk) holds a full
    copy of that disk, which must be a virtual disk of the same volume group.

    Guess (no capture shows it): the real VIOS copies with the LV tools, which
    need the source in the same volume group; the emulator records the copy
    as sharing the source's data, since clients never write to it.
    """
    sources = {e.findtext(x.q("UniqueDeviceID")) for e in vdisks(vg)}
    if base not in sources:
        raise errors.bad_request(
            f"{who}: VirtualDisk {name!r}: BaseImage {base} is not a virtual disk of this "
            "volume group"
        )
    if base in emu.uploads:
        emu.uploads[udid] = {**emu.uploads[base], "copy_of": base}
