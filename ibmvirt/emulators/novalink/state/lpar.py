"""LogicalPartition: client LPARs and the NovaLink management partition.

Rules, as on the real server: unique names; memory and processor values must be
consistent (min <= desired <= max, memory in multiples of the region size,
within the system); a running partition cannot be deleted and can only be
changed dynamically (DLPAR, RMC active) within its current min/max. Power
jobs are in power.py, IBM i rules in ibmi.py, what other types need of a
partition (states, names, sizings, the hot-plug rule) in partition.py.
"""

from __future__ import annotations

import math
import re
import uuid as uuidlib
from typing import Any

from lxml import etree

from ibmvirt.emulators.novalink import errors, schema
from ibmvirt.emulators.novalink import xmlutil as x
from ibmvirt.emulators.novalink.emulator import Emulator, Kind
from ibmvirt.emulators.novalink.state import bootlist, ibmi, power, system
from ibmvirt.emulators.novalink.state.partition import (
    MEM_CFG,
    NOT_ACTIVATED,
    RUNNING,
    Sizing,
    all_partitions,
    check_unique_name,
    name_of,
    state,
)
from ibmvirt.emulators.novalink.store import Resource

VALID_TYPES = ("AIX/Linux", "OS400")
_UUID_RE = re.compile(r"^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$")


# ---- validation -------------------------------------------------------------------
def validate_sizing(emu: Emulator, el: etree._Element, who: str) -> Sizing:
    """Refuse inconsistent memory/processor settings, naming the field and the fix."""
    s = Sizing(el)
    region = system.region_size(emu)
    cfg_mem, cfg_units = system.configurable(emu)
    if not (0 < s.mem_min <= s.mem <= s.mem_max):
        raise errors.bad_request(
            f"{who}: memory must satisfy 0 < MinimumMemory ({s.mem_min}) <= DesiredMemory "
            f"({s.mem}) <= MaximumMemory ({s.mem_max}) MB"
        )
    for label, v in (
        ("MinimumMemory", s.mem_min),
        ("DesiredMemory", s.mem),
        ("MaximumMemory", s.mem_max),
    ):
        if v % region:
            raise errors.bad_request(
                f"{who}: {label} {v} MB is not a multiple of the memory region size "
                f"({region} MB); round it to a multiple of {region}."
            )
    if s.mem_max > cfg_mem:
        raise errors.refused(
            f"{who}: MaximumMemory {s.mem_max} MB exceeds the system's configurable memory "
            f"({cfg_mem} MB)",
            errors.INSUFFICIENT_MEMORY,
        )
    if not (0 < s.units_min <= s.units <= s.units_max):
        raise errors.bad_request(
            f"{who}: processors must satisfy 0 < minimum ({s.units_min}) <= desired "
            f"({s.units}) <= maximum ({s.units_max})"
        )
    if s.units_max > cfg_units:
        raise errors.refused(
            f"{who}: maximum processing units {s.units_max} exceed the system's configurable "
            f"{cfg_units}",
            errors.INSUFFICIENT_PROCESSORS,
        )
    assert emu.ms is not None
    pc = "AssociatedSystemProcessorConfiguration"
    # The system states its per-partition limits separately for IBM i.
    per = "IBMi" if ibmi.is_ibmi(el) else "AIXOrLinux"
    if s.dedicated:
        limit = int(emu.ms.field(f"{pc}/CurrentMaximumProcessorsPer{per}Partition", "0") or 0)
        if limit and s.units_max > limit:
            raise errors.bad_request(
                f"{who}: at most {limit} dedicated processors per partition on this system "
                f"(asked for a maximum of {s.units_max:g})"
            )
    else:
        limit = int(
            emu.ms.field(f"{pc}/CurrentMaximumVirtualProcessorsPer{per}Partition", "0") or 0
        )
        if limit and s.vp_max > limit:
            raise errors.bad_request(
                f"{who}: at most {limit} virtual processors per partition on this system "
                f"(asked for a maximum of {s.vp_max:g})"
            )
    mode = x.text(el, "PendingProcessorCompatibilityMode")
    supported = [
        m.text for m in emu.ms.elem.iter(x.q("SupportedPartitionProcessorCompatibilityModes"))
    ]
    if mode and supported and mode not in supported:
        raise errors.bad_request(
            f"{who}: processor compatibility mode {mode!r} is not supported here; use one of "
            f"{', '.join(supported)}"
        )
    if not s.dedicated:
        if not (0 < s.vp_min <= s.vp <= s.vp_max):
            raise errors.bad_request(
                f"{who}: virtual processors must satisfy 0 < minimum ({s.vp_min}) <= desired "
                f"({s.vp}) <= maximum ({s.vp_max})"
            )
        for label, units, vps in (
            ("Minimum", s.units_min, s.vp_min),
            ("Desired", s.units, s.vp),
            ("Maximum", s.units_max, s.vp_max),
        ):
            if units > vps + 1e-9 or units < 0.05 * vps - 1e-9:
                raise errors.bad_request(
                    f"{who}: {label}ProcessingUnits {units} must be between 0.05 and 1.0 per "
                    f"virtual processor ({vps} {label.lower()} virtual processors)"
                )
    return s


def next_partition_id(emu: Emulator) -> int:
    used = {int(p.field("PartitionID", "0") or 0) for p in all_partitions(emu)}
    assert emu.ms is not None
    limit = int(emu.ms.field("MaximumPartitions", "1000") or 1000)
    for i in range(1, limit + 1):
        if i not in used:
            return i
    raise errors.bad_request(
        f"The system already hosts its maximum of {limit} partitions; delete one first"
    )


# ---- creation ---------------------------------------------------------------------
def finish_partition(
    emu: Emulator, el: etree._Element, kind: str, uuid: str, pstate: str, rmc: str
) -> Resource:
    """Add the server-owned fields of a new partition and wrap it as a Resource."""
    x.set_atom(el, uuid)
    wanted = x.text(el, "PartitionID")
    if wanted and wanted.strip() not in ("", "0"):
        pid = int(wanted)
        taken = {int(p.field("PartitionID", "0") or 0) for p in all_partitions(emu)}
        if pid in taken:
            raise errors.bad_request(
                f"PartitionID {pid} is already used by another partition; omit PartitionID "
                "to let the server choose one",
                errors.DUPLICATE_NAME,
            )
        schema.set_field(el, "PartitionID", str(pid), kb="COD")
    else:
        schema.set_field(el, "PartitionID", str(next_partition_id(emu)), kb="COD")
    schema.set_field(el, "PartitionUUID", uuid, kb="ROO")
    schema.set_field(el, "PartitionState", pstate)
    schema.set_field(el, "ResourceMonitoringControlState", rmc)
    for tag, value in (
        ("BootMode", "Normal"),
        ("KeylockPosition", "normal"),
        ("PendingProcessorCompatibilityMode", "default"),
    ):
        if el.find(x.q(tag)) is None:
            schema.set_field(el, tag, value, kb="CUD")
    if kind == "LogicalPartition":
        bootlist.add(el)
    if kind == "LogicalPartition" and el.find(x.q("PartitionNVRAM")) is None:
        nv = etree.Element(
            x.q("PartitionNVRAM"), group="NVRAM", kxe="true", kb="CUD", schemaVersion="V1_1_0"
        )
        nv.text = power.nvram_blob(uuid, 0)
        schema.insert_ordered(el, nv)
    mem = el.find(x.q(MEM_CFG))
    if mem is not None and mem.find(x.q("SharedMemoryEnabled")) is None:
        # Active Memory Sharing is not emulated: every partition has dedicated memory.
        schema.set_field(mem, "SharedMemoryEnabled", "false", kb="CUD")
    if el.find(x.q("IsManagementPartition")) is None:
        schema.set_field(el, "IsManagementPartition", "false")
    if el.find(x.q("IsOperationInProgress")) is None:
        schema.set_field(el, "IsOperationInProgress", "false")
    if el.find(x.q("MigrationState")) is None and kind == "LogicalPartition":
        schema.set_field(el, "MigrationState", "Not_Migrating")
    ams = el.find(x.q("AssociatedManagedSystem"))
    assert emu.ms is not None
    if ams is None:
        ams = etree.Element(x.q("AssociatedManagedSystem"), kb="CUD", kxe="false")
        schema.insert_ordered(el, ams)
    ams.set("href", emu.base + emu.ms.path)
    ams.set("rel", "related")
    res = Resource(kind, uuid, el, parent=emu.ms)
    power.set_current(res, running=pstate != NOT_ACTIVATED)
    power.set_ref_code(res, pstate)
    return res


def _create(emu: Emulator, parent: Resource | None, el: etree._Element) -> Resource:
    name = name_of(el)
    if not name:
        raise errors.bad_request("PartitionName is required to create a LogicalPartition")
    if len(name) > 47:
        raise errors.bad_request(f"PartitionName {name!r} is longer than 47 characters")
    ptype = x.text(el, "PartitionType", "AIX/Linux")
    if ptype not in VALID_TYPES:
        raise errors.bad_request(
            f"PartitionType {ptype!r} cannot be created here; use one of {', '.join(VALID_TYPES)}"
        )
    check_unique_name(emu, name)
    validate_sizing(emu, el, f"LogicalPartition {name!r}")
    if ptype == ibmi.IBMI:
        ibmi.check_ibmi(emu, el, None, f"LogicalPartition {name!r}")
    uuid = (x.text(el, "PartitionUUID") or str(uuidlib.uuid4())).strip().upper()
    if not _UUID_RE.match(uuid):
        raise errors.bad_request(
            f"PartitionUUID {uuid!r} is not a UUID (8-4-4-4-12 hexadecimal digits)"
        )
    if any(p.uuid.upper() == uuid for p in all_partitions(emu)):
        raise errors.bad_request(
            f"PartitionUUID {uuid} is already used by another partition", errors.DUPLICATE_NAME
        )
    given_nvram = bool((x.text(el, "PartitionNVRAM") or "").strip())
    res = finish_partition(emu, el, "LogicalPartition", uuid, NOT_ACTIVATED, "inactive")
    if given_nvram:
        # A partition recreated from a backup (evacuate, remote restart) starts
        # with the NVRAM its creator sent, as on the real server.
        res.ext["nvram_given"] = True
    if ptype == ibmi.IBMI and el.find(x.q("DesignatedIPLSource")) is None:
        schema.set_field(el, "DesignatedIPLSource", ibmi.DEFAULT_IPL_SOURCE, kb="CUR")
    system.add_partition_link(emu, res)
    return res


def _update(emu: Emulator, res: Resource, new: etree._Element) -> None:
    who = f"{res.kind} {name_of(res.elem)!r} ({res.uuid})"
    given = (x.text(new, "PartitionUUID") or "").strip()
    if given and given.upper() != res.uuid.upper():
        # Settable at creation only: it is the partition's identity (its URI).
        raise errors.bad_request(
            f"{who}: PartitionUUID can only be set at creation: cannot change it to {given!r}",
            errors.CREATE_ONLY_FIELD,
        )
    name = name_of(new)
    if not name:
        raise errors.bad_request(f"{who}: PartitionName cannot be empty")
    if name != name_of(res.elem):
        check_unique_name(emu, name, exclude=res)
    old = Sizing(res.elem)
    s = validate_sizing(emu, new, who)
    if ibmi.is_ibmi(res.elem):
        ibmi.check_ibmi(emu, new, res.elem, who)
    bootlist.check_update(who, res.elem, new)
    running = state(res) != NOT_ACTIVATED
    if running:
        if s.limits() != old.limits():
            raise errors.refused(
                f"{who} is {state(res)}: minimum/maximum memory and processor limits and the "
                "processor mode can only change while it is powered off",
                errors.DLPAR_LIMIT,
            )
        if (s.mem, s.units, s.vp) != (old.mem, old.units, old.vp):
            rmc = res.field("ResourceMonitoringControlState")
            # IBM i is changed through the hypervisor, without RMC.
            if rmc != "active" and res.kind == "LogicalPartition" and not ibmi.is_ibmi(res.elem):
                raise errors.refused(
                    f"{who}: dynamic changes need an active RMC connection (RMC is {rmc}); "
                    "wait for the OS to start RMC or power the partition off",
                    errors.DLPAR_LIMIT,
                )
            dmem, dunits = s.mem - old.mem, round(s.units - old.units, 2)
            if dmem > 0 or dunits > 0:
                try:
                    system.reserve(emu, max(dmem, 0), max(dunits, 0), who)
                except errors.JobFailure as exc:
                    raise errors.refused(exc.text, exc.code or errors.INSUFFICIENT_MEMORY) from exc
            system.release(emu, max(-dmem, 0), max(-dunits, 0))
    res.elem = new
    power.set_current(res, running)


def _delete(emu: Emulator, res: Resource) -> None:
    if state(res) != NOT_ACTIVATED:
        raise errors.refused(
            f"{res.kind} {name_of(res.elem)!r} ({res.uuid}) is {state(res)}; power it off "
            "before deleting it",
            errors.RUNNING_DELETE,
        )
    if res.field("IsManagementPartition") == "true":
        raise errors.refused("The management partition cannot be deleted", errors.IN_USE)
    system.remove_partition_link(emu, res)


QUICK_PROPS = (
    "PartitionName",
    "PartitionID",
    "PartitionUUID",
    "PartitionState",
    "PartitionType",
    "ResourceMonitoringControlState",
    "ReferenceCode",
    "IsManagementPartition",
    "OperatingSystemVersion",
    "MigrationState",
    "IsOperationInProgress",
)
_INT_PROPS = {"PartitionID", "CurrentMemory"}


def quick(emu: Emulator, res: Resource) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in QUICK_PROPS:
        v = res.field(k)
        if v is not None:
            out[k] = int(v) if k in _INT_PROPS else v
    out["CurrentMemory"] = int(res.field(f"{MEM_CFG}/CurrentMemory", "0") or 0)
    out["AssociatedManagedSystem"] = emu.base + emu.ms.path if emu.ms else ""
    return out


def register(emu: Emulator) -> None:
    emu.register(
        Kind(
            "LogicalPartition",
            parents=("ManagedSystem",),
            create=_create,
            update=_update,
            delete=_delete,
            quick=quick,
            # The new partition's NVRAM is written right after it is created;
            # the real server follows ADD_URI with an NVRAM event (event_feed.txt).
            on_read=power.show_computed,
            after_create=[power.nvram_after_create],
        )
    )


# ---- seeding from the inventory -----------------------------------------------------
def build_lpar_element(
    name: str,
    mem_mb: int,
    units: float,
    vcpus: int,
    ptype: str = "AIX/Linux",
    uuid: str | None = None,
) -> etree._Element:
    """A LogicalPartition element as LPARBuilder would send it (schema order)."""
    el = etree.Element(x.q("LogicalPartition"), nsmap={None: x.UOM_NS}, schemaVersion="V1_0")
    md = etree.SubElement(el, x.q("Metadata"))
    etree.SubElement(md, x.q("Atom"))
    x.sub(el, "AvailabilityPriority", "127", kb="CUD")
    io = x.sub_container(el, "PartitionIOConfiguration", kb="CUD", kxe="false")
    x.sub(io, "MaximumVirtualIOSlots", "64", kb="CUD")
    mem = x.sub_container(el, "PartitionMemoryConfiguration", kb="CUD", kxe="false")
    for tag in ("DesiredMemory", "MaximumMemory", "MinimumMemory"):
        x.sub(mem, tag, str(mem_mb), kb="CUD")
    x.sub(el, "PartitionName", name, kb="CUR")
    proc = x.sub_container(el, "PartitionProcessorConfiguration", kb="CUD", kxe="false")
    x.sub(proc, "HasDedicatedProcessors", "false", kb="CUD")
    shr = x.sub_container(proc, "SharedProcessorConfiguration", kb="CUD", kxe="false")
    u = f"{units:.2f}"
    for tag, v in (
        ("DesiredProcessingUnits", u),
        ("DesiredVirtualProcessors", str(vcpus)),
        ("MaximumProcessingUnits", u),
        ("MaximumVirtualProcessors", str(vcpus)),
        ("MinimumProcessingUnits", u),
        ("MinimumVirtualProcessors", str(vcpus)),
        ("SharedProcessorPoolID", "0"),
        ("UncappedWeight", "64"),
    ):
        x.sub(shr, tag, v, kb="CUD")
    x.sub(proc, "SharingMode", "uncapped", kb="CUD")
    x.sub(el, "PartitionType", ptype, kb="COD")
    if uuid:
        x.sub(el, "PartitionUUID", uuid, kb="ROO")
    return el


def seed_lpar(emu: Emulator, spec: dict[str, Any]) -> Resource:
    """Create an LPAR from an inventory entry (may start running)."""
    units = float(spec.get("proc_units", 0.5))
    vcpus = int(spec.get("vcpus", max(1, math.ceil(units))))
    el = build_lpar_element(
        spec["name"],
        int(spec.get("memory_mb", 2048)),
        units,
        vcpus,
        spec.get("type", "AIX/Linux"),
    )
    assert emu.ms is not None
    seed_name = f"{emu.ms.field('SystemName')}/{spec['name']}"
    uuid = (spec.get("uuid") or str(uuidlib.uuid5(uuidlib.NAMESPACE_DNS, seed_name))).upper()
    running = spec.get("state", NOT_ACTIVATED) == RUNNING
    if spec.get("management"):
        schema.set_field(el, "IsManagementPartition", "true")
    res = finish_partition(emu, el, "LogicalPartition", uuid, NOT_ACTIVATED, "inactive")
    emu.store.add(res)
    system.add_partition_link(emu, res)
    if running:
        s = Sizing(res.elem)
        system.reserve(emu, s.mem, s.units, spec["name"])
        schema.set_field(res.elem, "PartitionState", RUNNING)
        schema.set_field(
            res.elem,
            "ResourceMonitoringControlState",
            "active" if spec.get("rmc", True) else "inactive",
        )
        power.set_current(res, True)
        power.set_ref_code(res, RUNNING)
    return res
