"""``web/File`` uploads: File metadata, streamed contents (disk images into
a virtual disk or logical unit, ISOs into the media repository), clean-up.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import uuid as uuidlib
from typing import Any

from lxml import etree

from ibmvirt.emulators import tls
from ibmvirt.emulators.novalink import atom, errors
from ibmvirt.emulators.novalink import xmlutil as x
from ibmvirt.emulators.novalink.emulator import Emulator
from ibmvirt.emulators.novalink.state import partition, storage
from ibmvirt.emulators.novalink.store import Resource


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
        if not udid or find_target(emu, v, udid) is None:
            raise errors.bad_request(
                f"TargetDeviceUniqueDeviceID {udid!r} is not a virtual disk or logical unit "
                f"reachable from VIOS {partition.name_of(v.elem)!r}"
            )
    else:
        if _repo_vg(emu, v) is None:
            raise errors.bad_request(
                f"VIOS {partition.name_of(v.elem)!r} has no virtual media repository; create one "
                "in a volume group first"
            )
        for vg in storage.vgs_of(emu, v):
            if any(m.findtext(x.q("MediaName")) == name for m in storage.vopts(vg.elem)):
                raise errors.bad_request(
                    f"Virtual optical media {name!r} already exists in the repository of "
                    f"{partition.name_of(v.elem)!r}",
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


def find_target(emu: Emulator, v: Resource, udid: str) -> etree._Element | None:
    for vg in storage.vgs_of(emu, v):
        for d in storage.vdisks(vg.elem):
            if d.findtext(x.q("UniqueDeviceID")) == udid:
                return d
    for lu in emu.store.list("LogicalUnit"):
        if lu.field("UniqueDeviceID") == udid:
            return lu.elem
    return None


def _repo_vg(emu: Emulator, v: Resource) -> Resource | None:
    return next((vg for vg in storage.vgs_of(emu, v) if storage.repo(vg.elem) is not None), None)


def _check_received(el: etree._Element, n: int, digest: str) -> None:
    expected = _w(el, "ExpectedFileSizeInBytes")
    if expected and int(expected) != n:
        raise errors.bad_request(
            f"File {_w(el, 'Filename')!r}: received {n} bytes but ExpectedFileSizeInBytes is "
            f"{expected}"
        )
    if _w(el, "SHA256") and (_w(el, "SHA256") or "").lower() != digest:
        raise errors.bad_request(f"File {_w(el, 'Filename')!r}: SHA256 does not match the data")


def data_path(emu: Emulator, key: str) -> str | None:
    """Where the data of a device (UDID, or "vopt:<name>") is kept, if it is."""
    if not emu.config.disk_dir:
        return None
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", key)
    return os.path.join(emu.config.disk_dir, safe + ".img")


def _receive(emu: Emulator, up: Upload, chunks: Any) -> None:
    sha = hashlib.sha256()
    n = 0
    el = up.el
    key = (
        _w(el, "TargetDeviceUniqueDeviceID") or ""
        if _w(el, "FileEnumType") == "BROKERED_DISK_IMAGE"
        else "vopt:" + (_w(el, "Filename") or "")
    )
    path = data_path(emu, key)
    part = None
    if path:
        # A new file of ours (O_EXCL, no symbolic link followed, mode 0600) in a
        # directory of ours; it replaces the device's data only once accepted.
        directory = tls.private_directory(os.path.dirname(path))
        fd, part = tempfile.mkstemp(
            dir=directory, prefix=os.path.basename(path) + ".", suffix=".part"
        )
    try:
        with os.fdopen(fd, "wb") if part else contextlib.nullcontext() as out:
            for chunk in chunks:
                sha.update(chunk)
                n += len(chunk)
                if out is not None:
                    out.write(chunk)
        _check_received(el, n, sha.hexdigest())
        _accept(emu, up, el, n, sha.hexdigest(), part, path)
    finally:
        if part and os.path.exists(part):  # refused (or failed): nothing stays on disk
            os.unlink(part)


def _accept(
    emu: Emulator,
    up: Upload,
    el: etree._Element,
    n: int,
    digest: str,
    part: str | None,
    path: str | None,
) -> None:
    """Check capacity, then keep the data (``part`` renamed to ``path``) and record it."""
    v = emu.store.get("VirtualIOServer", _w(el, "TargetVirtualIOServerUUID") or "")

    def keep() -> None:
        # Only after every check: a refused upload never replaces kept data.
        if part and path:
            os.replace(part, path)
        up.received, up.sha256, up.done = n, digest, True
        _wset(el, "CurrentFileSizeInBytes", str(n))

    with emu.lock:
        if _w(el, "FileEnumType") == "BROKERED_DISK_IMAGE":
            udid = _w(el, "TargetDeviceUniqueDeviceID") or ""
            target = find_target(emu, v, udid)
            cap_gb = float(
                (target.findtext(x.q("DiskCapacity")) if target is not None else 0)
                or (target.findtext(x.q("UnitCapacity")) if target is not None else 0)
                or 0
            )
            if n > cap_gb * 1024**3:
                raise errors.bad_request(
                    f"{n} bytes do not fit on the {storage.gb(cap_gb)} GB target device {udid}"
                )
            keep()
            emu.uploads[udid] = {
                "bytes": n,
                "sha256": up.sha256,
                "file": _w(el, "Filename"),
                "path": path,
            }
        else:
            vg = _repo_vg(emu, v)
            assert vg is not None
            new = x.deep(vg.elem)
            r = storage.repo(new)
            media = r.find(x.q("OpticalMedia"))
            held = sum(float(m.findtext(x.q("Size")) or 0) for m in storage.vopts(new))
            size = float(r.findtext(x.q("RepositorySize")) or 0)
            if held + n / 1024**3 > size + 1e-9:
                raise errors.refused(
                    f"Media repository {r.findtext(x.q('RepositoryName'))!r} on "
                    f"{partition.name_of(v.elem)!r} is full ({storage.gb(held)} of "
                    f"{storage.gb(size)} GB used); "
                    "remove media or grow the repository",
                    errors.NO_SPACE,
                )
            keep()
            media.append(storage.vopt_element(_w(el, "Filename") or "", n / 1024**3, "rw"))
            vg.elem = new
            vg.bump()
            emu.uploads["vopt:" + (_w(el, "Filename") or "")] = {
                "bytes": n,
                "sha256": up.sha256,
                "path": path,
            }
            storage.sync_vios_storage(emu, v)
    emu.publish("MODIFY_URI", v, "Other")


def register(emu: Emulator) -> None:
    emu.web_routes["File"] = file_route
