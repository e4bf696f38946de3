"""Ceilometer's own compute pollsters over our inspectors, loaded as ceilometer-polling does."""

from __future__ import annotations

import pytest
from ceilometer.compute.pollsters import disk, instance_stats, net
from ceilometer.compute.virt import inspector as virt_inspector
from ceilometer.polling import plugin_base
from stevedore import extension

from ibmvirt.emulators.hmc import metrics
from ibmvirt.emulators.novalink.state import monitor
from ibmvirt.telemetry import dpm, pollsters, powervm

from .conftest import dpm_partition, nova_instance, pvm_lpar


def _poll(conf, classes, instances):
    """One polling cycle: the pollsters share the cache as the polling task makes them."""
    cache = {}
    out = {}
    for cls in classes:
        pollster = cls(conf)
        for s in pollster.get_samples(None, cache, instances):
            out.setdefault(s.name, []).append(s)
    return out


def test_the_entry_points_are_what_ceilometer_loads(pvm_conf):
    assert type(virt_inspector.get_hypervisor_inspector(pvm_conf)) is powervm.PowerVMInspector
    pvm_conf.set_override("hypervisor_inspector", "dpm")
    assert type(virt_inspector.get_hypervisor_inspector(pvm_conf)) is dpm.DPMInspector
    names = extension.ExtensionManager("ceilometer.poll.compute").names()
    assert "cpu_util" in names
    (ext,) = [
        e for e in extension.ExtensionManager("ceilometer.poll.compute") if e.name == "cpu_util"
    ]
    assert ext.plugin is pollsters.CPUUtilPollster


def test_powervm_samples(pvm_conf, pvm, novalink):
    inst = nova_instance()
    pvm_lpar(pvm, inst, sriov=True)
    classes = [
        instance_stats.CPUPollster,
        instance_stats.VCPUsPollster,
        instance_stats.MemoryPollster,
        instance_stats.MemoryUsagePollster,
        pollsters.CPUUtilPollster,
        net.IncomingBytesPollster,
        net.OutgoingPacketsPollster,
        net.IncomingDropPollster,
        net.IncomingBytesDeltaPollster,
        disk.PerDeviceReadBytesPollster,
        disk.PerDeviceWriteRequestsPollster,
    ]
    first = _poll(pvm_conf, classes, [inst])
    assert "cpu_util" not in first and "network.incoming.bytes.delta" not in first
    monitor.advance(novalink.emu, monitor.SAMPLE_SECONDS)
    insp = powervm.PowerVMInspector  # the pollsters share one instance (Ceilometer's cache)
    from ceilometer.compute import pollsters as cp

    cp.GenericComputePollster._inspector._cycle.expire()
    samples = _poll(pvm_conf, classes, [inst])
    direct = cp.GenericComputePollster._inspector
    assert isinstance(direct, insp)
    stats = direct.inspect_instance(inst, None)
    (cpu,) = samples["cpu"]
    assert (cpu.volume, cpu.unit, cpu.type) == (stats.cpu_time, "ns", "cumulative")
    assert cpu.resource_id == inst.id and cpu.resource_metadata["cpu_number"] == 2
    assert samples["vcpus"][0].volume == 2
    assert samples["memory"][0].volume == 4096
    assert samples["memory.usage"][0].volume == stats.memory_usage
    (util,) = samples["cpu_util"]
    assert (util.volume, util.unit, util.type) == (stats.cpu_util, "%", "gauge")
    vnics = {v.name: v for v in direct.inspect_vnics(inst, None)}
    rx = {s.resource_metadata["vnic_name"]: s for s in samples["network.incoming.bytes"]}
    assert set(rx) == set(vnics) and len(rx) == 2
    for name, s in rx.items():
        assert s.volume == vnics[name].rx_bytes and s.unit == "B"
        assert s.resource_id == f"instance-{inst.id[:8]}-{inst.id}-{name}"
    assert len(samples["network.incoming.bytes.delta"]) == 2
    (rb,) = samples["disk.device.read.bytes"]
    (d,) = direct.inspect_disks(inst, None)
    assert rb.volume == d.read_bytes and rb.resource_id == f"{inst.id}-{d.device}"


def test_dpm_samples_and_meters_dpm_does_not_have(dpm_conf, hmc, cpc):
    inst = nova_instance()
    dpm_partition(hmc, cpc, inst, nics=1, ifls=2)
    classes = [
        instance_stats.CPUPollster,
        instance_stats.VCPUsPollster,
        instance_stats.MemoryPollster,
        pollsters.CPUUtilPollster,
        net.IncomingBytesPollster,
        net.OutgoingBytesRatePollster,
    ]
    _poll(dpm_conf, classes, [inst])
    hmc.emulator.engine.metrics.advance(metrics.SAMPLE_SECONDS)
    from ceilometer.compute import pollsters as cp

    insp = cp.GenericComputePollster._inspector
    insp._cycle.expire()
    samples = _poll(dpm_conf, classes, [inst])
    assert "cpu" not in samples  # no cumulative CPU time on DPM (logged, not fatal)
    assert samples["vcpus"][0].volume == 2 and samples["memory"][0].volume == 4096
    assert samples["cpu_util"][0].volume == insp.inspect_instance(inst, None).cpu_util > 0
    (rx,) = samples["network.incoming.bytes"]
    (nic,) = insp.inspect_vnics(inst, None)
    assert rx.volume == nic.rx_bytes > 0 and rx.resource_metadata["mac"] == nic.mac
    assert samples["network.outgoing.bytes.rate"][0].unit == "B/s"
    # Disk meters: the inspector does not implement them, Ceilometer stops asking.
    with pytest.raises(plugin_base.PollsterPermanentError):
        list(disk.PerDeviceReadBytesPollster(dpm_conf).get_samples(None, {}, [inst]))
    insp.close()


def _delta_over_skipped_polls(conf, instances, advance):
    """cpu polled every sample, network every fourth: the delta is the growth since then."""
    from ceilometer.compute import pollsters as cp

    net_classes = [net.IncomingBytesPollster, net.IncomingBytesDeltaPollster]

    def cycle(classes):
        advance()
        cp.GenericComputePollster._inspector._cycle.expire()
        return _poll(conf, classes, instances)

    _poll(conf, [instance_stats.VCPUsPollster], instances)  # log on, first sample
    start = cycle([instance_stats.CPUPollster, *net_classes])
    for _ in range(3):
        cycle([instance_stats.CPUPollster])
    end = cycle([instance_stats.CPUPollster, *net_classes])
    before = {s.resource_id: s.volume for s in start["network.incoming.bytes"]}
    after = {s.resource_id: s.volume for s in end["network.incoming.bytes"]}
    deltas = {s.resource_id: s.volume for s in end["network.incoming.bytes.delta"]}
    assert set(deltas) == set(after) == set(before) and deltas
    for rid, delta in deltas.items():
        assert delta == after[rid] - before[rid] > 0
    cp.GenericComputePollster._inspector.close()


def test_powervm_delta_covers_the_time_since_network_was_polled(pvm_conf, pvm, novalink):
    inst = nova_instance()
    pvm_lpar(pvm, inst, sriov=True)
    _delta_over_skipped_polls(
        pvm_conf, [inst], lambda: monitor.advance(novalink.emu, monitor.SAMPLE_SECONDS)
    )


def test_dpm_delta_covers_the_time_since_network_was_polled(dpm_conf, hmc, cpc):
    inst = nova_instance()
    dpm_partition(hmc, cpc, inst, nics=2)
    _delta_over_skipped_polls(
        dpm_conf, [inst], lambda: hmc.emulator.engine.metrics.advance(metrics.SAMPLE_SECONDS)
    )
