"""Partitions: LogicalPartition (client LPARs, the NovaLink management
partition) and the power behaviour VirtualIOServer shares with them.

Rules, as on the real server: unique names; memory and processor values must be
consistent (min <= desired <= max, memory in multiples of the region size,
within the system); a running partition cannot be deleted and can only be
changed dynamically (DLPAR, RMC active) within its current min/max; powering
on takes memory and processing units from the system, powering off returns them.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
import time
import uuid as uuidlib
from typing import Any

from lxml import etree

from ibmvirt.emulators.novalink import errors, schema
from ibmvirt.emulators.novalink import xmlutil as x
from ibmvirt.emulators.novalink.emulator import Emulator, Kind
from ibmvirt.emulators.novalink.jobs import Job
from ibmvirt.emulators.novalink.state import system
from ibmvirt.emulators.novalink.store import Resource

PARTITION_KINDS = ("LogicalPartition", "VirtualIOServer")
MEM_CFG = "PartitionMemoryConfiguration"
PROC_CFG = "PartitionProcessorConfiguration"
SHARED = "SharedProcessorConfiguration"
DEDICATED = "DedicatedProcessorConfiguration"

NOT_ACTIVATED = "not activated"
RUNNING = "running"
STARTING = "starting"
SHUTTING_DOWN = "shutting down"
VALID_TYPES = ("AIX/Linux", "OS400")
_UUID_RE = re.compile(r"^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$")


# ---- reading a partition element ---------------------------------------------
class Sizing:
    """Memory and processor settings of a partition element."""

    def __init__(self, el: etree._Element) -> None:
        def num(path: str, default: str = "0") -> float:
            raw = x.text(el, path, default) or default
            try:
                value = float(raw)
            except ValueError:
                value = float("nan")
            if value != value or value in (float("inf"), float("-inf")):
                raise errors.bad_request(
                    f"{path.rsplit('/', 1)[-1]} must be a number, not {raw.strip()!r}"
                )
            return value

        self.mem_min = int(num(f"{MEM_CFG}/MinimumMemory"))
        self.mem = int(num(f"{MEM_CFG}/DesiredMemory"))
        self.mem_max = int(num(f"{MEM_CFG}/MaximumMemory"))
        self.dedicated = x.text(el, f"{PROC_CFG}/HasDedicatedProcessors") == "true"
        if self.dedicated:
            base = f"{PROC_CFG}/{DEDICATED}"
            self.units_min = num(f"{base}/MinimumProcessors")
            self.units = num(f"{base}/DesiredProcessors")
            self.units_max = num(f"{base}/MaximumProcessors")
            self.vp_min, self.vp, self.vp_max = self.units_min, self.units, self.units_max
        else:
            base = f"{PROC_CFG}/{SHARED}"
            self.units_min = num(f"{base}/MinimumProcessingUnits")
            self.units = num(f"{base}/DesiredProcessingUnits")
            self.units_max = num(f"{base}/MaximumProcessingUnits")
            self.vp_min = num(f"{base}/MinimumVirtualProcessors")
            self.vp = num(f"{base}/DesiredVirtualProcessors")
            self.vp_max = num(f"{base}/MaximumVirtualProcessors")

    def limits(self) -> tuple:
        return (
            self.mem_min,
            self.mem_max,
            self.dedicated,
            self.units_min,
            self.units_max,
            self.vp_min,
            self.vp_max,
        )


def state(res: Resource) -> str:
    return res.field("PartitionState", NOT_ACTIVATED) or NOT_ACTIVATED


def name_of(el: etree._Element) -> str:
    return x.text(el, "PartitionName", "") or ""


def all_partitions(emu: Emulator) -> list[Resource]:
    return [p for k in PARTITION_KINDS for p in emu.store.list(k)]


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
    per = "IBMi" if is_ibmi(el) else "AIXOrLinux"
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


def check_hotplug(part: Resource, what: str) -> None:
    """Adding or removing I/O on a running client partition is a dynamic
    change (DLPAR), which needs an active RMC connection; VIOSes and the
    management partition are always reachable."""
    if (
        part.kind == "LogicalPartition"
        and state(part) != NOT_ACTIVATED
        and part.field("ResourceMonitoringControlState") != "active"
        and part.field("IsManagementPartition") != "true"
    ):
        raise errors.refused(
            f"Cannot {what} {name_of(part.elem)!r} while it is {state(part)} without "
            "an active RMC connection",
            errors.DLPAR_LIMIT,
        )


def check_unique_name(emu: Emulator, name: str, exclude: Resource | None = None) -> None:
    for p in all_partitions(emu):
        if p is not exclude and name_of(p.elem) == name:
            raise errors.refused(
                f"A partition in the managed system already uses the name {name} "
                f"({p.kind} {p.uuid}); choose another name or delete that partition.",
                errors.PARTITION_NAME_IN_USE,
            )


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
    if kind == "LogicalPartition" and el.find(x.q("PartitionNVRAM")) is None:
        nv = etree.Element(
            x.q("PartitionNVRAM"), group="NVRAM", kxe="true", kb="CUD", schemaVersion="V1_1_0"
        )
        nv.text = _nvram_blob(uuid, 0)
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
    _set_current(res, running=pstate != NOT_ACTIVATED)
    _set_ref_code(res, pstate)
    return res


def _nvram_blob(uuid: str, generation: int) -> str:
    """Stand-in NVRAM content (base64), different after every boot cycle."""
    raw = hashlib.sha256(f"{uuid}/{generation}".encode()).digest() * 32
    return base64.b64encode(raw).decode()


def _touch_nvram(emu: Emulator, res: Resource) -> None:
    """The hypervisor rewrote the partition's NVRAM (power-off): new content and
    an NVRAM event, which drivers use to back the NVRAM up."""
    nv = res.elem.find(x.q("PartitionNVRAM"))
    if nv is None:
        return
    gen = res.ext.get("nvram_generation", 0) + 1
    res.ext["nvram_generation"] = gen
    nv.text = _nvram_blob(res.uuid, gen)
    res.bump("NVRAM")
    emu.publish("MODIFY_URI", res, "NVRAM")


def _nvram_after_create(emu: Emulator, res: Resource) -> None:
    """The hypervisor writes a new partition's NVRAM (the NVRAM its creator
    sent, if any: then only the event) and reports it with an NVRAM event."""
    if res.ext.pop("nvram_given", False):
        res.bump("NVRAM")
        emu.publish("MODIFY_URI", res, "NVRAM")
        return
    _touch_nvram(emu, res)


def _set_ref_code(res: Resource, pstate: str) -> None:
    """Reference codes and the current compatibility mode follow the state."""
    running = pstate != NOT_ACTIVATED
    code = "00000000" if running else ""
    schema.set_field(res.elem, "ReferenceCode", code)
    stamp = time.strftime("%m/%d/%Y %H:%M:%S", time.gmtime())
    schema.set_field(
        res.elem,
        "ReferenceCodeFull",
        f"time_stamp={stamp},refcode={code},word2=03D00000" if running else "",
        kb="ROO",
    )
    schema.set_field(
        res.elem, "CurrentProcessorCompatibilityMode", "POWER8" if running else "default", kb="ROO"
    )


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
    if ptype == IBMI:
        check_ibmi(emu, el, None, f"LogicalPartition {name!r}")
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
    if ptype == IBMI and el.find(x.q("DesignatedIPLSource")) is None:
        schema.set_field(el, "DesignatedIPLSource", DEFAULT_IPL_SOURCE, kb="CUR")
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
    if is_ibmi(res.elem):
        check_ibmi(emu, new, res.elem, who)
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
            if rmc != "active" and res.kind == "LogicalPartition" and not is_ibmi(res.elem):
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
    _set_current(res, running)


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


def _quick(emu: Emulator, res: Resource) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in QUICK_PROPS:
        v = res.field(k)
        if v is not None:
            out[k] = int(v) if k in _INT_PROPS else v
    out["CurrentMemory"] = int(res.field(f"{MEM_CFG}/CurrentMemory", "0") or 0)
    out["AssociatedManagedSystem"] = emu.base + emu.ms.path if emu.ms else ""
    return out


# ---- IBM i ------------------------------------------------------------------------
# IBM i partitions (PartitionType OS400) differ from AIX/Linux in what the host must
# support (ManagedSystem capabilities), their tagged I/O (load source and console
# slots), IPL source and keylock, and in needing no RMC for DLPAR or OS shutdown
# (pypowervm: LPAR._can_modify, PowerOffOpts.can_os_shutdown).
IBMI = "OS400"
CAPS = "AssociatedSystemCapabilities"
IPL_SOURCES = ("a", "b", "c", "d")  # DesignatedIPLSource / PowerOn iIPLsource
DEFAULT_IPL_SOURCE = "b"  # what lpar_ibmi.txt shows for a new partition
KEYLOCKS = ("manual", "normal")  # KeylockPosition a client may set
_KEYLOCK_PARAM = {"manual": "manual", "norm": "normal"}  # PowerOn 'keylock' values
IBMI_ACTIVATE, IBMI_NETBOOT, IBMI_CHANGE_KEYLOCK = "activate", "netboot", "changeKeylock"
_NETBOOT_PARAMS = ("IPAddress", "ServerIPAddress", "Gateway", "IBMiImageServerDirectory")
_TAGGED_IO = {
    # field: non-slot values it accepts besides a virtual slot number
    "AlternateConsole": ("NONE",),
    "AlternateLoadSource": ("NONE",),
    "Console": ("HMC", "NONE"),
    "LoadSource": ("NONE",),
    "OperationsConsole": ("NONE",),
}


def is_ibmi(el: etree._Element) -> bool:
    return x.text(el, "PartitionType") == IBMI


def host_capable(emu: Emulator, capability: str) -> bool:
    """A ManagedSystem capability flag (AssociatedSystemCapabilities/<capability>)."""
    assert emu.ms is not None
    return emu.ms.field(f"{CAPS}/{capability}", "false") == "true"


def check_ibmi(emu: Emulator, el: etree._Element, stored: etree._Element | None, who: str) -> None:
    """Refuse an IBM i partition the host cannot run or values it cannot take.

    ``stored`` is the partition as it is (None on create); values echoed back
    unchanged are not re-checked, so a client can always post what it read.
    """

    def changed(path: str) -> str | None:
        value = (x.text(el, path) or "").strip() or None
        before = None if stored is None else (x.text(stored, path) or "").strip() or None
        return value if value != before else None

    if stored is None and not host_capable(emu, "IBMiCapable"):
        raise errors.refused(
            f"{who}: this system cannot run IBM i partitions (IBMiCapable is false); "
            "create an AIX/Linux partition or use an IBM i capable system",
            errors.NOT_CAPABLE,
        )
    if changed("IsRestrictedIOPartition") == "true" and not host_capable(
        emu, "IBMiRestrictedIOModeCapable"
    ):
        raise errors.refused(
            f"{who}: this system does not support IBM i restricted I/O mode "
            "(IBMiRestrictedIOModeCapable is false); set IsRestrictedIOPartition to false",
            errors.NOT_CAPABLE,
        )
    ipl = changed("DesignatedIPLSource")
    if ipl is not None and ipl not in IPL_SOURCES:
        raise errors.bad_request(
            f"{who}: DesignatedIPLSource {ipl!r} is not an IPL source; use one of "
            f"{', '.join(IPL_SOURCES)}"
        )
    key = changed("KeylockPosition")
    if key is not None and key not in KEYLOCKS:
        raise errors.bad_request(
            f"{who}: KeylockPosition {key!r} cannot be set; use one of {', '.join(KEYLOCKS)}"
        )
    slots_max = int(x.text(el, "PartitionIOConfiguration/MaximumVirtualIOSlots", "0") or 0)
    for field, words in _TAGGED_IO.items():
        value = changed(f"PartitionIOConfiguration/TaggedIO/{field}")
        if value is None or value in words:
            continue
        if not value.isdigit() or (slots_max and int(value) >= slots_max):
            raise errors.bad_request(
                f"{who}: TaggedIO {field} {value!r} must be a virtual slot number below "
                f"MaximumVirtualIOSlots ({slots_max}) or one of {', '.join(words)}"
            )


def ibmi_power_on_options(res: Resource, params: dict[str, str], who: str) -> dict[str, Any]:
    """The IBM i parameters of a PowerOn job (pypowervm PowerOnOpts), checked."""
    op = params.get("OperationType", IBMI_ACTIVATE)
    if op not in (IBMI_ACTIVATE, IBMI_NETBOOT, IBMI_CHANGE_KEYLOCK):
        raise errors.JobFailure(
            f"{who}: OperationType {op!r} is not one of {IBMI_ACTIVATE}, {IBMI_NETBOOT}, "
            f"{IBMI_CHANGE_KEYLOCK}",
            errors.BAD_VALUE,
        )
    key = params.get("keylock")
    if key is not None and key not in _KEYLOCK_PARAM:
        raise errors.JobFailure(
            f"{who}: keylock {key!r} is not one of {', '.join(_KEYLOCK_PARAM)}", errors.BAD_VALUE
        )
    ipl = params.get("iIPLsource")
    if ipl is not None and ipl not in IPL_SOURCES:
        raise errors.JobFailure(
            f"{who}: iIPLsource {ipl!r} is not one of {', '.join(IPL_SOURCES)}",
            errors.BAD_VALUE,
        )
    if op == IBMI_CHANGE_KEYLOCK and key is None:
        raise errors.JobFailure(f"{who}: {op} needs a keylock parameter", errors.BAD_VALUE)
    if op == IBMI_NETBOOT:
        missing = [p for p in _NETBOOT_PARAMS if not params.get(p)]
        if missing:
            raise errors.JobFailure(
                f"{who}: a netboot needs the parameters {', '.join(missing)}", errors.BAD_VALUE
            )
        ipl = ipl or "d"  # a network install is a D-mode IPL
    return {"op": op, "keylock": _KEYLOCK_PARAM.get(key or ""), "ipl": ipl}


def _apply_ibmi_ipl(res: Resource, opts: dict[str, Any]) -> None:
    """Keylock and IPL source chosen at activation stay with the partition."""
    if opts.get("keylock"):
        schema.set_field(res.elem, "KeylockPosition", opts["keylock"], kb="CUD")
    if opts.get("ipl"):
        schema.set_field(res.elem, "DesignatedIPLSource", opts["ipl"], kb="CUR")


def _change_keylock(emu: Emulator, res: Resource, opts: dict[str, Any]) -> dict[str, str]:
    """OperationType changeKeylock: turn the key only, in any power state."""
    with emu.lock:
        if res.ext.get("operation"):
            raise errors.JobFailure(
                f"{errors.PARTITION_STATE_TEXT} Partition {name_of(res.elem)!r} is busy with "
                f"{res.ext['operation']}.",
                errors.PARTITION_STATE,
            )
        schema.set_field(res.elem, "KeylockPosition", opts["keylock"], kb="CUD")
        res.bump()
    emu.publish("MODIFY_URI", res, "Other")
    return {}


# ---- power ------------------------------------------------------------------------
def _set_current(res: Resource, running: bool) -> None:
    """Current* values: what the hypervisor has allocated (zero when off)."""
    s = Sizing(res.elem)
    mem = res.elem.find(x.q(MEM_CFG))
    if mem is not None:
        schema.set_field(mem, "CurrentMemory", str(s.mem if running else 0))
        schema.set_field(mem, "CurrentMinimumMemory", str(s.mem_min if running else 0))
        schema.set_field(mem, "CurrentMaximumMemory", str(s.mem_max if running else 0))


_STATE_HOOKS = "lpar.state_hooks"


def add_state_hook(emu: Emulator, hook: Any) -> None:
    """Run ``hook(emu, partition, old_state, new_state)`` (under the lock) at
    every state change, e.g. to write what the OS prints to its terminal."""
    emu.ext.setdefault(_STATE_HOOKS, []).append(hook)


def set_state(emu: Emulator, res: Resource, new_state: str, rmc: str | None = None) -> None:
    with emu.lock:
        old_state = state(res)
        for hook in emu.ext.get(_STATE_HOOKS, []):
            hook(emu, res, old_state, new_state)
        schema.set_field(res.elem, "PartitionState", new_state)
        if rmc is not None:
            schema.set_field(res.elem, "ResourceMonitoringControlState", rmc)
        _set_ref_code(res, new_state)
        _set_current(res, new_state != NOT_ACTIVATED)
        if new_state == NOT_ACTIVATED:
            res.ext.pop("booted_at", None)
        else:
            res.ext.setdefault("booted_at", time.time())
        res.bump()
    # The real server's detail for a state change (event_feed.txt); the new
    # reference code follows as its own event.
    emu.publish("MODIFY_URI", res, "PartitionState,Other")
    emu.publish("MODIFY_URI", res, "ReferenceCode,Other")


def show_uptime(_emu: Emulator, res: Resource) -> None:
    """Uptime (seconds since activation) is computed when read; it changes no ETag."""
    if state(res) == NOT_ACTIVATED:
        up = 0
    else:
        up = int(time.time() - res.ext.setdefault("booted_at", time.time()))
    schema.set_field(res.elem, "Uptime", str(up), kb="ROO")


#: What a partition reports it can change while it runs (PartitionCapabilities).
DLPAR_CAPABILITIES = (
    "DynamicLogicalPartitionIOCapable",
    "DynamicLogicalPartitionMemoryCapable",
    "DynamicLogicalPartitionProcessorCapable",
)


def show_dlpar_capabilities(res: Resource) -> None:
    """A running partition can take DLPAR changes once its OS has an active RMC
    connection: the captures (lpar.txt) show all three capabilities true exactly
    for running partitions with RMC active. Derived from state and RMC when read,
    which change the ETag themselves."""
    capable = (
        "true"
        if (state(res) != NOT_ACTIVATED and res.field("ResourceMonitoringControlState") == "active")
        else "false"
    )
    caps = res.elem.find(x.q("PartitionCapabilities"))
    if caps is None:
        caps = schema.set_field(res.elem, "PartitionCapabilities", None, kb="CUD")
        caps.set("schemaVersion", "V1_0")
    for name in DLPAR_CAPABILITIES:
        schema.set_field(caps, name, capable, kb="ROR")


def show_computed(_emu: Emulator, res: Resource) -> None:
    """Fields a partition computes when read: Uptime and its DLPAR capabilities."""
    show_uptime(_emu, res)
    show_dlpar_capabilities(res)


def _begin_operation(emu: Emulator, res: Resource, who: str, op: str) -> None:
    """One power operation at a time per partition, as the hypervisor enforces."""
    busy = res.ext.get("operation")
    if busy:
        raise errors.JobFailure(
            f"{errors.PARTITION_STATE_TEXT} Partition {who} is busy with {busy}; retry {op} "
            "when it has finished (IsOperationInProgress is true).",
            errors.PARTITION_STATE,
        )
    res.ext["operation"] = op
    schema.set_field(res.elem, "IsOperationInProgress", "true")
    res.bump()


def _end_operation(emu: Emulator, res: Resource) -> None:
    with emu.lock:
        res.ext.pop("operation", None)
        schema.set_field(res.elem, "IsOperationInProgress", "false")
        res.bump()


def power_on(emu: Emulator, job: Job) -> dict[str, str]:
    res = job.target
    assert res is not None
    who = f"{res.kind} {name_of(res.elem)!r} ({res.uuid})"
    ibmi = ibmi_power_on_options(res, job.params, who) if is_ibmi(res.elem) else None
    if ibmi is not None and ibmi.get("op") == IBMI_CHANGE_KEYLOCK:
        return _change_keylock(emu, res, ibmi)
    with emu.lock:
        if res.ext.get("operation") or state(res) == SHUTTING_DOWN:
            # Still going down (or another operation runs): not "already on",
            # which pypowervm would take as success.
            busy = res.ext.get("operation")
            doing = f"busy with {busy}" if busy else state(res)
            raise errors.JobFailure(
                f"{errors.PARTITION_STATE_TEXT} Partition {who} is {doing}.",
                errors.PARTITION_STATE,
            )
        if state(res) != NOT_ACTIVATED:
            raise errors.JobFailure(
                f"Partition {who} is already powered on (state {state(res)}).",
                errors.ALREADY_POWERED_ON,
            )
        _begin_operation(emu, res, who, "PowerOn")
        try:
            s = Sizing(res.elem)
            system.reserve(emu, s.mem, s.units, who)
        except errors.JobFailure:
            _end_operation(emu, res)
            raise
        mode = job.params.get("bootmode", "norm")
        schema.set_field(res.elem, "BootMode", "Normal" if mode == "norm" else mode, kb="CUD")
        if ibmi is not None:
            _apply_ibmi_ipl(res, ibmi)
        set_state(emu, res, STARTING)
    try:
        job.pause(0.5)
        set_state(emu, res, RUNNING)
        job.pause(0.5)
        if emu.config.rmc_on_boot:
            with emu.lock:
                schema.set_field(res.elem, "ResourceMonitoringControlState", "active")
                res.bump()
            emu.publish("MODIFY_URI", res, "Other")
    finally:
        _end_operation(emu, res)
    for hook in emu.ext.get(_POWER_ON_HOOKS, []):
        hook(emu, res, job.params)
    return {}


_POWER_ON_HOOKS = "lpar.power_on_hooks"


def add_power_on_hook(emu: Emulator, hook: Any) -> None:
    """Run ``hook(emu, partition, job_params)`` once a partition has started."""
    emu.ext.setdefault(_POWER_ON_HOOKS, []).append(hook)


def power_off(emu: Emulator, job: Job) -> dict[str, str]:
    res = job.target
    assert res is not None
    who = f"{res.kind} {name_of(res.elem)!r} ({res.uuid})"
    op = job.params.get("operation", "shutdown")
    if op == "dumprestart":
        return dump_restart(emu, job)
    with emu.lock:
        if state(res) == NOT_ACTIVATED:
            raise errors.JobFailure(
                f"Partition {who} is already powered off.", errors.ALREADY_POWERED_OFF
            )
        if (
            op == "osshutdown"
            and res.field("ResourceMonitoringControlState") != "active"
            and not is_ibmi(res.elem)  # IBM i shuts down through the hypervisor, no RMC
        ):
            raise errors.JobFailure(
                f"An OS shutdown of {who} needs an active RMC connection "
                f"(RMC is {res.field('ResourceMonitoringControlState')}).",
                errors.OSSHUTDOWN_NO_RMC,
            )
        _begin_operation(emu, res, who, "PowerOff")
        set_state(emu, res, SHUTTING_DOWN)
    try:
        # A normal (not immediate) shutdown takes the full delay; immediate is quicker.
        job.pause(0.3 if job.params.get("immediate") == "true" else 0.8)
        with emu.lock:
            s = Sizing(res.elem)
            set_state(emu, res, NOT_ACTIVATED, rmc="inactive")
            system.release(emu, s.mem, s.units)
            _touch_nvram(emu, res)
        if job.params.get("restart") == "true":
            job.pause(0.1)
            with emu.lock:
                s = Sizing(res.elem)
                system.reserve(emu, s.mem, s.units, who)
                set_state(emu, res, STARTING)
            job.pause(0.1)
            set_state(emu, res, RUNNING, rmc="active" if emu.config.rmc_on_boot else None)
    finally:
        _end_operation(emu, res)
    return {}


_DUMP_HOOKS = "lpar.dump_hooks"


def add_dump_hook(emu: Emulator, hook: Any) -> None:
    """Run ``hook(emu, partition)`` (under the lock) when a partition is told to dump."""
    emu.ext.setdefault(_DUMP_HOOKS, []).append(hook)


def dump_restart(emu: Emulator, job: Job) -> dict[str, str]:
    """PowerOff with ``operation=dumprestart`` (``chsysstate -o dumprestart``):
    the running OS is told to take a system dump and restart; its processors
    and memory stay allocated. Refused unless the partition runs (*guess*:
    the text; the real server's code is not captured)."""
    res = job.target
    assert res is not None
    who = f"{res.kind} {name_of(res.elem)!r} ({res.uuid})"
    with emu.lock:
        if state(res) != RUNNING:
            raise errors.JobFailure(
                f"{errors.PARTITION_STATE_TEXT} Partition {who} is {state(res)}: a dump "
                "restart needs a running partition.",
                errors.PARTITION_STATE,
            )
        _begin_operation(emu, res, who, "PowerOff")
        for hook in emu.ext.get(_DUMP_HOOKS, []):
            hook(emu, res)
        res.ext["dumps"] = res.ext.get("dumps", 0) + 1
        set_state(emu, res, STARTING, rmc="inactive")
    try:
        job.pause(0.3)
        set_state(emu, res, RUNNING, rmc="active" if emu.config.rmc_on_boot else None)
    finally:
        _end_operation(emu, res)
    return {}


def close_vterm(emu: Emulator, job: Job) -> dict[str, str]:
    return {}


def register(emu: Emulator) -> None:
    emu.register(
        Kind(
            "LogicalPartition",
            parents=("ManagedSystem",),
            create=_create,
            update=_update,
            delete=_delete,
            quick=_quick,
            # The new partition's NVRAM is written right after it is created;
            # the real server follows ADD_URI with an NVRAM event (event_feed.txt).
            extra={"on_read": show_computed, "after_create": _nvram_after_create},
        )
    )
    for kind in PARTITION_KINDS:
        emu.jobs.register(kind, "PowerOn", lambda job: power_on(emu, job))
        emu.jobs.register(kind, "PowerOff", lambda job: power_off(emu, job))
        emu.jobs.register(kind, "CloseVterm", lambda job: close_vterm(emu, job))


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
        _set_current(res, True)
        _set_ref_code(res, RUNNING)
    return res
