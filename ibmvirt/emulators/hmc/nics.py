"""NICs of partitions, and the virtual switches they connect to.

Why: the mock assigns no MAC addresses or NIC types and checks neither names nor
device numbers; the real HMC does, and refuses a mac-address before SE 2.14.
MAC rules are the same at create and update (``HMCState.validate_mac``).
"""

from __future__ import annotations

from ibmvirt.emulators.hmc import errors
from ibmvirt.emulators.hmc.errors import HMCError
from ibmvirt.emulators.hmc.model import Request, Response
from ibmvirt.emulators.hmc.state import (
    _ID,
    NOT_RUNNING,
    HMCState,
    Route,
    check_unique_name,
    new_id,
    refuse_ids,
    require_body,
)


def create_nic(st: HMCState, req: Request) -> Response:
    part = st.partition_for(req)
    cpc = part.manager.parent
    body = require_body(req)
    check_unique_name(part.nics.list(), body.get("name"), "a NIC", f"Partition {part.name}")
    mac = body.get("mac-address")
    if "mac-address" in body:
        mac = st.validate_mac(cpc, mac)
    vs_uri = body.get("virtual-switch-uri")
    nic_type = None
    if vs_uri is not None:
        vs = st.lookup(vs_uri, errors.REFERENCED_NOT_FOUND, "virtual switch")
        if vs.manager.parent is not cpc:
            raise HMCError(
                errors.REFERENCED_NOT_FOUND,
                f"Virtual switch {vs_uri} is not on CPC {cpc.name} of partition {part.name}",
            )
        nic_type = "iqd" if vs.properties.get("type") == "hipersockets" else "osd"
    elif body.get("network-adapter-port-uri"):
        adapter_uri = body["network-adapter-port-uri"].split("/network-ports/")[0]
        adapter = st.lookup(adapter_uri, errors.REFERENCED_NOT_FOUND, "adapter")
        nic_type = {"hipersockets": "iqd", "osd": "osd"}.get(
            adapter.properties.get("type"), adapter.properties.get("type")
        )
    refuse_ids(body)
    width = 3 if nic_type in ("osd", "iqd") else 1
    if "device-number" in body:
        st.check_devno(part, body["device-number"], width)
    delegated = {k: v for k, v in body.items() if k != "mac-address"}
    delegated["element-id"] = new_id()
    delegated.setdefault("device-number", st.alloc_devno(part, width))
    resp = st.delegate(req.method, req.target, delegated)
    nic = st.lookup(resp.body["element-uri"])
    if mac is None:
        mac = st.new_mac()
    else:
        st.macs.add(mac)
    nic.properties["mac-address"] = mac
    if nic_type:
        nic.properties["type"] = nic_type
    nic.properties.setdefault("vlan-id", None)
    nic.properties.setdefault("description", "")
    return resp


def update_nic(st: HMCState, req: Request) -> Response:
    nic = st.lookup(req.path, what="NIC")
    part = nic.manager.parent
    cpc = part.manager.parent
    body = require_body(req)
    if "mac-address" in body:
        mac = st.validate_mac(cpc, body["mac-address"], nic.properties.get("mac-address"))
        if part.properties.get("status") not in NOT_RUNNING:
            raise HMCError(
                errors.WRONG_STATE,
                f"mac-address of NIC {nic.name} can only change while partition "
                f"{part.name} is stopped",
            )
        body = dict(body, **{"mac-address": mac})
    if "name" in body:
        check_unique_name(part.nics.list(), body["name"], "a NIC", f"Partition {part.name}", nic)
    old_mac = nic.properties.get("mac-address")
    resp = st.delegate(req.method, req.target, body)
    new_mac = nic.properties.get("mac-address")
    if new_mac != old_mac:
        st.macs.discard(old_mac)
        st.macs.add(new_mac)
    return resp


def delete_nic(st: HMCState, req: Request) -> Response:
    nic = st.lookup(req.path, what="NIC")
    vs_uri = nic.properties.get("virtual-switch-uri")
    mac = nic.properties.get("mac-address")
    resp = st.delegate(req.method, req.target, None)
    st.disconnect_nic(req.path, vs_uri)
    st.macs.discard(mac)
    return resp


def connected_vnics(st: HMCState, req: Request) -> Response:
    vs = st.lookup("/api/virtual-switches/" + req.match.group("vid"), what="virtual switch")
    return Response(200, {"connected-vnic-uris": list(vs.properties["connected-vnic-uris"])})


ROUTES: list[Route] = [
    ("POST", rf"/api/partitions/(?P<pid>{_ID})/nics", create_nic),
    ("POST", rf"/api/partitions/{_ID}/nics/{_ID}", update_nic),
    ("DELETE", rf"/api/partitions/{_ID}/nics/{_ID}", delete_nic),
    (
        "GET",
        rf"/api/virtual-switches/(?P<vid>{_ID})/operations/get-connected-vnics",
        connected_vnics,
    ),
]
