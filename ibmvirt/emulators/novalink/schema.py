"""Schema knowledge: element order and which fields a client may set.

The real server validates request bodies against its XML schema, so children
must come in schema order and server-owned (read-only) fields cannot be set.
We have no XSD, but every captured real response is schema-valid and every
element carries a ``kb`` attribute:

    CUR/CUD/CUA  client may set on create and update
    COR/COD      create only
    UOR/UOD      update only
    ROR/ROO      read-only (server-computed)

From these we learn, per parent element name, the pairwise order of children
("A always precedes B") and the access class of each child. Pairs that
disagree between captures (different schema versions) are dropped, so the
check never refuses something a real server might accept.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass, field

from lxml import etree

from ibmvirt.emulators.novalink import captures
from ibmvirt.emulators.novalink import xmlutil as x

READ_ONLY = frozenset({"ROR", "ROO"})
CREATE_ONLY = frozenset({"COR", "COD"})

# Orders the captures do not show but the real schema (and pypowervm's
# child_order) require, as (parent, [children in order]).
_EXTRA_ORDERS: dict[str, list[list[str]]] = {
    "VirtualSCSIMapping": [
        ["AssociatedLogicalPartition", "ClientAdapter", "ServerAdapter", "Storage", "TargetDevice"]
    ],
    "VirtualFibreChannelMapping": [
        ["AssociatedLogicalPartition", "ClientAdapter", "Port", "ServerAdapter"]
    ],
    # pypowervm sends a partition's NVRAM with the base-partition fields
    # (before the LogicalPartition ones), the captures show it after them; the
    # real server accepted both (nova-powervm recreated partitions with their
    # NVRAM this way), so the two orders cancel out and neither is refused.
    # pypowervm's LPAR child order ends with the last sequence;
    # BootListInformation is last.
    "LogicalPartition": [
        ["PartitionNVRAM", later]
        for later in (
            "MigrationStorageViosDataStatus",
            "MigrationStorageViosDataTimestamp",
            "RemoteRestartCapable",
            "SimplifiedRemoteRestartCapable",
            "HasDedicatedProcessorsForMigration",
            "SuspendCapable",
            "MigrationDisable",
            "MigrationState",
            "RemoteRestartState",
            "PrimaryPagingServicePartition",
            "PowerManagementMode",
            "SecondaryPagingServicePartition",
            "UsesHighSpeedLinkOpticonnect",
            "UsesVirtualOpticonnect",
            "VirtualFibreChannelClientAdapters",
            "VirtualSCSIClientAdapters",
            "RestrictedIOPartition",
            "StorageDeviceUniqueDeviceID",
            "DesignatedIPLSource",
            "DedicatedVirtualNICs",
            "BootListInformation",
        )
    ]
    + [
        [
            "MigrationState",
            "RemoteRestartState",
            "StorageDeviceUniqueDeviceID",
            "DesignatedIPLSource",
            "DedicatedVirtualNICs",
            "BootListInformation",
        ]
    ],
    "BootListInformation": [
        ["Metadata", "PendingBootString", "BootDeviceList", "LastBootedDeviceString"]
    ],
}

# Access classes of fields no capture shows, (parent, child) -> kb (a
# partition's boot list, state/bootlist.py).
_EXTRA_KB: dict[tuple[str, str], str] = {
    ("LogicalPartition", "BootListInformation"): "CUD",
    ("BootListInformation", "PendingBootString"): "UOD",
    ("BootListInformation", "BootDeviceList"): "ROO",
    ("BootListInformation", "LastBootedDeviceString"): "ROO",
}


# Children the real schema has but no capture shows: the "use next available
# slot" requests of every virtual I/O adapter type (VirtualIOAdapter in the
# schema; pypowervm sends them when the client leaves the slot to the server).
# They are allowed under every parent whose captures show VirtualSlotNumber.
_SLOT_REQUESTS = ("UseNextAvailableSlotID", "UseNextAvailableHighSlotID")


# Children of the real schema that no capture shows, per parent: the element
# orders of pypowervm 1.1.27's wrappers (``child_order``, which follow the
# server's schema) minus what the captures already show. A static table, so
# the server never imports pypowervm; without it the unknown-element check
# would refuse valid payloads (a partition's Description, vNIC failover
# priorities, ...).
_EXTRA_CHILDREN: dict[str, tuple[str, ...]] = {
    "BootListInformation": (
        "Metadata",
        "PendingBootString",
        "BootDeviceList",
        "LastBootedDeviceString",
    ),
    "ClientAdapter": (
        "AdapterName",
        "BackingDeviceName",
        "ConnectingPartition",
        "Enabled",
        "NportLoggedInStatus",
        "OperatingSystemDisks",
        "RemoteBackingDeviceName",
        "ServerAdapter",
        "UniqueDeviceID",
    ),
    "ClientNetworkAdapter": (
        "AdapterType",
        "DeviceName",
    ),
    "Cluster": ("ClusterCapabilities",),
    "LogicalPartition": (
        "AssociatedGroups",
        "AssociatedTasks",
        "AutoStart",
        "BootListInformation",
        "DedicatedVirtualNICs",
        "Description",
        "DisableSecureBoot",
        "Hostname",
        "IsBootable",
        "MigrationDisable",
        "MigrationStorageViosDataStatus",
        "MigrationStorageViosDataTimestamp",
        "PowerVMManagementCapable",
        "PrimaryPagingServicePartition",
        "SRIOVEthernetLogicalPorts",
        "SRIOVFibreChannelOverEthernetLogicalPorts",
        "SRIOVRoCELogicalPorts",
        "SecondaryPagingServicePartition",
        "StorageDeviceUniqueDeviceID",
        "ValidInteractivePerformance",
    ),
    "LogicalUnit": (
        "EmulateModel",
        "EncryptionAgent",
        "EncryptionKey",
        "EncryptionState",
        "LogicalUnitMigration",
        "ReadIOPS",
        "Tag",
        "WriteIOPS",
    ),
    "ManagementConsole": ("LocalVirtualIOServerImageNames",),
    "Node": (
        "IPAddress",
        "PartitionName",
    ),
    "PartitionMemoryConfiguration": (
        "CurrentPagingServicePartition",
        "CurrentPhysicalPageTableRatio",
        "DesiredEntitledMemory",
        "MemoryReleaseable",
        "MemoryToRelease",
        "MemoryWeight",
        "PhysicalPageTableRatio",
        "PrimaryPagingServicePartition",
        "RequiredMinimumForMaximum",
        "RuntimeEntitledMemory",
        "RuntimeExpansionFactor",
        "SecondaryPagingServicePartition",
    ),
    "PhysicalVolume": (
        "AvailablePhysicalPartitions",
        "EmulateModel",
        "EncryptionKey",
        "Tag",
        "TotalPhysicalPartitions",
    ),
    "SRIOVConvergedNetworkAdapterPhysicalPort": (
        "DefaultPortVFConfigurationOption",
        "MaximumAllowedEthMACs",
        "MaximumAllowedEthVLANs",
        "SelectedPortVFConfigurationOption",
        "SupportedMACRestrictions",
        "SupportedPortVFConfigurationOptions",
        "SupportedVLANRestrictions",
    ),
    "SRIOVEthernetLogicalPort": (
        "AssociatedLogicalPartitions",
        "IsDebug",
        "MACAddressFlags",
    ),
    "SRIOVEthernetPhysicalPort": (
        "DefaultPortVFConfigurationOption",
        "MaximumAllowedEthMACs",
        "MaximumAllowedEthVLANs",
        "SelectedPortVFConfigurationOption",
        "SupportedMACRestrictions",
        "SupportedPortVFConfigurationOptions",
        "SupportedVLANRestrictions",
    ),
    "ServerAdapter": (
        "ConnectingPartition",
        "Enabled",
        "RemoteBackingDeviceName",
    ),
    "SharedEthernetAdapter": (
        "AddressToPing",
        "IIDPService",
    ),
    "SharedProcessorConfiguration": (
        "AllocatedVirtualProcessors",
        "CurrentMaximumProcessingUnits",
        "CurrentMaximumVirtualProcessors",
        "CurrentMinimumProcessingUnits",
        "CurrentMinimumVirtualProcessors",
        "CurrentProcessingUnits",
        "CurrentSharedProcessorPoolID",
        "CurrentUncappedWeight",
        "RuntimeProcessingUnits",
        "RuntimeUncappedWeight",
    ),
    "TaggedIO": (
        "AlternateConsole",
        "OperationsConsole",
    ),
    "VirtualDisk": (
        "BackStoreType",
        "BaseImage",
        "EmulateModel",
        "EncryptionKey",
        "FileFormat",
        "MaxLogicalVolumes",
        "OptionalParameters",
        "PartitionSize",
        "RbdUser",
        "Tag",
    ),
    "VirtualFibreChannelMapping": ("Storage",),
    "VirtualIOServer": (
        "AssociatedGroups",
        "AssociatedTasks",
        "CurrentSecureBoot",
        "DisableSecureBoot",
        "Hostname",
        "IsBootable",
        "LinkAggregations",
        "NetworkBootDevices",
        "PartitionNVRAM",
        "PendingSecureBoot",
        "PowerVMManagementCapable",
        "ProgressState",
        "SRIOVEthernetLogicalPorts",
        "SRIOVFibreChannelOverEthernetLogicalPorts",
        "SRIOVRoCELogicalPorts",
        "ServerInstallConfiguration",
        "SharedStoragePoolCapable",
        "SharedStoragePoolVersion",
        "ValidInteractivePerformance",
        "VirtualIOServerCapabilities",
        "VirtualIOServerLicense",
        "VirtualNICBackingDevices",
        "VirtualSCSIBus",
    ),
    "VirtualNICDedicated": (
        "AdapterType",
        "Enabled",
        "LocationCode",
        "RequiredAdapter",
        "VariedOn",
        "VirtualNICDedicated",
    ),
    "VirtualNICSRIOVBackingDevice": (
        "AssociatedVirtualNICDedicated",
        "AssociatedVirtualNICSwitch",
        "BackingDeviceAction",
        "FailOverPriority",
    ),
    "VirtualOpticalMedia": (
        "EmulateModel",
        "EncryptionAgent",
        "EncryptionKey",
        "EncryptionState",
        "ReadIOPS",
        "Tag",
        "WriteIOPS",
    ),
    "VolumeGroup": (
        "BackingDeviceCount",
        "GroupState",
        "MinimumAllocationSize",
    ),
}


@dataclass
class _Knowledge:
    before: dict[str, set[tuple[str, str]]] = field(default_factory=dict)
    kb: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    seen_children: dict[str, set[str]] = field(default_factory=dict)
    repeated: dict[str, set[str]] = field(default_factory=dict)


def _learn_sequence(k: _Knowledge, parent: str, seq: list[str]) -> None:
    # Collapse repeats (lists of the same element) before recording pairs.
    uniq: list[str] = []
    for t in seq:
        if t not in uniq:
            uniq.append(t)
        else:
            k.repeated.setdefault(parent, set()).add(t)
    pairs = k.before.setdefault(parent, set())
    for i, a in enumerate(uniq):
        for b in uniq[i + 1 :]:
            pairs.add((a, b))
    k.seen_children.setdefault(parent, set()).update(uniq)


@functools.cache
def _knowledge() -> _Knowledge:
    k = _Knowledge()
    for content in captures.all_contents():
        for el in content.iter():
            if not isinstance(el.tag, str):
                continue
            parent = x.local(el)
            kids = [c for c in el if isinstance(c.tag, str)]
            if not kids:
                continue
            _learn_sequence(k, parent, [x.local(c) for c in kids])
            for c in kids:
                kb = c.get("kb")
                if kb:
                    k.kb.setdefault((parent, x.local(c)), set()).add(kb)
    for parent, seqs in _EXTRA_ORDERS.items():
        for seq in seqs:
            _learn_sequence(k, parent, seq)
    for kids in k.seen_children.values():
        if "VirtualSlotNumber" in kids:
            kids.update(_SLOT_REQUESTS)
    for parent, names in _EXTRA_CHILDREN.items():
        k.seen_children.setdefault(parent, set()).update(names)
    for key, kb in _EXTRA_KB.items():
        k.kb.setdefault(key, set()).add(kb)
    # Drop contradictions (captures from different schema versions), then close
    # transitively so elements never seen together are still ordered.
    for parent, pairs in k.before.items():
        conflicts = {(a, b) for (a, b) in pairs if (b, a) in pairs}
        pairs.difference_update(conflicts)
        k.before[parent] = _closure(pairs)
    return k


def _closure(pairs: set[tuple[str, str]]) -> set[tuple[str, str]]:
    succ: dict[str, set[str]] = {}
    for a, b in pairs:
        succ.setdefault(a, set()).add(b)
    out: set[tuple[str, str]] = set()
    for start in succ:
        stack, seen = list(succ[start]), set()
        while stack:
            n = stack.pop()
            if n in seen or n == start:
                continue
            seen.add(n)
            stack.extend(succ.get(n, ()))
        out.update((start, n) for n in seen)
    # A cycle would make both directions appear: keep neither.
    return {(a, b) for (a, b) in out if (b, a) not in out}


_warm_lock = threading.Lock()


def warm() -> None:
    """Learn the schema now (takes ~1 s) rather than on the first request."""
    with _warm_lock:
        _knowledge()


def precedes(parent: str, a: str, b: str) -> bool:
    """True when the schema puts child ``a`` before child ``b`` under ``parent``."""
    return (a, b) in _knowledge().before.get(parent, ())


def access(parent: str, child: str) -> set[str]:
    """kb classes observed for ``child`` under ``parent`` (empty if unknown)."""
    return _knowledge().kb.get((parent, child), set())


def is_list_item(parent: str, child: str) -> bool:
    """``child`` occurs as a repeated list item under ``parent`` in real responses."""
    return child in _knowledge().repeated.get(parent, ())


def is_read_only(parent: str, child: str) -> bool:
    """Server-computed field: the client may not set it."""
    kinds = access(parent, child)
    return bool(kinds) and kinds <= READ_ONLY


def is_create_only(parent: str, child: str) -> bool:
    """Field the client may set on create but not change afterwards."""
    kinds = access(parent, child)
    return bool(kinds) and kinds <= CREATE_ONLY


def order_violation(el: etree._Element) -> tuple[str, str, str] | None:
    """First (parent, earlier, later) pair found out of schema order, or None.

    ``earlier`` is the element that appears first in the document although the
    schema requires it after ``later``.
    """
    for node in el.iter():
        if not isinstance(node.tag, str):
            continue
        parent = x.local(node)
        pairs = _knowledge().before.get(parent)
        if not pairs:
            continue
        names = [x.local(c) for c in node if isinstance(c.tag, str)]
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                if a != b and (b, a) in pairs:
                    return parent, a, b
    return None


def structure_violation(el: etree._Element) -> tuple[str, str, str] | None:
    """First (parent, child, problem) where the payload is not schema-valid, or None.

    ``problem`` is ``"unknown"`` for a child never seen under that parent in
    any real response (nor in a known schema order), ``"repeated"`` for a
    child given twice that is not a list item. Parents we know nothing about
    are not judged (the check never refuses what a real server might accept).
    """
    k = _knowledge()
    for node in el.iter():
        if not isinstance(node.tag, str):
            continue
        parent = x.local(node)
        known = k.seen_children.get(parent)
        if not known:
            continue
        seen: set[str] = set()
        for c in node:
            if not isinstance(c.tag, str):
                continue
            name = x.local(c)
            if name not in known:
                return parent, name, "unknown"
            if name in seen and not _repeatable(k, parent, name):
                return parent, name, "repeated"
            seen.add(name)
    return None


def _repeatable(k: _Knowledge, parent: str, child: str) -> bool:
    """A list item: seen repeated, a link, or the only kind of child of a
    container (``LogicalUnits``/``LogicalUnit``) whose captures hold one item."""
    if child in k.repeated.get(parent, ()) or child == "link":
        return True
    return k.seen_children.get(parent, set()) - {"Metadata"} == {child}


def insert_ordered(parent: etree._Element, new: etree._Element) -> etree._Element:
    """Insert ``new`` under ``parent`` at its schema position (after its predecessors)."""
    pname = x.local(parent)
    name = x.local(new)
    kids = list(parent)
    after = [
        i
        for i, c in enumerate(kids)
        if isinstance(c.tag, str) and precedes(pname, x.local(c), name)
    ]
    before = [
        i
        for i, c in enumerate(kids)
        if isinstance(c.tag, str) and precedes(pname, name, x.local(c))
    ]
    if after:
        idx = after[-1] + 1
    elif before:
        idx = before[0]
    else:
        idx = len(kids)
    parent.insert(idx, new)
    return new


def set_field(
    parent: etree._Element, tag: str, value: str | None, kb: str = "ROR"
) -> etree._Element:
    """Set a uom child's text, creating it in schema order if missing."""
    el = parent.find(x.q(tag))
    if el is None:
        el = etree.Element(x.q(tag), attrib={"kb": kb, "kxe": "false"})
        insert_ordered(parent, el)
    el.text = value
    return el
