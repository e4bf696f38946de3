"""Performance and capacity monitoring (``/rest/api/pcm``): preferences and
long-term monitor (LTM) raw metrics, generated from the emulator's state.

Once LTM is enabled through the preferences (what pypowervm's
``ensure_ltm_monitors`` does), the LongTermMonitor feed lists a phyp, a per-VIOS
and an lpar JSON document for the two latest 30-second samples. Processor
cycles grow with the processing units of running partitions, so CPU
utilisation computed from two samples is plausible; memory and capacity
follow the host's accounting.
"""

from __future__ import annotations

import copy
import datetime
import json
import time
import uuid as uuidlib
from typing import Any

from lxml import etree

from ibmvirt.emulators.novalink import captures, errors
from ibmvirt.emulators.novalink import xmlutil as x
from ibmvirt.emulators.novalink.emulator import Emulator
from ibmvirt.emulators.novalink.state import lpar, system

SAMPLE_SECONDS = 30
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
        self.started = time.time() - 3600

    def etag(self) -> str:
        return str(self.version)


def _pcm(emu: Emulator) -> Pcm:
    return emu.ext.setdefault("pcm", Pcm())


def _q(tag: str) -> str:
    return x.q(tag, x.PCM_NS)


def _stamp(t: float, fmt: str = "%Y-%m-%dT%H:%M:%S.000Z") -> str:
    return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime(fmt)


def _mtms(emu: Emulator) -> str:
    assert emu.ms is not None
    m = emu.ms.elem.find(x.q("MachineTypeModelAndSerialNumber"))
    return (
        f"{m.findtext(x.q('MachineType'))}-{m.findtext(x.q('Model'))}*"
        f"{m.findtext(x.q('SerialNumber'))}"
    )


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
    pcm.version += 1


# ---- metrics ------------------------------------------------------------------------------
def _samples(emu: Emulator) -> list[float]:
    pcm = _pcm(emu)
    now = time.time()
    latest = now - (now - pcm.started) % SAMPLE_SECONDS
    return [latest - SAMPLE_SECONDS, latest]


def _running_units(emu: Emulator) -> float:
    total = 0.0
    for p in lpar.all_partitions(emu):
        if lpar.state(p) == lpar.RUNNING:
            total += lpar.Sizing(p.elem).units
    return total


def _cycles(emu: Emulator, t: float, units: float, load: float = 0.3) -> int:
    """Utilised cycles since the emulator started, at a steady ``load``."""
    return int(max(t - _pcm(emu).started, 0) * 512_000_000 * units * load)


def _template(name: str) -> dict[str, Any]:
    return json.loads(captures.body_text(name).strip())


def phyp_json(emu: Emulator, t: float) -> dict[str, Any]:
    doc = _template("phyp_pcm_data.txt")
    info, sample = doc["systemUtil"]["utilInfo"], doc["systemUtil"]["utilSample"]
    assert emu.ms is not None
    info["mtms"], info["name"] = _mtms(emu), emu.ms.field("SystemName")
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
    lpar_tmpl, vios_tmpl = sample["lparsUtil"][0], sample["viosUtil"][0]
    sample["lparsUtil"] = [
        _part_util(emu, p, lpar_tmpl, t) for p in emu.store.list("LogicalPartition")
    ]
    sample["viosUtil"] = [
        _part_util(emu, p, vios_tmpl, t) for p in emu.store.list("VirtualIOServer")
    ]
    return doc


def _part_util(emu: Emulator, p: Any, tmpl: dict[str, Any], t: float) -> dict[str, Any]:
    d = copy.deepcopy(tmpl)
    s = lpar.Sizing(p.elem)
    running = lpar.state(p) == lpar.RUNNING
    d.update(
        id=int(p.field("PartitionID") or 0),
        uuid=p.uuid,
        name=lpar.name_of(p.elem),
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
        elif k in ("utilizedCappedProcCycles", "utilizedUncappedProcCycles"):
            proc[k] = _cycles(emu, t, units, 0.15)
        elif k == "maxProcUnits" or k == "maxVirtualProcessors":
            proc[k] = s.units_max if k == "maxProcUnits" else s.vp_max
        elif k == "mode":
            proc[k] = "dedicated" if s.dedicated else "uncap"
    return d


def vios_json(emu: Emulator, v: Any, t: float) -> dict[str, Any]:
    doc = _template("vios_pcm_data.txt")
    sample = doc["systemUtil"]["utilSample"]
    doc["systemUtil"]["utilInfo"]["mtms"] = _mtms(emu)
    sample["timeStamp"] = _stamp(t, "%Y-%m-%dT%H:%M:%S+0000")
    vu = sample["viosUtil"][0]
    vu["id"], vu["name"] = str(v.field("PartitionID")), lpar.name_of(v.elem)
    sample["viosUtil"] = [vu]
    return doc


def lpar_json(emu: Emulator, t: float) -> dict[str, Any]:
    doc = _template("lpar_pcm_data.txt")
    tmpl = doc["lparUtil"][0]
    out = []
    for p in emu.store.list("LogicalPartition"):
        if lpar.state(p) != lpar.RUNNING or p.field("ResourceMonitoringControlState") != "active":
            continue
        d = copy.deepcopy(tmpl)
        s = lpar.Sizing(p.elem)
        d.update(
            uuid=p.uuid,
            id=str(p.field("PartitionID")),
            name=lpar.name_of(p.elem),
            timeStamp=_stamp(t, "%Y%m%dT%H%M%S+0000"),
        )
        d["memory"]["realMemSizeBytes"] = s.mem * 1024 * 1024
        out.append(d)
    doc["lparUtil"] = out
    return doc


def _ltm_feed(emu: Emulator) -> etree._Element | None:
    pcm = _pcm(emu)
    if not (pcm.prefs["LongTermMonitorEnabled"] or pcm.prefs["ComputeLTMEnabled"]):
        return None
    assert emu.ms is not None
    base = f"{emu.base}/rest/api/pcm/ManagedSystem/{emu.ms.uuid}/RawMetrics/LongTermMonitor"
    f = etree.Element(x.q("feed", x.ATOM_NS), nsmap={None: x.ATOM_NS})
    etree.SubElement(f, x.q("id", x.ATOM_NS)).text = emu.ms.uuid
    etree.SubElement(f, x.q("updated", x.ATOM_NS)).text = _stamp(time.time())
    etree.SubElement(f, x.q("title", x.ATOM_NS), type="text").text = "LongTermMetrics"
    etree.SubElement(f, x.q("link", x.ATOM_NS), rel="self", href=base)
    etree.SubElement(f, x.q("generator", x.ATOM_NS), uri=x.GENERATOR, version="1")
    mtms = _mtms(emu)
    for t in _samples(emu):
        cats = ["phyp", "lpar"]
        if not pcm.prefs["ComputeLTMEnabled"] or pcm.prefs["LongTermMonitorEnabled"]:
            cats += [f"vios_{v.field('PartitionID')}" for v in emu.store.list("VirtualIOServer")]
        for cat in cats:
            name = f"LTM_{mtms}_{cat}_{_stamp(t, '%Y%m%dT%H%M%S+0000')}.json"
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


def _json_doc(emu: Emulator, name: str) -> dict[str, Any]:
    # LTM_<mtms>_<category>_<YYYYmmddTHHMMSS+0000>.json
    try:
        stem = name[: -len(".json")]
        rest, ts = stem.rsplit("_", 1)
        cat = rest.split("_", 2)[2]
        t = datetime.datetime.strptime(ts, "%Y%m%dT%H%M%S%z").timestamp()
    except (ValueError, IndexError) as exc:
        raise errors.not_found("LongTermMonitor document", name) from exc
    with emu.lock:
        if cat == "phyp":
            return phyp_json(emu, t)
        if cat == "lpar":
            return lpar_json(emu, t)
        if cat.startswith("vios_"):
            pid = cat[len("vios_") :]
            v = next(
                (o for o in emu.store.list("VirtualIOServer") if o.field("PartitionID") == pid),
                None,
            )
            if v is not None:
                return vios_json(emu, v, t)
    raise errors.not_found("LongTermMonitor document", name)


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
    if segs[2:4] == ["RawMetrics", "LongTermMonitor"] and verb == "GET":
        if len(segs) == 4:
            feed = _ltm_feed(emu)
            if feed is None:
                return handler.send(204)
            return handler.send_xml(200, feed)
        if len(segs) == 5:
            doc = _json_doc(emu, segs[4])
            return handler.send(200, json.dumps(doc).encode(), PCM_JSON)
    raise errors.RestError(405, f"{verb} pcm/{'/'.join(segs)} is not supported")


def register(emu: Emulator) -> None:
    emu.web_routes["__pcm__"] = pcm_route
