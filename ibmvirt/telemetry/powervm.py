"""Ceilometer inspector for PowerVM (``[DEFAULT] hypervisor_inspector = powervm``).

Reads PCM long-term samples (pcm.py) once per polling cycle for every LPAR of
the host and answers each instance from them. Cumulative meters come from the
newest sample; rates compare it with the sample the previous cycle used, byte
deltas with the counters inspect_vnics last reported (the time since the
network meters were last polled); both are left out (None) where that
comparison would lie: the LPAR's first sample on this host (just deployed,
started or migrated in: PCM cycles move with a migrating LPAR while its
adapters' counters restart), counters that went backwards, or no new sample
since the last cycle.

cpu_util is bounded to 0-100 %: it is the share of what the LPAR can use at
most, its entitlement when capped or dedicated, its virtual processors when
uncapped. (ceilometer-powervm divided by the entitlement only, which goes past
100 % for an uncapped LPAR borrowing idle pool cycles.)
"""

from __future__ import annotations

import pypowervm.exceptions as pvm_ex
import requests
from ceilometer.compute.virt import inspector as virt_inspector
from oslo_log import log as logging
from pypowervm.utils import uuid as pvm_uuid

from ibmvirt.common import novalink
from ibmvirt.conf import telemetry as telemetry_conf
from ibmvirt.telemetry import pcm, snapshot, stats

LOG = logging.getLogger(__name__)

RUNNING = 1  # Ceilometer's (libvirt's) power.state for a running instance
_UNCAPPED = "uncap"
#: Seconds per NovaLink request: a hung NovaLink must not stall the agent's
#: other pollsters for pypowervm's default 1200 s (as the DPM inspector's 60 s).
REQUEST_TIMEOUT = 60


class PowerVMInspector(virt_inspector.Inspector):
    """PCM long-term monitor metrics of the LPARs of one NovaLink-managed system."""

    def __init__(self, conf) -> None:
        super().__init__(conf)
        telemetry_conf.register_opts(conf)
        self._adapter = None
        self._host: str | None = None
        self._held: pcm.Sample | None = None
        #: (LPAR, NIC) -> (rx, tx) bytes last reported by inspect_vnics: its deltas
        #: cover the time since the network meters were last polled (as libvirt's).
        self._vnic_last: dict[tuple[str, str], tuple[int | None, int | None]] = {}
        self._vnic_pruned: pcm.Sample | None = None
        self._cycle = snapshot.Holder(self._refresh, conf.ibmvirt_telemetry.metrics_max_age)

    # ---- one bulk read per cycle ---------------------------------------------------
    def _connect(self):
        try:
            adapter = novalink.build_adapter(self.conf, conn_tries=1, timeout=REQUEST_TIMEOUT)
            host = pcm.host_uuid(adapter)
            if pcm.ensure_ltm(adapter, host):
                LOG.info("Switched on PowerVM's long-term performance monitor of %s", host)
        except novalink.NovaLinkConfigError as exc:
            raise virt_inspector.InspectorException(str(exc)) from None
        except Exception as exc:  # noqa: BLE001 - any logon failure stops this cycle only
            why = novalink.logon_failure(self.conf, exc) or type(exc).__name__
            raise virt_inspector.InspectorException(f"NovaLink unreachable: {why}") from None
        self._adapter, self._host = adapter, host

    def close(self) -> None:
        """Log off NovaLink (at agent shutdown): a session left open lingers there."""
        adapter, self._adapter = self._adapter, None
        if adapter is not None:
            adapter.session._logoff()

    def _refresh(self) -> tuple[pcm.Sample | None, pcm.Sample]:
        """(previous sample or None, newest sample) for this cycle."""
        if self._adapter is None:
            self._connect()
        try:
            new = pcm.read(self._adapter, self._host, self._held)
            if new is None:  # someone switched LTM off, or it was just switched on
                pcm.ensure_ltm(self._adapter, self._host)
        except (pvm_ex.Error, requests.RequestException) as exc:
            self._adapter = None  # log on again next cycle
            raise virt_inspector.InspectorException(
                f"NovaLink monitor read failed: {type(exc).__name__}: {exc}"
            ) from None
        if new is None:
            raise virt_inspector.NoDataException(
                "PowerVM's long-term monitor has no sample yet (it samples every 30 s)"
            )
        previous = None if new is self._held else self._held
        self._held = new
        return previous, new

    def _lpar(self, instance) -> tuple[pcm.Lpar | None, pcm.Lpar, pcm.Sample | None, pcm.Sample]:
        previous, current = self._cycle.get()
        uuid = pvm_uuid.convert_uuid_to_pvm(instance.id).upper()
        lpar = current.lpars.get(uuid)
        if lpar is None:
            raise virt_inspector.InstanceNotFoundException(
                f"no LPAR {uuid} (instance {instance.id}) in the newest PCM sample of this host"
            )
        if not lpar.running:
            raise virt_inspector.InstanceShutOffException(
                f"LPAR {uuid} (instance {instance.id}) is {lpar.state}"
            )
        before = previous.lpars.get(uuid) if previous is not None else None
        if before is not None and not before.running:
            before = None
        return before, lpar, previous, current

    # ---- Ceilometer's inspector methods ---------------------------------------------
    def inspect_instance(self, instance, duration=None):
        before, lpar, previous, current = self._lpar(instance)
        cps = current.cycles_per_second
        usage = None
        if lpar.rmc_mem_bytes and lpar.rmc_pct_free is not None:
            usage = lpar.rmc_mem_bytes * (100 - lpar.rmc_pct_free) / 100 / 2**20
        return stats.InstanceStats(
            power_state=RUNNING,
            cpu_number=lpar.virtual_procs,
            cpu_time=int(lpar.used_cycles * 10**9 // cps) if cps else None,
            cpu_util=_cpu_util(before, lpar, previous, current),
            memory_actual=lpar.logical_mem_mb,
            memory_available=int(lpar.rmc_mem_bytes / 2**20) if lpar.rmc_mem_bytes else None,
            memory_usage=round(usage, 1) if usage is not None else None,
        )

    def inspect_vnics(self, instance, duration=None):
        before, lpar, _, current = self._lpar(instance)
        if self._vnic_pruned is not current:  # forget LPARs gone from the host
            self._vnic_pruned = current
            for key in [k for k in self._vnic_last if k[0] not in current.lpars]:
                del self._vnic_last[key]
        uuid = pvm_uuid.convert_uuid_to_pvm(instance.id).upper()
        for nic in lpar.nics:
            key = (uuid, nic.location)
            # No delta where the LPAR is new here (counters restart) or no new sample.
            last = self._vnic_last.get(key) if before is not None else None
            self._vnic_last[key] = (nic.rx_bytes, nic.tx_bytes)
            rx_last, tx_last = last or (None, None)
            yield virt_inspector.InterfaceStats(
                name=nic.location,
                mac=None,
                fref=None,
                parameters={"adapter_type": nic.kind},
                rx_bytes=nic.rx_bytes,
                tx_bytes=nic.tx_bytes,
                rx_packets=nic.rx_packets,
                tx_packets=nic.tx_packets,
                rx_drop=nic.rx_drop,
                tx_drop=nic.tx_drop,
                rx_errors=nic.rx_errors,
                tx_errors=nic.tx_errors,
                rx_bytes_delta=_delta(rx_last, nic.rx_bytes),
                tx_bytes_delta=_delta(tx_last, nic.tx_bytes),
            )

    def inspect_vnic_rates(self, instance, duration=None):
        before, lpar, previous, current = self._lpar(instance)
        old = {n.location: n for n in before.nics} if before else {}
        seconds = (current.stamp - previous.stamp).total_seconds() if previous else 0
        for nic in lpar.nics:
            prev = old.get(nic.location)
            rx = _delta(prev and prev.rx_bytes, nic.rx_bytes)
            tx = _delta(prev and prev.tx_bytes, nic.tx_bytes)
            yield virt_inspector.InterfaceRateStats(
                name=nic.location,
                mac=None,
                fref=None,
                parameters={"adapter_type": nic.kind},
                rx_bytes_rate=rx / seconds if rx is not None and seconds > 0 else None,
                tx_bytes_rate=tx / seconds if tx is not None and seconds > 0 else None,
            )

    def inspect_disks(self, instance, duration=None):
        _, lpar, _, _ = self._lpar(instance)
        for disk in lpar.disks:
            yield virt_inspector.DiskStats(
                device=disk.location,
                read_bytes=disk.read_bytes,
                read_requests=disk.read_requests,
                write_bytes=disk.write_bytes,
                write_requests=disk.write_requests,
                errors=None,
                wr_total_times=None,
                rd_total_times=None,
            )


def _delta(before: int | None, now: int | None) -> int | None:
    """now - before, or None where there is no honest difference."""
    if before is None or now is None or now < before:
        return None
    return now - before


def _cpu_util(before, lpar, previous, current) -> float | None:
    """Percent of what the LPAR could use at most over the last two samples."""
    if before is None or previous is None or not current.cycles_per_second:
        return None
    used = _delta(before.used_cycles, lpar.used_cycles)
    entitled = _delta(before.entitled_cycles, lpar.entitled_cycles)
    seconds = (current.stamp - previous.stamp).total_seconds()
    if used is None or entitled is None or seconds <= 0:
        return None
    if lpar.mode == _UNCAPPED:
        capacity = lpar.virtual_procs * seconds * current.cycles_per_second
    else:
        capacity = entitled
    if capacity <= 0:
        return None
    return round(min(100.0, 100.0 * used / capacity), 2)
