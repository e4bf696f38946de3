"""Partition mobility between two emulated hosts (jobs MigrateValidate,
Migrate, MigrateAbort, MigrateRecover on a LogicalPartition).

The target is another NovaLink emulator, found by its system name
(TargetManagedSystemName) in this emulator's peer list: inventory
``migration_peers: {name: url}`` or ``POST /_emulator/peers {"name", "url"}``.
Emulators talk to each other only through their loopback control endpoints:
the source asks the target to validate, then to accept the partition; the
target recreates it (same UUID, state and sizes) with its storage mapped on a
VIOS that sees the same disks; the source then removes it.

Refused as on the real server: an active migration needs RMC; partitions with
virtual optical media or VIOS-local virtual disks cannot move; the target needs
the same memory region size, a free name and enough memory and processors.
"""

from __future__ import annotations

import ipaddress
import json
import ssl
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from lxml import etree

from ibmvirt.emulators.novalink import errors, schema
from ibmvirt.emulators.novalink import xmlutil as x
from ibmvirt.emulators.novalink.emulator import Emulator
from ibmvirt.emulators.novalink.jobs import Job
from ibmvirt.emulators.novalink.state import lpar, scsi, slots, system, vios
from ibmvirt.emulators.novalink.store import Resource

NOT_MIGRATING = "Not_Migrating"


def _peers(emu: Emulator) -> dict[str, dict[str, str]]:
    return emu.ext.setdefault("peers", {})


def add_peer(emu: Emulator, body: Any) -> tuple[int, Any]:
    if not isinstance(body, dict) or not body.get("name") or not body.get("url"):
        raise ValueError("peer needs 'name' (target system name) and 'url' (its base URL)")
    url = str(body["url"]).rstrip("/")
    if urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"peer url {url} must be http:// or https://")
    host = urlsplit(url).hostname or ""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        raise ValueError(
            f"peer url {url} is not a loopback address; emulators only talk over loopback"
        )
    if url.startswith("https") and not body.get("ca_file"):
        raise ValueError("an https peer needs 'ca_file' (its CA certificate) to verify it")
    _peers(emu)[body["name"]] = {"url": url, "ca_file": body.get("ca_file") or ""}
    return 201, {"peer": {"name": body["name"], "url": url}}


def _call_peer(peer: dict[str, str], sub: str, payload: dict[str, Any]) -> dict[str, Any]:
    req = urllib.request.Request(  # noqa: S310 - add_peer allows only http(s) on loopback
        f"{peer['url']}/_emulator{sub}",
        data=json.dumps(payload).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    ctx = ssl.create_default_context(cafile=peer["ca_file"]) if peer["ca_file"] else None
    try:
        with urllib.request.urlopen(req, timeout=30, context=ctx) as resp:  # noqa: S310
            return json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        try:
            msg = json.loads(exc.read()).get("error", str(exc))
        except ValueError:
            msg = str(exc)
        raise errors.JobFailure(f"Target system refused the partition: {msg}") from exc
    except OSError as exc:
        raise errors.JobFailure(
            f"Cannot reach the target emulator at {peer['url']}: {exc}"
        ) from exc


def _client_maps(emu: Emulator, res: Resource) -> list[tuple[Resource, etree._Element, str]]:
    out = []
    for v in emu.store.list("VirtualIOServer"):
        for section, item in (
            ("VirtualSCSIMappings", "VirtualSCSIMapping"),
            ("VirtualFibreChannelMappings", "VirtualFibreChannelMapping"),
        ):
            for m in slots.items(v.elem, section, item):
                link = m.find(x.q("AssociatedLogicalPartition"))
                href = link.get("href", "") if link is not None else ""
                if href.split("?")[0].rstrip("/").upper().endswith(res.uuid.upper()):
                    out.append((v, m, item))
    return out


def _check_source(emu: Emulator, res: Resource) -> list[dict[str, str]]:
    who = f"Partition {lpar.name_of(res.elem)!r}"
    st = lpar.state(res)
    if st not in (lpar.RUNNING, lpar.NOT_ACTIVATED):
        raise errors.JobFailure(f"{who} is {st}; only running or powered-off partitions move")
    if st == lpar.RUNNING and res.field("ResourceMonitoringControlState") != "active":
        raise errors.JobFailure(f"{who}: an active migration needs an active RMC connection")
    if res.field("IsManagementPartition") == "true":
        raise errors.JobFailure("The management partition cannot migrate")
    stg: list[dict[str, str]] = []
    for _v, m, item in _client_maps(emu, res):
        if item == "VirtualFibreChannelMapping":
            stg.append(
                {"kind": "vfc", "wwpns": m.findtext(f"{x.q('ClientAdapter')}/{x.q('WWPNs')}") or ""}
            )
            continue
        key = slots.storage_key(m.find(x.q("Storage")))
        if key is None:
            continue
        if key[0] == "VirtualOpticalMedia":
            raise errors.JobFailure(
                f"{who} has virtual optical media {key[1]!r} mapped; remove it before migrating"
            )
        if key[0] == "VirtualDisk":
            raise errors.JobFailure(
                f"{who} uses VIOS-local virtual disk {key[1]!r}, which the "
                "target cannot reach; only shared storage can move"
            )
        udid = m.findtext(f"{x.q('Storage')}/*/{x.q('UniqueDeviceID')}") or ""
        stg.append({"kind": key[0], "udid": udid})
    return stg


def _job_peer(emu: Emulator, job: Job) -> dict[str, str]:
    name = job.params.get("TargetManagedSystemName", "")
    peer = _peers(emu).get(name)
    if peer is None:
        raise errors.JobFailure(
            f"Target system {name!r} is unknown to this emulator; register it with "
            'POST /_emulator/peers {"name": ..., "url": ...} or inventory migration_peers'
        )
    return peer


def _payload(emu: Emulator, res: Resource, stg: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "lpar": x.tostring(res.elem).decode(),
        "state": lpar.state(res),
        "rmc": res.field("ResourceMonitoringControlState"),
        "region_mb": system.region_size(emu),
        "storage": stg,
    }


def migrate_validate(emu: Emulator, job: Job) -> dict[str, str]:
    res = job.target
    assert res is not None
    peer = _job_peer(emu, job)
    with emu.lock:
        stg = _check_source(emu, res)
        payload = _payload(emu, res, stg)
    _call_peer(peer, "/migration/validate", payload)
    job.pause(1.0)
    return {}


def migrate(emu: Emulator, job: Job) -> dict[str, str]:
    res = job.target
    assert res is not None
    peer = _job_peer(emu, job)
    with emu.lock:
        stg = _check_source(emu, res)
        payload = _payload(emu, res, stg)
        _set_migration_state(emu, res, "Migration Starting")
    try:
        _call_peer(peer, "/migration/validate", payload)
        job.pause(0.5)
        if job.cancelled.is_set():
            raise errors.JobFailure("Migration aborted by MigrateAbort")
        _call_peer(peer, "/migration/in", payload)
    except errors.JobFailure:
        _set_migration_state(emu, res, NOT_MIGRATING)
        raise
    job.pause(0.5)
    with emu.lock:
        _remove_source(emu, res)
    return {}


def _set_migration_state(emu: Emulator, res: Resource, value: str) -> None:
    with emu.lock:
        schema.set_field(res.elem, "MigrationState", value)
        res.bump()
    emu.publish("MODIFY_URI", res, "Other")


def _remove_source(emu: Emulator, res: Resource) -> None:
    """The partition left: drop its adapters, mappings and capacity here."""
    for v in {id(v): v for v, _m, _i in _client_maps(emu, res)}.values():
        new = x.deep(v.elem)
        for section, item in (
            ("VirtualSCSIMappings", "VirtualSCSIMapping"),
            ("VirtualFibreChannelMappings", "VirtualFibreChannelMapping"),
        ):
            for m in slots.items(new, section, item):
                link = m.find(x.q("AssociatedLogicalPartition"))
                if link is not None and link.get("href", "").split("?")[0].rstrip(
                    "/"
                ).upper().endswith(res.uuid.upper()):
                    m.getparent().remove(m)
        v.elem = new
        v.bump("ViosSCSIMapping")
        v.bump("ViosFCMapping")
        emu.publish("MODIFY_URI", v, "Other")
    if lpar.state(res) != lpar.NOT_ACTIVATED:
        s = lpar.Sizing(res.elem)
        system.release(emu, s.mem, s.units)
    system.remove_partition_link(emu, res)
    emu.store.remove(res)
    emu.publish("DELETE_URI", res)


def migrate_abort(emu: Emulator, job: Job) -> dict[str, str]:
    res = job.target
    assert res is not None
    running = [
        j
        for j in emu.jobs.live()
        if j.op == "Migrate" and j.target is res and j.status == "RUNNING"
    ]
    if not running:
        raise errors.JobFailure(f"No migration of {lpar.name_of(res.elem)!r} is in progress")
    for j in running:
        j.cancelled.set()
    return {}


def migrate_recover(emu: Emulator, job: Job) -> dict[str, str]:
    res = job.target
    assert res is not None
    _set_migration_state(emu, res, NOT_MIGRATING)
    return {}


# ---- target side -----------------------------------------------------------------------------
def _target_check(emu: Emulator, body: dict[str, Any]) -> etree._Element:
    try:
        el = x.parse(body["lpar"])
    except (KeyError, etree.XMLSyntaxError) as exc:
        raise ValueError(f"migration payload has no usable partition: {exc}") from exc
    name = lpar.name_of(el)
    region = system.region_size(emu)
    if int(body.get("region_mb", region)) != region:
        raise ValueError(
            f"memory region size differs (source {body.get('region_mb')} MB, target {region} MB)"
        )
    uuid = x.text(el, "PartitionUUID") or ""
    if any(p.uuid.upper() == uuid.upper() for p in lpar.all_partitions(emu)):
        raise ValueError(f"a partition with UUID {uuid} already exists on the target")
    try:
        lpar.check_unique_name(emu, name)
    except errors.RestError as exc:
        raise ValueError(exc.message) from exc
    if body.get("state") == lpar.RUNNING:
        s = lpar.Sizing(el)
        free_mem, free_units = system.available(emu)
        if s.mem > free_mem or s.units > free_units + 1e-9:
            raise ValueError(
                f"target has {free_mem} MB and {free_units} processing units free; "
                f"{name!r} needs {s.mem} MB and {s.units}"
            )
    for item in body.get("storage", []):
        if (
            item["kind"] in ("PhysicalVolume", "LogicalUnit")
            and _target_vios_for(emu, item) is None
        ):
            raise ValueError(f"no VIOS on the target sees {item['kind']} {item['udid']}")
    return el


def _target_vios_for(emu: Emulator, item: dict[str, str]) -> Resource | None:
    for v in emu.store.list("VirtualIOServer"):
        if item["kind"] == "LogicalUnit":
            if any(
                lu.field("UniqueDeviceID") == item["udid"] for lu in emu.store.list("LogicalUnit")
            ):
                return v
        elif any(
            p.findtext(x.q("UniqueDeviceID")) == item["udid"]
            for p in slots.items(v.elem, "PhysicalVolumes", "PhysicalVolume")
        ):
            return v
    return None


def migrate_in(emu: Emulator, body: dict[str, Any]) -> tuple[int, Any]:
    el = _target_check(emu, body)
    uuid = (x.text(el, "PartitionUUID") or "").upper()
    for tag in ("PartitionID", "AssociatedManagedSystem", "ClientNetworkAdapters"):
        c = el.find(x.q(tag))
        if c is not None:
            el.remove(c)
    running = body.get("state") == lpar.RUNNING
    res = lpar.finish_partition(emu, el, "LogicalPartition", uuid, lpar.NOT_ACTIVATED, "inactive")
    schema.set_field(res.elem, "MigrationState", NOT_MIGRATING)
    emu.store.add(res)
    system.add_partition_link(emu, res)
    if running:
        s = lpar.Sizing(res.elem)
        system.reserve(emu, s.mem, s.units, lpar.name_of(el))
        schema.set_field(res.elem, "PartitionState", lpar.RUNNING)
        schema.set_field(res.elem, "ResourceMonitoringControlState", body.get("rmc") or "active")
        lpar._set_current(res, True)
        lpar._set_ref_code(res, lpar.RUNNING)
    emu.publish("ADD_URI", res)
    # Recreate storage mappings on the VIOS that sees the same disk.
    for item in body.get("storage", []):
        if item["kind"] not in ("PhysicalVolume", "LogicalUnit"):
            continue
        v = _target_vios_for(emu, item)
        assert v is not None
        new = x.deep(v.elem)
        maps = vios.section(new, "VirtualSCSIMappings")
        m = etree.SubElement(maps, x.q("VirtualSCSIMapping"), schemaVersion="V1_0")
        md = etree.SubElement(m, x.q("Metadata"))
        etree.SubElement(md, x.q("Atom"))
        etree.SubElement(
            m,
            x.q("AssociatedLogicalPartition"),
            kb="CUR",
            kxe="false",
            href=emu.base + res.path,
            rel="related",
        )
        stg = etree.SubElement(m, x.q("Storage"), kb="CUR", kxe="false")
        ref = etree.SubElement(stg, x.q(item["kind"]), schemaVersion="V1_0")
        etree.SubElement(ref, x.q("UniqueDeviceID")).text = item["udid"]
        scsi.scsi_hook(emu, v, v.elem, new)
        v.elem = new
        v.bump("ViosSCSIMapping")
        emu.publish("MODIFY_URI", v, "Other")
    return 201, {"partition": uuid}


def validate_in(emu: Emulator, body: dict[str, Any]) -> tuple[int, Any]:
    _target_check(emu, body)
    return 200, {"valid": True}


def register(emu: Emulator) -> None:
    for op, fn in (
        ("MigrateValidate", migrate_validate),
        ("Migrate", migrate),
        ("MigrateAbort", migrate_abort),
        ("MigrateRecover", migrate_recover),
    ):
        emu.jobs.register("LogicalPartition", op, lambda j, fn=fn: fn(emu, j))
    emu.control_routes["/peers"] = lambda body: add_peer(emu, body)
    emu.control_routes["/migration/validate"] = lambda body: validate_in(emu, body)
    emu.control_routes["/migration/in"] = lambda body: migrate_in(emu, body)

    def seed(e: Emulator, inv: dict[str, Any]) -> None:
        for name, url in (inv.get("migration_peers") or {}).items():
            add_peer(e, {"name": name, "url": url})

    emu.seed_hooks.append(seed)
