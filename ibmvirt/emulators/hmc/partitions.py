"""Partitions of a CPC: create, update, delete, start, stop, OS messages.

Why: the mock's partition handlers accept anything and run start/stop
synchronously; the real HMC validates names, memory and boot devices, refuses
operations in the wrong status (409/1) and runs start/stop as jobs whose outcome
(e.g. not enough IFLs) appears only in the job status. The OS message
operations are partition operations in the WS API book, so they live here.
"""

from __future__ import annotations

from typing import Any

from ibmvirt.emulators.hmc import errors, storage
from ibmvirt.emulators.hmc.errors import HMCError
from ibmvirt.emulators.hmc.model import Request, Response, se_version, storage_management_enabled
from ibmvirt.emulators.hmc.osmessages import boot_messages, shutdown_messages
from ibmvirt.emulators.hmc.state import (
    _ID,
    NOT_RUNNING,
    STOPPABLE,
    TRANSITIONAL,
    HMCState,
    Route,
    check_unique_name,
    new_id,
    refuse_ids,
    require_body,
)

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


def list_partitions(st: HMCState, req: Request) -> Response:
    """List Partitions of a CPC; ``additional-properties`` needs HMC 2.16.0
    (zhmcclient's PartitionManager.list says so; the mock takes it always)."""
    if "additional-properties" in req.query:
        version = str(st.hmc.hmc_version)
        if se_version({"se-version": version}) < (2, 16):
            raise HMCError(
                errors.BAD_QUERY_PARM,
                f"Query parameter 'additional-properties' of List Partitions of a CPC "
                f"needs HMC 2.16.0 or later; this HMC has version {version}",
            )
    return st.delegate(req.method, req.target, None)


def create_partition(st: HMCState, req: Request) -> Response:
    cpc = st.lookup("/api/cpcs/" + req.match.group("cid"), what="CPC")
    body = require_body(req)
    name = body.get("name")
    if name is not None:
        if not isinstance(name, str) or not 1 <= len(name) <= 64:
            raise HMCError(errors.FIELD_INVALID, f"Partition name {name!r} must be 1-64 chars")
        check_unique_name(cpc.partitions.list(), name, "a partition", f"CPC {cpc.name}")
    for field in ("ifl-processors", "cp-processors", "initial-memory", "maximum-memory"):
        val = body.get(field)
        if val is not None and (not isinstance(val, int) or isinstance(val, bool) or val < 0):
            raise HMCError(errors.FIELD_INVALID, f"{field} must be a non-negative integer")
    if body.get("initial-memory", 0) > body.get("maximum-memory", 1 << 62):
        raise HMCError(errors.FIELD_INVALID, "initial-memory must not exceed maximum-memory")
    if "boot-os-specific-parameters" in body:
        _check_boot_params(body["boot-os-specific-parameters"])
    refuse_ids(body)
    resp = st.delegate(req.method, req.target, dict(body, **{"object-id": new_id()}))
    part = st.lookup(resp.body["object-uri"])
    features = cpc.properties.get("available-features-list")
    if features is None:
        part.properties.pop("available-features-list", None)
    else:
        part.properties["available-features-list"] = [dict(f) for f in features]
    return resp


def _check_boot_params(value: Any) -> None:
    if not isinstance(value, str) or len(value) > MAX_BOOT_OS_SPECIFIC_PARAMETERS:
        raise HMCError(
            errors.FIELD_INVALID,
            "boot-os-specific-parameters must be a string of at most "
            f"{MAX_BOOT_OS_SPECIFIC_PARAMETERS} characters",
        )


def update_partition(st: HMCState, req: Request) -> Response:
    part = st.partition_for(req)
    body = require_body(req)
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
    if "name" in body:
        check_unique_name(
            cpc.partitions.list(), body["name"], "a partition", f"CPC {cpc.name}", part
        )
    if "boot-device" in body and body["boot-device"] not in BOOT_DEVICES:
        raise HMCError(
            errors.FIELD_INVALID,
            f"boot-device {body['boot-device']!r} is not one of {sorted(BOOT_DEVICES)}",
        )
    if "boot-os-specific-parameters" in body:
        _check_boot_params(body["boot-os-specific-parameters"])
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
        st.lookup(body["boot-storage-volume"], errors.REFERENCED_NOT_FOUND, "storage volume")
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


def delete_partition(st: HMCState, req: Request) -> Response:
    part = st.partition_for(req)
    if part.properties.get("status") not in NOT_RUNNING:
        raise HMCError(
            errors.WRONG_STATE,
            f"Partition {part.name} is {part.properties.get('status')}; stop it first",
        )
    nics = [(n.uri, n.properties.get("virtual-switch-uri")) for n in part.nics.list()]
    macs = [n.properties.get("mac-address") for n in part.nics.list()]
    storage.detach_all(st, part)
    resp = st.delegate(req.method, req.target, None)
    for nic_uri, vs_uri in nics:
        st.disconnect_nic(nic_uri, vs_uri)
    st.macs.difference_update(macs)
    st.os_logs.pop(part.uri, None)
    return resp


def _capacity_problem(st: HMCState, part: Any) -> str | None:
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


def _boot_problem(st: HMCState, part: Any) -> str | None:
    pp = part.properties
    if pp.get("boot-device") == "storage-volume":
        sv_uri = pp.get("boot-storage-volume")
        if not sv_uri:
            return f"Partition {part.name} has boot-device storage-volume but no volume"
        try:
            sv = st.hmc.lookup_by_uri(sv_uri)
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


def start_partition(st: HMCState, req: Request) -> Response:
    part = st.partition_for(req)
    status = part.properties.get("status")
    if status != "stopped":
        hint = " (stop it first)" if status in ("paused", "terminated") else ""
        raise HMCError(
            errors.WRONG_STATE,
            f"Partition {part.name} is {status}; Start requires status stopped{hint}",
        )
    problem = _capacity_problem(st, part) or _boot_problem(st, part)
    cpc = part.manager.parent
    st.set_status(part, "starting")
    st.update_memory_available(cpc)

    def finish() -> tuple[int, int, Any]:
        if problem is not None:
            st.set_status(part, "stopped")
            st.update_memory_available(cpc)
            raise HMCError(errors.START_FAILED, problem)
        st.set_status(part, "active")
        if part.properties.get("boot-device", "none") != "none":
            part.properties["os-name"] = part.name[:8].upper()
            part.properties["os-type"] = "Linux"
            part.properties["os-version"] = "6.8.0"
        log = st.os_log(part.uri)
        for line in boot_messages(part.properties):
            log.add(line, os_name=part.properties["os-name"])
        return 204, 0, None

    job = st.jobs.submit(req.method, req.path, st.op_delay, finish)
    return Response(202, {"job-uri": job.uri})


def stop_partition(st: HMCState, req: Request) -> Response:
    part = st.partition_for(req)
    status = part.properties.get("status")
    if status not in STOPPABLE:
        raise HMCError(
            errors.WRONG_STATE,
            f"Partition {part.name} is {status}; Stop requires one of {list(STOPPABLE)}",
        )
    cpc = part.manager.parent
    st.set_status(part, "stopping")

    def finish() -> tuple[int, int, Any]:
        log = st.os_log(part.uri)
        for line in shutdown_messages(part.properties):
            log.add(line, os_name=part.properties.get("os-name", ""))
        st.set_status(part, "stopped")
        st.update_memory_available(cpc)
        return 204, 0, None

    job = st.jobs.submit(req.method, req.path, st.op_delay, finish)
    return Response(202, {"job-uri": job.uri})


def async_delegate(st: HMCState, req: Request) -> Response:
    """Operations that are asynchronous on a real HMC but synchronous in the mock."""
    status = st.delegate(req.method, req.target, req.body)

    def finish() -> tuple[int, int, Any]:
        return status.status, 0, status.body

    job = st.jobs.submit(req.method, req.path, st.op_delay, finish)
    return Response(202, {"job-uri": job.uri})


def list_os_messages(st: HMCState, req: Request) -> Response:
    part = st.partition_for(req)
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
    msgs = st.os_log(part.uri).list(
        intparm("begin-sequence-number"), intparm("end-sequence-number")
    )
    maxm = intparm("max-messages")
    if maxm:
        msgs = msgs[:maxm]
    return Response(200, {"os-messages": msgs})


def open_os_message_channel(st: HMCState, req: Request) -> Response:
    part = st.partition_for(req)
    if part.properties.get("status") in NOT_RUNNING + TRANSITIONAL:
        raise HMCError(
            errors.WRONG_STATE,
            f"Partition {part.name} is {part.properties.get('status')}; "
            "its operating system message channel can only be opened while it runs",
        )
    return Response(200, {"topic-name": f"os-message-notification-{part.oid}"})


def send_os_command(st: HMCState, req: Request) -> Response:
    part = st.partition_for(req)
    body = require_body(req)
    text = body.get("operating-system-command-text")
    if not isinstance(text, str):
        raise HMCError(errors.FIELD_MISSING, "operating-system-command-text is required")
    if part.properties.get("status") not in ("active", "degraded"):
        raise HMCError(
            errors.WRONG_STATE,
            f"Partition {part.name} is {part.properties.get('status')}; no OS to command",
        )
    st.os_log(part.uri).add(text, os_name=part.properties.get("os-name", ""))
    return Response(204)


_P = rf"/api/partitions/(?P<pid>{_ID})"
ROUTES: list[Route] = [
    ("GET", rf"/api/cpcs/(?P<cid>{_ID})/partitions", list_partitions),
    ("POST", rf"/api/cpcs/(?P<cid>{_ID})/partitions", create_partition),
    ("POST", _P, update_partition),
    ("DELETE", _P, delete_partition),
    ("POST", _P + "/operations/start", start_partition),
    ("POST", _P + "/operations/stop", stop_partition),
    # Asynchronous on a real HMC, synchronous in the mock: one route for all.
    (
        "POST",
        rf"/api/(partitions/{_ID}/operations/(scsi-dump|psw-restart|start-dump-program)"
        rf"|cpcs/{_ID}/operations/(start|stop))",
        async_delegate,
    ),
    ("GET", _P + "/operations/list-os-messages", list_os_messages),
    ("POST", _P + "/operations/open-os-message-channel", open_os_message_channel),
    ("POST", _P + "/operations/send-os-cmd", send_os_command),
]
