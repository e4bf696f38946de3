"""Short-term monitor behaviour, and the monitoring and event-feed responses
compared with pypowervm's captures: every field a capture fills is filled,
with the same type, in what the emulator serves for the same request."""

from __future__ import annotations

import datetime

import pypowervm.const as pvm_const
import pypowervm.exceptions as pvm_exc
import pytest
from pypowervm import adapter as pvm_adpt
from pypowervm.tasks import power as pvm_power
from pypowervm.tasks import scsi_mapper as tsk_map
from pypowervm.tasks import storage as tsk_stg
from pypowervm.tasks import vfc_mapper
from pypowervm.tasks.monitor import lpar as lpar_mon
from pypowervm.tasks.monitor import util as mon_util
from pypowervm.tests.test_utils import pvmhttp
from pypowervm.wrappers import event as pvm_event
from pypowervm.wrappers import logical_partition as pvm_lpar
from pypowervm.wrappers import managed_system as pvm_ms
from pypowervm.wrappers import monitor as pvm_mon
from pypowervm.wrappers import storage as pvm_stg
from pypowervm.wrappers import virtual_io_server as pvm_vios
from pypowervm.wrappers.pcm import lpar as pcm_lpar
from pypowervm.wrappers.pcm import phyp as pcm_phyp
from pypowervm.wrappers.pcm import vios as pcm_vios

from .test_fidelity import _allowed, _captured, _filled, missing_fields
from .test_lpar import build

# Fields a capture fills that the emulator leaves empty, each with the reason.
NOT_MODELLED = {
    "event_feed.txt": {
        "entry.etag": "the Event entry is built by server.py without an entry etag; "
        "pypowervm never reads an Event's etag",
    },
}


# ---- helpers --------------------------------------------------------------------------------
def _kind(v):
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int | float):
        return "number"
    return type(v).__name__


def _json_filled(obj, prefix="", out=None):
    """{dotted path: type} of every filled attribute of a pypowervm PCM JSON
    wrapper (plain objects, not ElementWrappers), recursing like ``_filled``."""
    out = {} if out is None else out
    names = {n for n in vars(obj) if not n.startswith("_")}
    names |= {n for n in dir(type(obj)) if isinstance(getattr(type(obj), n, None), property)}
    for name in sorted(names):
        v = getattr(obj, name)
        if v is None or (isinstance(v, str | list | dict) and not v):
            continue
        path = prefix + name
        items = v if isinstance(v, list) else [v]
        nested = [i for i in items if type(i).__module__.startswith("pypowervm.wrappers.pcm")]
        if nested:
            out.setdefault(path, "wrapper")
            for item in nested:
                _json_filled(item, path + ".", out)
        else:
            out.setdefault(path, _kind(v))
    return out


def _captured_json(cls, name):
    """A capture whose body is PCM JSON (not Atom), parsed by ``cls``."""
    return cls(pvmhttp.PVMFile(name).body)


class _All:
    """Lets ``_captured`` return every entry of a captured feed, not the first."""

    def __init__(self, cls):
        self.cls = cls

    def wrap(self, response):
        return [self.cls.wrap(response)]


def _stm_path(host_uuid):
    return pvm_adpt.Adapter.build_path(
        pvm_mon.PCM_SERVICE,
        pvm_ms.System.schema_type,
        root_id=host_uuid,
        child_type=pvm_mon.RAW_METRICS,
        child_id=pvm_mon.SHORT_TERM_MONITOR,
        xag=[],
    )


def _prefs(adapter, host_uuid):
    href = adapter.build_href(
        pvm_ms.System.schema_type,
        root_id=host_uuid,
        child_type=pvm_mon.PREFERENCES,
        service=pvm_mon.PCM_SERVICE,
    )
    resp = adapter.read_by_href(href)
    return resp, pvm_mon.PcmPref.wrap(resp)[0]


def _set_stm(adapter, host_uuid, enabled):
    """Toggle STM the way a pypowervm user does (feed etag, entry element)."""
    resp, pref = _prefs(adapter, host_uuid)
    pref.stm_enabled = enabled
    adapter.update(
        pref.entry.element,
        resp.etag,
        pvm_ms.System.schema_type,
        root_id=host_uuid,
        child_type=pvm_mon.PREFERENCES,
        service=pvm_mon.PCM_SERVICE,
    )


def _stm_feed(adapter, host_uuid):
    return pvm_mon.STMMetrics.wrap(adapter.read_by_path(_stm_path(host_uuid)))


def _entry_props(wrapped):
    return {k for k, v in wrapped.entry.properties.items() if v not in (None, "")}


# ---- short-term monitor --------------------------------------------------------------------
def test_stm_feed_empty_until_enabled_then_lists_five_second_samples(adapter, host):
    assert _stm_feed(adapter, host.uuid) == []
    mon_util.ensure_ltm_monitors(adapter, host.uuid)  # LTM does not turn STM on
    assert _stm_feed(adapter, host.uuid) == []
    _set_stm(adapter, host.uuid, True)
    assert _prefs(adapter, host.uuid)[1].stm_enabled is True
    feed = _stm_feed(adapter, host.uuid)
    assert sorted({m.category for m in feed}) == ["phyp", "vios_2", "vios_3"]
    times = sorted({m.updated_datetime for m in feed})
    assert len(times) == 3
    assert [b - a for a, b in zip(times, times[1:], strict=False)] == [
        datetime.timedelta(seconds=5)
    ] * 2
    assert all(m.title.startswith("STM_") and "/ShortTermMonitor/" in m.link for m in feed)
    # LTM is unaffected by the STM switch.
    assert {m.category for m in mon_util.query_ltm_feed(adapter, host.uuid)} >= {"phyp", "lpar"}


def test_stm_documents_follow_the_host(adapter, host):
    _set_stm(adapter, host.uuid, True)
    lpar = build(adapter, host).create(parent=host)
    feed = _stm_feed(adapter, host.uuid)
    latest = max(m.updated_datetime for m in feed)
    phyp_link = next(m.link for m in feed if m.category == "phyp" and m.updated_datetime == latest)
    before = pcm_phyp.PhypInfo(adapter.read_by_href(phyp_link).body)
    assert before.info.monitoring_type == "STM"
    assert len(before.sample.lpars) == 2  # NovaLink and the new, stopped vm1
    pvm_power.power_on(lpar, host.uuid)
    host = host.refresh()
    now = pcm_phyp.PhypInfo(adapter.read_by_href(phyp_link).body)
    assert now.sample.processor.available_proc_units == host.proc_units_avail
    assert now.sample.memory.available_mem == host.memory_free
    vm1 = next(s for s in now.sample.lpars if s.uuid == lpar.uuid)
    assert vm1.state == "Running" and vm1.processor.entitled_proc_cycles > 0
    vios_links = [m.link for m in feed if m.category.startswith("vios_")]
    names = sorted(
        pcm_vios.ViosInfo(adapter.read_by_href(li).body).sample.name for li in vios_links
    )
    assert names == ["vios1", "vios1", "vios1", "vios2", "vios2", "vios2"]


def test_stm_documents_refused_once_disabled(adapter, host):
    _set_stm(adapter, host.uuid, True)
    link = _stm_feed(adapter, host.uuid)[0].link
    adapter.read_by_href(link)
    _set_stm(adapter, host.uuid, False)
    assert _stm_feed(adapter, host.uuid) == []
    with pytest.raises(pvm_exc.HttpError) as err:
        adapter.read_by_href(link)
    assert err.value.response.status == 404
    # A document name off the sample grid, or from the other monitor, is unknown.
    _set_stm(adapter, host.uuid, True)
    link = _stm_feed(adapter, host.uuid)[0].link
    stamp = link.rsplit("_", 1)[1][: -len(".json")]
    off_grid = datetime.datetime.strptime(stamp, "%Y%m%dT%H%M%S%z") + datetime.timedelta(seconds=1)
    for bad in (
        link.replace("/ShortTermMonitor/STM_", "/ShortTermMonitor/LTM_"),
        link.replace(stamp, off_grid.strftime("%Y%m%dT%H%M%S%z")),
    ):
        with pytest.raises(pvm_exc.HttpError) as err:
            adapter.read_by_href(bad)
        assert err.value.response.status == 404


def test_aggregation_turns_ltm_on(adapter, host):
    resp, pref = _prefs(adapter, host.uuid)
    pref.aggregation_enabled = True
    adapter.update(
        pref.entry.element,
        resp.etag,
        pvm_ms.System.schema_type,
        root_id=host.uuid,
        child_type=pvm_mon.PREFERENCES,
        service=pvm_mon.PCM_SERVICE,
    )
    pref = _prefs(adapter, host.uuid)[1]
    assert pref.aggregation_enabled is True and pref.ltm_enabled is True
    assert mon_util.query_ltm_feed(adapter, host.uuid) != []


def test_vm_metrics_pair_client_storage_and_network_with_the_vios(adapter, busy_host):
    """pypowervm's per-VM metrics find vm1's vSCSI adapter on the VIOS by slot,
    and the VIOS sample lists the VIOS's own FC ports."""
    lpar = pvm_lpar.LPAR.search(adapter, name="vm1")[0]
    _, phyp, vioses, lpars = mon_util.latest_stats(adapter, busy_host.uuid)
    metric = mon_util.vm_metrics(phyp, vioses, lpars)[lpar.uuid]
    assert isinstance(metric, lpar_mon.LparMetric)
    assert [a.vlan_id for a in metric.network.cnas] == [100]
    assert len(metric.storage.virt_adpts) == 1
    assert metric.storage.virt_adpts[0].name.startswith("vhost")
    vios1 = next(
        v for v in pvm_vios.VIOS.get(adapter, xag=[pvm_const.XAG.VIO_FMAP]) if v.name == "vios1"
    )
    sample = next(v.sample for v in vioses if v.sample.name == "vios1")
    assert {a.wwpn for a in sample.storage.fc_adpts} == {p.wwpn.lower() for p in vios1.pfc_ports}
    vfc = [port for a in sample.storage.fc_adpts for port in a.ports]
    assert [port.wwpn for port in vfc] == ["c05076079cff0e56"]


# ---- capture comparisons -------------------------------------------------------------------
def test_pcm_preferences_fill_what_the_capture_does(adapter, host):
    real = _filled(_captured(pvm_mon.PcmPref, "pcm_pref.txt"))
    emulated = _filled(_prefs(adapter, host.uuid)[1])
    assert not missing_fields(real, emulated, NOT_MODELLED.get("pcm_pref.txt", {}))


@pytest.mark.parametrize(
    ("capture", "cls"),
    [("ltm_feed.txt", pvm_mon.LTMMetrics), ("stm_feed.txt", pvm_mon.STMMetrics)],
)
def test_metric_feed_entries_fill_what_the_capture_does(adapter, host, capture, cls):
    mon_util.ensure_ltm_monitors(adapter, host.uuid)
    _set_stm(adapter, host.uuid, True)
    real_all = _captured(_All(cls), capture)
    if cls is pvm_mon.LTMMetrics:
        emulated_all = mon_util.query_ltm_feed(adapter, host.uuid)
    else:
        emulated_all = _stm_feed(adapter, host.uuid)
    real, emulated = {}, {}
    for w in real_all:
        _filled(w, out=real)  # plain properties, so _filled reads them too
    for w in emulated_all:
        _filled(w, out=emulated)
    assert not missing_fields(real, emulated, NOT_MODELLED.get(capture, {}))
    # The Atom entry itself carries the same properties (id, title, link, ...).
    real_props = set().union(*(_entry_props(w) for w in real_all))
    emu_props = set().union(*(_entry_props(w) for w in emulated_all))
    assert real_props <= emu_props
    # Each category the capture lists is one the emulator lists.
    assert {w.category for w in real_all} <= {w.category for w in emulated_all}


@pytest.fixture
def busy_host(adapter, host):
    """LTM on, and a running partition with a CNA and vSCSI storage."""
    from pypowervm.tasks import cna as tsk_cna

    mon_util.ensure_ltm_monitors(adapter, host.uuid)
    lpar = build(adapter, host).create(parent=host)
    tsk_cna.crt_cna(adapter, host.uuid, lpar.uuid, 100, vswitch="ETHERNET0")
    vios1 = next(v for v in pvm_vios.VIOS.get(adapter, xag=[]) if v.name == "vios1")
    vg = next(v for v in pvm_stg.VG.get(adapter, parent=vios1) if v.name == "rootvg")
    vdisk = tsk_stg.crt_vdisk(adapter, vios1.uuid, vg.uuid, "disk1", 1)
    tsk_map.add_vscsi_mapping(host.uuid, vios1.uuid, lpar.uuid, vdisk)
    vios_fc = next(
        v for v in pvm_vios.VIOS.get(adapter, xag=[pvm_const.XAG.VIO_FMAP]) if v.name == "vios1"
    )
    wwpns = "c05076079cff0e56 c05076079cff0e57"
    vfc_mapper.add_map(vios_fc, host.uuid, lpar.uuid, (vios_fc.pfc_ports[0].wwpn, wwpns))
    vios_fc.update()
    pvm_power.power_on(lpar, host.uuid)
    return host


@pytest.mark.parametrize(
    ("capture", "cls"),
    [
        ("phyp_pcm_data.txt", pcm_phyp.PhypInfo),
        ("vios_pcm_data.txt", pcm_vios.ViosInfo),
        ("lpar_pcm_data.txt", pcm_lpar.LparInfo),
    ],
)
def test_pcm_json_fills_what_the_capture_does(adapter, busy_host, capture, cls):
    _, phyp, vioses, lpars = mon_util.latest_stats(adapter, busy_host.uuid)
    emulated_objs = {
        pcm_phyp.PhypInfo: [phyp],
        pcm_vios.ViosInfo: vioses,
        pcm_lpar.LparInfo: [lpars],
    }[cls]
    real = _json_filled(_captured_json(cls, capture))
    emulated = {}
    for obj in emulated_objs:
        _json_filled(obj, out=emulated)
    missing = missing_fields(real, emulated, NOT_MODELLED.get(capture, {}))
    assert not missing, f"{cls.__name__} from {capture}: " + "; ".join(missing)


# ---- event feed ----------------------------------------------------------------------------
def test_event_entries_fill_what_the_capture_does(emulator, adapter, host):
    emulator.emu.events.wait = 0.2
    pvm_event.Event.get(adapter, "fidelity")  # NEW_CLIENT
    lpar = build(adapter, host).create(parent=host)
    pvm_power.power_on(lpar, host.uuid)
    pvm_power.power_off(lpar.refresh(), host.uuid, force_immediate=True)
    lpar.refresh().delete()
    emulated_all = pvm_event.Event.get(adapter, "fidelity")
    real_all = _captured(_All(pvm_event.Event), "event_feed.txt")
    allowed = NOT_MODELLED["event_feed.txt"]
    real, emulated = {}, {}
    for w in real_all:
        _filled(w, out=real)
    for w in emulated_all:
        _filled(w, out=emulated)
    assert not missing_fields(real, emulated, allowed)
    real_props = {f"entry.{p}" for p in set().union(*(_entry_props(w) for w in real_all))}
    emu_props = {f"entry.{p}" for p in set().union(*(_entry_props(w) for w in emulated_all))}
    assert {p for p in real_props - emu_props if not _allowed(allowed, p)} == set()
    # The event types the capture shows for a partition's life are all there.
    assert {w.etype for w in real_all} <= {w.etype for w in emulated_all}
    # URIs name partitions under their ManagedSystem, as in the capture.
    lpar_uri = f"/rest/api/uom/ManagedSystem/{host.uuid}/LogicalPartition/{lpar.uuid}"
    assert [w.etype for w in emulated_all if w.data.endswith(lpar_uri)][0] == "ADD_URI"
    assert [w.etype for w in emulated_all if w.data.endswith(lpar_uri)][-1] == "DELETE_URI"
    states = [w for w in emulated_all if w.data.endswith(lpar_uri) and w.detail]
    assert any("PartitionState" in w.detail.split(",") for w in states)
