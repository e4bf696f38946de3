"""ManagedSystem: the host. Capacity accounting follows partition power state.

Template: the NovaLink-era capture ``sys_with_sriov.txt`` (8408-E8E with four
SR-IOV adapters), re-identified and resized from the inventory.
"""

from __future__ import annotations

import uuid as uuidlib
from typing import Any

from lxml import etree

from ibmvirt.emulators.novalink import captures, errors, schema
from ibmvirt.emulators.novalink import xmlutil as x
from ibmvirt.emulators.novalink.emulator import Emulator, Kind
from ibmvirt.emulators.novalink.store import Resource

MEM = "AssociatedSystemMemoryConfiguration"
PROC = "AssociatedSystemProcessorConfiguration"


def build(emu: Emulator, host: dict[str, Any]) -> Resource:
    """Create the ManagedSystem from the inventory's ``host`` section."""
    el = captures.rebase(captures.contents("sys_with_sriov.txt")[0], emu.base)
    ms_uuid = host.get("uuid") or str(uuidlib.uuid5(uuidlib.NAMESPACE_DNS, host["name"]))
    x.set_atom(el, ms_uuid)
    schema.set_field(el, "SystemName", host["name"], kb="CUR")
    mtms = el.find(x.q("MachineTypeModelAndSerialNumber"))
    mt, model, serial = _split_mtms(host.get("mtms", "8408-E8E*10678CV"))
    for tag, val in (("MachineType", mt), ("Model", model), ("SerialNumber", serial)):
        schema.set_field(mtms, tag, val, kb="CUR")
    mem_mb = int(host.get("memory_mb", 524288))
    procs = float(host.get("proc_units", 40))
    mem = el.find(x.q(MEM))
    for tag in (
        "InstalledSystemMemory",
        "ConfigurableSystemMemory",
        "CurrentAvailableSystemMemory",
    ):
        schema.set_field(mem, tag, str(mem_mb))
    schema.set_field(mem, "MemoryRegionSize", str(int(host.get("memory_region_mb", 256))), "CUD")
    proc = el.find(x.q(PROC))
    for tag in (
        "InstalledSystemProcessorUnits",
        "ConfigurableSystemProcessorUnits",
        "CurrentAvailableSystemProcessorUnits",
        "PendingAvailableSystemProcessorUnits",
    ):
        schema.set_field(proc, tag, _fmt_units(procs))
    schema.set_field(el, "State", "operating")
    alp = el.find(x.q("AssociatedLogicalPartitions"))
    if alp is not None:
        for c in list(alp):
            alp.remove(c)
    _apply_sriov_labels(el, host.get("sriov_port_labels", {}))
    _clear_sriov_port_use(el)
    _apply_ibmi(el, host)
    _apply_vnic(el, host)
    _apply_migration(el, host)
    res = Resource("ManagedSystem", ms_uuid, el)
    emu.store.add(res)
    emu.ms = res
    return res


def register(emu: Emulator) -> None:
    emu.register(Kind("ManagedSystem", update=_update))
    emu.jobs.register(
        "ManagedSystem",
        "QueryReservedMemoryRequiredForPartition",
        lambda job: reserved_memory_query(emu, job),
    )


# IBM i partitions use a 1:64 hardware page table whatever the system default
# (IBM's "Introduction to LPAR on IBM System i5": HPT = memory / 64).
_IBMI_HPT_RATIO = 6
_ENVIRONMENTS = ("AIX/Linux", "OS400", "Virtual IO Server")


def hpt_mb(emu: Emulator, max_mem_mb: int, env: str) -> int:
    """Hypervisor memory for a partition's hardware page table: its maximum
    memory divided by 2**ratio (the system's DefaultHardwarePageTableRatio, an
    exponent: 6 is 1:64, 7 is 1:128), rounded up to whole memory regions."""
    assert emu.ms is not None
    ratio = (
        _IBMI_HPT_RATIO
        if env == "OS400"
        else int(emu.ms.field(f"{MEM}/DefaultHardwarePageTableRatio", "7") or 7)
    )
    region = region_size(emu)
    table = -(-max_mem_mb // (1 << ratio))
    return -(-table // region) * region


def reserved_memory_query(emu: Emulator, job: Any) -> dict[str, str]:
    """ManagedSystem/do/QueryReservedMemoryRequiredForPartition (pypowervm
    tasks.memory): the memory a partition of this shape needs from the host,
    desired memory plus its hardware page table. Virtual adapters' share of
    hypervisor memory is not modelled (no figure is published)."""
    env = job.params.get("LogicalPartitionEnvironment", "AIX/Linux")
    if env not in _ENVIRONMENTS:
        raise errors.JobFailure(
            f"LogicalPartitionEnvironment {env!r} is not one of {', '.join(_ENVIRONMENTS)}"
        )
    figures = {}
    for name in (
        "DesiredMemory",
        "MaximumMemory",
        "NumberOfVirtualEthernetAdapter",
        "NumberOfVirtualSCSIAdapter",
        "NumberOfVirtualFibreChannelAdapter",
    ):
        raw = job.params.get(name, "0")
        if not raw.isdigit():
            raise errors.JobFailure(f"{name} must be a whole number, not {raw!r}")
        figures[name] = int(raw)
    desired, maximum = figures["DesiredMemory"], figures["MaximumMemory"]
    if desired > maximum:
        raise errors.JobFailure(f"DesiredMemory {desired} MB is above MaximumMemory {maximum} MB")
    with emu.lock:
        required = desired + hpt_mb(emu, maximum, env)
        free_mem, _units = available(emu)
    return {"RequiredMemory": str(required), "CurrentAvailableSystemMemory": str(free_mem)}


#: Event detail of a physical port label change (networking-powervm's SR-IOV
#: agent looked for it; the rest of the real event is a guess, see the docs).
SRIOV_PORT_CONFIG_CHANGE = "SRIOVPhysicalPort.ConfigChange"
_PORT_LABELS = ("Label", "SubLabel")


def _update(emu: Emulator, res: Resource, new: Any) -> None:
    """Only the system name and the SR-IOV physical ports' labels can be
    changed here (pypowervm's ``sriov.safe_update_pports``); everything else is
    hardware."""
    name = new.findtext(x.q("SystemName"))
    probe = x.deep(new)
    schema.set_field(probe, "SystemName", res.field("SystemName"), kb="CUR")
    relabelled = _take_port_labels(probe, res.elem)
    # Repeated children (SupportedIBMiConsoleCodePage) pair up by position.
    changed = sorted(
        x.local(c)
        for c in probe
        if isinstance(c.tag, str)
        and x.local(c) != "Metadata"
        and not _same(c, _nth_like(res.elem, c))
    )
    if changed:
        raise errors.bad_request(
            f"ManagedSystem {res.field('SystemName')!r}: only SystemName can be changed "
            f"through the REST API here (also changed: {', '.join(changed)})"
        )
    if not name:
        raise errors.bad_request("ManagedSystem SystemName cannot be empty")
    schema.set_field(res.elem, "SystemName", name, kb="CUR")
    for port, labels in relabelled:
        for tag, value in labels.items():
            _set_or_drop(port, tag, value)
    if relabelled:
        res.ext["modify_detail"] = SRIOV_PORT_CONFIG_CHANGE


def _physical_ports(el: Any) -> dict[tuple[str, str], Any]:
    """SR-IOV physical port elements by (SRIOVAdapterID, PhysicalPortID)."""
    ports = {}
    for adapter in el.iter(x.q("SRIOVAdapter")):
        aid = adapter.findtext(x.q("SRIOVAdapterID")) or ""
        for port in adapter.iter():
            if isinstance(port.tag, str) and x.local(port).endswith("PhysicalPort"):
                ports[(aid, port.findtext(x.q("PhysicalPortID")) or "")] = port
    return ports


def _take_port_labels(probe: Any, stored: Any) -> list[tuple[Any, dict[str, str | None]]]:
    """The label changes a client sent, as (stored port, {tag: new value});
    ``probe`` is given the stored labels back so the rest compares as unchanged."""
    out = []
    kept = _physical_ports(stored)
    for key, sent in _physical_ports(probe).items():
        port = kept.get(key)
        if port is None:
            continue  # an unknown port: the comparison refuses it
        changes = {}
        for tag in _PORT_LABELS:
            new, old = sent.findtext(x.q(tag)), port.findtext(x.q(tag))
            if (new or "") != (old or ""):
                changes[tag] = new
            _set_or_drop(sent, tag, old)
        if changes:
            out.append((port, changes))
    return out


def _set_or_drop(port: Any, tag: str, value: str | None) -> None:
    if value is None:
        for old in port.findall(x.q(tag)):
            port.remove(old)
    else:
        schema.set_field(port, tag, value, kb="CUD")


def _nth_like(stored: Any, c: Any) -> Any:
    """The stored child at the same position among its same-named siblings as ``c``."""
    index = [s for s in c.itersiblings(preceding=True) if s.tag == c.tag]
    peers = stored.findall(c.tag)
    return peers[len(index)] if len(index) < len(peers) else None


def _same(a: Any, b: Any) -> bool:
    """Structural equality that ignores namespace prefixes and whitespace."""
    if a is None or b is None:
        return a is b
    if a.tag != b.tag or (a.text or "").strip() != (b.text or "").strip():
        return False
    if {k: v for k, v in a.attrib.items()} != {k: v for k, v in b.attrib.items()}:
        return False
    ka = [c for c in a if isinstance(c.tag, str)]
    kb = [c for c in b if isinstance(c.tag, str)]
    return len(ka) == len(kb) and all(_same(p, q) for p, q in zip(ka, kb, strict=True))


def mtms_of(el: etree._Element | None) -> str:
    """``MT-M*S`` of an element's MachineTypeModelAndSerialNumber (a system,
    a cluster node), the form PCM and peers name a machine by; "" if none."""
    m = el.find(x.q("MachineTypeModelAndSerialNumber")) if el is not None else None
    if m is None:
        return ""
    mt, model, serial = (m.findtext(x.q(t)) or "" for t in ("MachineType", "Model", "SerialNumber"))
    return f"{mt}-{model}*{serial}"


def _split_mtms(mtms: str) -> tuple[str, str, str]:
    type_model, _, serial = mtms.partition("*")
    mt, _, model = type_model.partition("-")
    return mt, model, serial


def _fmt_units(v: float) -> str:
    return f"{v:.2f}".rstrip("0").rstrip(".") if v != int(v) else str(int(v))


MIGR = "SystemMigrationInformation"


def _apply_migration(el: Any, host: dict[str, Any]) -> None:
    """The inventory's ``proc_compat_modes`` (an older system supports fewer)
    and ``max_active_migrations`` (the capture says 16)."""
    modes = host.get("proc_compat_modes")
    if modes:
        old = list(el.iter(x.q("SupportedPartitionProcessorCompatibilityModes")))
        parent = old[0].getparent()
        at = parent.index(old[0])
        for m in old:
            parent.remove(m)
        for i, mode in enumerate(modes):
            item = etree.Element(
                x.q("SupportedPartitionProcessorCompatibilityModes"), kxe="false", kb="ROR"
            )
            item.text = str(mode)
            parent.insert(at + i, item)
    if "max_active_migrations" in host:
        schema.set_field(
            el.find(x.q(MIGR)), "MaximumActiveMigrations", str(int(host["max_active_migrations"]))
        )


def active_migrations(emu: Emulator) -> tuple[int, int]:
    """(in progress, supported) active migrations of this system."""
    running = int(emu.ms.field(f"{MIGR}/NumberOfActiveMigrationsInProgress", "0") or 0)
    limit = int(emu.ms.field(f"{MIGR}/MaximumActiveMigrations", "16") or 16)
    return running, limit


def count_active_migration(emu: Emulator, delta: int) -> None:
    """One more (or fewer) active migration in progress on this system (under the lock)."""
    running, _limit = active_migrations(emu)
    schema.set_field(
        emu.ms.elem.find(x.q(MIGR)),
        "NumberOfActiveMigrationsInProgress",
        str(max(0, running + delta)),
    )
    emu.ms.bump()


def proc_compat_modes(emu: Emulator) -> list[str]:
    return [
        m.text or "" for m in emu.ms.elem.iter(x.q("SupportedPartitionProcessorCompatibilityModes"))
    ]


def _apply_vnic(el: Any, host: dict[str, Any]) -> None:
    """vNIC support (the server serves VirtualNICDedicated): the flags of the
    captured ``managedsystem.txt``, which the SR-IOV template predates;
    pypowervm's ``set_vnic_back_devs`` refuses a system without them. The
    inventory's ``vnic_capable`` / ``vnic_failover_capable`` turn them off."""
    caps = el.find(x.q("AssociatedSystemCapabilities"))
    capable = bool(host.get("vnic_capable", True))
    failover = capable and bool(host.get("vnic_failover_capable", True))
    for tag, value in (
        ("VirtualNICDedicatedSRIOVCapable", capable),
        ("VirtualNICFailOverCapable", failover),
    ):
        schema.set_field(caps, tag, "true" if value else "false", kb="ROO")


def _apply_ibmi(el: Any, host: dict[str, Any]) -> None:
    """IBM i support: the inventory's ``ibmi_capable`` / ``ibmi_restricted_io_capable``
    switches, and the IBM i console code pages an IBM i capable system lists
    (values of the captured ``managedsystem.txt``; the SR-IOV template has none)."""
    caps = el.find(x.q("AssociatedSystemCapabilities"))
    capable = bool(host.get("ibmi_capable", True))
    restricted = capable and bool(host.get("ibmi_restricted_io_capable", True))
    for tag, value in (
        ("IBMiCapable", capable),
        ("IBMiLogicalPartitionMobilityCapable", capable),
        ("IBMiRestrictedIOModeCapable", restricted),
    ):
        schema.set_field(caps, tag, "true" if value else "false", kb="ROO")
    for old in el.findall(x.q("SupportedIBMiConsoleCodePage")):
        el.remove(old)
    if capable:
        real = captures.contents("managedsystem.txt")[0]
        last = None
        for page in real.findall(x.q("SupportedIBMiConsoleCodePage")):
            new = etree.Element(page.tag, ksv="V1_8_0", kxe="false", kb="ROO")
            new.text = (page.text or "").strip()
            if last is None:
                schema.insert_ordered(el, new)
            else:
                last.addnext(new)
            last = new


def _apply_sriov_labels(el: Any, labels: dict[Any, str]) -> None:
    """Set SR-IOV physical port labels, keyed by "SRIOVAdapterID/PhysicalPortID"."""
    for adapter in el.iter(x.q("SRIOVAdapter")):
        aid = adapter.findtext(x.q("SRIOVAdapterID"))
        for port in adapter.iter():
            if not isinstance(port.tag, str) or not x.local(port).endswith("PhysicalPort"):
                continue
            pid = port.findtext(x.q("PhysicalPortID"))
            label = labels.get(f"{aid}/{pid}")
            if label is not None:
                schema.set_field(port, "Label", label, kb="CUD")


def _clear_sriov_port_use(el: Any) -> None:
    """The capture's ports count logical ports of partitions this host does not
    have: start from none, so the counters always match the served
    SRIOVEthernetLogicalPort objects (state/sriov.py keeps them so)."""
    for port in el.iter():
        if isinstance(port.tag, str) and x.local(port).endswith("PhysicalPort"):
            if port.find(x.q("ConfiguredEthernetLogicalPorts")) is not None:
                schema.set_field(port, "ConfiguredEthernetLogicalPorts", "0")
            if port.find(x.q("AllocatedCapacity")) is not None:
                schema.set_field(port, "AllocatedCapacity", "0.0%")


# ---- capacity -----------------------------------------------------------------
def available(emu: Emulator) -> tuple[int, float]:
    """(free memory MB, free processing units) right now."""
    ms = emu.ms
    assert ms is not None
    return (
        int(ms.field(f"{MEM}/CurrentAvailableSystemMemory", "0")),
        float(ms.field(f"{PROC}/CurrentAvailableSystemProcessorUnits", "0")),
    )


def region_size(emu: Emulator) -> int:
    assert emu.ms is not None
    return int(emu.ms.field(f"{MEM}/MemoryRegionSize", "256"))


def configurable(emu: Emulator) -> tuple[int, float]:
    assert emu.ms is not None
    return (
        int(emu.ms.field(f"{MEM}/ConfigurableSystemMemory", "0")),
        float(emu.ms.field(f"{PROC}/ConfigurableSystemProcessorUnits", "0")),
    )


def reserve(emu: Emulator, mem_mb: int, units: float, who: str) -> None:
    """Take memory/processing units from the free pool, or refuse naming the shortfall."""
    free_mem, free_units = available(emu)
    if mem_mb > free_mem:
        raise errors.JobFailure(
            f"Insufficient memory to activate {who}: needs {mem_mb} MB, "
            f"{free_mem} MB available on the system. Free memory or shrink the partition.",
            errors.INSUFFICIENT_MEMORY,
        )
    if units > free_units + 1e-9:
        raise errors.JobFailure(
            f"Insufficient processing units to activate {who}: needs {units}, "
            f"{free_units} available. Free processors or shrink the partition.",
            errors.INSUFFICIENT_PROCESSORS,
        )
    _adjust(emu, -mem_mb, -units)


def release(emu: Emulator, mem_mb: int, units: float) -> None:
    """Return memory/processing units to the free pool."""
    _adjust(emu, mem_mb, units)


def _adjust(emu: Emulator, mem_mb: int, units: float) -> None:
    ms = emu.ms
    assert ms is not None
    mem = x.find_path(ms.elem, f"{MEM}/CurrentAvailableSystemMemory")
    proc = x.find_path(ms.elem, f"{PROC}/CurrentAvailableSystemProcessorUnits")
    mem.text = str(int(mem.text) + mem_mb)
    proc.text = _fmt_units(round(float(proc.text) + units, 2))
    pending = x.find_path(ms.elem, f"{PROC}/PendingAvailableSystemProcessorUnits")
    if pending is not None:
        pending.text = proc.text
    emu.changed(ms)


def add_partition_link(emu: Emulator, res: Resource) -> None:
    """List the partition under AssociatedLogicalPartitions (as the real server does)."""
    ms = emu.ms
    assert ms is not None
    tag = (
        "AssociatedLogicalPartitions"
        if res.kind == "LogicalPartition"
        else "AssociatedVirtualIOServers"
    )
    section = ms.elem.find(x.q(tag))
    if section is None:
        section = etree.Element(x.q(tag), kb="CUD", kxe="false")
        schema.insert_ordered(ms.elem, section)
    etree.SubElement(section, x.q("link"), href=emu.base + res.ms_path, rel="related")
    ms.bump()
    emu.publish("MODIFY_URI", ms, "Other")


def remove_partition_link(emu: Emulator, res: Resource) -> None:
    ms = emu.ms
    assert ms is not None
    for tag in ("AssociatedLogicalPartitions", "AssociatedVirtualIOServers"):
        section = ms.elem.find(x.q(tag))
        for ln in list(section) if section is not None else []:
            if (ln.get("href") or "").upper().endswith(res.uuid.upper()):
                section.remove(ln)
    ms.bump()
    emu.publish("MODIFY_URI", ms, "Other")
