"""Addresses the server hands out: MAC addresses of virtual adapters and
SR-IOV logical ports, and virtual Fibre Channel WWPN pairs.

One module for both network.py and sriov.py (a MAC is unique system-wide
whichever type holds it), depending on no other state module. The per-host
prefix is derived from the managed system's UUID with SHA-256, so it is the
same in every process and every run (Python's ``hash()`` of a string is
salted per process). The counters live in ``emu.ext``; an address already in
use is skipped, so a counter that starts again never hands one out twice.
"""

from __future__ import annotations

import hashlib
import itertools
from typing import TYPE_CHECKING

from ibmvirt.emulators.novalink import errors
from ibmvirt.emulators.novalink import xmlutil as x
from ibmvirt.emulators.novalink.store import Resource

if TYPE_CHECKING:
    from ibmvirt.emulators.novalink.emulator import Emulator

#: Locally administered unicast MACs, as the real server's generated ones are
#: (the "FA" first octet of the captures' generated client adapter MACs).
MAC_OUI = "FA"
#: IBM's NPIV WWPN prefix (the captures' virtual WWPNs start C05076).
WWPN_OUI = "C05076"
#: Types whose elements carry MACAddress values (SR-IOV logical ports by name,
#: so this module needs no import of sriov.py).
MAC_KINDS = (
    "ClientNetworkAdapter",
    "NetworkBridge",
    "VirtualNICDedicated",
    "SRIOVEthernetLogicalPort",
)


def host_prefix(system_uuid: str) -> str:
    """Four hex digits that tell this host's addresses from another's."""
    digest = hashlib.sha256(system_uuid.strip().upper().encode()).hexdigest()
    return digest[:4].upper()


def _prefix(emu: Emulator) -> str:
    assert emu.ms is not None
    return host_prefix(emu.ms.uuid)


# ---- MAC addresses -------------------------------------------------------------------
def macs_in_use(emu: Emulator) -> set[str]:
    macs: set[str] = set()
    for kind in MAC_KINDS:
        for res in emu.store.list(kind):
            for m in res.elem.iter(x.q("MACAddress")):
                if m.text:
                    macs.add(m.text.strip().upper())
    return macs


def new_mac(emu: Emulator) -> str:
    """The next free generated MAC: FA, the host prefix, a 24-bit counter."""
    counter = emu.ext.setdefault("mac_counter", itertools.count(0x100))
    used = macs_in_use(emu)
    prefix = _prefix(emu)
    while True:
        n = next(counter)
        if n > 0xFFFFFF:
            raise errors.bad_request("The system has no generated MAC addresses left")
        mac = f"{MAC_OUI}{prefix}{n:06X}"
        if mac not in used:
            return mac


def check_mac(emu: Emulator, mac: str, who: str, exclude: Resource | None = None) -> str:
    """A client-chosen MAC, normalised (12 upper-case hex digits) and unique."""
    mac = mac.replace(":", "").strip().upper()
    if len(mac) != 12 or any(ch not in "0123456789ABCDEF" for ch in mac):
        raise errors.bad_request(f"{who}: MACAddress {mac!r} is not 12 hex digits")
    others = macs_in_use(emu)
    if exclude is not None:
        for m in exclude.elem.iter(x.q("MACAddress")):
            others.discard((m.text or "").strip().upper())
    if mac in others:
        raise errors.bad_request(
            f"{who}: MAC address {mac} is already in use", errors.DUPLICATE_NAME
        )
    return mac


# ---- WWPNs -----------------------------------------------------------------------------
def wwpns_in_use(emu: Emulator) -> set[str]:
    """Every WWPN a VIOS shows: physical ports and virtual FC client adapters."""
    out: set[str] = set()
    for v in emu.store.list("VirtualIOServer"):
        for tag in ("WWPN", "WWPNs"):
            for el in v.elem.iter(x.q(tag)):
                out.update(w.upper() for w in (el.text or "").split())
    return out


def new_wwpns(emu: Emulator, count: int) -> list[str]:
    """``count`` unused virtual WWPNs: C05076, the host prefix, a counter."""
    counter = emu.ext.setdefault("wwpn_counter", itertools.count(0x10))
    used = wwpns_in_use(emu)
    prefix = _prefix(emu)
    out: list[str] = []
    while len(out) < count:
        n = next(counter)
        if n > 0xFFFFFF:
            raise errors.JobFailure("The system has no virtual WWPNs left")
        wwpn = f"{WWPN_OUI}{prefix}{n:06X}"
        if wwpn not in used:
            out.append(wwpn)
    return out
