"""SR-IOV traffic in the long-term monitor's phyp samples (``sriovLogicalPorts``).

pypowervm 1.1.27 parses ``sriovLogicalPorts`` in a partition's ``network``
section (``PhypSriovLparPort``), but none of its captures has one, so these
entries are a guess at the real shape built from the parser's field names:
one per SR-IOV logical port assigned directly to the partition, and one per
vNIC of the partition (named by the vNIC's client location code; where the real
PCM reports a vNIC's backing-port traffic is not known). Counters grow with
the host's uptime like the virtual Ethernet adapters'.
"""

from __future__ import annotations

from typing import Any

from ibmvirt.emulators.novalink.emulator import Emulator

PACKETS_PER_SECOND = 30
BYTES_PER_PACKET = 1024


def _entry(up: float, drc: int, location: str, port_id: str) -> dict[str, Any]:
    packets = int(up * PACKETS_PER_SECOND)
    return {
        "drcIndex": drc,
        "physicalLocation": location,
        "physicalDrcIndex": 0,
        "physicalPortId": int(port_id or 0),
        "receivedPackets": packets,
        "sentPackets": packets // 2,
        "droppedSentPackets": packets // 1000,
        "droppedReceivedPackets": packets // 500,
        "sentBytes": packets // 2 * BYTES_PER_PACKET,
        "receivedBytes": packets * BYTES_PER_PACKET,
        "errorIn": 0,
        "errorOut": 0,
    }


def logical_ports(emu: Emulator, part: Any, up: float) -> list[dict[str, Any]]:
    """The partition's SR-IOV logical ports and vNICs, as PCM entries."""
    out = []
    for lp in emu.store.list("SRIOVEthernetLogicalPort", parent=part):
        drc = int(lp.field("LogicalPortID") or 0)
        out.append(
            _entry(up, drc, lp.field("LocationCode") or "", lp.field("PhysicalPortID") or "")
        )
    for vnic in emu.store.list("VirtualNICDedicated", parent=part):
        drc = int(vnic.field("DynamicReconfigurationConnectorIndex") or 0)
        out.append(_entry(up, drc, vnic.field("LocationCode") or "", ""))
    return out
