"""IBM i partitions (PartitionType OS400).

They differ from AIX/Linux in what the host must support (ManagedSystem
capabilities), their tagged I/O (load source and console slots), IPL source
and keylock, and in needing no RMC for DLPAR or OS shutdown (pypowervm:
LPAR._can_modify, PowerOffOpts.can_os_shutdown). lpar.py checks partitions
with these rules; power.py reads the PowerOn job's IBM i parameters here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lxml import etree

from ibmvirt.emulators.novalink import errors, schema
from ibmvirt.emulators.novalink import xmlutil as x
from ibmvirt.emulators.novalink.state.partition import name_of
from ibmvirt.emulators.novalink.store import Resource

if TYPE_CHECKING:
    from ibmvirt.emulators.novalink.emulator import Emulator

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


def apply_ipl(res: Resource, opts: dict[str, Any]) -> None:
    """Keylock and IPL source chosen at activation stay with the partition."""
    if opts.get("keylock"):
        schema.set_field(res.elem, "KeylockPosition", opts["keylock"], kb="CUD")
    if opts.get("ipl"):
        schema.set_field(res.elem, "DesignatedIPLSource", opts["ipl"], kb="CUR")


def change_keylock(emu: Emulator, res: Resource, opts: dict[str, Any]) -> dict[str, str]:
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
