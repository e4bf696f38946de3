"""The storage the VIOSes reach over the network: iSCSI targets with CHAP,
LUNs that grow, and the ``RescanVirtualDisk`` job that makes a VIOS see a
device's new size.

iSCSI targets belong to the emulated SAN, not to one VIOS: every VIOS with a
network path logs in to them (``ISCSIDiscovery``, pypowervm
``hdisk.discover_iscsi``) with its own initiator name, which the same job
reports when called without a target (``hdisk.discover_iscsi_initiator``).
Targets are added through the control endpoint
(``POST /_emulator/iscsi-targets``); a LUN grows through
``POST /_emulator/volumes/grow`` (FC and iSCSI LUNs by UDID seed) and files
and RBD images through their own routes (``mgmt_io``) with a larger size.

Guesses, where the real VIOS's behaviour is not documented publicly:

* a bad session or discovery CHAP secret ends the job normally with
  ``RETURN_CODE`` 24 (``ISCSI_ERR_LOGIN_AUTH_FAILED``) and no device;
* discovery CHAP is checked only when the job asks for multipath (pypowervm
  sends the discovery credentials only then: a single-path login names the
  target directly);
* a grown LUN keeps its old size on a VIOS until that VIOS rescans it, and a
  rescan updates the hdisk and every vSCSI mapping that shows it.
"""

from __future__ import annotations

from typing import Any

from ibmvirt.emulators.novalink import errors, schema
from ibmvirt.emulators.novalink import xmlutil as x
from ibmvirt.emulators.novalink.emulator import Emulator
from ibmvirt.emulators.novalink.jobs import Job
from ibmvirt.emulators.novalink.state import fc, mgmt_io, partition, slots, storage, upload, vios
from ibmvirt.emulators.novalink.store import Resource

ISCSI_SUCCESS = "0"
ISCSI_NO_OBJS_FOUND = "21"
ISCSI_AUTH_FAILED = "24"
VOLUME_NOT_FOUND = "-1"  # pypowervm tasks.storage.VOLUME_NOT_FOUND (RescanVirtualDisk)


def targets(emu: Emulator) -> list[dict[str, Any]]:
    return emu.ext.setdefault("iscsi_targets", [])


def initiator_name(v: Resource) -> str:
    return f"iqn.2026-01.com.ibm.emulated:{partition.name_of(v.elem)}"


def _list(value: str | None) -> list[str]:
    """A job parameter that pypowervm sends as ``value`` or ``[a,b]``."""
    value = (value or "").strip()
    if value.startswith("["):
        value = value[1:-1]
    return [p.strip() for p in value.split(",") if p.strip()]


def _sessions(v: Resource) -> set[tuple[str, str]]:
    return v.ext.setdefault("iscsi_sessions", set())


def _chap_ok(target: dict[str, Any], params: dict[str, str]) -> bool:
    if target.get("chap_user"):
        if (params.get("auth") or "").upper() != "CHAP":
            return False
        if (params.get("user"), params.get("password")) != (
            target["chap_user"],
            target.get("chap_password"),
        ):
            return False
    if target.get("discovery_user") and params.get("multipath") == "True":
        if (params.get("discoveryUser"), params.get("discoveryPassword")) != (
            target["discovery_user"],
            target.get("discovery_password"),
        ):
            return False
    return True


def iscsi_discovery(emu: Emulator, job: Job) -> dict[str, str]:
    """Without a target: the VIOS's initiator name. With one: log in over the
    given portal(s) and make the LUN an hdisk on this VIOS."""
    v = job.target
    assert v is not None
    params = job.params
    iqns = _list(params.get("targetIQN"))
    if not iqns:
        return {"RETURN_CODE": ISCSI_SUCCESS, "InitiatorName": initiator_name(v)}
    portals = _list(params.get("hostIP"))
    luns = _list(params.get("targetLUN"))
    job.pause(0.5)
    matching = [
        t
        for t in targets(emu)
        if t["iqn"] in iqns
        and (not portals or set(t["portals"]) & set(portals))
        and (not luns or str(t["lun"]) in luns)
    ]
    if not matching:
        # The volumes a VIOS's inventory lists with an IQN (no CHAP, no portal).
        return fc.iscsi_discovery(emu, job)
    if not all(_chap_ok(t, params) for t in matching):
        return {"RETURN_CODE": ISCSI_AUTH_FAILED, "DEV_OUTPUT": "[]"}
    out = []
    with emu.lock:
        for t in matching:
            name, udid = fc.ensure_pv(emu, v, t)
            for portal in set(t["portals"]) & set(portals or t["portals"]):
                _sessions(v).add((t["iqn"], portal))
            out.append(f"{t['iqn']} {name} {udid}")
    emu.publish("MODIFY_URI", v, "Other")
    return {"RETURN_CODE": ISCSI_SUCCESS, "DEV_OUTPUT": repr(out)}


def iscsi_remove(emu: Emulator, job: Job) -> dict[str, str]:
    """Log out of the target's LUN: the hdisk goes (refused while mapped),
    then the session if no other LUN of the target is left on this VIOS."""
    v = job.target
    assert v is not None
    iqns = _list(job.params.get("targetIQN"))
    luns = _list(job.params.get("targetLUN"))
    if not iqns:
        return fc.remove_device(emu, job)
    with emu.lock:
        gone = [t for t in targets(emu) if t["iqn"] in iqns and (not luns or str(t["lun"]) in luns)]
        section = vios.section(v.elem, "PhysicalVolumes")
        removed = 0
        for t in gone:
            for p in section.findall(x.q("PhysicalVolume")):
                if p.findtext(x.q("UniqueDeviceID")) != t["udid"]:
                    continue
                name = p.findtext(x.q("VolumeName"))
                if slots.mapped_storage(emu).get((v.uuid, "PhysicalVolume", name)):
                    raise errors.JobFailure(
                        f"{name} on {partition.name_of(v.elem)!r} is mapped; "
                        "remove the mapping first"
                    )
                section.remove(p)
                removed += 1
        left = {p.findtext(x.q("UniqueDeviceID")) for p in section.findall(x.q("PhysicalVolume"))}
        for iqn in iqns:
            if not any(t["iqn"] == iqn and t["udid"] in left for t in targets(emu)):
                for s in [s for s in _sessions(v) if s[0] == iqn]:
                    _sessions(v).discard(s)
        if removed:
            v.bump("ViosStorage")
    return {"RETURN_CODE": ISCSI_SUCCESS if removed else ISCSI_NO_OBJS_FOUND}


def add_target(emu: Emulator, body: Any) -> tuple[int, Any]:
    """Control route: an iSCSI target LUN every VIOS can log in to."""
    if not isinstance(body, dict) or not body.get("iqn") or not body.get("portals"):
        raise ValueError("an iSCSI target needs 'iqn' and 'portals' (list of ip:port)")
    t = {
        k: body[k]
        for k in (
            "iqn",
            "portals",
            "lun",
            "size_gb",
            "chap_user",
            "chap_password",
            "discovery_user",
            "discovery_password",
            "udid_seed",
        )
        if k in body
    }
    t.setdefault("lun", 0)
    t.setdefault("size_gb", 1)
    t.setdefault("udid_seed", f"iscsi/{t['iqn']}/{t['lun']}")
    t["udid"] = storage.pv_udid(t["udid_seed"])
    t["name"] = None
    with emu.lock:
        current = targets(emu)
        current[:] = [o for o in current if o["udid"] != t["udid"]] + [t]
    shown = {k: v for k, v in t.items() if "password" not in k}
    return 201, {"target": shown}


def grow(emu: Emulator, body: Any) -> tuple[int, Any]:
    """Control route: the array grew a LUN (``udid_seed``) to ``size_gb``."""
    if not isinstance(body, dict) or "udid_seed" not in body or "size_gb" not in body:
        raise ValueError("grow needs 'udid_seed' and 'size_gb'")
    udid = storage.pv_udid(body["udid_seed"])
    size = int(body["size_gb"])
    found = 0
    with emu.lock:
        for record in [*targets(emu)] + [
            vol for v in emu.store.list("VirtualIOServer") for vol in fc.volumes(v)
        ]:
            if record.get("udid") == udid:
                if size < int(record.get("size_gb", 0)):
                    raise ValueError(f"a LUN cannot shrink ({record['size_gb']} GB to {size} GB)")
                record["size_gb"] = size
                found += 1
    if not found:
        raise ValueError(f"no LUN with udid_seed {body['udid_seed']!r}")
    return 200, {"udid": udid, "size_gb": size}


def _lun_size_gb(emu: Emulator, v: Resource, udid: str) -> int | None:
    for record in [*targets(emu), *fc.volumes(v)]:
        if record.get("udid") == udid:
            return int(record.get("size_gb", 0))
    return None


def rescan_virtual_disk(emu: Emulator, job: Job) -> dict[str, str]:
    """``RescanVirtualDisk`` (pypowervm ``tasks.storage.rescan_vstor``): the
    device's size as its storage now has it, on the VIOS and in its mappings."""
    v = job.target
    assert v is not None
    udid = job.params.get("VirtualDiskUDID") or job.params.get("UniqueDeviceID") or ""
    with emu.lock:
        pv = next(
            (
                p
                for p in slots.items(v.elem, "PhysicalVolumes", "PhysicalVolume")
                if p.findtext(x.q("UniqueDeviceID")) == udid
            ),
            None,
        )
        if pv is not None:
            size = _lun_size_gb(emu, v, udid)
            if size is not None:
                _set_size(v, udid, "VolumeCapacity", str(size * storage.MB_PER_GB))
                v.bump("ViosStorage")
            return {"RETURN_CODE": "0"}
        size_gb = mgmt_io.size_of_udid(emu, v, udid)
        if size_gb is not None:
            _set_size(v, udid, "DiskCapacity", storage.gb(size_gb))
            return {"RETURN_CODE": "0"}
        if udid and upload.find_target(emu, v, udid) is not None:
            return {"RETURN_CODE": "0"}
    raise errors.JobFailure(
        f"No disk with UDID {udid} on VIOS {partition.name_of(v.elem)!r}",
        results={"RETURN_CODE": VOLUME_NOT_FOUND},
    )


def _set_size(v: Resource, udid: str, field: str, value: str) -> None:
    """The new size on the VIOS's device and on every mapping showing it."""
    for el in v.elem.iter(x.q("PhysicalVolume"), x.q("VirtualDisk")):
        if el.findtext(x.q("UniqueDeviceID")) == udid and el.find(x.q(field)) is not None:
            schema.set_field(el, field, value)


def sessions_of(v: Resource) -> list[tuple[str, str]]:
    """(target IQN, portal) of the VIOS's iSCSI sessions (tests, operators)."""
    return sorted(_sessions(v))


def register(emu: Emulator) -> None:
    emu.jobs.register("VirtualIOServer", "ISCSIDiscovery", lambda j: iscsi_discovery(emu, j))
    emu.jobs.register("VirtualIOServer", "ISCSIRemove", lambda j: iscsi_remove(emu, j))
    emu.jobs.register("VirtualIOServer", "RescanVirtualDisk", lambda j: rescan_virtual_disk(emu, j))
    emu.control_routes["/iscsi-targets"] = lambda body: add_target(emu, body)
    emu.control_routes["/volumes/grow"] = lambda body: grow(emu, body)
