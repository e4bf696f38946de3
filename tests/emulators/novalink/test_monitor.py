"""Long-term monitor metrics through pypowervm's monitor helpers."""

from __future__ import annotations

from pypowervm.tasks import power as pvm_power
from pypowervm.tasks.monitor import host_cpu
from pypowervm.tasks.monitor import util as mon_util
from pypowervm.wrappers import monitor as pvm_mon

from .test_lpar import build


def test_ltm_disabled_until_enabled(adapter, host):
    assert mon_util.query_ltm_feed(adapter, host.uuid) == []
    mon_util.ensure_ltm_monitors(adapter, host.uuid)
    pref = pvm_mon.PcmPref.wrap(
        adapter.read_by_href(
            adapter.build_href(
                "ManagedSystem", root_id=host.uuid, child_type="preferences", service="pcm"
            )
        )
    )[0]
    assert pref.ltm_enabled is True
    cats = sorted({m.category for m in mon_util.query_ltm_feed(adapter, host.uuid)})
    assert cats == ["lpar", "phyp", "vios_2", "vios_3"]


def test_latest_stats_follow_the_host(adapter, host):
    mon_util.ensure_ltm_monitors(adapter, host.uuid)
    lpar = build(adapter, host).create(parent=host)
    pvm_power.power_on(lpar, host.uuid)
    _, phyp, vioses, lpars = mon_util.latest_stats(adapter, host.uuid)
    assert phyp.sample.system_firmware is not None
    host = host.refresh()
    assert phyp.sample.processor.available_proc_units == host.proc_units_avail
    assert phyp.sample.memory.available_mem == host.memory_free
    names = {lp.name: lp for lp in phyp.sample.lpars}
    assert names["vm1"].state == "Running" and names["vm1"].uuid == lpar.uuid
    assert sorted(v.sample.name for v in vioses) == ["vios1", "vios2"]
    # LPAR (RMC) metrics cover the running partitions with RMC: NovaLink and vm1.
    assert len(lpars.lpars_util) == 2 and lpar.uuid in [lu.uuid for lu in lpars.lpars_util]


def test_host_cpu_metric_cache(adapter, host, monkeypatch):
    mon_util.ensure_ltm_monitors(adapter, host.uuid)
    # The cache reads the CPU clock from the local /proc/cpuinfo (a NovaLink
    # partition); that is not the emulator's business, so pin it.
    monkeypatch.setattr(host_cpu.HostCPUMetricCache, "_get_cpu_freq", staticmethod(lambda: 3000))
    cache = host_cpu.HostCPUMetricCache(adapter, host.uuid)
    assert cache.total_cycles > 0 and cache.total_fw_cycles > 0
    assert cache.total_user_cycles > 0  # the VIOSes and NovaLink are running
