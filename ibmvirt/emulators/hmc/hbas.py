"""HBAs of partitions (CPCs without dpm-storage-management) and WWPN export.

Why: the mock assigns no WWPNs and accepts HBAs on CPCs whose storage is
managed through storage groups, where the real HMC has no HBAs at all.
"""

from __future__ import annotations

from ibmvirt.emulators.hmc import errors
from ibmvirt.emulators.hmc.errors import HMCError
from ibmvirt.emulators.hmc.model import Request, Response, storage_management_enabled
from ibmvirt.emulators.hmc.state import (
    _ID,
    TRANSITIONAL,
    HMCState,
    Route,
    check_unique_name,
    new_id,
    require_body,
)

HBA_WRITABLE = frozenset({"name", "description", "device-number", "adapter-port-uri"})


def create_hba(st: HMCState, req: Request) -> Response:
    part = st.partition_for(req)
    cpc = part.manager.parent
    if storage_management_enabled(cpc.properties):
        raise HMCError(
            errors.NOT_SUPPORTED_ON_CPC,
            f"CPC {cpc.name} has dpm-storage-management enabled: partitions have no "
            "HBAs; attach a storage group instead",
        )
    body = require_body(req)
    check_unique_name(part.hbas.list(), body.get("name"), "an HBA", f"Partition {part.name}")
    for prop in body:
        if prop not in HBA_WRITABLE:
            raise HMCError(errors.FIELD_UNRECOGNIZED, f"{prop!r} cannot be set on an HBA")
    port_uri = body.get("adapter-port-uri")
    if isinstance(port_uri, str):
        adapter = st.lookup(
            port_uri.split("/storage-ports/")[0], errors.REFERENCED_NOT_FOUND, "adapter"
        )
        if adapter.properties.get("type") != "fcp":
            raise HMCError(
                errors.FIELD_INVALID,
                f"Adapter {adapter.name} is of type {adapter.properties.get('type')}, not fcp",
            )
    if "device-number" in body:
        st.check_devno(part, body["device-number"], 1)
    delegated = dict(body, **{"element-id": new_id()})
    delegated.setdefault("device-number", st.alloc_devno(part))
    resp = st.delegate(req.method, req.target, delegated)
    hba = st.lookup(resp.body["element-uri"])
    hba.properties["wwpn"] = st.wwpns.allocate()
    hba.properties.setdefault("description", "")
    return resp


def update_hba(st: HMCState, req: Request) -> Response:
    hba = st.lookup(req.path, what="HBA")
    part = hba.manager.parent
    body = require_body(req)
    for prop in body:
        if prop not in HBA_WRITABLE:
            raise HMCError(
                errors.FIELD_UNRECOGNIZED, f"Property {prop!r} of HBA {hba.name} is read-only"
            )
    if "name" in body:
        check_unique_name(part.hbas.list(), body["name"], "an HBA", f"Partition {part.name}", hba)
    if part.properties.get("status") in TRANSITIONAL:
        raise HMCError(errors.WRONG_STATE, f"Partition {part.name} is in transition")
    hba.update(body)
    return Response(204)


def export_wwpns(st: HMCState, req: Request) -> Response:
    cpc = st.lookup("/api/cpcs/" + req.match.group("cid"), what="CPC")
    if storage_management_enabled(cpc.properties):
        raise HMCError(
            errors.NOT_SUPPORTED_ON_CPC,
            f"CPC {cpc.name} has dpm-storage-management enabled: it has no HBAs; read "
            "WWPNs from the virtual storage resources of storage groups",
        )
    body = require_body(req)
    uris = body.get("partitions")
    if isinstance(uris, list):
        for uri in uris:
            st.lookup(str(uri), errors.REFERENCED_NOT_FOUND, "partition")
    return st.delegate(req.method, req.target, body)


ROUTES: list[Route] = [
    ("POST", rf"/api/partitions/(?P<pid>{_ID})/hbas", create_hba),
    ("POST", rf"/api/partitions/{_ID}/hbas/{_ID}", update_hba),
    ("POST", rf"/api/cpcs/(?P<cid>{_ID})/operations/export-port-names-list", export_wwpns),
]
