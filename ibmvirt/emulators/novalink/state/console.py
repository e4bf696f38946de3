"""The management console (the NovaLink partition's REST view of itself),
the default shared processor pool, and the client-side adapter views that the
real server derives from VIOS mappings.
"""

from __future__ import annotations

import base64
import hashlib
import uuid as uuidlib
from typing import Any
from urllib.parse import urlsplit

from lxml import etree

from ibmvirt.emulators.novalink import captures, schema
from ibmvirt.emulators.novalink import xmlutil as x
from ibmvirt.emulators.novalink.emulator import Emulator, Kind
from ibmvirt.emulators.novalink.state import slots, system
from ibmvirt.emulators.novalink.store import Resource


def seed(emu: Emulator, inv: dict[str, Any]) -> None:
    assert emu.ms is not None
    host = inv["host"]["name"]
    # ManagementConsole
    el = captures.rebase(captures.contents("managementconsole_ssh.txt")[0], emu.base)
    uuid = str(uuidlib.uuid5(uuidlib.NAMESPACE_DNS, f"{host}/console"))
    x.set_atom(el, uuid)
    schema.set_field(el, "ManagementConsoleName", inv["management_partition"]["name"], kb="CUR")
    systems = el.find(x.q("ManagedSystems"))
    for c in list(systems):
        systems.remove(c)
    ms_href = f"{emu.base}/rest/api/uom/ManagementConsole/{uuid}/ManagedSystem/{emu.ms.uuid}"
    etree.SubElement(systems, x.q("link"), href=ms_href, rel="related")
    # A key-shaped marker, unique per host; not a usable key.
    blob = base64.b64encode(b"\x00\x00\x00\x07ssh-rsa" + hashlib.sha256(host.encode()).digest())
    schema.set_field(el, "PublicSSHKey", f"ssh-rsa {blob.decode()} wlp@{host}", kb="ROO")
    keys = el.find(x.q("AuthorizedKeys"))
    if keys is not None:
        for c in list(keys):
            keys.remove(c)
    # The console's own network interface: the address the emulator serves on.
    nics = el.find(x.q("NetworkInterfaces"))
    if nics is not None and nics.find(x.q("ManagementConsoleNetworkInterface")) is None:
        nic = x.sub_container(nics, "ManagementConsoleNetworkInterface")
        x.sub(nic, "InterfaceName", "eth0", kb="CUD")
        x.sub(nic, "NetworkAddress", urlsplit(emu.base).hostname or "127.0.0.1", kb="CUR")
    emu.store.add(Resource("ManagementConsole", uuid, el))
    # Default shared processor pool
    pool = captures.rebase(captures.contents("shrprocpool.txt")[0], emu.base)
    puuid = str(uuidlib.uuid5(uuidlib.NAMESPACE_DNS, f"{host}/spp/0"))
    x.set_atom(pool, puuid)
    assigned = pool.find(x.q("AssignedPartitions"))
    if assigned is not None:
        for c in list(assigned):
            assigned.remove(c)
    res = Resource("SharedProcessorPool", puuid, pool, parent=emu.ms, rootable=False)
    emu.store.add(res)


def _pool_refresh(emu: Emulator) -> None:
    for pool in emu.store.list("SharedProcessorPool"):
        _, free = system.available(emu)
        schema.set_field(pool.elem, "AvailableProcUnits", f"{free:.2f}", kb="CUD")


def _console_update(emu: Emulator, res: Resource, new: etree._Element) -> None:
    """Only the authorized SSH keys change (pypowervm add_authorized_key)."""
    keys = new.find(x.q("AuthorizedKeys"))
    out = x.deep(res.elem)
    old = out.find(x.q("AuthorizedKeys"))
    if keys is not None:
        if old is not None:
            out.replace(old, x.deep(keys))
        else:
            schema.insert_ordered(out, x.deep(keys))
    res.elem = out


# ---- client adapter views derived from VIOS mappings ------------------------------------------
def _client_adapters(emu: Emulator, parent: Resource, section: str, item: str, kind: str):
    out = []
    for v in emu.store.list("VirtualIOServer"):
        for m in slots.items(v.elem, section, item):
            link = m.find(x.q("AssociatedLogicalPartition"))
            href = link.get("href", "") if link is not None else ""
            ca = m.find(x.q("ClientAdapter"))
            if ca is None or not href.split("?")[0].rstrip("/").upper().endswith(
                parent.uuid.upper()
            ):
                continue
            el = x.deep(ca)
            el.tag = x.q(kind)
            el.attrib.pop("kb", None)
            el.attrib.pop("kxe", None)
            sa = m.find(x.q("ServerAdapter"))
            if sa is not None and kind == "VirtualFibreChannelClientAdapter":
                wwpns = el.find(x.q("WWPNs"))
                copy_sa = x.deep(sa)
                if wwpns is not None:
                    wwpns.addprevious(copy_sa)
                else:
                    el.append(copy_sa)
            key = f"{parent.uuid}/{kind}/{ca.findtext(x.q('VirtualSlotNumber'))}"
            uuid = str(uuidlib.uuid5(uuidlib.NAMESPACE_URL, key))
            x.set_atom(el, uuid)
            res = Resource(kind, uuid, el, parent=parent, rootable=False)
            res.versions = {
                "base": int(hashlib.sha256(etree.tostring(el)).hexdigest()[:8], 16) % 100000
            }
            out.append(res)
    return out


def register(emu: Emulator) -> None:
    emu.register(Kind("ManagementConsole", update=_console_update))
    emu.register(Kind("SharedProcessorPool", rootable=False, parents=("ManagedSystem",)))
    for kind, section, item in (
        (
            "VirtualFibreChannelClientAdapter",
            "VirtualFibreChannelMappings",
            "VirtualFibreChannelMapping",
        ),
        ("VirtualSCSIClientAdapter", "VirtualSCSIMappings", "VirtualSCSIMapping"),
    ):
        k = Kind(kind, rootable=False, parents=("LogicalPartition",))
        k.lister = lambda e, p, kind=kind, section=section, item=item: _client_adapters(
            e, p, section, item, kind
        )
        emu.register(k)
    emu.seed_hooks.append(seed)
    emu.kind("ManagedSystem").before_read.append(_pool_refresh)
