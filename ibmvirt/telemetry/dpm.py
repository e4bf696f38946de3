"""Ceilometer inspector for IBM Z DPM (``[DEFAULT] hypervisor_inspector = dpm``).

Every cycle is one Get Metrics of this inspector's metrics context plus one
List Partitions of this host's partitions (hmcmetrics.py), whatever the
number of instances. A partition is ``OpenStack-<host>-<instance uuid>``
(ibmvirt.dpm.naming), ``<host>`` being Ceilometer's [DEFAULT] host, which is
nova-compute's host for the instance discovery to work at all.

The HMC gives processor usage in percent of the partition's processors over
its sampling interval, not a cumulative CPU time: cpu_util is given, cpu is
not. Memory is the partition's initial memory (the HMC does not see inside
the guest). NIC counters are the HMC's unicast counters; rates are the HMC's
own bytes per second. There are no per-partition disk counters.
"""

from __future__ import annotations

import atexit
import threading

import zhmcclient
from ceilometer.compute.virt import inspector as virt_inspector
from oslo_log import log as logging

from ibmvirt.common import hmcsession
from ibmvirt.conf import telemetry as telemetry_conf
from ibmvirt.telemetry import hmcmetrics, snapshot, stats

LOG = logging.getLogger(__name__)

RUNNING = 1  # Ceilometer's (libvirt's) power.state for a running instance
#: Fail fast: the agent's other pollsters wait while this inspector waits.
RETRY_TIMEOUT = zhmcclient.RetryTimeoutConfig(
    connect_timeout=10, connect_retries=1, read_timeout=60, read_retries=0
)


class DPMInspector(virt_inspector.Inspector):
    """Partition metrics of one CPC subset from one HMC metrics context."""

    def __init__(self, conf) -> None:
        super().__init__(conf)
        telemetry_conf.register_opts(conf)
        self._reader: hmcmetrics.MetricsReader | None = None
        self._held: hmcmetrics.Sample | None = None
        #: (instance, NIC URI) -> counters last reported by inspect_vnics: its deltas
        #: cover the time since the network meters were last polled (as libvirt's).
        self._vnic_last: dict[tuple[str, str], dict] = {}
        self._vnic_pruned: hmcmetrics.Sample | None = None
        self._lock = threading.Lock()
        self._cycle = snapshot.Holder(self._refresh, conf.ibmvirt_telemetry.metrics_max_age)
        atexit.register(self.close)

    def _refresh(self) -> tuple[hmcmetrics.Sample | None, hmcmetrics.Sample]:
        if self._reader is None:
            dpm = self.conf.dpm
            try:
                session = hmcsession.build_session(dpm, RETRY_TIMEOUT)
            except hmcsession.HMCSessionConfigError as exc:
                raise virt_inspector.InspectorException(str(exc)) from None
            if not dpm.cpc_object_id:
                raise virt_inspector.InspectorException("[dpm] cpc_object_id must be set")
            self._reader = hmcmetrics.MetricsReader(
                session,
                dpm.cpc_object_id,
                self.conf.host,
                self.conf.ibmvirt_telemetry.metrics_max_age,
            )
        try:
            new = self._reader.read()
        except zhmcclient.NotFound:
            raise virt_inspector.InspectorException(
                f"the HMC has no CPC with object-id {self.conf.dpm.cpc_object_id}: "
                "check [dpm] cpc_object_id"
            ) from None
        except zhmcclient.Error as exc:
            raise virt_inspector.InspectorException(
                f"HMC metrics read failed: {type(exc).__name__}: {exc}"
            ) from None
        previous = self._held if self._held and self._held.stamp != new.stamp else None
        self._held = new
        return previous, new

    def close(self) -> None:
        """Delete the metrics context and log off (at agent shutdown)."""
        with self._lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None

    def _partition(self, instance, with_current=False):
        previous, current = self._cycle.get()
        part = current.partitions.get(instance.id)
        if part is None:
            raise virt_inspector.InstanceNotFoundException(
                f"no partition of instance {instance.id} on this host's CPC subset"
            )
        if part.status != "active":
            raise virt_inspector.InstanceShutOffException(f"partition {part.name} is {part.status}")
        before = previous.partitions.get(instance.id) if previous else None
        return (before, part, current) if with_current else (before, part)

    def inspect_instance(self, instance, duration=None):
        _, part = self._partition(instance)
        return stats.InstanceStats(
            power_state=RUNNING,
            cpu_number=part.processors,
            cpu_util=part.processor_usage,
            memory_actual=part.memory_mb,
        )

    def inspect_vnics(self, instance, duration=None):
        before, part, current = self._partition(instance, with_current=True)
        if self._vnic_pruned is not current:  # forget instances gone from the host
            self._vnic_pruned = current
            for key in [k for k in self._vnic_last if k[0] not in current.partitions]:
                del self._vnic_last[key]
        for nic in part.nics:
            key = (instance.id, nic.uri)
            v = nic.values
            # No delta without a new sample that follows one with the partition.
            prev = self._vnic_last.get(key) if before is not None else None
            self._vnic_last[key] = v
            yield virt_inspector.InterfaceStats(
                name=nic.name,
                mac=nic.mac,
                fref=None,
                parameters={"nic_uri": nic.uri},
                rx_bytes=v.get("bytes-received"),
                tx_bytes=v.get("bytes-sent"),
                rx_packets=v.get("packets-received"),
                tx_packets=v.get("packets-sent"),
                rx_drop=v.get("packets-received-dropped"),
                tx_drop=v.get("packets-sent-dropped"),
                rx_errors=v.get("packets-received-discarded"),
                tx_errors=v.get("packets-sent-discarded"),
                rx_bytes_delta=_delta(prev, v, "bytes-received"),
                tx_bytes_delta=_delta(prev, v, "bytes-sent"),
            )

    def inspect_vnic_rates(self, instance, duration=None):
        _, part = self._partition(instance)
        for nic in part.nics:
            yield virt_inspector.InterfaceRateStats(
                name=nic.name,
                mac=nic.mac,
                fref=None,
                parameters={"nic_uri": nic.uri},
                rx_bytes_rate=nic.values.get("bytes-per-second-received"),
                tx_bytes_rate=nic.values.get("bytes-per-second-sent"),
            )


def _delta(before: dict | None, now: dict, key: str) -> int | None:
    if before is None or before.get(key) is None or now.get(key) is None:
        return None
    d = now[key] - before[key]
    return d if d >= 0 else None
