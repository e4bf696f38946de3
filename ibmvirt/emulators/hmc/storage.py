"""DPM storage management (z14+): storage groups, volumes, VSRs, fulfillment.

Why: a boot-from-volume driver on a CPC with dpm-storage-management creates a
storage group per instance, attaches it to the partition (the HMC then creates
one virtual storage resource (VSR) with its own WWPN per path), hands those WWPNs
to Cinder, creates a boot volume, indicates its fulfillment (target WWPN + LUN)
and boots from it. zhmcclient.mock 1.26 can create groups and volumes but not
attach, detach or fulfil, and its create answer is not even JSON-serialisable,
so this module implements these operations on the faked HMC's object model.

Emulator rules (documented in doc/hmc-emulator.md):

* At create, an FCP group reserves ``connectivity`` x ``max-partitions`` WWPNs,
  listed in ``unassigned-world-wide-port-names`` so that storage can be zoned
  before the group is attached.
* Attach takes ``connectivity`` of those WWPNs for the partition: one VSR per
  path, paths spread round-robin over the candidate adapter ports.
* Detach removes the partition's VSRs and returns their WWPNs to the group.
* A volume is ``pending`` until fulfilment is indicated; the group is
  ``complete`` when all its volumes are.
* Deleting an attached group, or a volume that an active partition boots from,
  is refused.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from ibmvirt.emulators.hmc import errors
from ibmvirt.emulators.hmc.errors import HMCError
from ibmvirt.emulators.hmc.model import Request, Response, storage_management_enabled
from ibmvirt.emulators.hmc.state import HMCState, Route, check_unique_name, new_id, require_body

SG_TYPES = ("fcp", "fc", "nvme")
SV_USAGES = ("boot", "data", "not-applicable")
HEX16 = re.compile(r"^[0-9a-f]{16}$")
SG_CREATE_FIELDS = frozenset(
    {
        "name",
        "cpc-uri",
        "type",
        "description",
        "shared",
        "connectivity",
        "max-partitions",
        "direct-connection-count",
        "candidate-adapter-port-uris",
        "storage-volumes",
        "email-to-addresses",
        "email-cc-addresses",
        "email-insert",
    }
)
SG_MODIFY_FIELDS = frozenset(
    {
        "name",
        "description",
        "shared",
        "connectivity",
        "max-partitions",
        "storage-volumes",
        "email-to-addresses",
        "email-cc-addresses",
        "email-insert",
    }
)
SV_FIELDS = frozenset(
    {"operation", "element-uri", "name", "description", "size", "usage", "model", "cylinders"}
)


def _sg(st: HMCState, req: Request) -> Any:
    return st.lookup("/api/storage-groups/" + req.match.group("sgid"), what="storage group")


def _int_field(body: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = body.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise HMCError(errors.FIELD_INVALID, f"{name} must be an integer {low}-{high}")
    return value


class StorageOps:
    """Storage-group operations on the emulator state (called under its lock; stateless)."""

    def __init__(self, st: HMCState) -> None:
        self.st = st
        # volume URI -> (target WWPN, LUN) indicated at fulfilment
        self._targets = st.fcp_targets

    # ---------------------------------------------------------- helpers
    def _check_ports(self, cpc: Any, port_uris: Any) -> list[str]:
        if not isinstance(port_uris, list):
            raise HMCError(errors.FIELD_INVALID, "adapter port URIs must be a list")
        for uri in port_uris:
            if not isinstance(uri, str) or "/storage-ports/" not in uri:
                raise HMCError(errors.FIELD_INVALID, f"{uri!r} is not a storage port URI")
            port = self.st.lookup(uri, errors.REFERENCED_NOT_FOUND, "storage port")
            adapter = port.manager.parent
            if adapter.manager.parent is not cpc:
                raise HMCError(
                    errors.FIELD_INVALID, f"Port {uri} is not on CPC {cpc.name} of the group"
                )
            if adapter.properties.get("type") != "fcp":
                raise HMCError(
                    errors.FIELD_INVALID, f"Adapter {adapter.name} of port {uri} is not FCP"
                )
        return list(port_uris)

    def _attached_partitions(self, sg: Any) -> list[Any]:
        cpc = self.st.lookup(sg.properties["cpc-uri"])
        return [
            p for p in cpc.partitions.list() if sg.uri in p.properties.get("storage-group-uris", [])
        ]

    def _refresh_fulfillment(self, sg: Any) -> None:
        states = [v.properties.get("fulfillment-state") for v in sg.storage_volumes.list()]
        sg.properties["fulfillment-state"] = (
            "complete" if all(s == "complete" for s in states) else "pending"
        )
        status = (
            "validated"
            if states and sg.properties["fulfillment-state"] == "complete"
            else ("not-validated")
        )
        for vsr in sg.virtual_storage_resources.list():
            vsr.properties["world-wide-port-name-info"] = {
                "status": status,
                "world-wide-port-name": vsr.properties["world-wide-port-name"],
            }

    def _add_paths(self, sg: Any) -> None:
        """Recompute each fulfilled volume's paths from the group's VSRs."""
        vsrs = sg.virtual_storage_resources.list()
        for sv in sg.storage_volumes.list():
            target = self._targets.get(sv.uri)
            if not target:
                sv.properties["paths"] = []
                continue
            sv.properties["paths"] = [
                {
                    "partition-uri": vsr.properties["partition-uri"],
                    "device-number": vsr.properties["device-number"],
                    "target-world-wide-port-name": target[0],
                    "logical-unit-number": target[1],
                }
                for vsr in vsrs
            ]

    def _create_volume(self, sg: Any, spec: dict[str, Any]) -> str:
        for field in spec:
            if field not in SV_FIELDS:
                raise HMCError(errors.FIELD_UNRECOGNIZED, f"{field!r} is not a volume field")
        if "element-uri" in spec:
            raise HMCError(errors.FIELD_INVALID, "element-uri is not allowed for create")
        name = spec.get("name")
        check_unique_name(sg.storage_volumes.list(), name, "a volume", f"Storage group {sg.name}")
        size = spec.get("size")
        if sg.properties.get("type") != "fc":
            if not isinstance(size, (int, float)) or isinstance(size, bool) or size <= 0:
                raise HMCError(errors.FIELD_MISSING, "size (GiB, > 0) is required for the volume")
        usage = spec.get("usage", "data")
        if usage not in SV_USAGES:
            raise HMCError(errors.FIELD_INVALID, f"usage {usage!r} is not one of {SV_USAGES}")
        props = {k: v for k, v in spec.items() if k != "operation"}
        props.setdefault("description", "")
        props["usage"] = usage
        props.update(
            {
                "fulfillment-state": "pending",
                "maximum-size": size,
                "active-size": None,
                "uuid": None,
                "paths": [],
                "active-status": "pending",
            }
        )
        props["element-id"] = new_id()
        sv = sg.storage_volumes.add(props)
        self._refresh_fulfillment(sg)
        return sv.uri

    def _volume_in_use(self, sv: Any) -> Any | None:
        sg = sv.manager.parent
        for part in self._attached_partitions(sg):
            if (
                part.properties.get("boot-storage-volume") == sv.uri
                and part.properties.get("status") != "stopped"
            ):
                return part
        return None

    def detach_all(self, part: Any) -> None:
        """Detach every group from a partition (used when it is deleted)."""
        for sg_uri in list(part.properties.get("storage-group-uris", [])):
            try:
                sg = self.st.hmc.lookup_by_uri(sg_uri)
            except KeyError:
                continue
            self._detach(part, sg)

    def _detach(self, part: Any, sg: Any) -> None:
        unassigned = sg.properties.setdefault("unassigned-world-wide-port-names", [])
        for vsr in list(sg.virtual_storage_resources.list()):
            if vsr.properties.get("partition-uri") != part.uri:
                continue
            unassigned.append(vsr.properties["world-wide-port-name"])
            sg.properties["virtual-storage-resource-uris"].remove(vsr.uri)
            sg.virtual_storage_resources.remove(vsr.oid)
        part.properties["storage-group-uris"].remove(sg.uri)
        self._add_paths(sg)
        self._refresh_fulfillment(sg)

    # --------------------------------------------------------- handlers
    def create_group(self, req: Request) -> Response:
        body = require_body(req)
        for field in ("name", "cpc-uri", "type"):
            if field not in body:
                raise HMCError(errors.FIELD_MISSING, f"Create Storage Group needs {field!r}")
        for field in body:
            if field not in SG_CREATE_FIELDS:
                raise HMCError(errors.FIELD_UNRECOGNIZED, f"{field!r} is not a storage group field")
        cpc = self.st.lookup(body["cpc-uri"], errors.REFERENCED_NOT_FOUND, "CPC")
        if not storage_management_enabled(cpc.properties):
            raise HMCError(
                errors.NOT_SUPPORTED_ON_CPC,
                f"CPC {cpc.name} does not have dpm-storage-management enabled; "
                "use HBAs on its partitions instead of storage groups",
            )
        name = body["name"]
        if not isinstance(name, str) or not 1 <= len(name) <= 64:
            raise HMCError(errors.FIELD_INVALID, "Storage group name must be 1-64 characters")
        console = self.st.hmc.consoles.console
        check_unique_name(console.storage_groups.list(), name, "a storage group", "The HMC")
        sg_type = body["type"]
        if sg_type not in SG_TYPES:
            raise HMCError(errors.FIELD_INVALID, f"type {sg_type!r} is not one of {SG_TYPES}")
        shared = body.get("shared", True)
        if not isinstance(shared, bool):
            raise HMCError(errors.FIELD_INVALID, "shared must be a boolean")
        connectivity = _int_field(body, "connectivity", 2, 1, 64)
        max_parts = _int_field(body, "max-partitions", 2 if shared else 1, 1, 64)
        if not shared and max_parts != 1:
            raise HMCError(errors.FIELD_INVALID, "a non-shared storage group has max-partitions 1")
        ports = self._check_ports(cpc, body.get("candidate-adapter-port-uris", []))
        props = {
            "name": name,
            "cpc-uri": cpc.uri,
            "type": sg_type,
            "description": body.get("description", ""),
            "shared": shared,
            "connectivity": connectivity,
            "max-partitions": max_parts,
            "active-connectivity": 0,
            "candidate-adapter-port-uris": ports,
            "fulfillment-state": "complete",
            "unassigned-world-wide-port-names": [
                self.st.wwpns.allocate() for _ in range(connectivity * max_parts)
            ]
            if sg_type == "fcp"
            else [],
            "direct-connection-count": body.get("direct-connection-count", 0),
        }
        props["object-id"] = new_id()
        sg = console.storage_groups.add(props)
        element_uris = []
        try:
            for spec in body.get("storage-volumes") or []:
                if not isinstance(spec, dict) or spec.get("operation") != "create":
                    raise HMCError(
                        errors.FIELD_INVALID, "Create Storage Group only accepts create volumes"
                    )
                element_uris.append(self._create_volume(sg, spec))
        except HMCError:
            console.storage_groups.remove(sg.oid)
            raise
        return Response(
            201, {"object-uri": sg.uri, "element-uris": element_uris}, {"Location": sg.uri}
        )

    def modify_group(self, req: Request) -> Response:
        sg = _sg(self.st, req)
        body = require_body(req)
        for field in body:
            if field not in SG_MODIFY_FIELDS:
                raise HMCError(
                    errors.FIELD_UNRECOGNIZED, f"{field!r} cannot be modified on storage group"
                )
        console = self.st.hmc.consoles.console
        if "name" in body:
            check_unique_name(
                console.storage_groups.list(), body["name"], "a storage group", "The HMC", sg
            )
        # Validate every volume request before changing anything.
        specs = body.get("storage-volumes") or []
        for spec in specs:
            if not isinstance(spec, dict) or spec.get("operation") not in (
                "create",
                "modify",
                "delete",
            ):
                raise HMCError(
                    errors.FIELD_INVALID,
                    "each storage-volumes entry needs operation create/modify/delete",
                )
            if spec["operation"] in ("modify", "delete"):
                uri = spec.get("element-uri")
                if not uri or not str(uri).startswith(sg.uri + "/storage-volumes/"):
                    raise HMCError(
                        errors.REFERENCED_NOT_FOUND,
                        f"Volume {uri} is not in storage group {sg.name}",
                    )
                sv = self.st.lookup(uri, errors.REFERENCED_NOT_FOUND, "storage volume")
                if spec["operation"] == "modify" and "name" in spec:
                    check_unique_name(
                        sg.storage_volumes.list(),
                        spec["name"],
                        "a volume",
                        f"Storage group {sg.name}",
                        sv,
                    )
                if spec["operation"] == "delete":
                    part = self._volume_in_use(sv)
                    if part is not None:
                        raise HMCError(
                            errors.SG_IN_USE,
                            f"Volume {sv.name} is the boot volume of partition {part.name}, "
                            f"which is {part.properties.get('status')}; stop it first",
                        )
        for key in ("name", "description", "shared", "connectivity", "max-partitions"):
            if key in body:
                sg.properties[key] = body[key]
        element_uris = []
        for spec in specs:
            op = spec["operation"]
            if op == "create":
                element_uris.append(self._create_volume(sg, spec))
            elif op == "delete":
                sv = self.st.lookup(spec["element-uri"])
                sg.properties["storage-volume-uris"].remove(sv.uri)
                sg.storage_volumes.remove(sv.oid)
                self._targets.pop(sv.uri, None)
            else:
                sv = self.st.lookup(spec["element-uri"])
                sv.update({k: v for k, v in spec.items() if k not in ("operation", "element-uri")})
        self._refresh_fulfillment(sg)
        if element_uris:
            return Response(200, {"element-uris": element_uris})
        return Response(204)

    def delete_group(self, req: Request) -> Response:
        sg = _sg(self.st, req)
        attached = self._attached_partitions(sg)
        if attached:
            raise HMCError(
                errors.SG_IN_USE,
                f"Storage group {sg.name} is attached to partition(s) "
                f"{sorted(p.name for p in attached)}; detach it first",
            )
        self.st.hmc.consoles.console.storage_groups.remove(sg.oid)
        return Response(204)

    def add_ports(self, req: Request) -> Response:
        sg = _sg(self.st, req)
        body = require_body(req)
        cpc = self.st.lookup(sg.properties["cpc-uri"])
        ports = self._check_ports(cpc, body.get("adapter-port-uris"))
        cur = sg.properties.setdefault("candidate-adapter-port-uris", [])
        for uri in ports:
            if uri in cur:
                raise HMCError(
                    errors.FIELD_INVALID, f"Port {uri} is already a candidate of group {sg.name}"
                )
        cur.extend(ports)
        return Response(204)

    def remove_ports(self, req: Request) -> Response:
        sg = _sg(self.st, req)
        body = require_body(req)
        ports = body.get("adapter-port-uris")
        if not isinstance(ports, list):
            raise HMCError(errors.FIELD_MISSING, "adapter-port-uris (a list) is required")
        cur = sg.properties.setdefault("candidate-adapter-port-uris", [])
        used = {v.properties.get("adapter-port-uri") for v in sg.virtual_storage_resources.list()}
        for uri in ports:
            if uri not in cur:
                raise HMCError(
                    errors.FIELD_INVALID, f"Port {uri} is not a candidate of group {sg.name}"
                )
            if uri in used:
                raise HMCError(
                    errors.SG_IN_USE,
                    f"Port {uri} carries a virtual storage resource of group {sg.name}; "
                    "detach the group first",
                )
        for uri in ports:
            cur.remove(uri)
        return Response(204)

    def get_partitions(self, req: Request) -> Response:
        sg = _sg(self.st, req)
        # ?name= and ?status= are applied by the engine, outside its lock (filters.py).
        result = [
            {"object-uri": p.uri, "name": p.name, "status": p.properties.get("status")}
            for p in self._attached_partitions(sg)
        ]
        return Response(200, {"partitions": result})

    def _partition_and_group(self, req: Request) -> tuple[Any, Any]:
        """The partition of the URI and the storage group its body names."""
        part = self.st.lookup("/api/partitions/" + req.match.group("pid"), what="partition")
        body = require_body(req)
        sg_uri = body.get("storage-group-uri")
        if not sg_uri:
            raise HMCError(errors.FIELD_MISSING, "storage-group-uri is required")
        return part, self.st.lookup(sg_uri, errors.REFERENCED_NOT_FOUND, "storage group")

    def attach(self, req: Request) -> Response:
        part, sg = self._partition_and_group(req)
        status = part.properties.get("status")
        if status in ("starting", "stopping"):
            raise HMCError(errors.WRONG_STATE, f"Partition {part.name} is {status}")
        cpc = part.manager.parent
        if sg.properties.get("cpc-uri") != cpc.uri:
            raise HMCError(
                errors.SG_CPC_MISMATCH,
                f"Storage group {sg.name} belongs to another CPC than partition {part.name}",
            )
        sg_uris = part.properties.setdefault("storage-group-uris", [])
        if sg.uri in sg_uris:
            raise HMCError(
                errors.SG_ALREADY_ATTACHED,
                f"Storage group {sg.name} is already attached to partition {part.name}",
            )
        attached = self._attached_partitions(sg)
        if len(attached) >= sg.properties.get("max-partitions", 1):
            raise HMCError(
                errors.SG_MAX_PARTITIONS,
                f"Storage group {sg.name} is already attached to {len(attached)} partition(s), "
                f"its max-partitions; detach it from {sorted(p.name for p in attached)} first",
            )
        ports = sg.properties.get("candidate-adapter-port-uris") or []
        if sg.properties.get("type") == "fcp" and not ports:
            raise HMCError(
                errors.WRONG_STATE,
                f"Storage group {sg.name} has no candidate adapter ports; add some first",
            )
        sg_uris.append(sg.uri)  # first, so that device numbers see the new VSRs
        unassigned = sg.properties.setdefault("unassigned-world-wide-port-names", [])
        for i in range(sg.properties.get("connectivity", 1) if ports else 0):
            port_uri = ports[i % len(ports)]
            port = self.st.lookup(port_uri)
            adapter = port.manager.parent
            wwpn = unassigned.pop(0) if unassigned else self.st.wwpns.allocate()
            sg.virtual_storage_resources.add(
                {
                    "element-id": new_id(),
                    "name": f"{part.name}-{adapter.properties.get('adapter-id', adapter.oid)}-{i}",
                    "description": f"Path {i} of storage group {sg.name}",
                    "partition-uri": part.uri,
                    "adapter-port-uri": port_uri,
                    "device-number": self.st.alloc_devno(part),
                    "world-wide-port-name": wwpn,
                    "world-wide-port-name-info": {
                        "status": "not-validated",
                        "world-wide-port-name": wwpn,
                    },
                }
            )
        sg.properties["active-connectivity"] = min(
            len(set(ports)), sg.properties.get("connectivity", 1)
        )
        self._add_paths(sg)
        self._refresh_fulfillment(sg)
        return Response(204)

    def detach(self, req: Request) -> Response:
        part, sg = self._partition_and_group(req)
        if sg.uri not in part.properties.get("storage-group-uris", []):
            raise HMCError(
                errors.SG_NOT_ATTACHED,
                f"Storage group {sg.name} is not attached to partition {part.name}",
            )
        status = part.properties.get("status")
        boot = part.properties.get("boot-storage-volume") or ""
        if status in ("starting", "stopping") or (
            status != "stopped" and boot.startswith(sg.uri + "/")
        ):
            raise HMCError(
                errors.WRONG_STATE,
                f"Partition {part.name} is {status} and boots from storage group "
                f"{sg.name}; stop it before detaching",
            )
        self._detach(part, sg)
        return Response(204)

    def fulfill_fcp(self, req: Request) -> Response:
        sv = self.st.lookup(req.path.split("/operations/")[0], what="storage volume")
        sg = sv.manager.parent
        if sg.properties.get("type") != "fcp":
            raise HMCError(errors.FIELD_INVALID, f"Storage group {sg.name} is not of type fcp")
        body = require_body(req)
        for field in ("world-wide-port-name", "logical-unit-number", "adapter-port-uri"):
            if field not in body:
                raise HMCError(errors.FIELD_MISSING, f"{field!r} is required")
        wwpn = body["world-wide-port-name"]
        lun = body["logical-unit-number"]
        for field, val in (("world-wide-port-name", wwpn), ("logical-unit-number", lun)):
            if not isinstance(val, str) or not HEX16.match(val):
                raise HMCError(
                    errors.FIELD_INVALID, f"{field} must be 16 lower-case hex digits, got {val!r}"
                )
        port_uri = body["adapter-port-uri"]
        self.st.lookup(port_uri, errors.REFERENCED_NOT_FOUND, "storage port")
        if port_uri not in (sg.properties.get("candidate-adapter-port-uris") or []):
            raise HMCError(
                errors.FIELD_INVALID,
                f"Port {port_uri} is not a candidate adapter port of storage group {sg.name}",
            )
        if sv.properties.get("fulfillment-state") == "complete":
            raise HMCError(errors.WRONG_STATE, f"Storage volume {sv.name} is already fulfilled")
        sv.properties.update(
            {
                "fulfillment-state": "complete",
                "active-status": "active",
                "active-size": sv.properties.get("size"),
                "uuid": "600507680c8" + secrets.token_hex(11)[:21],
            }
        )
        self._targets[sv.uri] = (wwpn, lun)
        self._add_paths(sg)
        self._refresh_fulfillment(sg)
        return Response(204)


def detach_all(st: HMCState, part: Any) -> None:
    """Detach every storage group from a partition (used when it is deleted)."""
    StorageOps(st).detach_all(part)


def _op(name: str) -> Any:
    def handler(st: HMCState, req: Request) -> Response:
        return getattr(StorageOps(st), name)(req)

    handler.__name__ = name
    return handler


_SG = r"/api/storage-groups/(?P<sgid>[^/?]+)"
ROUTES: list[Route] = [
    ("POST", r"/api/storage-groups", _op("create_group")),
    ("POST", _SG + r"/operations/modify", _op("modify_group")),
    ("POST", _SG + r"/operations/delete", _op("delete_group")),
    ("POST", _SG + r"/operations/add-candidate-adapter-ports", _op("add_ports")),
    ("POST", _SG + r"/operations/remove-candidate-adapter-ports", _op("remove_ports")),
    ("GET", _SG + r"/operations/get-partitions", _op("get_partitions")),
    (
        "POST",
        _SG + r"/storage-volumes/[^/?]+/operations/fulfill-fcp-storage-volume",
        _op("fulfill_fcp"),
    ),
    ("POST", r"/api/partitions/(?P<pid>[^/?]+)/operations/attach-storage-group", _op("attach")),
    ("POST", r"/api/partitions/(?P<pid>[^/?]+)/operations/detach-storage-group", _op("detach")),
]
