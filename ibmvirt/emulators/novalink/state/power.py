"""Power jobs of partitions (PowerOn, PowerOff, dump restart, CloseVterm),
for LogicalPartition and VirtualIOServer alike, and what follows a power
state: allocated (Current*) values, reference codes, NVRAM, uptime and DLPAR
capabilities.

Powering on takes memory and processing units from the system, powering off
returns them; one power operation at a time per partition.
"""

from __future__ import annotations

import base64
import hashlib
import time
from typing import TYPE_CHECKING, Any

from ibmvirt.emulators.novalink import errors, schema
from ibmvirt.emulators.novalink import xmlutil as x
from ibmvirt.emulators.novalink.jobs import Job
from ibmvirt.emulators.novalink.state import bootlist, ibmi, system
from ibmvirt.emulators.novalink.state.partition import (
    MEM_CFG,
    NOT_ACTIVATED,
    PARTITION_KINDS,
    RUNNING,
    SHUTTING_DOWN,
    STARTING,
    Sizing,
    name_of,
    state,
)
from ibmvirt.emulators.novalink.store import Resource

if TYPE_CHECKING:
    from ibmvirt.emulators.novalink.emulator import Emulator


def nvram_blob(uuid: str, generation: int) -> str:
    """Stand-in NVRAM content (base64), different after every boot cycle."""
    raw = hashlib.sha256(f"{uuid}/{generation}".encode()).digest() * 32
    return base64.b64encode(raw).decode()


def touch_nvram(emu: Emulator, res: Resource) -> None:
    """The hypervisor rewrote the partition's NVRAM (power-off): new content and
    an NVRAM event, which drivers use to back the NVRAM up."""
    nv = res.elem.find(x.q("PartitionNVRAM"))
    if nv is None:
        return
    gen = res.ext.get("nvram_generation", 0) + 1
    res.ext["nvram_generation"] = gen
    nv.text = nvram_blob(res.uuid, gen)
    res.bump("NVRAM")
    emu.publish("MODIFY_URI", res, "NVRAM")


def nvram_after_create(emu: Emulator, res: Resource) -> None:
    """The hypervisor writes a new partition's NVRAM (the NVRAM its creator
    sent, if any: then only the event) and reports it with an NVRAM event."""
    if res.ext.pop("nvram_given", False):
        res.bump("NVRAM")
        emu.publish("MODIFY_URI", res, "NVRAM")
        return
    touch_nvram(emu, res)


def set_ref_code(res: Resource, pstate: str) -> None:
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
    # A partition started in mode "default" runs in the hardware's own mode
    # (POWER8 on the captured 8408-E8E); an explicit pending mode is honoured.
    pending = res.field("PendingProcessorCompatibilityMode") or "default"
    current = (pending if pending != "default" else "POWER8") if running else "default"
    schema.set_field(res.elem, "CurrentProcessorCompatibilityMode", current, kb="ROO")


def set_current(res: Resource, running: bool) -> None:
    """Current* values: what the hypervisor has allocated (zero when off)."""
    s = Sizing(res.elem)
    mem = res.elem.find(x.q(MEM_CFG))
    if mem is not None:
        schema.set_field(mem, "CurrentMemory", str(s.mem if running else 0))
        schema.set_field(mem, "CurrentMinimumMemory", str(s.mem_min if running else 0))
        schema.set_field(mem, "CurrentMaximumMemory", str(s.mem_max if running else 0))


_STATE_HOOKS = "power.state_hooks"


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
        set_ref_code(res, new_state)
        set_current(res, new_state != NOT_ACTIVATED)
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


#: PowerOn's ``bootmode`` -> the partition's BootMode (PartitionBootMode.Enum,
#: as pypowervm's base_partition.BootMode mirrors it).
BOOT_MODES = {
    "norm": "Normal",
    "sms": "System_Management_Services",
    "dd": "Diagnostic_With_Default_Boot_List",
    "ds": "Diagnostic_With_Stored_Boot_List",
    "of": "Open_Firmware",
}


def power_on(emu: Emulator, job: Job) -> dict[str, str]:
    res = job.target
    assert res is not None
    who = f"{res.kind} {name_of(res.elem)!r} ({res.uuid})"
    opts = ibmi.ibmi_power_on_options(res, job.params, who) if ibmi.is_ibmi(res.elem) else None
    if opts is not None and opts.get("op") == ibmi.IBMI_CHANGE_KEYLOCK:
        return ibmi.change_keylock(emu, res, opts)
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
        schema.set_field(res.elem, "BootMode", BOOT_MODES.get(mode, mode), kb="CUD")
        if opts is not None:
            ibmi.apply_ipl(res, opts)
        else:
            bootlist.boot(emu, res, mode)
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


_POWER_ON_HOOKS = "power.power_on_hooks"


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
            and not ibmi.is_ibmi(res.elem)  # IBM i shuts down through the hypervisor, no RMC
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
            touch_nvram(emu, res)
        if job.params.get("restart") == "true":
            job.pause(0.1)
            with emu.lock:
                s = Sizing(res.elem)
                system.reserve(emu, s.mem, s.units, who)
                if not ibmi.is_ibmi(res.elem):
                    bootlist.boot(emu, res)
                set_state(emu, res, STARTING)
            job.pause(0.1)
            set_state(emu, res, RUNNING, rmc="active" if emu.config.rmc_on_boot else None)
    finally:
        _end_operation(emu, res)
    return {}


_DUMP_HOOKS = "power.dump_hooks"


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
    """The power jobs of every partition type."""
    for kind in PARTITION_KINDS:
        emu.jobs.register(kind, "PowerOn", lambda job: power_on(emu, job))
        emu.jobs.register(kind, "PowerOff", lambda job: power_off(emu, job))
        emu.jobs.register(kind, "CloseVterm", lambda job: close_vterm(emu, job))
