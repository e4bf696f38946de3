"""State engine of the HMC emulator: zhmcclient.mock's faked HMC plus a fidelity layer.

Why: zhmcclient.mock models the HMC's resource tree well but only in-process, and
it lacks or gets wrong what a DPM driver relies on (sessions, asynchronous jobs,
refusals, MAC addresses, storage group attachment, OS messages). This engine
takes one HTTP request (method, target, headers, body) and returns the HMC's
answer; the HTTPS server around it lives in ``server.py``.

Requests go through our own handlers first (the fidelity layer, a route table
below); everything else is delegated to the mock's URI handler table. That table
is private API (``zhmcclient.mock._urihandler``); zhmcclient is pinned to 1.26.0
in constraints.txt, and the emulator's tests fail loudly if that changes.

Thread safety: ``HMCEngine.lock`` (an RLock) guards all state, including the
FakedHmc. Hold it when reading ``engine.hmc`` from another thread (tests do, via
``HMCEmulator.faked_hmc`` and ``HMCEmulator.lock``).
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from zhmcclient.mock import FakedSession, InputError
from zhmcclient.mock._urihandler import FakedHTTPError  # private, see module docstring

from ibmvirt.emulators.hmc import errors, filters, metrics, storage
from ibmvirt.emulators.hmc.errors import HMCError
from ibmvirt.emulators.hmc.jobs import JobManager
from ibmvirt.emulators.hmc.model import (
    Request,
    Response,
    mac_settable,
    se_version,
    storage_management_enabled,
)
from ibmvirt.emulators.hmc.osmessages import OSMessageLog, boot_messages, shutdown_messages

LOG = logging.getLogger(__name__)

JSON_TYPE = "application/json;charset=UTF-8"
METRICS_TYPE = "application/vnd.ibm-z-zmanager-metrics"

# Partition statuses (HMC data model).
STOPPABLE = ("active", "paused", "terminated", "degraded", "reservation-error")
TRANSITIONAL = ("starting", "stopping")
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
NOT_RUNNING = ("stopped",)

# Properties that Update Partition Properties refuses (server-owned or changed
# only through dedicated operations).
PARTITION_READ_ONLY = frozenset(
    {
        "object-id",
        "object-uri",
        "class",
        "parent",
        "status",
        "has-unacceptable-status",
        "is-locked",
        "os-name",
        "os-type",
        "os-version",
        "degraded-adapters",
        "current-ifl-processing-weight",
        "current-cp-processing-weight",
        "reserved-memory",
        "auto-start",
        "nic-uris",
        "hba-uris",
        "storage-group-uris",
        "virtual-function-uris",
        "tape-link-uris",
        "partition-link-uris",
        "crypto-configuration",
        "available-features-list",
        "secure-execution",
        "threads-per-processor",
    }
)
HBA_WRITABLE = frozenset({"name", "description", "device-number", "adapter-port-uri"})
BOOT_DEVICES = frozenset(
    {
        "none",
        "storage-adapter",
        "storage-volume",
        "network-adapter",
        "ftp",
        "removable-media",
        "iso-image",
        "nvme",
    }
)
# nova-dpm's limit, from the partition data model: String (0-256).
MAX_BOOT_OS_SPECIFIC_PARAMETERS = 256
MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


@dataclass
class _Session:
    user: str
    expires: float


Handler = Callable[..., Response]  # (engine, Request) -> Response


def _new_id() -> str:
    """A new object-id/element-id in the HMC's UUID form."""
    return str(uuid.uuid4())


class HMCEngine:
    """The emulated HMC: resource state, sessions, jobs, OS messages."""

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
        self._credentials = dict(credentials) if credentials else None
        self._sessions: dict[str, _Session] = {}
        self.jobs = JobManager(self.lock)
        self._os_logs: dict[str, OSMessageLog] = {}
        self._macs: set[str] = set()
        self.wwpns = storage.WwpnAllocator()
        self.storage = storage.StorageOps(self)
        self.metrics = metrics.MetricsState()

    # ------------------------------------------------------------------ API
    def handle(self, method: str, target: str, headers: Any, raw_body: bytes) -> Response:
        """Answer one HMC WS API request (the caller serialises the Response).

        The session is checked before the body is parsed. Query filters of list
        operations are matched after the lock is released (``filters``).
        """
        method = method.upper()
        try:
            handled, flt = filters.split(method, target)
        except HMCError as exc:
            # A client without a session hears 403, whatever its filter.
            refusal = self.session_refusal(method, target, headers)
            return refusal or Response(exc.status, exc.body(method, target, None), None)
        with self.lock:
            resp = self._handle_locked(method, handled, headers, raw_body)
            snap = filters.snapshot(resp, flt, self.hmc.lookup_by_uri) if flt else []
        return filters.apply(resp, flt, snap) if flt else resp

    @staticmethod
    def _needs_session(method: str, path: str) -> bool:
        return not (path == "/api/version" or (path == "/api/sessions" and method == "POST"))

    def session_refusal(self, method: str, target: str, headers: Any) -> Response | None:
        """The 403 a request without a valid session gets, or None (no body needed).

        The server asks this before it reads a request body, so that a client
        without a session cannot make the emulator read (or parse) one.
        """
        method = method.upper()
        if not self._needs_session(method, urlsplit(target).path):
            return None
        with self.lock:
            try:
                self._check_session(headers, refresh=False)
            except HMCError as exc:
                return Response(exc.status, exc.body(method, target, None), None)
        return None

    def _handle_locked(self, method: str, target: str, headers: Any, raw_body: bytes) -> Response:
        parts = urlsplit(target)
        path = parts.path
        try:
            user = token = None
            if self._needs_session(method, path):
                user, token = self._check_session(headers)
            body = self._parse_body(raw_body)
            for route_method, regex, handler in _ROUTES:
                if route_method != method:
                    continue
                m = regex.match(path)
                if m:
                    req = Request(method, target, path, parse_qs(parts.query), body, m, user, token)
                    return handler(self, req)
            return self._delegate(method, target, body)
        except HMCError as exc:
            return Response(exc.status, exc.body(method, target, None), None)
        except Exception as exc:  # a bug in the emulator: answer like an HMC would
            LOG.exception("HMC emulator failed on %s %s", method, path)
            err = HMCError((500, 0), f"Internal error in the HMC emulator: {exc!r}")
            return Response(500, err.body(method, target, None), None)

    def expire_sessions(self) -> int:
        """Invalidate every session now (clients get 403/5 and log on again)."""
        with self.lock:
            n = len(self._sessions)
            self._sessions.clear()
            return n

    def session_count(self) -> int:
        """Number of currently valid sessions."""
        with self.lock:
            now = time.monotonic()
            return sum(1 for s in self._sessions.values() if s.expires > now)

    def os_log(self, partition_uri: str) -> OSMessageLog:
        """The OS message log of a partition (created on first use)."""
        log = self._os_logs.get(partition_uri)
        if log is None:
            log = self._os_logs[partition_uri] = OSMessageLog()
        return log

    def simulate_partition_status(self, partition: str, status: str) -> str:
        """Change a partition's status as its operating system or firmware would.

        For example an in-band ``shutdown -P`` leaves a DPM partition ``paused``,
        a crash ``terminated``. ``partition`` is a partition URI or name; returns
        the partition URI. Raises ValueError naming the problem.
        """
        if status not in SIMULATED_STATUSES:
            raise ValueError(f"status {status!r} is not one of {sorted(SIMULATED_STATUSES)}")
        with self.lock:
            part = None
            for cpc in self.hmc.cpcs.list():
                for p in cpc.partitions.list():
                    if partition in (p.uri, p.name, p.oid):
                        part = p
            if part is None:
                raise ValueError(f"no partition with URI, name or object-id {partition!r}")
            old = part.properties.get("status")
            part.properties["status"] = status
            self._update_memory_available(part.manager.parent)
            if status in ("paused", "terminated") and old not in ("paused", "terminated"):
                log = self.os_log(part.uri)
                for line in shutdown_messages(part.properties)[:-1]:
                    log.add(line, os_name=part.properties.get("os-name", ""))
            return part.uri

    def shutdown(self) -> None:
        """Stop job timers."""
        self.jobs.shutdown()

    # ------------------------------------------------------------ helpers
    @staticmethod
    def _parse_body(raw: bytes) -> Any:
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise HMCError(errors.BODY_MALFORMED, f"Request body is not JSON: {exc}") from None

    def _check_session(self, headers: Any, refresh: bool = True) -> tuple[str, str]:
        token = headers.get("X-API-Session") if headers is not None else None
        if not token:
            raise HMCError(errors.NO_SESSION, "No X-API-Session header; log on first")
        sess = self._sessions.get(token)
        now = time.monotonic()
        if sess is None or sess.expires <= now:
            self._sessions.pop(token, None)
            raise HMCError(errors.SESSION_INVALID, "The session ID is not valid (expired)")
        if refresh:
            sess.expires = now + self.session_timeout
        return sess.user, token

    def lookup(self, uri: str, code: tuple[int, int] = errors.NOT_FOUND, what: str = "") -> Any:
        """The faked resource at ``uri`` or an HMCError (404/1, or ``code``)."""
        try:
            return self.hmc.lookup_by_uri(uri)
        except KeyError:
            label = f"{what} " if what else ""
            raise HMCError(code, f"No {label}object with URI {uri} exists") from None

    def _delegate(self, method: str, target: str, body: Any) -> Response:
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
        return self._post_response(res)

    @staticmethod
    def _post_response(res: Any) -> Response:
        if not res:
            return Response(204)
        if isinstance(res, dict):
            loc = res.get("object-uri") or res.get("element-uri")
            if loc:
                return Response(201, res, {"Location": loc})
        return Response(200, res)

    @staticmethod
    def require_body(req: Request) -> dict[str, Any]:
        """The request body as a JSON object, or 400/3 / 400/7."""
        if req.body is None:
            raise HMCError(errors.BODY_MISSING, f"{req.method} {req.path} needs a request body")
        if not isinstance(req.body, dict):
            raise HMCError(errors.FIELD_INVALID, "The request body must be a JSON object")
        return req.body

    def new_mac(self) -> str:
        """A locally administered unicast MAC address not used on this HMC."""
        while True:
            mac = "02:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(5))
            if mac not in self._macs:
                self._macs.add(mac)
                return mac

    def _partition_for(self, req: Request) -> Any:
        return self.lookup("/api/partitions/" + req.match.group("pid"), what="partition")

    def _update_memory_available(self, cpc: Any) -> None:
        used = sum(
            p.properties.get("initial-memory", 0)
            for p in cpc.partitions.list()
            if p.properties.get("status") not in NOT_RUNNING
        )
        total = cpc.properties.get("storage-customer")
        if total is not None:
            cpc.properties["storage-customer-available"] = total - used

    # --------------------------------------------------------- sessions
    def _logon(self, req: Request) -> Response:
        body = self.require_body(req)
        for field in ("userid", "password"):
            if field not in body:
                raise HMCError(errors.FIELD_MISSING, f"Logon needs the '{field}' field")
        user, password = body["userid"], body["password"]
        if self._credentials is not None and self._credentials.get(user) != password:
            raise HMCError(errors.LOGON_FAILED, f"Logon failed for user {user!r}")
        token = secrets.token_urlsafe(32)
        self._sessions[token] = _Session(user, time.monotonic() + self.session_timeout)
        # Topic names are not secret (zhmcclient logs them): nothing of the token.
        topic = secrets.token_hex(8)
        major, minor = (self.hmc.api_version.split(".") + ["0"])[0:2]
        return Response(
            200,
            {
                "api-session": token,
                "notification-topic": f"emulator-{topic}-topic",
                "job-notification-topic": f"emulator-{topic}-job-topic",
                "api-major-version": int(major),
                "api-minor-version": int(minor),
                "password-expires": -1,
                "session-credential": secrets.token_urlsafe(16),
            },
        )

    def _logoff(self, req: Request) -> Response:
        self._sessions.pop(req.token or "", None)
        return Response(204)

    # -------------------------------------------------------- partitions
    def _list_partitions(self, req: Request) -> Response:
        """List Partitions of a CPC; ``additional-properties`` needs HMC 2.16.0
        (zhmcclient's PartitionManager.list says so; the mock takes it always)."""
        if "additional-properties" in req.query:
            version = str(self.hmc.hmc_version)
            if se_version({"se-version": version}) < (2, 16):
                raise HMCError(
                    errors.BAD_QUERY_PARM,
                    f"Query parameter 'additional-properties' of List Partitions of a CPC "
                    f"needs HMC 2.16.0 or later; this HMC has version {version}",
                )
        return self._delegate(req.method, req.target, None)

    def _create_partition(self, req: Request) -> Response:
        cpc = self.lookup("/api/cpcs/" + req.match.group("cid"), what="CPC")
        body = self.require_body(req)
        name = body.get("name")
        if name is not None:
            if not isinstance(name, str) or not 1 <= len(name) <= 64:
                raise HMCError(errors.FIELD_INVALID, f"Partition name {name!r} must be 1-64 chars")
            if any(p.properties.get("name") == name for p in cpc.partitions.list()):
                raise HMCError(
                    errors.NOT_UNIQUE,
                    f"A partition named {name!r} already exists on CPC {cpc.name}",
                )
        for field in ("ifl-processors", "cp-processors", "initial-memory", "maximum-memory"):
            val = body.get(field)
            if val is not None and (not isinstance(val, int) or isinstance(val, bool) or val < 0):
                raise HMCError(errors.FIELD_INVALID, f"{field} must be a non-negative integer")
        if body.get("initial-memory", 0) > body.get("maximum-memory", 1 << 62):
            raise HMCError(errors.FIELD_INVALID, "initial-memory must not exceed maximum-memory")
        if "boot-os-specific-parameters" in body:
            self._check_boot_params(body["boot-os-specific-parameters"])
        self._refuse_ids(body)
        resp = self._delegate(req.method, req.target, dict(body, **{"object-id": _new_id()}))
        part = self.lookup(resp.body["object-uri"])
        features = cpc.properties.get("available-features-list")
        if features is None:
            part.properties.pop("available-features-list", None)
        else:
            part.properties["available-features-list"] = [dict(f) for f in features]
        return resp

    @staticmethod
    def _refuse_ids(body: dict[str, Any]) -> None:
        for prop in ("object-id", "object-uri", "element-id", "element-uri", "class", "parent"):
            if prop in body:
                raise HMCError(errors.FIELD_UNRECOGNIZED, f"{prop!r} is assigned by the HMC")

    @staticmethod
    def _check_boot_params(value: Any) -> None:
        if not isinstance(value, str) or len(value) > MAX_BOOT_OS_SPECIFIC_PARAMETERS:
            raise HMCError(
                errors.FIELD_INVALID,
                "boot-os-specific-parameters must be a string of at most "
                f"{MAX_BOOT_OS_SPECIFIC_PARAMETERS} characters",
            )

    def _update_partition(self, req: Request) -> Response:
        part = self._partition_for(req)
        body = self.require_body(req)
        cpc = part.manager.parent
        status = part.properties.get("status")
        if status in TRANSITIONAL:
            raise HMCError(
                errors.WRONG_STATE,
                f"Partition {part.name} is {status}; retry when the operation has ended",
            )
        for prop in body:
            if prop in PARTITION_READ_ONLY:
                raise HMCError(
                    errors.FIELD_UNRECOGNIZED,
                    f"Property {prop!r} of partition {part.name} is read-only",
                )
            if prop not in part.properties and prop != "description":
                raise HMCError(
                    errors.FIELD_UNRECOGNIZED,
                    f"{prop!r} is not a property of partition {part.name}",
                )
        if "name" in body and body["name"] != part.name:
            if any(p.properties.get("name") == body["name"] for p in cpc.partitions.list()):
                raise HMCError(
                    errors.NOT_UNIQUE,
                    f"A partition named {body['name']!r} already exists on CPC {cpc.name}",
                )
        if "boot-device" in body and body["boot-device"] not in BOOT_DEVICES:
            raise HMCError(
                errors.FIELD_INVALID,
                f"boot-device {body['boot-device']!r} is not one of {sorted(BOOT_DEVICES)}",
            )
        if "boot-os-specific-parameters" in body:
            self._check_boot_params(body["boot-os-specific-parameters"])
        sm = storage_management_enabled(cpc.properties)
        if body.get("boot-device") == "storage-volume" and not sm:
            raise HMCError(
                errors.FIELD_INVALID,
                f"boot-device storage-volume needs dpm-storage-management, which CPC "
                f"{cpc.name} does not have; boot from an HBA (storage-adapter)",
            )
        if body.get("boot-device") == "storage-adapter" and sm:
            raise HMCError(
                errors.FIELD_INVALID,
                f"CPC {cpc.name} has dpm-storage-management: partitions have no HBAs to "
                "boot from; use boot-device storage-volume",
            )
        if body.get("boot-storage-volume"):
            self.lookup(body["boot-storage-volume"], errors.REFERENCED_NOT_FOUND, "storage volume")
        if body.get("boot-storage-device"):
            hba_uri = body["boot-storage-device"]
            if hba_uri not in part.properties.get("hba-uris", []):
                raise HMCError(
                    errors.REFERENCED_NOT_FOUND,
                    f"boot-storage-device {hba_uri} is not an HBA of partition {part.name}",
                )
        part.update(body)
        if "initial-memory" in body or "maximum-memory" in body:
            p = part.properties
            p["reserved-memory"] = p.get("maximum-memory", 0) - p.get("initial-memory", 0)
        return Response(204)

    def _delete_partition(self, req: Request) -> Response:
        part = self._partition_for(req)
        if part.properties.get("status") not in NOT_RUNNING:
            raise HMCError(
                errors.WRONG_STATE,
                f"Partition {part.name} is {part.properties.get('status')}; stop it first",
            )
        nics = [(n.uri, n.properties.get("virtual-switch-uri")) for n in part.nics.list()]
        macs = [n.properties.get("mac-address") for n in part.nics.list()]
        self.storage.detach_all(part)
        resp = self._delegate(req.method, req.target, None)
        for nic_uri, vs_uri in nics:
            self._disconnect_nic(nic_uri, vs_uri)
        self._macs.difference_update(macs)
        self._os_logs.pop(part.uri, None)
        return resp

    def _capacity_problem(self, part: Any) -> str | None:
        cpc = part.manager.parent
        cp = cpc.properties
        pp = part.properties
        ifl_total = cp.get("processor-count-ifl", 0)
        ifls = pp.get("ifl-processors", 0) or 0
        if ifls > ifl_total:
            return (
                f"Partition {part.name} needs {ifls} IFL processors but CPC {cpc.name} "
                f"has {ifl_total}; lower ifl-processors"
            )
        others = [
            p
            for p in cpc.partitions.list()
            if p is not part and p.properties.get("status") not in NOT_RUNNING
        ]
        if pp.get("processor-mode") == "dedicated":
            used = sum(
                p.properties.get("ifl-processors", 0)
                for p in others
                if p.properties.get("processor-mode") == "dedicated"
            )
            if used + ifls > ifl_total:
                return (
                    f"Partition {part.name} needs {ifls} dedicated IFLs; only "
                    f"{ifl_total - used} of {ifl_total} on CPC {cpc.name} are free"
                )
        mem_total = cp.get("storage-customer")
        if mem_total is not None:
            used = sum(p.properties.get("initial-memory", 0) for p in others)
            need = pp.get("initial-memory", 0)
            if used + need > mem_total:
                return (
                    f"Partition {part.name} needs {need} MiB memory; only "
                    f"{mem_total - used} MiB of {mem_total} MiB on CPC {cpc.name} are free"
                )
        return None

    def _boot_problem(self, part: Any) -> str | None:
        pp = part.properties
        if pp.get("boot-device") == "storage-volume":
            sv_uri = pp.get("boot-storage-volume")
            if not sv_uri:
                return f"Partition {part.name} has boot-device storage-volume but no volume"
            try:
                sv = self.hmc.lookup_by_uri(sv_uri)
            except KeyError:
                return f"Boot storage volume {sv_uri} of partition {part.name} does not exist"
            sg = sv.manager.parent
            if sg.uri not in pp.get("storage-group-uris", []):
                return (
                    f"Boot volume {sv.name} is in storage group {sg.name}, which is not "
                    f"attached to partition {part.name}"
                )
            if sv.properties.get("fulfillment-state") != "complete":
                return (
                    f"Boot volume {sv.name} of partition {part.name} is not fulfilled "
                    f"({sv.properties.get('fulfillment-state')}); indicate fulfillment first"
                )
        return None

    def _start_partition(self, req: Request) -> Response:
        part = self._partition_for(req)
        status = part.properties.get("status")
        if status != "stopped":
            hint = " (stop it first)" if status in ("paused", "terminated") else ""
            raise HMCError(
                errors.WRONG_STATE,
                f"Partition {part.name} is {status}; Start requires status stopped{hint}",
            )
        problem = self._capacity_problem(part) or self._boot_problem(part)
        cpc = part.manager.parent
        part.properties["status"] = "starting"
        self._update_memory_available(cpc)

        def finish() -> tuple[int, int, Any]:
            if problem is not None:
                part.properties["status"] = "stopped"
                self._update_memory_available(cpc)
                raise HMCError(errors.START_FAILED, problem)
            part.properties["status"] = "active"
            if part.properties.get("boot-device", "none") != "none":
                part.properties["os-name"] = part.name[:8].upper()
                part.properties["os-type"] = "Linux"
                part.properties["os-version"] = "6.8.0"
            log = self.os_log(part.uri)
            for line in boot_messages(part.properties):
                log.add(line, os_name=part.properties["os-name"])
            return 204, 0, None

        job = self.jobs.submit(req.method, req.path, self.op_delay, finish)
        return Response(202, {"job-uri": job.uri})

    def _stop_partition(self, req: Request) -> Response:
        part = self._partition_for(req)
        status = part.properties.get("status")
        if status not in STOPPABLE:
            raise HMCError(
                errors.WRONG_STATE,
                f"Partition {part.name} is {status}; Stop requires one of {list(STOPPABLE)}",
            )
        cpc = part.manager.parent
        part.properties["status"] = "stopping"

        def finish() -> tuple[int, int, Any]:
            log = self.os_log(part.uri)
            for line in shutdown_messages(part.properties):
                log.add(line, os_name=part.properties.get("os-name", ""))
            part.properties["status"] = "stopped"
            self._update_memory_available(cpc)
            return 204, 0, None

        job = self.jobs.submit(req.method, req.path, self.op_delay, finish)
        return Response(202, {"job-uri": job.uri})

    def _async_delegate(self, req: Request) -> Response:
        """Operations that are asynchronous on a real HMC but synchronous in the mock."""
        status = self._delegate(req.method, req.target, req.body)

        def finish() -> tuple[int, int, Any]:
            return status.status, 0, status.body

        job = self.jobs.submit(req.method, req.path, self.op_delay, finish)
        return Response(202, {"job-uri": job.uri})

    # ------------------------------------------------------ OS messages
    def _list_os_messages(self, req: Request) -> Response:
        part = self._partition_for(req)
        cpc = part.manager.parent
        if se_version(cpc.properties) < (2, 14):
            raise HMCError(
                errors.NOT_FOUND,
                f"List OS Messages needs SE 2.14.0 or later; CPC {cpc.name} has SE "
                f"{cpc.properties.get('se-version')}",
            )

        def intparm(name: str) -> int | None:
            vals = req.query.get(name)
            if not vals:
                return None
            try:
                return int(vals[0])
            except ValueError:
                raise HMCError(errors.BAD_QUERY_PARM, f"{name} must be an integer") from None

        for q in req.query:
            if q not in ("begin-sequence-number", "end-sequence-number", "max-messages"):
                raise HMCError(errors.BAD_QUERY_PARM, f"Unsupported query parameter {q!r}")
        msgs = self.os_log(part.uri).list(
            intparm("begin-sequence-number"), intparm("end-sequence-number")
        )
        maxm = intparm("max-messages")
        if maxm:
            msgs = msgs[:maxm]
        return Response(200, {"os-messages": msgs})

    def _open_os_message_channel(self, req: Request) -> Response:
        part = self._partition_for(req)
        if part.properties.get("status") in NOT_RUNNING + TRANSITIONAL:
            raise HMCError(
                errors.WRONG_STATE,
                f"Partition {part.name} is {part.properties.get('status')}; "
                "its operating system message channel can only be opened while it runs",
            )
        return Response(200, {"topic-name": f"os-message-notification-{part.oid}"})

    def _send_os_command(self, req: Request) -> Response:
        part = self._partition_for(req)
        body = self.require_body(req)
        text = body.get("operating-system-command-text")
        if not isinstance(text, str):
            raise HMCError(errors.FIELD_MISSING, "operating-system-command-text is required")
        if part.properties.get("status") not in ("active", "degraded"):
            raise HMCError(
                errors.WRONG_STATE,
                f"Partition {part.name} is {part.properties.get('status')}; no OS to command",
            )
        self.os_log(part.uri).add(text, os_name=part.properties.get("os-name", ""))
        return Response(204)

    # -------------------------------------------------------------- NICs
    def _create_nic(self, req: Request) -> Response:
        part = self._partition_for(req)
        cpc = part.manager.parent
        body = self.require_body(req)
        name = body.get("name")
        if name is not None and any(n.properties.get("name") == name for n in part.nics.list()):
            raise HMCError(
                errors.NOT_UNIQUE, f"Partition {part.name} already has a NIC named {name!r}"
            )
        mac = body.get("mac-address")
        if "mac-address" in body:
            if not mac_settable(cpc.properties):
                raise HMCError(
                    errors.FIELD_UNRECOGNIZED,
                    f"mac-address cannot be specified on CPC {cpc.name} "
                    f"(SE {cpc.properties.get('se-version')}); it needs SE 2.14.0 or later",
                )
            if not isinstance(mac, str) or not MAC_RE.match(mac.lower()):
                raise HMCError(
                    errors.FIELD_INVALID, f"mac-address {mac!r} is not aa:bb:cc:dd:ee:ff"
                )
            mac = mac.lower()
            if int(mac[:2], 16) & 1:
                raise HMCError(errors.FIELD_INVALID, f"mac-address {mac} is a multicast address")
            if mac in self._macs:
                raise HMCError(errors.NOT_UNIQUE, f"mac-address {mac} is already in use")
        vs_uri = body.get("virtual-switch-uri")
        nic_type = None
        if vs_uri is not None:
            vs = self.lookup(vs_uri, errors.REFERENCED_NOT_FOUND, "virtual switch")
            if vs.manager.parent is not cpc:
                raise HMCError(
                    errors.REFERENCED_NOT_FOUND,
                    f"Virtual switch {vs_uri} is not on CPC {cpc.name} of partition {part.name}",
                )
            nic_type = "iqd" if vs.properties.get("type") == "hipersockets" else "osd"
        elif body.get("network-adapter-port-uri"):
            adapter_uri = body["network-adapter-port-uri"].split("/network-ports/")[0]
            adapter = self.lookup(adapter_uri, errors.REFERENCED_NOT_FOUND, "adapter")
            nic_type = {"hipersockets": "iqd", "osd": "osd"}.get(
                adapter.properties.get("type"), adapter.properties.get("type")
            )
        self._refuse_ids(body)
        width = 3 if nic_type in ("osd", "iqd") else 1
        if "device-number" in body:
            self._check_devno(part, body["device-number"], width)
        delegated = {k: v for k, v in body.items() if k != "mac-address"}
        delegated["element-id"] = _new_id()
        delegated.setdefault("device-number", self.alloc_devno(part, width))
        resp = self._delegate(req.method, req.target, delegated)
        nic = self.lookup(resp.body["element-uri"])
        if mac is None:
            mac = self.new_mac()
        else:
            self._macs.add(mac)
        nic.properties["mac-address"] = mac
        if nic_type:
            nic.properties["type"] = nic_type
        nic.properties.setdefault("vlan-id", None)
        nic.properties.setdefault("description", "")
        return resp

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

    def _check_devno(self, part: Any, devno: Any, count: int) -> None:
        if not isinstance(devno, str) or not re.fullmatch(r"[0-9a-fA-F]{4}", devno):
            raise HMCError(errors.FIELD_INVALID, f"device-number {devno!r} is not 4 hex digits")
        base = int(devno, 16)
        if any(d in self._used_devnos(part) for d in range(base, base + count)):
            raise HMCError(
                errors.NOT_UNIQUE,
                f"device-number {devno} is already used in partition {part.name}",
            )

    def _update_nic(self, req: Request) -> Response:
        nic = self.lookup(req.path, what="NIC")
        part = nic.manager.parent
        cpc = part.manager.parent
        body = self.require_body(req)
        if "mac-address" in body:
            if not mac_settable(cpc.properties):
                raise HMCError(
                    errors.FIELD_UNRECOGNIZED,
                    f"mac-address of NIC {nic.name} is read-only on CPC {cpc.name} "
                    f"(SE {cpc.properties.get('se-version')})",
                )
            if part.properties.get("status") not in NOT_RUNNING:
                raise HMCError(
                    errors.WRONG_STATE,
                    f"mac-address of NIC {nic.name} can only change while partition "
                    f"{part.name} is stopped",
                )
            mac = str(body["mac-address"]).lower()
            if not MAC_RE.match(mac):
                raise HMCError(errors.FIELD_INVALID, f"mac-address {mac!r} is not valid")
            if mac != nic.properties.get("mac-address") and mac in self._macs:
                raise HMCError(errors.NOT_UNIQUE, f"mac-address {mac} is already in use")
        if "name" in body and body["name"] != nic.name:
            if any(n.properties.get("name") == body["name"] for n in part.nics.list()):
                raise HMCError(
                    errors.NOT_UNIQUE,
                    f"Partition {part.name} already has a NIC named {body['name']!r}",
                )
        old_mac = nic.properties.get("mac-address")
        resp = self._delegate(req.method, req.target, body)
        new_mac = nic.properties.get("mac-address")
        if new_mac != old_mac:
            self._macs.discard(old_mac)
            self._macs.add(new_mac)
        return resp

    def _disconnect_nic(self, nic_uri: str, vs_uri: str | None) -> None:
        if not vs_uri:
            return
        try:
            vs = self.hmc.lookup_by_uri(vs_uri)
        except KeyError:
            return
        uris = vs.properties.get("connected-vnic-uris", [])
        if nic_uri in uris:
            uris.remove(nic_uri)

    def _delete_nic(self, req: Request) -> Response:
        nic = self.lookup(req.path, what="NIC")
        vs_uri = nic.properties.get("virtual-switch-uri")
        mac = nic.properties.get("mac-address")
        resp = self._delegate(req.method, req.target, None)
        self._disconnect_nic(req.path, vs_uri)
        self._macs.discard(mac)
        return resp

    def _connected_vnics(self, req: Request) -> Response:
        vs = self.lookup("/api/virtual-switches/" + req.match.group("vid"), what="virtual switch")
        return Response(200, {"connected-vnic-uris": list(vs.properties["connected-vnic-uris"])})

    # -------------------------------------------------------------- HBAs
    def _create_hba(self, req: Request) -> Response:
        part = self._partition_for(req)
        cpc = part.manager.parent
        if storage_management_enabled(cpc.properties):
            raise HMCError(
                errors.NOT_SUPPORTED_ON_CPC,
                f"CPC {cpc.name} has dpm-storage-management enabled: partitions have no "
                "HBAs; attach a storage group instead",
            )
        body = self.require_body(req)
        name = body.get("name")
        if name is not None and any(h.properties.get("name") == name for h in part.hbas.list()):
            raise HMCError(
                errors.NOT_UNIQUE, f"Partition {part.name} already has an HBA named {name!r}"
            )
        for prop in body:
            if prop not in HBA_WRITABLE:
                raise HMCError(errors.FIELD_UNRECOGNIZED, f"{prop!r} cannot be set on an HBA")
        port_uri = body.get("adapter-port-uri")
        if isinstance(port_uri, str):
            adapter = self.lookup(
                port_uri.split("/storage-ports/")[0], errors.REFERENCED_NOT_FOUND, "adapter"
            )
            if adapter.properties.get("type") != "fcp":
                raise HMCError(
                    errors.FIELD_INVALID,
                    f"Adapter {adapter.name} is of type {adapter.properties.get('type')}, not fcp",
                )
        if "device-number" in body:
            self._check_devno(part, body["device-number"], 1)
        delegated = dict(body, **{"element-id": _new_id()})
        delegated.setdefault("device-number", self.alloc_devno(part))
        resp = self._delegate(req.method, req.target, delegated)
        hba = self.lookup(resp.body["element-uri"])
        hba.properties["wwpn"] = self.wwpns.allocate()
        hba.properties.setdefault("description", "")
        return resp

    def _update_hba(self, req: Request) -> Response:
        hba = self.lookup(req.path, what="HBA")
        part = hba.manager.parent
        body = self.require_body(req)
        for prop in body:
            if prop not in HBA_WRITABLE:
                raise HMCError(
                    errors.FIELD_UNRECOGNIZED, f"Property {prop!r} of HBA {hba.name} is read-only"
                )
        if "name" in body and body["name"] != hba.name:
            if any(h.properties.get("name") == body["name"] for h in part.hbas.list()):
                raise HMCError(
                    errors.NOT_UNIQUE,
                    f"Partition {part.name} already has an HBA named {body['name']!r}",
                )
        if part.properties.get("status") in TRANSITIONAL:
            raise HMCError(errors.WRONG_STATE, f"Partition {part.name} is in transition")
        hba.update(body)
        return Response(204)

    def _export_wwpns(self, req: Request) -> Response:
        cpc = self.lookup("/api/cpcs/" + req.match.group("cid"), what="CPC")
        if storage_management_enabled(cpc.properties):
            raise HMCError(
                errors.NOT_SUPPORTED_ON_CPC,
                f"CPC {cpc.name} has dpm-storage-management enabled: it has no HBAs; read "
                "WWPNs from the virtual storage resources of storage groups",
            )
        body = self.require_body(req)
        uris = body.get("partitions")
        if isinstance(uris, list):
            for uri in uris:
                self.lookup(str(uri), errors.REFERENCED_NOT_FOUND, "partition")
        return self._delegate(req.method, req.target, body)

    # -------------------------------------------------------------- jobs
    def _query_job(self, req: Request) -> Response:
        job = self.jobs.get(req.match.group("jid"), req.method, req.path)
        return Response(200, job.query_body())

    def _delete_job(self, req: Request) -> Response:
        self.jobs.delete(req.match.group("jid"), req.method, req.path)
        return Response(204)

    def _cancel_job(self, req: Request) -> Response:
        self.jobs.cancel(req.match.group("jid"), req.method, req.path)
        return Response(204)


_ID = r"[^/?]+"
_ROUTE_SPEC: list[tuple[str, str, Handler]] = (
    [
        ("POST", r"/api/sessions", HMCEngine._logon),
        ("DELETE", r"/api/sessions/this-session", HMCEngine._logoff),
        ("GET", rf"/api/cpcs/(?P<cid>{_ID})/partitions", HMCEngine._list_partitions),
        ("POST", rf"/api/cpcs/(?P<cid>{_ID})/partitions", HMCEngine._create_partition),
        ("POST", rf"/api/partitions/(?P<pid>{_ID})", HMCEngine._update_partition),
        ("DELETE", rf"/api/partitions/(?P<pid>{_ID})", HMCEngine._delete_partition),
        ("POST", rf"/api/partitions/(?P<pid>{_ID})/operations/start", HMCEngine._start_partition),
        ("POST", rf"/api/partitions/(?P<pid>{_ID})/operations/stop", HMCEngine._stop_partition),
        (
            "POST",
            rf"/api/partitions/{_ID}/operations/(scsi-dump|psw-restart|start-dump-program)",
            HMCEngine._async_delegate,
        ),
        ("POST", rf"/api/cpcs/{_ID}/operations/(start|stop)", HMCEngine._async_delegate),
        (
            "GET",
            rf"/api/partitions/(?P<pid>{_ID})/operations/list-os-messages",
            HMCEngine._list_os_messages,
        ),
        (
            "POST",
            rf"/api/partitions/(?P<pid>{_ID})/operations/open-os-message-channel",
            HMCEngine._open_os_message_channel,
        ),
        (
            "POST",
            rf"/api/partitions/(?P<pid>{_ID})/operations/send-os-cmd",
            HMCEngine._send_os_command,
        ),
        ("POST", rf"/api/partitions/(?P<pid>{_ID})/nics", HMCEngine._create_nic),
        ("POST", rf"/api/partitions/{_ID}/nics/{_ID}", HMCEngine._update_nic),
        ("DELETE", rf"/api/partitions/{_ID}/nics/{_ID}", HMCEngine._delete_nic),
        ("POST", rf"/api/partitions/(?P<pid>{_ID})/hbas", HMCEngine._create_hba),
        ("POST", rf"/api/partitions/{_ID}/hbas/{_ID}", HMCEngine._update_hba),
        (
            "GET",
            rf"/api/virtual-switches/(?P<vid>{_ID})/operations/get-connected-vnics",
            HMCEngine._connected_vnics,
        ),
        (
            "POST",
            rf"/api/cpcs/(?P<cid>{_ID})/operations/export-port-names-list",
            HMCEngine._export_wwpns,
        ),
        ("GET", rf"/api/jobs/(?P<jid>{_ID})", HMCEngine._query_job),
        ("DELETE", rf"/api/jobs/(?P<jid>{_ID})", HMCEngine._delete_job),
        ("POST", rf"/api/jobs/(?P<jid>{_ID})/operations/cancel", HMCEngine._cancel_job),
    ]
    + storage.ROUTES
    + metrics.ROUTES
)

_ROUTES: list[tuple[str, re.Pattern[str], Handler]] = [
    (m, re.compile(rx + r"$"), h) for m, rx, h in _ROUTE_SPEC
]
