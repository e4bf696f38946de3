"""What every partition type shares and most modules need: the partition
states, reading names and sizings, and the hot-plug rule.

Dependency-free on purpose (no other state module): the types that add
adapters, mappings or ports to a partition import this, not ``lpar.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lxml import etree

from ibmvirt.emulators.novalink import errors
from ibmvirt.emulators.novalink import xmlutil as x
from ibmvirt.emulators.novalink.store import Resource

if TYPE_CHECKING:
    from ibmvirt.emulators.novalink.emulator import Emulator

PARTITION_KINDS = ("LogicalPartition", "VirtualIOServer")
MEM_CFG = "PartitionMemoryConfiguration"
PROC_CFG = "PartitionProcessorConfiguration"
SHARED = "SharedProcessorConfiguration"
DEDICATED = "DedicatedProcessorConfiguration"

NOT_ACTIVATED = "not activated"
RUNNING = "running"
STARTING = "starting"
SHUTTING_DOWN = "shutting down"


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
