"""PowerVM performance monitor (PCM) long-term samples, read in bulk through pypowervm.

One read is the LongTermMonitor feed plus the newest sample's documents: phyp
(every partition's processor, memory, virtual Ethernet, SR-IOV and storage
adapter pointers), one per VIOS (the storage adapters' traffic) and lpar (RMC
memory inside the partitions). That is 3 + VIOSes requests whatever the number
of LPARs, and only the feed when the newest sample is the one already held
(the monitor samples every 30 s). Parsing and the client-to-VIOS storage
pairing are pypowervm's (``wrappers.pcm``, ``tasks.monitor.lpar``).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from pypowervm.tasks.monitor import lpar as lpar_mon
from pypowervm.tasks.monitor import util as mon_util
from pypowervm.wrappers import managed_system as pvm_ms
from pypowervm.wrappers import monitor as pvm_mon
from pypowervm.wrappers.pcm import lpar as lpar_pcm
from pypowervm.wrappers.pcm import phyp as phyp_pcm
from pypowervm.wrappers.pcm import vios as vios_pcm

RUNNING_STATES = frozenset({"running", "open firmware"})


@dataclass(frozen=True)
class Nic:
    """Counters of one client network adapter or SR-IOV port (None: not reported)."""

    location: str
    kind: str  # "cna" or "sriov"
    rx_bytes: int | None
    tx_bytes: int | None
    rx_packets: int | None
    tx_packets: int | None
    rx_drop: int | None
    tx_drop: int | None
    rx_errors: int | None
    tx_errors: int | None


@dataclass(frozen=True)
class Disk:
    """Counters of one client storage adapter (vSCSI or virtual FC)."""

    location: str
    kind: str  # "vscsi" or "vfc"
    read_requests: int
    write_requests: int
    read_bytes: int
    write_bytes: int


@dataclass(frozen=True)
class Lpar:
    """What one sample says about one partition."""

    uuid: str
    state: str
    mode: str  # "cap", "uncap", "dedicated", ...
    virtual_procs: int
    proc_units: float
    entitled_cycles: int
    used_cycles: int  # capped + uncapped - idle - donated (ceilometer-powervm's reading)
    logical_mem_mb: int | None
    rmc_mem_bytes: int | None
    rmc_pct_free: float | None
    nics: list[Nic] = field(default_factory=list)
    disks: list[Disk] = field(default_factory=list)

    @property
    def running(self) -> bool:
        return self.state.lower() in RUNNING_STATES


@dataclass(frozen=True)
class Sample:
    """One long-term sample of the whole host."""

    stamp: datetime.datetime
    cycles_per_second: int
    lpars: dict[str, Lpar]


def host_uuid(adapter) -> str:
    """The one managed system behind this NovaLink."""
    return pvm_ms.System.get(adapter)[0].uuid


def ensure_ltm(adapter, host: str) -> bool:
    """Switch the long-term monitor on if it is off; True if it had to be.

    pypowervm's ensure_ltm_monitors always writes the preferences; this reads
    them first, so a host where LTM is already on costs one GET.
    """
    href = adapter.build_href(
        pvm_ms.System.schema_type,
        root_id=host,
        child_type=pvm_mon.PREFERENCES,
        service=pvm_mon.PCM_SERVICE,
    )
    resp = adapter.read_by_href(href)
    pref = pvm_mon.PcmPref.wrap(resp)[0]
    if pref.ltm_enabled:
        return False
    pref.ltm_enabled = True
    adapter.update(
        pref.entry.element,
        resp.etag,
        pvm_ms.System.schema_type,
        root_id=host,
        child_type=pvm_mon.PREFERENCES,
        service=pvm_mon.PCM_SERVICE,
    )
    return True


def _newest(entries, category: str):
    found = [e for e in entries if e.category == category]
    return max(found, key=lambda e: e.updated_datetime) if found else None


def read(adapter, host: str, held: Sample | None) -> Sample | None:
    """The newest sample (``held`` if it is still the newest); None if LTM is off."""
    entries = mon_util.query_ltm_feed(adapter, host)
    phyp_entry = _newest(entries, "phyp")
    if phyp_entry is None:
        return None
    if held is not None and phyp_entry.updated_datetime == held.stamp:
        return held
    phyp = phyp_pcm.PhypInfo(adapter.read_by_href(phyp_entry.link, xag=[]).body)
    vioses = [
        vios_pcm.ViosInfo(adapter.read_by_href(e.link, xag=[]).body)
        for e in entries
        if e.category.startswith("vios_") and e.updated_datetime == phyp_entry.updated_datetime
    ]
    lpar_entry = _newest(entries, "lpar")
    rmc = (
        lpar_pcm.LparInfo(adapter.read_by_href(lpar_entry.link, xag=[]).body)
        if lpar_entry is not None
        else None
    )
    cps = (phyp.sample.processor.proc_cycles_per_sec if phyp.sample.processor else 0) or 0
    lpars = {}
    for s in phyp.sample.lpars:
        lpars[s.uuid.upper()] = _lpar(s, vioses, rmc.find(s.uuid) if rmc else None)
    return Sample(phyp_entry.updated_datetime, int(cps), lpars)


def _lpar(s, vioses, rmc) -> Lpar:
    p = s.processor
    used = (
        (p.util_cap_proc_cycles or 0)
        + (p.util_uncap_proc_cycles or 0)
        - (p.idle_proc_cycles or 0)
        - (p.donated_proc_cycles or 0)
    )
    mem = rmc.memory if rmc is not None else None
    pct_free = None
    if mem is not None:
        # pct_real_mem_avbl (newer RSCT) does not count file cache as used.
        avbl = mem.pct_real_mem_avbl
        pct_free = avbl if avbl is not None else mem.pct_real_mem_free
    return Lpar(
        uuid=s.uuid.upper(),
        state=s.state or "",
        mode=p.mode or "",
        virtual_procs=int(p.virt_procs or 0),
        proc_units=float(p.proc_units or 0),
        entitled_cycles=int(p.entitled_proc_cycles or 0),
        used_cycles=max(int(used), 0),
        logical_mem_mb=s.memory.logical_mem if s.memory else None,
        rmc_mem_bytes=mem.real_mem_size_bytes if mem is not None else None,
        rmc_pct_free=pct_free,
        nics=_nics(s.network),
        disks=_disks(s.storage, vioses),
    )


def _nics(net) -> list[Nic]:
    if net is None:
        return []
    out = [
        Nic(
            v.physical_location,
            "cna",
            v.received_bytes,
            v.sent_bytes,
            v.received_packets,
            v.sent_packets,
            v.dropped_packets,  # PCM counts one dropped figure per adapter
            None,
            None,
            None,
        )
        for v in net.veas
    ]
    out += [
        Nic(
            p.physical_location,
            "sriov",
            p.recevied_bytes,  # sic: pypowervm's attribute name
            p.sent_bytes,
            p.received_packets,
            p.sent_packets,
            p.dropped_received_packets,
            p.dropped_sent_packets,
            p.error_in,
            p.error_out,
        )
        for p in net.sriov_ports
    ]
    return out


def _disks(storage, vioses) -> list[Disk]:
    """Client adapters paired with their VIOS-side counters (pypowervm's pairing)."""
    if storage is None:
        return []
    out = []
    pairs = [(a, "vscsi", lpar_mon.LparStorage._find_vio_vstor_adpt) for a in storage.v_stor_adpts]
    pairs += [(a, "vfc", lpar_mon.LparStorage._find_vio_vfc_adpt) for a in storage.v_fc_adpts]
    for client, kind, find in pairs:
        server = find(client, vioses)
        if server is None:
            continue
        out.append(
            Disk(
                client.physical_location,
                kind,
                int(server.num_reads or 0),
                int(server.num_writes or 0),
                int(server.read_bytes or 0),
                int(server.write_bytes or 0),
            )
        )
    return out
