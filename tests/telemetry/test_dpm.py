"""The DPM inspector against the HMC emulator's metrics contexts."""

from __future__ import annotations

import logging

import pytest
import zhmcclient
from ceilometer.compute.virt import inspector as virt_inspector

from ibmvirt.emulators.hmc import metrics
from ibmvirt.telemetry import dpm

from .conftest import dpm_partition, nova_instance

CONTEXTS = metrics.BASE_URI


def _next_sample(hmc, insp):
    hmc.emulator.engine.metrics.advance(metrics.SAMPLE_SECONDS)
    insp._cycle.expire()


def _reported(hmc, part):
    """The emulator's own values for ``part`` in the newest sample (a separate context)."""
    client = zhmcclient.Client(hmc.session())
    mc = client.metrics_contexts.create(
        {"anticipated-frequency-seconds": 15, "metric-groups": dpm.hmcmetrics.GROUPS}
    )
    resp = zhmcclient.MetricsResponse(mc, mc.get_metrics())
    out = {ov.resource_uri: ov.metrics for g in resp.metric_group_values for ov in g.object_values}
    mc.delete()
    return out


def test_instance_processor_usage_and_memory(dpm_conf, hmc, cpc):
    inst = nova_instance()
    part = dpm_partition(hmc, cpc, inst, ifls=3, mem=8192)
    insp = dpm.DPMInspector(dpm_conf)
    insp.inspect_instance(inst, None)  # the context sees the partition active from here
    _next_sample(hmc, insp)
    stats = insp.inspect_instance(inst, None)
    assert stats.cpu_util == _reported(hmc, part)[part.uri]["processor-usage"] > 0
    assert (stats.cpu_number, stats.memory_actual, stats.power_state) == (3, 8192, 1)
    assert stats.cpu_time is None  # the HMC has no cumulative CPU time
    insp.close()


def test_vnics_are_the_hmc_nic_counters(dpm_conf, hmc, cpc):
    inst = nova_instance()
    part = dpm_partition(hmc, cpc, inst, nics=2)
    insp = dpm.DPMInspector(dpm_conf)
    list(insp.inspect_vnics(inst, None))
    _next_sample(hmc, insp)
    first = {n.name: n for n in insp.inspect_vnics(inst, None)}
    reported = _reported(hmc, part)
    nics = {n.name: n for n in part.nics.list(full_properties=True)}
    assert set(first) == set(nics)
    for name, stats in first.items():
        v = reported[nics[name].uri]
        assert stats.mac == nics[name].properties["mac-address"]
        assert (stats.rx_bytes, stats.tx_bytes) == (v["bytes-received"], v["bytes-sent"]) != (0, 0)
        assert (stats.rx_packets, stats.tx_packets) == (v["packets-received"], v["packets-sent"])
        assert stats.rx_drop == v["packets-received-dropped"]
        assert stats.tx_errors == v["packets-sent-discarded"]
        assert stats.rx_bytes_delta is not None  # the first sample was the cycle before
    _next_sample(hmc, insp)
    second = {n.name: n for n in insp.inspect_vnics(inst, None)}
    for name in first:
        assert second[name].rx_bytes_delta == second[name].rx_bytes - first[name].rx_bytes > 0
    rates = {r.name: r for r in insp.inspect_vnic_rates(inst, None)}
    for name, rate in rates.items():
        assert rate.rx_bytes_rate == metrics.nic_rate(nics[name].uri)
    insp.close()


def test_one_context_per_inspector_and_two_requests_per_cycle(dpm_conf, hmc, cpc):
    emu = hmc.emulator
    few = [nova_instance()]
    many = [nova_instance() for _ in range(4)]
    for inst in few + many:
        dpm_partition(hmc, cpc, inst)
    insp = dpm.DPMInspector(dpm_conf)

    def cycle(instances):
        _next_sample(hmc, insp)
        before = emu.request_count()
        for inst in instances:
            insp.inspect_instance(inst, None)
            list(insp.inspect_vnics(inst, None))
            list(insp.inspect_vnic_rates(inst, None))
        return emu.request_count() - before

    cycle(few + many)  # log on, the CPC, the context, each partition and NIC once
    assert cycle(few) == cycle(few + many) == 2  # Get Metrics, List Partitions
    assert emu.request_count("POST", CONTEXTS + "$") == 1
    assert len(emu.engine.metrics.contexts) == 1
    insp.close()
    assert emu.request_count("DELETE", CONTEXTS + "/") == 1
    assert emu.engine.metrics.contexts == {}


def test_a_lost_context_is_made_again(dpm_conf, hmc, cpc):
    inst = nova_instance()
    dpm_partition(hmc, cpc, inst)
    insp = dpm.DPMInspector(dpm_conf)
    insp.inspect_instance(inst, None)
    hmc.emulator.expire_sessions()  # zhmcclient logs on again; the old context is gone
    _next_sample(hmc, insp)
    assert insp.inspect_instance(inst, None).cpu_number == 2
    assert hmc.emulator.request_count("POST", CONTEXTS + "$") == 2
    insp.close()


def test_unknown_and_stopped_instances(dpm_conf, hmc, cpc):
    insp = dpm.DPMInspector(dpm_conf)
    with pytest.raises(virt_inspector.InstanceNotFoundException):
        insp.inspect_instance(nova_instance(), None)
    inst = nova_instance()
    dpm_partition(hmc, cpc, inst, start=False)
    _next_sample(hmc, insp)
    with pytest.raises(virt_inspector.InstanceShutOffException):
        insp.inspect_instance(inst, None)
    # Another host's partition on the same CPC is not this inspector's.
    other = nova_instance()
    cpc.partitions.create(
        {
            "name": f"OpenStack-other-{other.id}",
            "ifl-processors": 1,
            "initial-memory": 1024,
            "maximum-memory": 1024,
        }
    )
    _next_sample(hmc, insp)
    with pytest.raises(virt_inspector.InstanceNotFoundException):
        insp.inspect_instance(other, None)
    # No disk counters on DPM: Ceilometer stops polling the disk meters.
    with pytest.raises(NotImplementedError):
        insp.inspect_disks(inst, None)
    insp.close()


def test_unreachable_hmc_fails_the_cycle_not_the_agent(dpm_conf, hmc, caplog):
    caplog.set_level(logging.DEBUG)
    hmc.emulator.stop()
    insp = dpm.DPMInspector(dpm_conf)
    inst = nova_instance()
    with pytest.raises(virt_inspector.InspectorException) as exc:
        insp.inspect_instance(inst, None)
    assert not isinstance(exc.value, virt_inspector.InstanceNotFoundException)
    assert "ConnectionError" in str(exc.value)
    reads = []
    real = insp._reader.read
    insp._reader.read = lambda: (reads.append(1), real())[1]
    for _ in range(3):  # the rest of the cycle: no new attempt
        with pytest.raises(virt_inspector.InspectorException):
            list(insp.inspect_vnics(inst, None))
    assert reads == []
    assert hmc.password not in caplog.text and hmc.password not in str(exc.value)
    insp.close()


def test_a_partition_or_nic_gone_mid_read_skips_only_it(dpm_conf, hmc, cpc):
    gone, kept = nova_instance(), nova_instance()
    gone_part = dpm_partition(hmc, cpc, gone)
    kept_part = dpm_partition(hmc, cpc, kept)
    (kept_nic,) = kept_part.nics.list()
    hmc.emulator.inject_fault("GET", gone_part.uri + "$", status=404, reason=1)
    hmc.emulator.inject_fault("GET", kept_nic.uri + "$", status=404, reason=1)
    insp = dpm.DPMInspector(dpm_conf)
    assert insp.inspect_instance(kept, None).cpu_number == 2
    assert list(insp.inspect_vnics(kept, None)) == []  # its NIC 404'd this cycle
    with pytest.raises(virt_inspector.InstanceNotFoundException):
        insp.inspect_instance(gone, None)
    _next_sample(hmc, insp)  # the faults are spent: both are back
    assert insp.inspect_instance(gone, None).cpu_number == 2
    assert len(list(insp.inspect_vnics(gone, None))) == 1
    assert [n.name for n in insp.inspect_vnics(kept, None)] == [kept_nic.name]
    insp.close()
