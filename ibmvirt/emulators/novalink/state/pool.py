"""Power Enterprise Pools: Mobile Capacity on Demand shared between systems.

A pool (``PowerEnterprisePool``) owns a number of mobile CoD processors and
GB of memory; its members (``PowerEnterprisePoolMember``, children of the pool)
are systems that hold some of them as activations on top of their permanent
ones. What the pool has not handed out is "available". A member can only take
mobile activations into processors/memory it has installed but not activated
(its inactive, "dark" resources), and can only give back what its partitions
do not use. For the emulated host, the member figures and the ManagedSystem's
installed/configurable/available figures are the same numbers, kept together.

Templates: ``enterprise_pool_feed.txt`` and ``enterprise_pool_member_feed.txt``
(captured from a NovaLink host; the totals there hold as total = available +
sum of the members' mobile activations + unreturned).

Inventory (optional section ``enterprise_pools``)::

    enterprise_pools:
      - name: pep-1
        id: 328
        mobile_proc_units: 20      # TotalMobileCoDProcUnits (whole processors)
        mobile_memory_gb: 64       # TotalMobileCoDMemory
        members:
          - local: true            # the emulated host: name and figures from the ManagedSystem
            mobile_proc_units: 4   # included in the host's proc_units
            inactive_proc_units: 4 # dark processors, added to the installed figure
          - system: other-host     # another system in the pool
            mtms: 8284-22A*21B63DV
            installed_proc_units: 20
            installed_memory_mb: 524288
            inactive_proc_units: 6
"""

from __future__ import annotations

import uuid as uuidlib
from typing import Any
from urllib.parse import urlsplit

from lxml import etree

from ibmvirt.emulators.novalink import captures, errors, schema
from ibmvirt.emulators.novalink import xmlutil as x
from ibmvirt.emulators.novalink.emulator import Emulator, Kind
from ibmvirt.emulators.novalink.inventory import InventoryError
from ibmvirt.emulators.novalink.state import system
from ibmvirt.emulators.novalink.store import Resource

POOL = "PowerEnterprisePool"
MEMBER = "PowerEnterprisePoolMember"
MB_PER_GB = 1024
CONSOLES = "PowerEnterprisePoolManagementConsoles"
MTMS = "ManagedSystemMachineTypeModelSerialNumber"
# (member's mobile field, member's inactive field, pool's available field, kind)
RESOURCES = (
    ("MobileCoDProcUnits", "InactiveProcUnits", "AvailableMobileCoDProcUnits", "proc"),
    ("MobileCoDMemory", "InactiveMemory", "AvailableMobileCoDMemory", "mem"),
)


# ---- inventory ------------------------------------------------------------------------
def _count(spec: dict[str, Any], where: str, key: str, default: int = 0) -> int:
    raw = spec.get(key, default)
    try:
        value = int(raw)
    except (TypeError, ValueError) as exc:
        raise InventoryError(f"{where}.{key} must be a whole number, got {raw!r}") from exc
    if value < 0:
        raise InventoryError(f"{where}.{key} cannot be negative, got {value}")
    return value


def _check_pools(inv: dict[str, Any]) -> list[dict[str, Any]]:
    """Refuse pool entries whose figures cannot add up, naming the key."""
    pools = inv.get("enterprise_pools") or []
    if not isinstance(pools, list):
        raise InventoryError("'enterprise_pools' must be a list of pools (name, id, members)")
    seen_host = None
    for i, p in enumerate(pools):
        where = f"enterprise_pools[{i}]"
        if not isinstance(p, dict) or not p.get("name"):
            raise InventoryError(f"{where} needs a 'name'")
        members = p.get("members") or []
        if not isinstance(members, list) or not members:
            raise InventoryError(f"{where}.members must list at least one system")
        used = {"proc": 0, "mem": 0}
        names = []
        for j, m in enumerate(members):
            mwhere = f"{where}.members[{j}]"
            if not isinstance(m, dict) or not (m.get("system") or m.get("local")):
                raise InventoryError(
                    f"{mwhere} needs 'local: true' (the emulated host) or a 'system' name"
                )
            names.append(inv["host"]["name"] if m.get("local") else m["system"])
            used["proc"] += _count(m, mwhere, "mobile_proc_units")
            used["mem"] += _count(m, mwhere, "mobile_memory_gb")
            _count(m, mwhere, "inactive_proc_units")
            _count(m, mwhere, "inactive_memory_gb")
            if m.get("local"):
                if seen_host is not None:
                    raise InventoryError(
                        f"{mwhere}: the host is already a member of {seen_host}; a system "
                        "belongs to at most one pool"
                    )
                seen_host = p["name"]
            else:
                for key in ("installed_proc_units", "installed_memory_mb"):
                    if _count(m, mwhere, key) <= 0:
                        raise InventoryError(f"{mwhere}.{key} is required for another system")
        if len(set(names)) != len(names):
            raise InventoryError(f"{where}.members lists a system twice: {names}")
        for res, key in (("proc", "mobile_proc_units"), ("mem", "mobile_memory_gb")):
            total = _count(p, where, key)
            if used[res] > total:
                raise InventoryError(
                    f"{where}: the members hold {used[res]} mobile {res} activations but the "
                    f"pool has only {key}={total}"
                )
    return pools


# ---- seeding ----------------------------------------------------------------------------
def seed(emu: Emulator, inv: dict[str, Any]) -> None:
    for spec in _check_pools(inv):
        _seed_pool(emu, inv, spec)


def _console(emu: Emulator) -> tuple[str, tuple[str, str, str], str, str | None]:
    """(name, MTMS, IP address, href) of the emulated console, the pool's master:
    the console this API is served by is the one that can move activations."""
    host = urlsplit(emu.base).hostname or "127.0.0.1"
    consoles = emu.store.list("ManagementConsole")
    if not consoles:
        return "novalink", ("8247", "21L", "0000000"), host, None
    mc = consoles[0]
    mtms = tuple(
        mc.field(f"MachineTypeModelAndSerialNumber/{t}", "") or ""
        for t in ("MachineType", "Model", "SerialNumber")
    )
    name = mc.field("ManagementConsoleName", "novalink") or "novalink"
    return name, mtms, host, emu.base + mc.path  # type: ignore[return-value]


def _fill_consoles(emu: Emulator, el: etree._Element) -> None:
    name, mtms, ip, _href = _console(emu)
    entry = x.find_path(el, f"{CONSOLES}/PowerEnterprisePoolManagementConsole")
    schema.set_field(entry, "ManagementConsoleName", name, kb="UOR")
    box = entry.find(x.q("ManagementConsoleMachineTypeModelSerialNumber"))
    for tag, value in zip(("MachineType", "Model", "SerialNumber"), mtms, strict=True):
        schema.set_field(box, tag, value, kb="CUR")
    schema.set_field(entry, "IsMasterConsole", "true", kb="UOR")
    schema.set_field(entry, "IsBackupMasterConsole", "false", kb="UOR")
    schema.set_field(entry, "ManagementConsoleIPAddress", ip, kb="ROR")


def _seed_pool(emu: Emulator, inv: dict[str, Any], spec: dict[str, Any]) -> None:
    assert emu.ms is not None
    el = captures.rebase(captures.contents("enterprise_pool_feed.txt")[0], emu.base)
    uuid = str(uuidlib.uuid5(uuidlib.NAMESPACE_DNS, f"pep/{spec['name']}"))
    x.set_atom(el, uuid)
    schema.set_field(el, "PoolID", f"{int(spec.get('id', 1)):04d}")
    schema.set_field(el, "PoolName", spec["name"], kb="UOR")
    schema.set_field(el, "SequenceNumber", "1")
    schema.set_field(el, "TotalMobileCoDProcUnits", str(int(spec.get("mobile_proc_units", 0))))
    schema.set_field(el, "TotalMobileCoDMemory", str(int(spec.get("mobile_memory_gb", 0))))
    for tag in ("UnreturnedMobileCoDProcUnits", "UnreturnedMobileCoDMemory"):
        schema.set_field(el, tag, "0")
    schema.set_field(el, "ComplianceState", "InCompliance")
    master = el.find(x.q("PowerEnterprisePoolMasterManagementConsole"))
    href = _console(emu)[3]
    if master is not None and href:
        master.set("href", href)
    elif master is not None:
        el.remove(master)
    _fill_consoles(emu, el)
    pool = Resource(POOL, uuid, el)
    emu.store.add(pool)
    held = {"proc": 0, "mem": 0}
    for m in spec["members"]:
        member = _seed_member(emu, inv, pool, m)
        held["proc"] += int(member.field("MobileCoDProcUnits", "0") or 0)
        held["mem"] += int(member.field("MobileCoDMemory", "0") or 0)
    schema.set_field(
        el, "AvailableMobileCoDProcUnits", str(int(spec.get("mobile_proc_units", 0)) - held["proc"])
    )
    schema.set_field(
        el, "AvailableMobileCoDMemory", str(int(spec.get("mobile_memory_gb", 0)) - held["mem"])
    )


def _seed_member(emu: Emulator, inv: dict[str, Any], pool: Resource, m: dict[str, Any]) -> Resource:
    assert emu.ms is not None
    el = captures.rebase(captures.contents("enterprise_pool_member_feed.txt")[0], emu.base)
    local = bool(m.get("local"))
    name = inv["host"]["name"] if local else m["system"]
    uuid = str(uuidlib.uuid5(uuidlib.NAMESPACE_DNS, f"pep/{pool.uuid}/{name}"))
    x.set_atom(el, uuid)
    mobile_p, mobile_m = int(m.get("mobile_proc_units", 0)), int(m.get("mobile_memory_gb", 0))
    dark_p, dark_m = int(m.get("inactive_proc_units", 0)), int(m.get("inactive_memory_gb", 0))
    schema.set_field(el, "MobileCoDProcUnits", str(mobile_p), kb="UOR")
    schema.set_field(el, "MobileCoDMemory", str(mobile_m), kb="UOR")
    schema.set_field(el, "InactiveProcUnits", str(dark_p))
    schema.set_field(el, "InactiveMemory", str(dark_m))
    for tag in ("UnreturnedMobileCoDProcUnits", "UnreturnedMobileCoDMemory"):
        schema.set_field(el, tag, "0")
    _fill_consoles(emu, el)
    res = Resource(MEMBER, uuid, el, parent=pool, rootable=False)
    res.ext["local"] = local
    if local:
        configurable_mb, configurable_units = system.configurable(emu)
        if mobile_p > configurable_units or mobile_m * MB_PER_GB > configurable_mb:
            raise InventoryError(
                f"pool {pool.field('PoolName')!r}: the host's mobile activations must be part "
                "of its proc_units / memory_mb (they are activated resources)"
            )
        # The host's proc_units/memory_mb are what is activated; dark resources
        # come on top of them in the installed figures.
        _add_to_host(emu, "Installed", dark_p, dark_m * MB_PER_GB)
        el.find(x.q("AssociatedManagedSystem")).set("href", emu.base + emu.ms.path)
        sync_local(emu, res)
    else:
        link = el.find(x.q("AssociatedManagedSystem"))
        if link is not None:  # not managed here: the capture links only the local one
            el.remove(link)
        mt, _, serial = str(m.get("mtms", "8284-22A*0000000")).partition("*")
        mtype, _, model = mt.partition("-")
        box = el.find(x.q(MTMS))
        for tag, value in (("MachineType", mtype), ("Model", model), ("SerialNumber", serial)):
            schema.set_field(box, tag, value, kb="CUR")
        schema.set_field(el, "ManagedSystemName", m["system"])
        schema.set_field(el, "ManagedSystemInstalledProcUnits", str(int(m["installed_proc_units"])))
        schema.set_field(el, "ManagedSystemInstalledMemory", str(int(m["installed_memory_mb"])))
        schema.set_field(el, "ManagedSystemState", str(m.get("state", "operating")))
        if mobile_p + dark_p > int(m["installed_proc_units"]) or (mobile_m + dark_m) * (
            MB_PER_GB
        ) > int(m["installed_memory_mb"]):
            raise InventoryError(
                f"pool member {m['system']!r}: mobile + inactive resources exceed what is installed"
            )
    emu.store.add(res)
    return res


def _add_to_host(emu: Emulator, figure: str, units: int, mem_mb: int) -> None:
    """Add to the host's ``figure`` processor units and memory (Installed or Configurable)."""
    ms = emu.ms
    assert ms is not None
    units_node = x.find_path(ms.elem, f"{system.PROC}/{figure}SystemProcessorUnits")
    units_node.text = system._fmt_units(round(float(units_node.text) + units, 2))
    mem_node = x.find_path(ms.elem, f"{system.MEM}/{figure}SystemMemory")
    mem_node.text = str(int(mem_node.text) + mem_mb)


def sync_local(emu: Emulator, member: Resource) -> None:
    """The emulated host's member mirrors the ManagedSystem (name, MTMS, state, installed)."""
    ms = emu.ms
    assert ms is not None
    el = member.elem
    schema.set_field(el, "ManagedSystemName", ms.field("SystemName"))
    units = float(ms.field(f"{system.PROC}/InstalledSystemProcessorUnits", "0") or 0)
    schema.set_field(el, "ManagedSystemInstalledProcUnits", str(int(units)))
    schema.set_field(
        el, "ManagedSystemInstalledMemory", ms.field(f"{system.MEM}/InstalledSystemMemory")
    )
    box = el.find(x.q(MTMS))
    for tag in ("MachineType", "Model", "SerialNumber"):
        schema.set_field(
            box, tag, ms.field(f"MachineTypeModelAndSerialNumber/{tag}", "") or "", kb="CUR"
        )
    schema.set_field(el, "ManagedSystemState", ms.field("State", "operating"))


# ---- updates ------------------------------------------------------------------------------
def _whole(new: etree._Element, tag: str, current: str, who: str) -> int:
    """A member count from the payload; left out means unchanged."""
    raw = (x.text(new, tag) or current).strip()
    if not raw.isdigit():
        raise errors.bad_request(f"{who}: {tag} must be a whole number >= 0, not {raw!r}")
    return int(raw)


def _member_update(emu: Emulator, res: Resource, new: etree._Element) -> None:
    """Move mobile activations between the pool and a member.

    Taking needs as many available in the pool and as many inactive resources on
    the system; giving back needs them unused (the emulated host's free
    processing units and memory), so the pool never has unreturned resources.
    """
    pool = res.parent
    assert pool is not None
    who = f"{MEMBER} {res.field('ManagedSystemName')!r} of pool {pool.field('PoolName')!r}"
    deltas = {}
    for field, dark, avail, kind in RESOURCES:
        current = res.field(field, "0") or "0"
        want = _whole(new, field, current, who)
        schema.set_field(new, field, str(want), kb="UOR")
        delta = want - int(current)
        deltas[kind] = delta
        if delta > 0:
            free_pool = int(pool.field(avail, "0") or 0)
            if delta > free_pool:
                raise errors.refused(
                    f"{who}: cannot add {delta} mobile {_unit(kind)}; the pool has only "
                    f"{free_pool} available ({avail})",
                    errors.MOBILE_COD,
                )
            inactive = int(res.field(dark, "0") or 0)
            if delta > inactive:
                raise errors.refused(
                    f"{who}: cannot add {delta} mobile {_unit(kind)}; the system has only "
                    f"{inactive} inactive ({dark}) to activate",
                    errors.MOBILE_COD,
                )
    if res.ext.get("local"):
        free_mem, free_units = system.available(emu)
        give_p, give_m = max(-deltas["proc"], 0), max(-deltas["mem"], 0) * MB_PER_GB
        if give_p > free_units + 1e-9 or give_m > free_mem:
            raise errors.refused(
                f"{who}: cannot return {give_p} processors / {give_m // MB_PER_GB} GB of "
                f"memory; only {free_units:g} processing units and {free_mem} MB are unused. "
                "Power off or shrink partitions first.",
                errors.MOBILE_COD,
            )
    res.elem = new
    for _field, dark, avail, kind in RESOURCES:
        d = deltas[kind]
        if not d:
            continue
        schema.set_field(res.elem, dark, str(int(res.field(dark, "0") or 0) - d))
        schema.set_field(pool.elem, avail, str(int(pool.field(avail, "0") or 0) - d))
    if any(deltas.values()):
        seq = int(pool.field("SequenceNumber", "0") or 0) + 1
        schema.set_field(pool.elem, "SequenceNumber", str(seq))
        emu.changed(pool)
        if res.ext.get("local"):
            _activate(emu, deltas["proc"], deltas["mem"] * MB_PER_GB)


def _unit(kind: str) -> str:
    return "processors" if kind == "proc" else "GB of memory"


def _activate(emu: Emulator, units: int, mem_mb: int) -> None:
    """Mobile activations change what the host can give its partitions."""
    _add_to_host(emu, "Configurable", units, mem_mb)
    system.release(emu, mem_mb, units)  # free figures move with it (negative = take)


def _pool_update(emu: Emulator, res: Resource, new: etree._Element) -> None:
    """A pool can be renamed; consoles and members are managed elsewhere."""
    name = (x.text(new, "PoolName") or "").strip()
    if not name:
        raise errors.bad_request(f"{POOL} {res.uuid}: PoolName cannot be empty")
    before = res.elem.find(x.q("PowerEnterprisePoolMasterManagementConsole"))
    after = new.find(x.q("PowerEnterprisePoolMasterManagementConsole"))
    if (before is None) != (after is None) or (
        before is not None and after is not None and before.get("href") != after.get("href")
    ):
        raise errors.bad_request(
            f"{POOL} {res.field('PoolName')!r}: changing the master console is not supported "
            "by this emulator",
            errors.UNSUPPORTED,
        )
    if name != res.field("PoolName"):
        seq = int(res.field("SequenceNumber", "0") or 0) + 1
        schema.set_field(new, "SequenceNumber", str(seq))
    res.elem = new


def _after_system_update(emu: Emulator) -> None:
    for member in emu.store.list(MEMBER):
        if member.ext.get("local"):
            sync_local(emu, member)
            member.bump()


def register(emu: Emulator) -> None:
    emu.register(Kind(POOL, update=_pool_update))
    emu.register(Kind(MEMBER, rootable=False, parents=(POOL,), update=_member_update))
    emu.seed_hooks.append(seed)
    # A renamed host is renamed in its pool membership too.
    ms_kind = emu.kind("ManagedSystem")
    inner = ms_kind.update
    if inner is not None:

        def update(e: Emulator, res: Resource, new: etree._Element) -> None:
            inner(e, res, new)
            _after_system_update(e)

        ms_kind.update = update
