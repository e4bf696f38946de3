"""DPM partition metrics from one HMC metrics context, read in bulk.

One context per inspector, created at the first read with the groups the
inspector uses, read with one Get Metrics per cycle, recreated if the HMC
forgot it (a restart, or a re-logon after the session expired), deleted on
close. Each cycle also lists this host's partitions (one request: names,
URIs, status). What the metrics do not carry is read once and kept: a
partition's processors and memory (GET partition, again only when its status
changes) and a NIC's name and MAC (GET NIC, once per NIC).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

import zhmcclient

from ibmvirt.dpm import naming

GROUPS = ["partition-usage", "partition-attached-network-interface"]
MIN_FREQUENCY = 15


@dataclass(frozen=True)
class Nic:
    uri: str
    name: str
    mac: str | None
    values: dict[str, Any]


@dataclass(frozen=True)
class Partition:
    uri: str
    name: str
    status: str
    processors: int
    memory_mb: int | None
    processor_usage: int | None
    nics: list[Nic] = field(default_factory=list)


@dataclass(frozen=True)
class Sample:
    stamp: datetime.datetime | None
    partitions: dict[str, Partition]  # by instance UUID


class _Gone(Exception):
    """The partition was deleted between List Partitions and its GET (404)."""


def _not_found(exc: Exception) -> bool:
    """zhmcclient reports a 404 as HTTPError, or CeasedExistence for a known object."""
    return isinstance(exc, zhmcclient.CeasedExistence) or getattr(exc, "http_status", 0) == 404


class MetricsReader:
    """The HMC side of the DPM inspector: the session, the context, the caches."""

    def __init__(self, session: zhmcclient.Session, cpc_id: str, host: str, frequency: int):
        self.session = session
        self.client = zhmcclient.Client(session)
        self.cpc_id = cpc_id
        self.host = host
        self.frequency = max(MIN_FREQUENCY, int(frequency))
        self._cpc: Any = None
        self._context: Any = None
        self._props: dict[str, tuple[str, int, int | None]] = {}  # uri -> (status, procs, mem)
        self._nics: dict[str, tuple[str, str | None]] = {}  # uri -> (name, mac)

    def _ensure(self) -> None:
        if self._cpc is None:
            self._cpc = self.client.cpcs.find(**{"object-id": self.cpc_id})
        if self._context is None:
            self._context = self.client.metrics_contexts.create(
                {"anticipated-frequency-seconds": self.frequency, "metric-groups": GROUPS}
            )

    def _metrics(self) -> str:
        try:
            return self._context.get_metrics()
        except zhmcclient.HTTPError as exc:
            if (exc.http_status, exc.reason) != (404, 1):
                raise
        self._context = None  # the HMC forgot it: make a new one, once
        self._ensure()
        return self._context.get_metrics()

    def read(self) -> Sample:
        self._ensure()
        text = self._metrics()
        listed = self._cpc.partitions.list(
            filter_args={"name": naming.owned_name_filter(self.host)}
        )
        response = zhmcclient.MetricsResponse(self._context, text)
        usage: dict[str, int] = {}
        nics: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        stamp = None
        for group in response.metric_group_values:
            for ov in group.object_values:
                stamp = stamp or ov.timestamp
                if group.name == "partition-usage":
                    usage[ov.resource_uri] = ov.metrics.get("processor-usage")
                else:  # a NIC URI is <partition URI>/nics/<id>
                    part_uri = ov.resource_uri.split("/nics/")[0]
                    nics.setdefault(part_uri, []).append((ov.resource_uri, ov.metrics))
        partitions = {}
        for part in listed:
            uuid = naming.instance_uuid_from_name(self.host, part.name)
            if uuid is None:
                continue
            try:
                status, procs, mem = self._properties(part)
                part_nics = [self._nic(uri, values) for uri, values in nics.get(part.uri, [])]
            except _Gone:
                continue  # deleted since the list: only its instance goes unmeasured
            partitions[uuid] = Partition(
                uri=part.uri,
                name=part.name,
                status=status,
                processors=procs,
                memory_mb=mem,
                processor_usage=usage.get(part.uri),
                nics=[n for n in part_nics if n is not None],
            )
        self._forget([p.uri for p in listed])
        return Sample(stamp, partitions)

    def _properties(self, part: Any) -> tuple[str, int, int | None]:
        """(status, processors, initial memory), fetched again when the status changes."""
        status = part.properties.get("status", "")
        cached = self._props.get(part.uri)
        if cached is None or cached[0] != status:
            try:
                part.pull_full_properties()
            except (zhmcclient.HTTPError, zhmcclient.CeasedExistence) as exc:
                if _not_found(exc):
                    raise _Gone from None
                raise
            p = part.properties
            procs = int(p.get("ifl-processors") or 0) + int(p.get("cp-processors") or 0)
            cached = (status, procs, p.get("initial-memory"))
            self._props[part.uri] = cached
        return cached

    def _nic(self, uri: str, values: dict[str, Any]) -> Nic | None:
        """The NIC, or None if it was removed since the metrics were taken."""
        if uri not in self._nics:
            try:
                props = self.session.get(uri)
            except (zhmcclient.HTTPError, zhmcclient.CeasedExistence) as exc:
                if _not_found(exc):
                    return None
                raise
            self._nics[uri] = (props.get("name", uri.rsplit("/", 1)[-1]), props.get("mac-address"))
        name, mac = self._nics[uri]
        return Nic(uri, name, mac, values)

    def _forget(self, live: list[str]) -> None:
        """Drop what is cached for partitions that are gone."""
        keep = set(live)
        for uri in [u for u in self._props if u not in keep]:
            del self._props[uri]
        for uri in [u for u in self._nics if u.split("/nics/")[0] not in keep]:
            del self._nics[uri]

    def close(self) -> None:
        """Delete the context and log off; errors are the HMC's to forget."""
        try:
            if self._context is not None:
                self._context.delete()
        except zhmcclient.Error:
            pass
        finally:
            self._context = None
            try:
                self.session.logoff()
            except zhmcclient.Error:
                pass
