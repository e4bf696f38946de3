"""Performance and capacity monitoring (``/rest/api/pcm``): preferences and
the long-term (LTM) and short-term (STM) raw metrics, generated from the
emulator's state.

Once LTM is enabled through the preferences (what pypowervm's
``ensure_ltm_monitors`` does), the LongTermMonitor feed lists a phyp, a per-VIOS
and an lpar JSON document for the two latest 30-second samples. With STM
enabled, the ShortTermMonitor feed lists phyp and per-VIOS documents on a
5-second cadence (stm_feed.txt), built by the same functions. A disabled
monitor answers its feed with 204 (no samples) and its documents with 404.
Processor cycles grow with the processing units of running partitions, so CPU
utilisation computed from two samples is plausible; memory and capacity
follow the host's accounting.
"""

from __future__ import annotations

import copy
import datetime
import json
import re
import time
import uuid as uuidlib
from dataclasses import dataclass
from typing import Any

from lxml import etree

from ibmvirt.emulators.novalink import captures, errors
from ibmvirt.emulators.novalink import xmlutil as x
from ibmvirt.emulators.novalink.emulator import Emulator
from ibmvirt.emulators.novalink.state import monitor_sriov, partition, slots, system

SAMPLE_SECONDS = 30
# IBM's LTM documentation: samples are kept on the console for 30 minutes.
RETAIN_SECONDS = 1800
PCM_JSON = "application/vnd.ibm.powervm.pcm.json"
_PREF_FIELDS = (
    "LongTermMonitorEnabled",
    "AggregationEnabled",
    "ShortTermMonitorEnabled",
    "ComputeLTMEnabled",
)


class Pcm:
    """Monitoring preferences and the clock the samples are taken on."""

    def __init__(self) -> None:
        self.prefs = {k: False for k in _PREF_FIELDS}
        self.version = 1
        # The host has notionally been up an hour, so counters are non-zero.
        # Whole seconds: sample times are named to the second.
        self.started = float(int(time.time()) - 3600)
        # Seconds the monitor's clock is ahead of the wall clock (advance()).
        self.skew = 0.0

    def now(self) -> float:
        return time.time() + self.skew

    def etag(self) -> str:
        return str(self.version)


def _pcm(emu: Emulator) -> Pcm:
    return emu.ext.setdefault("pcm", Pcm())


def advance(emu: Emulator, seconds: float) -> None:
    """Move the monitor's clock on, as if ``seconds`` had passed (tests, bench)."""
    with emu.lock:
        _pcm(emu).skew += float(seconds)


def _q(tag: str) -> str:
    return x.q(tag, x.PCM_NS)


def _stamp(t: float, fmt: str = "%Y-%m-%dT%H:%M:%S.000Z") -> str:
    return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime(fmt)


def _mtms(emu: Emulator) -> str:
    assert emu.ms is not None
    return system.mtms_of(emu.ms.elem)


def _pref_feed(emu: Emulator) -> etree._Element:
    assert emu.ms is not None
    pcm = _pcm(emu)
    base = f"{emu.base}/rest/api/pcm/ManagedSystem/{emu.ms.uuid}/preferences"
    f = etree.Element(x.q("feed", x.ATOM_NS), nsmap={None: x.ATOM_NS})
    etree.SubElement(f, x.q("id", x.ATOM_NS)).text = emu.ms.uuid
    etree.SubElement(
        f, x.q("title", x.ATOM_NS), type="text"
    ).text = "Performance and Capacity Monitoring Preferences"
    etree.SubElement(f, x.q("link", x.ATOM_NS), rel="self", href=base)
    etree.SubElement(f, x.q("generator", x.ATOM_NS), uri=x.GENERATOR, version="1")
    e = etree.SubElement(f, x.q("entry", x.ATOM_NS))
    etree.SubElement(e, x.q("id", x.ATOM_NS)).text = str(uuidlib.uuid5(uuidlib.NAMESPACE_URL, base))
    etree.SubElement(e, x.q("updated", x.ATOM_NS)).text = _stamp(pcm.started)
    etree.SubElement(
        e, x.q("title", x.ATOM_NS), type="text"
    ).text = "Performance and Capacity Monitoring Preferences"
    etree.SubElement(e, x.q("published", x.ATOM_NS)).text = _stamp(pcm.started)
    author = etree.SubElement(e, x.q("author", x.ATOM_NS))
    etree.SubElement(author, x.q("name", x.ATOM_NS)).text = x.GENERATOR
    content = etree.SubElement(e, x.q("content", x.ATOM_NS), type="application/xml")
    p = etree.SubElement(
        content, _q("ManagedSystemPcmPreference"), nsmap={None: x.PCM_NS}, schemaVersion="V1_0"
    )
    x.set_atom(p, emu.ms.uuid)
    for c in p.iter():
        c.tag = _q(x.local(c))
    x.sub(p, "SystemName", emu.ms.field("SystemName"), ns=x.PCM_NS)
    mtms = x.sub_container(p, "MachineTypeModelSerialNumber", ns=x.PCM_NS, kb="ROR", kxe="false")
    m = emu.ms.elem.find(x.q("MachineTypeModelAndSerialNumber"))
    for tag in ("MachineType", "Model", "SerialNumber"):
        x.sub(mtms, tag, m.findtext(x.q(tag)), ns=x.PCM_NS)
    for k in _PREF_FIELDS:
        x.sub(p, k, "true" if pcm.prefs[k] else "false", ns=x.PCM_NS, kb="UOD")
    etree.SubElement(
        p,
        _q("AssociatedManagedSystem"),
        kb="ROO",
        kxe="false",
        href=emu.base + emu.ms.path,
        rel="related",
    )
    return f


def _update_prefs(emu: Emulator, body: bytes, if_match: str | None) -> None:
    pcm = _pcm(emu)
    if if_match is not None and if_match != pcm.etag():
        raise errors.RestError(
            412, "PCM preferences changed since they were read; GET the preferences feed again"
        )
    try:
        el = x.parse(body)
    except etree.XMLSyntaxError as exc:
        raise errors.bad_request(f"ManagedSystemPcmPreference is not well-formed: {exc}") from exc
    if x.local(el) != "ManagedSystemPcmPreference":
        raise errors.bad_request(f"Expected ManagedSystemPcmPreference, got {x.local(el)}")
    for k in _PREF_FIELDS:
        v = el.findtext(_q(k))
        if v is not None:
            pcm.prefs[k] = v.strip().lower() == "true"
    # Aggregation is computed from LTM samples, so enabling it turns LTM on
    # (IBM's ManagedSystemPcmPreference documentation).
    if pcm.prefs["AggregationEnabled"]:
        pcm.prefs["LongTermMonitorEnabled"] = True
    pcm.version += 1


# ---- metrics ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Monitor:
    """One raw-metrics collector: its URI segment, file prefix and cadence."""

    name: str  # RawMetrics/<name>
    prefix: str  # <prefix>_<mtms>_<category>_<stamp>.json; also utilInfo.monitoringType
    title: str
    interval: int  # seconds between samples
    listed: int  # samples the feed lists (the newest ones)


LTM = Monitor("LongTermMonitor", "LTM", "LongTermMetrics", SAMPLE_SECONDS, 2)
# stm_feed.txt: three phyp samples five seconds apart.
STM = Monitor("ShortTermMonitor", "STM", "ShortTermMetrics", 5, 3)
MONITORS = {m.name: m for m in (LTM, STM)}
_DOC_NAME = re.compile(r"^(LTM|STM)_(.+)_(phyp|lpar|vios_\d+)_(\d{8}T\d{6}[+-]\d{4})\.json$")


def categories(emu: Emulator, mon: Monitor) -> list[str] | None:
    """Documents each sample of ``mon`` has, or None while it is disabled."""
    prefs = _pcm(emu).prefs
    vioses = [f"vios_{v.field('PartitionID')}" for v in emu.store.list("VirtualIOServer")]
    if mon is STM:
        # RMC (lpar) data is collected for LTM only.
        return ["phyp", *vioses] if prefs["ShortTermMonitorEnabled"] else None
    if not (prefs["LongTermMonitorEnabled"] or prefs["ComputeLTMEnabled"]):
        return None
    if prefs["ComputeLTMEnabled"] and not prefs["LongTermMonitorEnabled"]:
        return ["phyp", "lpar"]  # processor and memory only: no VIOS I/O data
    return ["phyp", "lpar", *vioses]


def _samples(emu: Emulator, mon: Monitor = LTM) -> list[float]:
    """Times of the samples the feed lists, oldest first, on the monitor's grid."""
    pcm = _pcm(emu)
    now = float(int(pcm.now()))
    latest = now - (now - pcm.started) % mon.interval
    return [latest - mon.interval * i for i in range(mon.listed - 1, -1, -1)]


def _running_units(emu: Emulator) -> float:
    total = 0.0
    for p in partition.all_partitions(emu):
        if partition.state(p) == partition.RUNNING:
            total += partition.Sizing(p.elem).units
    return total


def _cycles(emu: Emulator, t: float, units: float, load: float = 0.3) -> int:
    """Utilised cycles since the emulator started, at a steady ``load``."""
    return int(max(t - _pcm(emu).started, 0) * 512_000_000 * units * load)


def _template(name: str) -> dict[str, Any]:
    return json.loads(captures.body_text(name).strip())


def _richest(items: list[dict[str, Any]]) -> dict[str, Any]:
    """The captured list item with the most sections (a running partition's)."""
    return max(items, key=len)


def phyp_json(emu: Emulator, t: float, mon: Monitor = LTM) -> dict[str, Any]:
    doc = _template("phyp_pcm_data.txt")
    info, sample = doc["systemUtil"]["utilInfo"], doc["systemUtil"]["utilSample"]
    assert emu.ms is not None
    info["mtms"], info["name"] = _mtms(emu), emu.ms.field("SystemName")
    info["monitoringType"] = mon.prefix
    sample["timeStamp"] = _stamp(t, "%Y-%m-%dT%H:%M:%S+0000")
    cfg_mem, cfg_units = system.configurable(emu)
    free_mem, free_units = system.available(emu)
    sample["timeBasedCycles"] = float(_cycles(emu, t, cfg_units, 1.0))
    sample["processor"].update(
        totalProcUnits=cfg_units, configurableProcUnits=cfg_units, availableProcUnits=free_units
    )
    sample["memory"].update(totalMem=cfg_mem, availableMem=free_mem, configurableMem=cfg_mem)
    sample["systemFirmware"]["utilizedProcCycles"] = _cycles(emu, t, 0.1)
    for pool in sample.get("sharedProcessorPool", []):
        pool["utilizedPoolCycles"] = _cycles(emu, t, _running_units(emu))
        pool["maxProcUnits"] = cfg_units
    lpar_tmpl, vios_tmpl = _richest(sample["lparsUtil"]), _richest(sample["viosUtil"])
    sample["lparsUtil"] = [
        _part_util(emu, p, lpar_tmpl, t) for p in emu.store.list("LogicalPartition")
    ]
    sample["viosUtil"] = [
        _part_util(emu, p, vios_tmpl, t) for p in emu.store.list("VirtualIOServer")
    ]
    return doc


def _part_util(emu: Emulator, p: Any, tmpl: dict[str, Any], t: float) -> dict[str, Any]:
    d = copy.deepcopy(tmpl)
    s = partition.Sizing(p.elem)
    running = partition.state(p) == partition.RUNNING
    d.update(
        id=int(p.field("PartitionID") or 0),
        uuid=p.uuid,
        name=partition.name_of(p.elem),
        state="Running" if running else "Not Activated",
    )
    if "type" in d:
        d["type"] = "aixlinux"
    d["memory"] = {k: (s.mem if running else 0) for k in d.get("memory", {})}
    proc = d.get("processor", {})
    units = s.units if running else 0.0
    for k in list(proc):
        if k in ("entitledProcCycles",):
            proc[k] = _cycles(emu, t, units, 1.0)
        elif k in ("utilizedCappedProcCycles", "utilizedUnCappedProcCycles"):
            proc[k] = _cycles(emu, t, units, 0.15)
        elif k == "maxProcUnits" or k == "maxVirtualProcessors":
            proc[k] = s.units_max if k == "maxProcUnits" else s.vp_max
        elif k == "mode":
            proc[k] = "dedicated" if s.dedicated else "uncap"
    if "network" in d:
        net = _network(emu, p, d["network"], t) if running else None
        _set_or_drop(d, "network", net)
    if "storage" in d:
        _set_or_drop(d, "storage", _storage(emu, p, d["storage"]) if running else None)
    return d


def _set_or_drop(d: dict[str, Any], key: str, value: dict[str, Any] | None) -> None:
    """Sections a partition has no adapters for are absent, as for a stopped one."""
    if value:
        d[key] = value
    else:
        d.pop(key, None)


def _traffic(emu: Emulator, t: float, tmpl: dict[str, Any], rate: int) -> dict[str, Any]:
    """The template's counters, grown steadily with the host's uptime."""
    up = max(t - _pcm(emu).started, 0)
    out = dict(tmpl)
    for k, v in tmpl.items():
        if isinstance(v, int | float) and not isinstance(v, bool):
            if k.endswith("Bytes"):
                out[k] = int(up * rate * 512)
            elif k.endswith("Packets") and "dropped" not in k:
                out[k] = int(up * rate)
    return out


def _network(emu: Emulator, p: Any, tmpl: dict[str, Any], t: float) -> dict[str, Any]:
    """One virtualEthernetAdapters entry per client network adapter of ``p``."""
    vea_tmpl = tmpl.get("virtualEthernetAdapters", [{}])[0]
    veas = []
    up = max(t - _pcm(emu).started, 0)
    sriov = monitor_sriov.logical_ports(emu, p, up)
    for cna in emu.store.list("ClientNetworkAdapter", parent=p):
        vea = _traffic(emu, t, vea_tmpl, 20)
        vea.update(
            vlanId=int(cna.field("PortVLANID") or 0),
            vswitchId=int(cna.field("VirtualSwitchID") or 0),
            physicalLocation=cna.field("LocationCode") or "",
            isPortVLANID=True,
        )
        veas.append(vea)
    out: dict[str, Any] = {"virtualEthernetAdapters": veas} if veas else {}
    if sriov:
        out["sriovLogicalPorts"] = sriov
    return out


def _maps_to(m: Any, p: Any) -> bool:
    link = m.find(x.q("AssociatedLogicalPartition"))
    href = link.get("href", "") if link is not None else ""
    return href.split("?")[0].rstrip("/").upper().endswith(p.uuid.upper())


def _storage(emu: Emulator, p: Any, tmpl: dict[str, Any]) -> dict[str, Any]:
    """vSCSI and vFC client adapters of ``p``, read from the VIOS mappings."""
    scsi, vfc = {}, {}
    for v in emu.store.list("VirtualIOServer"):
        vid = int(v.field("PartitionID") or 0)
        for m in slots.mappings(v.elem):
            ca, sa = m.find(x.q("ClientAdapter")), m.find(x.q("ServerAdapter"))
            if ca is None or sa is None or not _maps_to(m, p):
                continue
            loc = ca.findtext(x.q("LocationCode")) or ""
            scsi[(vid, loc)] = {
                "physicalLocation": loc,
                "viosId": vid,
                "viosAdapterSlotId": slots.int_of(sa, "VirtualSlotNumber") or 0,
            }
        for m in slots.items(v.elem, "VirtualFibreChannelMappings", "VirtualFibreChannelMapping"):
            ca = m.find(x.q("ClientAdapter"))
            if ca is None or not _maps_to(m, p):
                continue
            loc = ca.findtext(x.q("LocationCode")) or ""
            wwpns = (ca.findtext(x.q("WWPNs")) or "").split()
            vfc[(vid, loc)] = {
                "physicalLocation": loc,
                "viosId": vid,
                "wwpnPair": [int(w, 16) for w in wwpns],
            }
    out: dict[str, Any] = {}
    if scsi and "genericVirtualAdapters" in tmpl:
        out["genericVirtualAdapters"] = list(scsi.values())
    if vfc and "virtualFiberChannelAdapters" in tmpl:
        out["virtualFiberChannelAdapters"] = list(vfc.values())
    return out


def vios_json(emu: Emulator, v: Any, t: float, mon: Monitor = LTM) -> dict[str, Any]:
    doc = _template("vios_pcm_data.txt")
    sample = doc["systemUtil"]["utilSample"]
    doc["systemUtil"]["utilInfo"]["mtms"] = _mtms(emu)
    doc["systemUtil"]["utilInfo"]["monitoringType"] = mon.prefix
    sample["timeStamp"] = _stamp(t, "%Y-%m-%dT%H:%M:%S+0000")
    vu = sample["viosUtil"][0]
    vu["id"], vu["name"] = str(v.field("PartitionID")), partition.name_of(v.elem)
    stg = vu.get("storage")
    if stg is not None and stg.get("genericVirtualAdapters"):
        stg["genericVirtualAdapters"] = _vhosts(emu, v, stg["genericVirtualAdapters"][0], t)
    if stg is not None and stg.get("fiberChannelAdapters"):
        stg["fiberChannelAdapters"] = _fc_ports(emu, v, stg["fiberChannelAdapters"], t)
    sample["viosUtil"] = [vu]
    return doc


def _fc_ports(emu: Emulator, v: Any, tmpl: list[dict[str, Any]], t: float) -> list[dict[str, Any]]:
    """The VIOS's physical FC ports, each with the vFC server adapters on it."""
    port_tmpl = _richest(tmpl)
    vfc_tmpl = next((p["ports"][0] for p in tmpl if p.get("ports")), {})
    maps = slots.items(v.elem, "VirtualFibreChannelMappings", "VirtualFibreChannelMapping")
    out = []
    for port in v.elem.iter(x.q("PhysicalFibreChannelPort")):
        wwpn = (port.findtext(x.q("WWPN")) or "").lower()
        d = _traffic(emu, t, port_tmpl, 8)
        d.update(
            id=port.findtext(x.q("PortName")) or "",
            wwpn=wwpn,
            physicalLocation=port.findtext(x.q("LocationCode")) or "",
        )
        vfcs = []
        for m in maps:
            sa, ca = m.find(x.q("ServerAdapter")), m.find(x.q("ClientAdapter"))
            on = (m.findtext(f"{x.q('Port')}/{x.q('WWPN')}") or "").lower()
            if sa is None or ca is None or on != wwpn:
                continue
            vd = _traffic(emu, t, vfc_tmpl, 4)
            vd.update(
                id=sa.findtext(x.q("AdapterName")) or "",
                wwpn=((ca.findtext(x.q("WWPNs")) or "").lower().split() or [""])[0],
                physicalLocation=sa.findtext(x.q("LocationCode")) or "",
            )
            vfcs.append(vd)
        d["ports"] = vfcs
        out.append(d)
    return out


def _vhosts(emu: Emulator, v: Any, tmpl: dict[str, Any], t: float) -> list[dict[str, Any]]:
    """The VIOS's vSCSI server adapters, so client storage pairs by slot."""
    seen: dict[str, dict[str, Any]] = {}
    for m in slots.mappings(v.elem):
        sa = m.find(x.q("ServerAdapter"))
        loc = sa.findtext(x.q("LocationCode")) if sa is not None else None
        if sa is None or not loc or loc in seen:
            continue
        d = _traffic(emu, t, tmpl, 4)
        d.update(id=sa.findtext(x.q("AdapterName")) or "", type="virtual", physicalLocation=loc)
        seen[loc] = d
    return list(seen.values())


def lpar_json(emu: Emulator, t: float) -> dict[str, Any]:
    doc = _template("lpar_pcm_data.txt")
    tmpl = doc["lparUtil"][0]
    out = []
    for p in emu.store.list("LogicalPartition"):
        if (
            partition.state(p) != partition.RUNNING
            or p.field("ResourceMonitoringControlState") != "active"
        ):
            continue
        d = copy.deepcopy(tmpl)
        s = partition.Sizing(p.elem)
        d.update(
            uuid=p.uuid,
            id=str(p.field("PartitionID")),
            name=partition.name_of(p.elem),
            timeStamp=_stamp(t, "%Y%m%dT%H%M%S+0000"),
        )
        d["memory"]["realMemSizeBytes"] = s.mem * 1024 * 1024
        out.append(d)
    doc["lparUtil"] = out
    return doc


def _metrics_feed(emu: Emulator, mon: Monitor) -> etree._Element | None:
    """The monitor's Atom feed of JSON document links; None while it is disabled."""
    cats = categories(emu, mon)
    if cats is None:
        return None
    assert emu.ms is not None
    base = f"{emu.base}/rest/api/pcm/ManagedSystem/{emu.ms.uuid}/RawMetrics/{mon.name}"
    samples = _samples(emu, mon)
    f = etree.Element(x.q("feed", x.ATOM_NS), nsmap={None: x.ATOM_NS})
    etree.SubElement(f, x.q("id", x.ATOM_NS)).text = emu.ms.uuid
    etree.SubElement(f, x.q("updated", x.ATOM_NS)).text = _stamp(samples[-1])
    etree.SubElement(f, x.q("title", x.ATOM_NS), type="text").text = mon.title
    etree.SubElement(
        f, x.q("subtitle", x.ATOM_NS), type="text"
    ).text = f"ManagedSystem {emu.ms.uuid}"
    etree.SubElement(f, x.q("link", x.ATOM_NS), rel="self", href=base)
    etree.SubElement(f, x.q("generator", x.ATOM_NS), uri=x.GENERATOR, version="1")
    mtms = _mtms(emu)
    for t in samples:
        for cat in cats:
            name = f"{mon.prefix}_{mtms}_{cat}_{_stamp(t, '%Y%m%dT%H%M%S+0000')}.json"
            e = etree.SubElement(f, x.q("entry", x.ATOM_NS))
            etree.SubElement(e, x.q("id", x.ATOM_NS)).text = str(
                uuidlib.uuid5(uuidlib.NAMESPACE_URL, name)
            )
            etree.SubElement(e, x.q("updated", x.ATOM_NS)).text = _stamp(t)
            etree.SubElement(e, x.q("title", x.ATOM_NS), type="text").text = name
            etree.SubElement(e, x.q("published", x.ATOM_NS)).text = _stamp(t)
            etree.SubElement(e, x.q("link", x.ATOM_NS), type=PCM_JSON, href=f"{base}/{name}")
            author = etree.SubElement(e, x.q("author", x.ATOM_NS))
            etree.SubElement(author, x.q("name", x.ATOM_NS)).text = x.GENERATOR
            etree.SubElement(e, x.q("category", x.ATOM_NS), term=cat)
    return f


def _json_doc(emu: Emulator, name: str, mon: Monitor = LTM) -> dict[str, Any]:
    """A listed (or still retained) sample document; 404 for anything else."""
    missing = errors.not_found(f"{mon.name} document", name)
    m = _DOC_NAME.match(name)
    if m is None or m.group(1) != mon.prefix or m.group(2) != _mtms(emu):
        raise missing
    cat = m.group(3)
    try:
        t = datetime.datetime.strptime(m.group(4), "%Y%m%dT%H%M%S%z").timestamp()
    except ValueError as exc:
        raise missing from exc
    with emu.lock:
        cats = categories(emu, mon)
        age = _pcm(emu).now() - t
        on_grid = (t - _pcm(emu).started) % mon.interval == 0
        if cats is None or cat not in cats or not on_grid or not 0 <= age <= RETAIN_SECONDS:
            raise missing
        if cat == "phyp":
            return phyp_json(emu, t, mon)
        if cat == "lpar":
            return lpar_json(emu, t)
        pid = cat[len("vios_") :]
        v = next(
            (o for o in emu.store.list("VirtualIOServer") if o.field("PartitionID") == pid),
            None,
        )
        if v is None:
            raise missing
        return vios_json(emu, v, t, mon)


def pcm_route(handler: Any, verb: str, segs: list[str], qs: dict[str, str], body: bytes) -> None:
    emu: Emulator = handler.emu
    if (
        len(segs) < 3
        or segs[0] != "ManagedSystem"
        or emu.ms is None
        or (segs[1].upper() != emu.ms.uuid.upper())
    ):
        raise errors.RestError(404, f"pcm/{'/'.join(segs)} is not a monitoring resource here")
    if segs[2] == "preferences" and len(segs) == 3:
        if verb == "GET":
            return handler.send_xml(200, _pref_feed(emu), _pcm(emu).etag())
        if verb == "POST":
            _update_prefs(emu, body, handler.headers.get("If-Match"))
            return handler.send_xml(200, _pref_feed(emu), _pcm(emu).etag())
    mon = MONITORS.get(segs[3]) if len(segs) > 3 and segs[2] == "RawMetrics" else None
    if mon is not None and verb == "GET":
        if len(segs) == 4:
            with emu.lock:
                feed = _metrics_feed(emu, mon)
            if feed is None:
                return handler.send(204)
            return handler.send_xml(200, feed)
        if len(segs) == 5:
            doc = _json_doc(emu, segs[4], mon)
            return handler.send(200, json.dumps(doc).encode(), PCM_JSON)
    raise errors.RestError(405, f"{verb} pcm/{'/'.join(segs)} is not supported")


def register(emu: Emulator) -> None:
    emu.web_routes["__pcm__"] = pcm_route
