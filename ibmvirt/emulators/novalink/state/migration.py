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
the same memory region size, the partition's processor compatibility mode, a
free name, enough memory and processors and a free active-migration slot.

A Migrate job spends its delay in three phases, which the partition's
MigrationState shows: validation (``Migration_Starting``), the memory copy
(``Migration_In_Progress``; MigrateAbort stops it and the partition stays
here) and the hand-over to the target, past which an abort is refused. The
in-progress state name and the phase shares are guesses: pypowervm documents
only ``Not_Migrating``, ``Migration_Starting`` and ``Migration_Failed``.
"""

from __future__ import annotations

import time
from typing import Any

from lxml import etree

from ibmvirt.emulators.novalink import errors, jobs, schema
from ibmvirt.emulators.novalink import xmlutil as x
from ibmvirt.emulators.novalink.emulator import Emulator
from ibmvirt.emulators.novalink.jobs import Job
from ibmvirt.emulators.novalink.state import (
    fc,
    lpar,
    partition,
    peers,
    power,
    scsi,
    slots,
    system,
    vios,
)
from ibmvirt.emulators.novalink.store import Resource

NOT_MIGRATING = "Not_Migrating"
STARTING = "Migration_Starting"
IN_PROGRESS = "Migration_In_Progress"
#: Job.stage of a migration past its point of no return.
COMMITTED = "committed"
#: Shares of the Migrate job's delay: validation, memory copy, hand-over.
_PHASES = (0.15, 0.7, 0.15)


def _call_peer(peer: dict[str, str], sub: str, payload: dict[str, Any]) -> dict[str, Any]:
    try:
        return peers.call(peer, sub, payload)
    except peers.PeerError as exc:
        raise errors.JobFailure(f"Target system refused the partition: {exc}") from exc


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
    who = f"Partition {partition.name_of(res.elem)!r}"
    st = partition.state(res)
    if st not in (partition.RUNNING, partition.NOT_ACTIVATED):
        raise errors.JobFailure(f"{who} is {st}; only running or powered-off partitions move")
    if st == partition.RUNNING and res.field("ResourceMonitoringControlState") != "active":
        raise errors.JobFailure(f"{who}: an active migration needs an active RMC connection")
    if res.field("IsManagementPartition") == "true":
        raise errors.JobFailure("The management partition cannot migrate")
    running, limit = system.active_migrations(emu)
    if st == partition.RUNNING and running >= limit:
        raise errors.JobFailure(
            f"{who}: this system already runs {running} of the {limit} active "
            "migrations it supports; retry when one has finished"
        )
    stg: list[dict[str, str]] = []
    if emu.store.list("SRIOVEthernetLogicalPort", parent=res):
        raise errors.JobFailure(
            f"{who} has SR-IOV logical ports assigned directly; a partition with physical "
            "I/O cannot migrate (use a vNIC or a virtual Ethernet adapter)"
        )
    if emu.store.list("VirtualNICDedicated", parent=res):
        raise errors.JobFailure(
            f"{who} has SR-IOV vNICs; the emulator does not move vNICs between hosts "
            "(a real NovaLink does, choosing backing ports by label)"
        )
    for _v, m, item in _client_maps(emu, res):
        if item == "VirtualFibreChannelMapping":
            ca = m.find(x.q("ClientAdapter"))
            stg.append(
                {
                    "kind": "vfc",
                    "wwpns": ca.findtext(x.q("WWPNs")) or "" if ca is not None else "",
                    "slot": ca.findtext(x.q("VirtualSlotNumber")) or "" if ca is not None else "",
                    "vios": partition.name_of(_v.elem),
                }
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
        # The device's Tag moves with it (a guess: drivers find a volume's
        # mapping by it, and nothing says LPM drops it).
        tag = m.findtext(f"{x.q('Storage')}/*/{x.q('Tag')}") or ""
        stg.append({"kind": key[0], "udid": udid, "tag": tag, "vios": partition.name_of(_v.elem)})
    return stg


def _job_peer(emu: Emulator, job: Job) -> dict[str, str]:
    name = job.params.get("TargetManagedSystemName", "")
    peer = peers.find(emu, name)
    if peer is None:
        raise errors.JobFailure(
            f"Target system {name!r} is unknown to this emulator; register it with "
            'POST /_emulator/peers {"name": ..., "url": ...} or inventory migration_peers'
        )
    return peer


def _cnas(emu: Emulator, res: Resource) -> list[dict[str, str]]:
    """The partition's virtual Ethernet adapters and the switch each is on."""
    out = []
    for cna in emu.store.list("ClientNetworkAdapter", parent=res):
        vs = next(
            (
                v
                for v in emu.store.list("VirtualSwitch")
                if v.field("SwitchID") == cna.field("VirtualSwitchID")
            ),
            None,
        )
        out.append(
            {"xml": x.tostring(cna.elem).decode(), "vswitch": vs.field("SwitchName") if vs else ""}
        )
    return out


def _payload(emu: Emulator, res: Resource, stg: list[dict[str, str]], job: Job) -> dict[str, Any]:
    return {
        "lpar": x.tostring(res.elem).decode(),
        "state": partition.state(res),
        "rmc": res.field("ResourceMonitoringControlState"),
        "region_mb": system.region_size(emu),
        "proc_mode": res.field("CurrentProcessorCompatibilityMode") or "default",
        "storage": stg,
        "cnas": _cnas(emu, res),
        "vlan_mappings": _vlan_mappings(job.params.get("VlanMappings", "")),
    }


def _vlan_mappings(raw: str) -> dict[str, str]:
    """``MAC/PVID[/VLANs]`` items (pypowervm's VlanMappings) as {MAC: PVID}."""
    out = {}
    for item in filter(None, (i.strip() for i in raw.split(","))):
        mac, _, rest = item.partition("/")
        pvid = rest.split("/")[0]
        if len(mac) != 12 or not pvid.isdigit() or not 1 <= int(pvid) <= 4094:
            raise errors.JobFailure(
                f"VlanMappings item {item!r} is not MAC/PVID (12 hex digits, a VLAN 1-4094)"
            )
        out[mac.upper()] = pvid
    return out


def _checked_payload(emu: Emulator, res: Resource, job: Job) -> dict[str, Any]:
    """What the target needs to know, once the source side allows the move (under the lock)."""
    return _payload(emu, res, _check_source(emu, res), job)


def migrate_validate(emu: Emulator, job: Job) -> dict[str, str]:
    res = job.target
    assert res is not None
    peer = _job_peer(emu, job)
    with emu.lock:
        payload = _checked_payload(emu, res, job)
    _call_peer(peer, "/migration/validate", payload)
    job.pause(1.0)
    return {}


def _not_aborted(job: Job) -> None:
    if job.cancelled.is_set():
        raise errors.JobFailure("Migration aborted by MigrateAbort; the partition stays here")


def migrate(emu: Emulator, job: Job) -> dict[str, str]:
    res = job.target
    assert res is not None
    peer = _job_peer(emu, job)
    with emu.lock:
        payload = _checked_payload(emu, res, job)
        active = payload["state"] == partition.RUNNING
        if active:
            system.count_active_migration(emu, +1)
        _set_migration_state(emu, res, STARTING)
    try:
        _call_peer(peer, "/migration/validate", payload)
        job.pause(_PHASES[0])
        _not_aborted(job)
        _set_migration_state(emu, res, IN_PROGRESS)
        job.pause(_PHASES[1])
        with emu.lock:
            _not_aborted(job)
            job.stage = COMMITTED
        _call_peer(peer, "/migration/in", payload)
    except errors.JobFailure:
        with emu.lock:
            if active:
                system.count_active_migration(emu, -1)
        _set_migration_state(emu, res, NOT_MIGRATING)
        raise
    job.pause(_PHASES[2])
    with emu.lock:
        if active:
            system.count_active_migration(emu, -1)
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
        _release_fc_ports(v.elem, new)
        v.elem = new
        v.bump("ViosSCSIMapping")
        v.bump("ViosFCMapping")
        vios.after_update(emu, v)
        emu.publish("MODIFY_URI", v, "Other")
    if partition.state(res) != partition.NOT_ACTIVATED:
        s = partition.Sizing(res.elem)
        system.release(emu, s.mem, s.units)
    system.remove_partition_link(emu, res)
    emu.store.remove(res)
    emu.publish("DELETE_URI", res)


def _release_fc_ports(old: etree._Element, new: etree._Element) -> None:
    """NPIV ports of the vFC mappings that left become free on their FC port."""
    kept = {id(m) for m in fc.vfc_maps(new)}
    gone = len(fc.vfc_maps(old)) - len(kept)
    if not gone:
        return
    ports = {p.findtext(x.q("PortName")): p for p in fc.fc_ports(new)}
    remaining = [m.findtext(f"{x.q('Port')}/{x.q('PortName')}") for m in fc.vfc_maps(new)]
    for m in fc.vfc_maps(old):
        name = m.findtext(f"{x.q('Port')}/{x.q('PortName')}")
        if name in remaining:
            remaining.remove(name)
        elif name in ports:
            p = ports[name]
            schema.set_field(
                p, "AvailablePorts", str(int(p.findtext(x.q("AvailablePorts")) or 0) + 1)
            )


def migrate_abort(emu: Emulator, job: Job) -> dict[str, str]:
    res = job.target
    assert res is not None
    name = partition.name_of(res.elem)
    with emu.lock:
        running = [
            j
            for j in emu.jobs.live()
            if j.op == "Migrate" and j.target is res and j.status not in jobs.DONE
        ]
        if not running:
            raise errors.JobFailure(f"No migration of {name!r} is in progress")
        if any(j.stage == COMMITTED for j in running):
            raise errors.JobFailure(
                f"The migration of {name!r} is handing the partition over to the target "
                "and can no longer be aborted"
            )
        for j in running:
            j.cancelled.set()
    # The abort completes once the partition is back to Not_Migrating here.
    deadline = time.monotonic() + 60
    while any(j.status not in jobs.DONE for j in running) and time.monotonic() < deadline:
        time.sleep(0.02)
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
    name = partition.name_of(el)
    region = system.region_size(emu)
    if int(body.get("region_mb", region)) != region:
        raise ValueError(
            f"memory region size differs (source {body.get('region_mb')} MB, target {region} MB)"
        )
    mode = body.get("proc_mode") or "default"
    modes = system.proc_compat_modes(emu)
    if mode != "default" and mode not in modes:
        raise ValueError(
            f"{name!r} runs in processor compatibility mode {mode}, which the target does "
            f"not support (it supports {', '.join(modes)})"
        )
    running, limit = system.active_migrations(emu)
    if body.get("state") == partition.RUNNING and running >= limit:
        raise ValueError(
            f"the target already runs {running} of the {limit} active migrations it supports"
        )
    uuid = x.text(el, "PartitionUUID") or ""
    if any(p.uuid.upper() == uuid.upper() for p in partition.all_partitions(emu)):
        raise ValueError(f"a partition with UUID {uuid} already exists on the target")
    try:
        partition.check_unique_name(emu, name)
    except errors.RestError as exc:
        raise ValueError(exc.message) from exc
    if body.get("state") == partition.RUNNING:
        s = partition.Sizing(el)
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
    _npiv_plan(emu, [i for i in body.get("storage", []) if i["kind"] == "vfc"])
    switches = {v.field("SwitchName") for v in emu.store.list("VirtualSwitch")}
    for cna in body.get("cnas", []):
        if cna["vswitch"] not in switches:
            raise ValueError(
                f"the target has no virtual switch {cna['vswitch']!r} for a network adapter "
                f"of {name!r}"
            )
    return el


def _npiv_plan(emu: Emulator, items: list[dict[str, str]]) -> list[tuple[Resource, etree._Element]]:
    """A target VIOS and free NPIV-capable FC port per vFC adapter. Adapters
    that were on different VIOSes at the source land on different VIOSes here
    when there are enough, keeping the client's path redundancy."""
    free = {
        (v.uuid, p.findtext(x.q("PortName"))): int(p.findtext(x.q("AvailablePorts")) or 0)
        for v in emu.store.list("VirtualIOServer")
        for p in fc.fc_ports(v.elem)
    }
    plan: list[tuple[Resource, etree._Element]] = []
    placed: dict[str, str] = {}  # source VIOS name -> target VIOS uuid
    for item in items:
        choices = []
        for v in emu.store.list("VirtualIOServer"):
            for p in fc.fc_ports(v.elem):
                if free[(v.uuid, p.findtext(x.q("PortName")))] > 0:
                    taken = v.uuid in placed.values() and placed.get(item.get("vios", "")) != v.uuid
                    choices.append((taken, -free[(v.uuid, p.findtext(x.q("PortName")))], v, p))
        if not choices:
            raise ValueError(
                f"no VIOS on the target has a free NPIV port for virtual FC adapter "
                f"{item.get('wwpns', '')}"
            )
        choices.sort(key=lambda c: (c[0], c[1]))
        _taken, _n, v, p = choices[0]
        free[(v.uuid, p.findtext(x.q("PortName")))] -= 1
        placed.setdefault(item.get("vios", ""), v.uuid)
        plan.append((v, p))
    return plan


def _target_vios_for(emu: Emulator, item: dict[str, str]) -> Resource | None:
    """A VIOS that sees the disk, the one named like the source's first (two
    paths through two VIOSes stay two paths)."""
    vioses = sorted(
        emu.store.list("VirtualIOServer"),
        key=lambda v: partition.name_of(v.elem) != item.get("vios"),
    )
    for v in vioses:
        if vios.is_management_io(v):
            continue  # NovaLink hosting I/O serves files and RBD, not SSP LUs or hdisks
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
    running = body.get("state") == partition.RUNNING
    res = lpar.finish_partition(
        emu, el, "LogicalPartition", uuid, partition.NOT_ACTIVATED, "inactive"
    )
    schema.set_field(res.elem, "MigrationState", NOT_MIGRATING)
    emu.store.add(res)
    system.add_partition_link(emu, res)
    if running:
        s = partition.Sizing(res.elem)
        system.reserve(emu, s.mem, s.units, partition.name_of(el))
        schema.set_field(res.elem, "PartitionState", partition.RUNNING)
        schema.set_field(res.elem, "ResourceMonitoringControlState", body.get("rmc") or "active")
        power.set_current(res, True)
        power.set_ref_code(res, partition.RUNNING)
    emu.publish("ADD_URI", res)
    # The adapters with fixed slots first (the network adapters and virtual FC
    # keep the source's), then the vSCSI mappings, which take free slots.
    for cna in body.get("cnas", []):
        _add_cna(emu, res, cna, body.get("vlan_mappings") or {})
    vfcs = [i for i in body.get("storage", []) if i["kind"] == "vfc"]
    for item, (v, port) in zip(vfcs, _npiv_plan(emu, vfcs), strict=True):
        _map_vfc(emu, res, v, port, item)
    # Recreate storage mappings on the VIOS that sees the same disk.
    for item in body.get("storage", []):
        if item["kind"] not in ("PhysicalVolume", "LogicalUnit"):
            continue
        v = _target_vios_for(emu, item)
        assert v is not None
        new = x.deep(v.elem)
        m = _new_mapping(emu, new, "VirtualSCSIMapping", res)
        stg = etree.SubElement(m, x.q("Storage"), kb="CUR", kxe="false")
        ref = etree.SubElement(stg, x.q(item["kind"]), schemaVersion="V1_0")
        if item.get("tag"):
            etree.SubElement(ref, x.q("Tag")).text = item["tag"]
        etree.SubElement(ref, x.q("UniqueDeviceID")).text = item["udid"]
        scsi.scsi_hook(emu, v, v.elem, new)
        v.elem = new
        v.bump("ViosSCSIMapping")
        vios.after_update(emu, v)
        emu.publish("MODIFY_URI", v, "Other")
    return 201, {"partition": uuid}


def _new_mapping(emu: Emulator, vios_el: etree._Element, tag: str, res: Resource) -> etree._Element:
    """An empty client mapping for ``res`` (as a client would send it), appended
    to the VIOS's list of that kind, for the VIOS update hooks to complete."""
    maps = vios.section(vios_el, tag + "s")
    m = etree.SubElement(maps, x.q(tag), schemaVersion="V1_0")
    md = etree.SubElement(m, x.q("Metadata"))
    etree.SubElement(md, x.q("Atom"))
    x.link(m, "AssociatedLogicalPartition", emu.base + res.ms_path, kb="CUR")
    return m


def _map_vfc(
    emu: Emulator, res: Resource, v: Resource, port: etree._Element, item: dict[str, str]
) -> None:
    """The client's virtual FC adapter, same WWPNs and slot, on a target VIOS port."""
    new = x.deep(v.elem)
    m = _new_mapping(emu, new, "VirtualFibreChannelMapping", res)
    ca = x.sub_container(m, "ClientAdapter")
    if item.get("slot"):
        x.sub(ca, "VirtualSlotNumber", item["slot"])
    x.sub(ca, "WWPNs", item["wwpns"])
    pe = x.sub_container(m, "Port")
    x.sub(pe, "PortName", port.findtext(x.q("PortName")))
    x.sub(pe, "WWPN", port.findtext(x.q("WWPN")))
    fc.vfc_hook(emu, v, v.elem, new)
    v.elem = new
    v.bump("ViosFCMapping")
    vios.after_update(emu, v)
    emu.publish("MODIFY_URI", v, "Other")


def _add_cna(emu: Emulator, res: Resource, cna: dict[str, str], vlans: dict[str, str]) -> None:
    """Recreate a virtual Ethernet adapter (same MAC, VLANs and slot) on the
    target's switch of the same name; the job's VlanMappings give it another
    PVID (an OVS port: the free VLAN of the trunk prepared on the target)."""
    el = x.parse(cna["xml"])
    mac = (x.text(el, "MACAddress") or "").upper()
    if mac in vlans:
        schema.set_field(el, "PortVLANID", vlans[mac])
    for tag in (
        "DynamicReconfigurationConnectorName",
        "LocationCode",
        "LocalPartitionID",
        "VirtualSwitchID",
        "VirtualNetworks",
        "AssociatedVirtualSwitch",
    ):
        x.remove_all(el, [tag])
    vs = next(v for v in emu.store.list("VirtualSwitch") if v.field("SwitchName") == cna["vswitch"])
    link = etree.Element(x.q("AssociatedVirtualSwitch"), kb="CUR", kxe="false")
    etree.SubElement(link, x.q("link"), href=emu.base + vs.path, rel="related")
    schema.insert_ordered(el, link)
    new = emu.kind("ClientNetworkAdapter").create(emu, res, el)
    emu.store.add(new)
    emu.publish("ADD_URI", new)


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
    emu.control_routes["/peers"] = lambda body: peers.add(emu, body)
    emu.control_routes["/migration/validate"] = lambda body: validate_in(emu, body)
    emu.control_routes["/migration/in"] = lambda body: migrate_in(emu, body)

    def seed(e: Emulator, inv: dict[str, Any]) -> None:
        for name, url in (inv.get("migration_peers") or {}).items():
            peers.add(e, {"name": name, "url": url})

    emu.seed_hooks.append(seed)
