"""Shared state and lookups of the HMC emulator (what every resource module uses).

Why: zhmcclient's own mock keeps the faked HMC in one place and one handler
module per URI family; this module is that one place. It holds the FakedHmc and
everything the mock lacks (sessions, jobs, OS message logs, MAC and WWPN
allocation, FCP targets) plus the checks that must be the same for every
resource: one name-uniqueness check, one MAC validation, device numbers.

It imports no resource module, so resource modules import it and none of them
imports another one's handlers: no cycles (``engine`` only dispatches).

Request handlers are plain functions ``(HMCState, Request) -> Response`` run under
``HMCState.lock``; each resource module exports them as ``ROUTES``.

``zhmcclient.mock._urihandler`` is private API; zhmcclient is pinned to 1.26.0 in
constraints.txt, and the emulator's tests fail loudly if that changes.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from zhmcclient.mock import FakedSession, InputError
from zhmcclient.mock._urihandler import FakedHTTPError  # private, see module docstring

from ibmvirt.emulators.hmc import errors
from ibmvirt.emulators.hmc.errors import HMCError
from ibmvirt.emulators.hmc.jobs import JobManager
from ibmvirt.emulators.hmc.metrics import MetricsState
from ibmvirt.emulators.hmc.model import (  # noqa: F401  (require_body: re-exported)
    Request,
    Response,
    mac_settable,
    parse_body,
    require_body,
)
from ibmvirt.emulators.hmc.osmessages import OSMessageLog, shutdown_messages

METRICS_TYPE = "application/vnd.ibm-z-zmanager-metrics"

# Partition statuses (HMC data model).
STOPPABLE = ("active", "paused", "terminated", "degraded", "reservation-error")
TRANSITIONAL = ("starting", "stopping")
NOT_RUNNING = ("stopped",)
# What a guest or the firmware can turn a partition into (control endpoint).
SIMULATED_STATUSES = frozenset(
    {
        "active",
        "stopped",
        "paused",
        "terminated",
        "degraded",
        "reservation-error",
        "communications-not-active",
        "status-check",
    }
)
MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_ID = r"[^/?]+"

Handler = Callable[["HMCState", Request], Response]
Route = tuple[str, str, Handler]  # (method, path regex without anchors, handler)


def new_id() -> str:
    """A new object-id/element-id in the HMC's UUID form."""
    return str(uuid.uuid4())


def refuse_ids(body: dict[str, Any]) -> None:
    """Identifiers are assigned by the HMC: 400/6 if a create body carries one."""
    for prop in ("object-id", "object-uri", "element-id", "element-uri", "class", "parent"):
        if prop in body:
            raise HMCError(errors.FIELD_UNRECOGNIZED, f"{prop!r} is assigned by the HMC")


def check_unique_name(
    siblings: Iterable[Any], name: Any, what: str, scope: str, self_: Any = None
) -> None:
    """400/8 if another of ``siblings`` (not ``self_``) is named ``name``.

    The one uniqueness rule for partitions (per CPC), NICs and HBAs (per
    partition), storage groups (per HMC) and volumes (per group), at create and
    at rename alike.
    """
    if name is None:
        return
    for other in siblings:
        if other is not self_ and other.properties.get("name") == name:
            raise HMCError(errors.NOT_UNIQUE, f"{scope} already has {what} named {name!r}")


@dataclass
class Session:
    """One logged-on API session."""

    user: str
    expires: float


class WwpnAllocator:
    """Unique virtual WWPNs in IBM Z NPIV form: c05076 + 10 hex digits."""

    def __init__(self) -> None:
        self._prefix = "c05076" + secrets.token_hex(2)
        self._next = 0x100

    def allocate(self) -> str:
        """A new, never reused, lower-case 16-hex-digit WWPN."""
        wwpn = f"{self._prefix}{self._next:06x}"
        self._next += 1
        return wwpn


class HMCState:
    """The emulated HMC's state: the FakedHmc plus what the mock does not keep.

    ``lock`` (an RLock) guards all of it, the FakedHmc included; hold it when
    reading ``hmc`` from another thread.
    """

    def __init__(
        self,
        inventory: str,
        op_delay: float = 0.0,
        session_timeout: float = 3600.0,
        credentials: dict[str, str] | None = None,
    ) -> None:
        self.lock = threading.RLock()
        with open(inventory, encoding="utf-8") as f:
            text = f.read()
        self.faked_session = FakedSession.from_hmc_yaml(text, filepath=inventory)
        self.hmc = self.faked_session.hmc
        self._uh = self.faked_session._urihandler  # private, see module docstring
        self.op_delay = float(op_delay)
        self.session_timeout = float(session_timeout)
        self.credentials = dict(credentials) if credentials else None
        self.sessions: dict[str, Session] = {}
        self.jobs = JobManager(self.lock)
        self.os_logs: dict[str, OSMessageLog] = {}
        self.macs: set[str] = set()
        self.wwpns = WwpnAllocator()
        # storage volume URI -> (target WWPN, LUN) indicated at fulfilment
        self.fcp_targets: dict[str, tuple[str, str]] = {}
        self.metrics = MetricsState()

    # ---------------------------------------------------------- lookups
    def lookup(self, uri: str, code: tuple[int, int] = errors.NOT_FOUND, what: str = "") -> Any:
        """The faked resource at ``uri`` or an HMCError (404/1, or ``code``)."""
        try:
            return self.hmc.lookup_by_uri(uri)
        except KeyError:
            label = f"{what} " if what else ""
            raise HMCError(code, f"No {label}object with URI {uri} exists") from None

    def partition_for(self, req: Request) -> Any:
        """The partition named by the route's ``pid`` group (404/1 if none)."""
        return self.lookup("/api/partitions/" + req.match.group("pid"), what="partition")

    def find_partition(self, partition: str) -> Any | None:
        """A partition by URI, name or object-id, on any CPC."""
        for cpc in self.hmc.cpcs.list():
            for p in cpc.partitions.list():
                if partition in (p.uri, p.name, p.oid):
                    return p
        return None

    # --------------------------------------------- the mock's handlers
    def delegate(self, method: str, target: str, body: Any) -> Response:
        """Run a request through zhmcclient.mock's URI handlers."""
        try:
            if method == "GET":
                res = self._uh.get(self.hmc, target, True)
                if isinstance(res, str):
                    return Response(200, res, {"Content-Type": METRICS_TYPE})
                return Response(200, res)
            if method == "POST":
                res = self._uh.post(self.hmc, target, body, True, True)
            elif method == "DELETE":
                self._uh.delete(self.hmc, target, True)
                return Response(204)
            else:
                raise HMCError(errors.METHOD_NOT_ALLOWED, f"HTTP method {method} is not supported")
        except FakedHTTPError as exc:
            raise HMCError((exc.http_status, exc.reason), exc.message) from None
        except InputError as exc:
            raise HMCError(errors.FIELD_INVALID, str(exc)) from None
        if not res:
            return Response(204)
        if isinstance(res, dict):
            loc = res.get("object-uri") or res.get("element-uri")
            if loc:
                return Response(201, res, {"Location": loc})
        return Response(200, res)

    # ------------------------------------------------------------ MACs
    def validate_mac(self, cpc: Any, value: Any, current: str | None = None) -> str:
        """The one MAC rule for Create NIC and Update NIC: the normalised address.

        400/6 before SE 2.14 (not settable), 400/7 unless six lower- or upper-case
        hex pairs of a unicast address, 400/8 if another NIC on this HMC has it.
        """
        if not mac_settable(cpc.properties):
            raise HMCError(
                errors.FIELD_UNRECOGNIZED,
                f"mac-address cannot be specified on CPC {cpc.name} "
                f"(SE {cpc.properties.get('se-version')}); it needs SE 2.14.0 or later",
            )
        if not isinstance(value, str) or not MAC_RE.match(value.lower()):
            raise HMCError(errors.FIELD_INVALID, f"mac-address {value!r} is not aa:bb:cc:dd:ee:ff")
        mac = value.lower()
        if int(mac[:2], 16) & 1:
            raise HMCError(errors.FIELD_INVALID, f"mac-address {mac} is a multicast address")
        if mac != current and mac in self.macs:
            raise HMCError(errors.NOT_UNIQUE, f"mac-address {mac} is already in use")
        return mac

    def new_mac(self) -> str:
        """A locally administered unicast MAC address not used on this HMC."""
        while True:
            mac = "02:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(5))
            if mac not in self.macs:
                self.macs.add(mac)
                return mac

    # -------------------------------------------------- device numbers
    def _used_devnos(self, part: Any) -> set[int]:
        used: set[int] = set()
        for nic in part.nics.list():
            d = nic.properties.get("device-number")
            if d:
                width = 3 if nic.properties.get("type") in ("osd", "iqd") else 1
                used.update(range(int(d, 16), int(d, 16) + width))
        for hba in part.hbas.list():
            if hba.properties.get("device-number"):
                used.add(int(hba.properties["device-number"], 16))
        for sg_uri in part.properties.get("storage-group-uris", []):
            try:
                sg = self.hmc.lookup_by_uri(sg_uri)
            except KeyError:
                continue
            for vsr in sg.virtual_storage_resources.list():
                if vsr.properties.get("partition-uri") == part.uri:
                    used.add(int(vsr.properties["device-number"], 16))
        return used

    def alloc_devno(self, part: Any, count: int = 1) -> str:
        """Lowest free device number (with ``count`` consecutive free) of a partition."""
        used = self._used_devnos(part)
        for base in range(0x8000, 0x10000 - count + 1):
            if not any(d in used for d in range(base, base + count)):
                return f"{base:04X}"
        raise HMCError(errors.WRONG_STATE, f"Partition {part.name} has no free device numbers")

    def check_devno(self, part: Any, devno: Any, count: int) -> None:
        """400/7 unless 4 hex digits; 400/8 if any of ``count`` numbers is in use."""
        if not isinstance(devno, str) or not re.fullmatch(r"[0-9a-fA-F]{4}", devno):
            raise HMCError(errors.FIELD_INVALID, f"device-number {devno!r} is not 4 hex digits")
        base = int(devno, 16)
        if any(d in self._used_devnos(part) for d in range(base, base + count)):
            raise HMCError(
                errors.NOT_UNIQUE,
                f"device-number {devno} is already used in partition {part.name}",
            )

    # ------------------------------------------ partitions and sessions
    def update_memory_available(self, cpc: Any) -> None:
        """Recompute storage-customer-available from the running partitions."""
        used = sum(
            p.properties.get("initial-memory", 0)
            for p in cpc.partitions.list()
            if p.properties.get("status") not in NOT_RUNNING
        )
        total = cpc.properties.get("storage-customer")
        if total is not None:
            cpc.properties["storage-customer-available"] = total - used

    def set_status(self, part: Any, status: str) -> None:
        """Change a partition's status (the one place statuses change)."""
        part.properties["status"] = status

    def os_log(self, partition_uri: str) -> OSMessageLog:
        """The OS message log of a partition (created on first use)."""
        log = self.os_logs.get(partition_uri)
        if log is None:
            log = self.os_logs[partition_uri] = OSMessageLog()
        return log

    def disconnect_nic(self, nic_uri: str, vs_uri: str | None) -> None:
        """Drop a deleted NIC from its virtual switch's connected-vnic-uris."""
        if not vs_uri:
            return
        try:
            vs = self.hmc.lookup_by_uri(vs_uri)
        except KeyError:
            return
        uris = vs.properties.get("connected-vnic-uris", [])
        if nic_uri in uris:
            uris.remove(nic_uri)

    def simulate_partition_status(self, partition: str, status: str) -> str:
        """Change a partition's status as its operating system or firmware would.

        For example an in-band ``shutdown -P`` leaves a DPM partition ``paused``,
        a crash ``terminated``. ``partition`` is a partition URI or name; returns
        the partition URI. Raises ValueError naming the problem.
        """
        if status not in SIMULATED_STATUSES:
            raise ValueError(f"status {status!r} is not one of {sorted(SIMULATED_STATUSES)}")
        with self.lock:
            part = self.find_partition(partition)
            if part is None:
                raise ValueError(f"no partition with URI, name or object-id {partition!r}")
            old = part.properties.get("status")
            self.set_status(part, status)
            self.update_memory_available(part.manager.parent)
            if status in ("paused", "terminated") and old not in ("paused", "terminated"):
                log = self.os_log(part.uri)
                for line in shutdown_messages(part.properties)[:-1]:
                    log.add(line, os_name=part.properties.get("os-name", ""))
            return part.uri

    def check_session(self, headers: Any, refresh: bool = True) -> tuple[str, str]:
        """(user, token) of the request's valid session, or 403/4 / 403/5."""
        token = headers.get("X-API-Session") if headers is not None else None
        if not token:
            raise HMCError(errors.NO_SESSION, "No X-API-Session header; log on first")
        sess = self.sessions.get(token)
        now = time.monotonic()
        if sess is None or sess.expires <= now:
            self.sessions.pop(token, None)
            raise HMCError(errors.SESSION_INVALID, "The session ID is not valid (expired)")
        if refresh:
            sess.expires = now + self.session_timeout
        return sess.user, token

    def expire_sessions(self) -> int:
        """Invalidate every session now (clients get 403/5 and log on again)."""
        with self.lock:
            n = len(self.sessions)
            self.sessions.clear()
            return n

    def session_count(self) -> int:
        """Number of currently valid sessions."""
        with self.lock:
            now = time.monotonic()
            return sum(1 for s in self.sessions.values() if s.expires > now)

    def shutdown(self) -> None:
        """Stop job timers."""
        self.jobs.shutdown()
