"""An in-process HMC for driver unit tests: zhmcclient.mock on the shipped inventories.

zhmcclient.mock lacks the DPM storage-management operations the z14+ path
uses (attach/detach storage group, FCP fulfillment) and OS messages; the
handlers below add them with the HMC's documented behaviour so the driver's
storage-group path can be tested without a server. Everything else is the
mock's own behaviour. ``RequestLog`` records every request the driver makes.
"""

from __future__ import annotations

import itertools
import re

import zhmcclient
from zhmcclient.mock import FakedSession
from zhmcclient.mock._urihandler import (
    URIS,
    InvalidResourceError,
    PartitionsHandler,
    StorageGroupsHandler,
    UriHandler,
)
from zhmcclient.mock._urihandler import FakedHTTPError as HTTPError

from ibmvirt.emulators.hmc import inventories

_wwpn_counter = itertools.count(0x100)


def _lookup(hmc, method, uri, target):
    try:
        return hmc.lookup_by_uri(target)
    except KeyError:
        raise InvalidResourceError(method, uri) from None


class CreatePartition(PartitionsHandler):
    """The mock's Create Partition, refusing duplicate names as the HMC does."""

    @staticmethod
    def post(method, hmc, uri, uri_parms, body, logon_required, wait_for_completion):
        cpc = hmc.cpcs.lookup_by_oid(uri_parms[0])
        if any(p.properties["name"] == body.get("name") for p in cpc.partitions.list()):
            raise HTTPError(method, uri, 400, 8, f"partition name {body['name']} not unique")
        return PartitionsHandler.post(
            method, hmc, uri, uri_parms, body, logon_required, wait_for_completion
        )


class CreateStorageGroup(StorageGroupsHandler):
    """The mock's Create Storage Group, refusing duplicate names, with candidate ports."""

    @staticmethod
    def post(method, hmc, uri, uri_parms, body, logon_required, wait_for_completion):
        groups = hmc.consoles.console.storage_groups.list()
        if any(g.properties["name"] == body.get("name") for g in groups):
            raise HTTPError(method, uri, 400, 8, f"storage group {body['name']} not unique")
        result = StorageGroupsHandler.post(
            method, hmc, uri, uri_parms, body, logon_required, wait_for_completion
        )
        sg = hmc.lookup_by_uri(result["object-uri"])
        sg.properties.setdefault("candidate-adapter-port-uris", [])
        sg.properties.setdefault("connectivity", 2)
        sg.properties.setdefault("max-partitions", 2)
        # WWPNs are reserved at creation so that storage can be zoned early.
        sg.properties["unassigned-world-wide-port-names"] = [
            f"c05076ffe{next(_wwpn_counter):07x}"
            for _ in range(sg.properties["connectivity"] * sg.properties["max-partitions"])
        ]
        return result


class AttachStorageGroup:
    """Attach: one VSR (with its own WWPN) per candidate port and connectivity path."""

    @staticmethod
    def post(method, hmc, uri, uri_parms, body, logon_required, wait_for_completion):
        part = _lookup(hmc, method, uri, f"/api/partitions/{uri_parms[0]}")
        sg = _lookup(hmc, method, uri, body["storage-group-uri"])
        attached = part.properties.setdefault("storage-group-uris", [])
        if sg.uri in attached:
            raise HTTPError(method, uri, 409, 120, "storage group already attached")
        attached.append(sg.uri)
        ports = sg.properties.get("candidate-adapter-port-uris") or []
        unassigned = sg.properties["unassigned-world-wide-port-names"]
        for i in range(sg.properties["connectivity"]):
            port_uri = ports[i % len(ports)]
            sg.virtual_storage_resources.add(
                {
                    "name": f"vsr-{part.properties['name']}-{i}",
                    "device-number": f"{0x1000 + i:04x}",
                    "adapter-port-uri": port_uri,
                    "partition-uri": part.uri,
                    "world-wide-port-name": unassigned.pop(0),
                    "world-wide-port-name-info": {"status": "validated"},
                }
            )
        return {}


class DetachStorageGroup:
    @staticmethod
    def post(method, hmc, uri, uri_parms, body, logon_required, wait_for_completion):
        part = _lookup(hmc, method, uri, f"/api/partitions/{uri_parms[0]}")
        sg = _lookup(hmc, method, uri, body["storage-group-uri"])
        attached = part.properties.setdefault("storage-group-uris", [])
        if sg.uri not in attached:
            raise HTTPError(method, uri, 409, 121, "storage group not attached")
        attached.remove(sg.uri)
        for vsr in list(sg.virtual_storage_resources.list()):
            if vsr.properties.get("partition-uri") == part.uri:
                sg.properties["unassigned-world-wide-port-names"].append(
                    vsr.properties["world-wide-port-name"]
                )
                sg.virtual_storage_resources.remove(vsr.oid)
        return {}


class FulfillFcpStorageVolume:
    @staticmethod
    def post(method, hmc, uri, uri_parms, body, logon_required, wait_for_completion):
        sv = _lookup(
            hmc, method, uri, f"/api/storage-groups/{uri_parms[0]}/storage-volumes/{uri_parms[1]}"
        )
        for field in ("world-wide-port-name", "logical-unit-number"):
            if not re.fullmatch(r"[0-9a-f]{16}", body.get(field, "")):
                raise HTTPError(method, uri, 400, 7, f"{field} must be 16 lower-case hex digits")
        sv.properties["fulfillment-state"] = "complete"
        sv.properties["paths"] = [
            {
                "target-world-wide-port-name": body["world-wide-port-name"],
                "logical-unit-number": body["logical-unit-number"],
                "adapter-port-uri": body["adapter-port-uri"],
            }
        ]
        return {}


class ListOsMessages:
    messages: dict[str, list[str]] = {}

    @classmethod
    def get(cls, method, hmc, uri, uri_parms, logon_required):
        part = _lookup(hmc, method, uri, f"/api/partitions/{uri_parms[0]}")
        texts = cls.messages.get(part.uri, [])
        return {
            "is-held": False,
            "is-priority": False,
            "os-messages": [{"sequence-number": i, "message-text": t} for i, t in enumerate(texts)],
        }


class FailingStart:
    """Start Partition that fails like an HMC short of resources."""

    @staticmethod
    def post(method, hmc, uri, uri_parms, body, logon_required, wait_for_completion):
        raise HTTPError(method, uri, 500, 263, "not enough free IFL processors to start")


EXTRA_URIS = (
    (r"/api/cpcs/([^/]+)/partitions(?:\?(.*))?", CreatePartition),
    (r"/api/storage-groups(?:\?(.*))?", CreateStorageGroup),
    (r"/api/partitions/([^/]+)/operations/attach-storage-group", AttachStorageGroup),
    (r"/api/partitions/([^/]+)/operations/detach-storage-group", DetachStorageGroup),
    (
        r"/api/storage-groups/([^/]+)/storage-volumes/([^/]+)/operations/"
        r"fulfill-fcp-storage-volume",
        FulfillFcpStorageVolume,
    ),
    (r"/api/partitions/([^/?]+)/operations/list-os-messages(?:\?(.*))?", ListOsMessages),
)


class RequestLog:
    """Every request the client sent, as (method, uri)."""

    def __init__(self, session: FakedSession) -> None:
        self.requests: list[tuple[str, str]] = []
        for method in ("get", "post", "delete"):
            self._wrap(session, method)

    def _wrap(self, session, method):
        original = getattr(session, method)

        def call(uri, *args, **kwargs):
            self.requests.append((method.upper(), uri))
            return original(uri, *args, **kwargs)

        setattr(session, method, call)

    def clear(self) -> None:
        self.requests.clear()

    def __len__(self) -> int:
        return len(self.requests)


def faked_hmc(inventory: str, fail_start: bool = False) -> tuple[FakedSession, zhmcclient.Client]:
    """A faked HMC loaded from a shipped emulator inventory."""
    session = FakedSession.from_hmc_yaml_file(inventory, userid="ibmvirt", password="secret")
    extra = EXTRA_URIS
    if fail_start:
        extra = ((r"/api/partitions/([^/]+)/operations/start", FailingStart),) + extra
    session._urihandler = UriHandler(extra + tuple(URIS))
    return session, zhmcclient.Client(session)


INVENTORIES = {
    "z13": (inventories.Z13, inventories.Z13_IDS),
    "z15": (inventories.Z15, inventories.Z15_IDS),
}
