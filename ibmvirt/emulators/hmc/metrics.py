"""Metrics contexts: Create Metrics Context, Get Metrics, Delete Metrics Context.

Known (HMC WS API book, zhmcclient): a client creates a context naming metric
groups and how often it will read (``anticipated-frequency-seconds``, at least
15), gets back the groups' metric names and types, and each Get Metrics on the
context URI answers every object of those groups in the MetricsResponse text
format (``application/vnd.ibm-z-zmanager-metrics``). The group definitions
are zhmcclient.mock's table (``METRIC_GROUPS``, private API like the URI
handlers the engine uses; zhmcclient is pinned).

Guessed (doc/hmc-emulator.md says so too): values are sampled every
SAMPLE_SECONDS on a fixed grid, so reads within one interval see the same
sample; a context belongs to the session that created it (another session, or
the same client after a re-logon, gets 404/1); the values themselves.
Partitions are reported whatever their status, with 0 % usage when not active.
NIC counters grow at a per-NIC rate while the partition is active (time active
is observed at each Create or Get, so a start between two reads counts from
the second) and never reset. Only partition-usage,
partition-attached-network-interface and dpm-system-usage-overview have
objects; the other groups are defined but empty.
"""

from __future__ import annotations

import hashlib
import math
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from zhmcclient.mock._hmc import METRIC_GROUPS  # private, see module docstring

from ibmvirt.emulators.hmc import errors
from ibmvirt.emulators.hmc.errors import HMCError
from ibmvirt.emulators.hmc.model import Request, Response, require_body

SAMPLE_SECONDS = 15
MIN_FREQUENCY = 15
BASE_URI = "/api/services/metrics/context"
METRICS_TYPE = "application/vnd.ibm-z-zmanager-metrics"
GROUPS: dict[str, list[tuple[str, str]]] = {g["name"]: list(g["metrics"]) for g in METRIC_GROUPS}


@dataclass
class Context:
    groups: list[str]
    frequency: int
    owner: str  # the X-API-Session token that created it


@dataclass
class _Clock:
    """How long a partition has been active, observed at each read."""

    active_since: float | None = None
    accumulated: float = 0.0

    def observe(self, active: bool, now: float) -> None:
        if active and self.active_since is None:
            self.active_since = now
        elif not active and self.active_since is not None:
            self.accumulated += max(now - self.active_since, 0.0)
            self.active_since = None

    def seconds(self, at: float) -> float:
        running = max(at - self.active_since, 0.0) if self.active_since is not None else 0.0
        return self.accumulated + running


@dataclass
class MetricsState:
    """Contexts and the clocks behind the values (engine.metrics)."""

    contexts: dict[str, Context] = field(default_factory=dict)
    clocks: dict[str, _Clock] = field(default_factory=dict)
    skew: float = 0.0

    def now(self) -> float:
        return time.time() + self.skew

    def advance(self, seconds: float) -> None:
        """Move the metrics clock on, as if ``seconds`` had passed (tests, bench)."""
        self.skew += float(seconds)

    def sample_time(self) -> float:
        """The newest sample's time: the sampling grid point at or before now."""
        now = self.now()
        return now - now % SAMPLE_SECONDS


def _unit(*parts: str) -> float:
    """A stable number in [0, 1) from names (hashlib: the same in every run)."""
    digest = hashlib.sha256("/".join(parts).encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32


def processor_usage(part_uri: str, active: bool, at: float) -> int:
    """Percent of the partition's processors in use at sample time ``at``."""
    if not active:
        return 0
    base = 10 + 50 * _unit(part_uri)
    wave = 10 * math.sin(2 * math.pi * (at / 600.0 + _unit(part_uri, "phase")))
    return max(0, min(100, round(base + wave)))


def nic_rate(nic_uri: str) -> int:
    """Bytes per second the NIC receives while its partition is active (sends half)."""
    return 20_000 + int(40_000 * _unit(nic_uri))


def _dpm_partitions(engine: Any) -> list[tuple[Any, Any]]:
    out = []
    for cpc in engine.hmc.cpcs.list():
        if cpc.properties.get("dpm-enabled"):
            out.extend((cpc, p) for p in cpc.partitions.list())
    return out


def _observe(engine: Any) -> None:
    state: MetricsState = engine.metrics
    now = state.now()
    for _, part in _dpm_partitions(engine):
        clock = state.clocks.setdefault(part.uri, _Clock())
        clock.observe(part.properties.get("status") == "active", now)


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


def _rows(engine: Any, group: str, at: float) -> list[tuple[str, dict[str, Any]]]:
    """(object URI, metric values) of every object of ``group`` at sample time ``at``."""
    state: MetricsState = engine.metrics
    parts = _dpm_partitions(engine)
    if group == "partition-usage":
        rows = []
        for _, p in parts:
            active = p.properties.get("status") == "active"
            rows.append(
                (
                    p.uri,
                    {
                        "processor-usage": processor_usage(p.uri, active, at),
                        "network-usage": 2 if active and p.properties.get("nic-uris") else 0,
                        "storage-usage": 1 if active else 0,
                    },
                )
            )
        return rows
    if group == "partition-attached-network-interface":
        rows = []
        for _, p in parts:
            active = p.properties.get("status") == "active"
            seconds = state.clocks.get(p.uri, _Clock()).seconds(at)
            for nic in p.nics.list():
                rate = nic_rate(nic.uri)
                rx = int(rate * seconds)
                rows.append(
                    (
                        nic.uri,
                        {
                            "partition-id": p.oid,
                            "bytes-received": rx,
                            "bytes-sent": rx // 2,
                            "packets-received": rx // 1000,
                            "packets-sent": rx // 2000,
                            "packets-received-dropped": rx // 2_000_000,
                            "packets-sent-dropped": rx // 4_000_000,
                            "interval-bytes-received": rate * SAMPLE_SECONDS if active else 0,
                            "interval-bytes-sent": rate * SAMPLE_SECONDS // 2 if active else 0,
                            "bytes-per-second-received": rate if active else 0,
                            "bytes-per-second-sent": rate // 2 if active else 0,
                        },
                    )
                )
        return rows
    if group == "dpm-system-usage-overview":
        rows = []
        for cpc in engine.hmc.cpcs.list():
            if not cpc.properties.get("dpm-enabled"):
                continue
            mine = [p for c, p in parts if c is cpc]
            used = sum(
                processor_usage(p.uri, p.properties.get("status") == "active", at)
                * int(p.properties.get("ifl-processors", 0) or 0)
                for p in mine
            )
            total = int(cpc.properties.get("processor-count-ifl", 0) or 0)
            rows.append((cpc.uri, {"processor-usage": round(used / total) if total else 0}))
        return rows
    return []


def _response_text(engine: Any, ctx: Context) -> str:
    """The MetricsResponse: per group its name, then per object URI, time, values."""
    at = engine.metrics.sample_time()
    stamp = str(int(at * 1000))
    lines = []
    for group in ctx.groups:
        lines.append(f'"{group}"')
        for uri, values in _rows(engine, group, at):
            row = [
                _fmt(values.get(name, "" if mtype == "string-metric" else 0))
                for name, mtype in GROUPS[group]
            ]
            lines += [f'"{uri}"', stamp, ",".join(row), ""]
        lines.append("")
    lines.append("")
    return "\n".join(lines) + "\n"


def _context(engine: Any, req: Request) -> Context:
    ctx = engine.metrics.contexts.get(req.match.group("mcid"))
    if ctx is None or ctx.owner != req.token:
        raise HMCError(errors.NOT_FOUND, f"No metrics context with URI {req.path} exists")
    return ctx


def _create(engine: Any, req: Request) -> Response:
    body = require_body(req)
    freq = body.get("anticipated-frequency-seconds")
    if freq is None:
        raise HMCError(errors.FIELD_MISSING, "anticipated-frequency-seconds is required")
    if isinstance(freq, bool) or not isinstance(freq, int) or freq < MIN_FREQUENCY:
        raise HMCError(
            errors.FIELD_INVALID,
            f"anticipated-frequency-seconds must be an integer of at least {MIN_FREQUENCY}",
        )
    groups = body.get("metric-groups", list(GROUPS))
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        raise HMCError(errors.FIELD_INVALID, "metric-groups must be an array of group names")
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        raise HMCError(errors.FIELD_INVALID, f"Unknown metric group(s): {', '.join(unknown)}")
    state: MetricsState = engine.metrics
    # Contexts die with their session (a guess, see the module docstring).
    live = set(engine.sessions)
    for cid in [c for c, ctx in state.contexts.items() if ctx.owner not in live]:
        del state.contexts[cid]
    cid = str(uuid.uuid4())
    state.contexts[cid] = Context(list(dict.fromkeys(groups)), freq, req.token or "")
    _observe(engine)
    infos = [
        {
            "group-name": g,
            "metric-infos": [{"metric-name": n, "metric-type": t} for n, t in GROUPS[g]],
        }
        for g in state.contexts[cid].groups
    ]
    return Response(200, {"metrics-context-uri": f"{BASE_URI}/{cid}", "metric-group-infos": infos})


def _get(engine: Any, req: Request) -> Response:
    ctx = _context(engine, req)
    _observe(engine)
    return Response(200, _response_text(engine, ctx), {"Content-Type": METRICS_TYPE})


def _delete(engine: Any, req: Request) -> Response:
    _context(engine, req)
    del engine.metrics.contexts[req.match.group("mcid")]
    return Response(204)


_ID = r"[^/?]+"
ROUTES = [
    ("POST", BASE_URI, _create),
    ("GET", rf"{BASE_URI}/(?P<mcid>{_ID})", _get),
    ("DELETE", rf"{BASE_URI}/(?P<mcid>{_ID})", _delete),
]
