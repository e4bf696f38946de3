"""The PowerVM inspector against the NovaLink emulator's PCM long-term monitor."""

from __future__ import annotations

import logging

import pytest
from ceilometer.compute.virt import inspector as virt_inspector
from pypowervm.tasks import power as pvm_power
from pypowervm.tasks.monitor import util as mon_util
from pypowervm.utils import uuid as pvm_uuid

from ibmvirt.emulators.novalink.state import monitor
from ibmvirt.telemetry import powervm

from .conftest import NOVALINK_PASSWORD, nova_instance, novalink_log, pvm_lpar


def _next_sample(novalink, inspector):
    """Let the monitor take its next 30-second sample; start a new polling cycle."""
    monitor.advance(novalink.emu, monitor.SAMPLE_SECONDS)
    inspector._cycle.expire()


def _reported(pvm, instance):
    """What the emulator's newest sample says about the instance, read by pypowervm."""
    adapter, host = pvm
    _, phyp, vioses, lpars = mon_util.latest_stats(adapter, host.uuid)
    uuid = pvm_uuid.convert_uuid_to_pvm(instance.id).upper()
    sample = next(s for s in phyp.sample.lpars if s.uuid.upper() == uuid)
    metric = mon_util.vm_metrics(phyp, vioses, lpars)[sample.uuid]
    return phyp, sample, metric


def _requests(novalink):
    return novalink.emu.request_count  # counted as each request arrives


def test_instance_cpu_and_memory_are_the_samples(pvm_conf, pvm, novalink):
    inst = nova_instance()
    pvm_lpar(pvm, inst, units=0.5, vcpu=2, mem=4096)
    insp = powervm.PowerVMInspector(pvm_conf)
    stats = insp.inspect_instance(inst, None)
    phyp, sample, metric = _reported(pvm, inst)
    p = sample.processor
    used = p.util_cap_proc_cycles + p.util_uncap_proc_cycles - p.idle_proc_cycles
    used -= p.donated_proc_cycles
    pcps = phyp.sample.processor.proc_cycles_per_sec
    assert stats.cpu_time == used * 10**9 // pcps
    assert stats.cpu_number == p.virt_procs == 2
    assert stats.memory_actual == sample.memory.logical_mem == 4096
    mem = metric.memory
    free = mem.pct_real_mem_avbl if mem.pct_real_mem_avbl is not None else mem.pct_real_mem_free
    assert stats.memory_usage == round(mem.real_mem_size_bytes * (100 - free) / 100 / 2**20, 1)
    assert stats.power_state == 1
    # One sample only: no utilisation yet, rather than a made-up one.
    assert stats.cpu_util is None

    _next_sample(novalink, insp)
    later = insp.inspect_instance(inst, None)
    _, sample2, _ = _reported(pvm, inst)
    p2 = sample2.processor
    used2 = p2.util_cap_proc_cycles + p2.util_uncap_proc_cycles - p2.idle_proc_cycles
    used2 -= p2.donated_proc_cycles
    # Uncapped: the share of its 2 virtual processors over the 30 s between samples.
    assert p2.mode == "uncap"
    expected = 100 * (used2 - used) / (2 * monitor.SAMPLE_SECONDS * pcps)
    assert later.cpu_util == round(expected, 2)
    assert 0 < later.cpu_util <= 100
    assert later.cpu_time > stats.cpu_time


def test_cpu_util_is_bounded_for_uncapped_lpars():
    """Cycles borrowed from the pool beyond the entitlement stay within 100 %."""
    from datetime import datetime, timedelta

    from ibmvirt.telemetry import pcm

    t0 = datetime(2026, 1, 1)

    def lpar(used, entitled, mode):
        return pcm.Lpar("U", "running", mode, 1, 0.1, entitled, used, 1024, None, None)

    def sample(t, lp):
        return pcm.Sample(t, 1000, {"U": lp})

    before = lpar(0, 0, "uncap")
    # 30 s at 1000 cycles/s on one virtual processor = 30000 cycles at most;
    # entitlement 0.1 = 3000 cycles: 9000 used is 300 % of it, 30 % of the VP.
    now = lpar(9000, 3000, "uncap")
    util = powervm._cpu_util(
        before, now, sample(t0, before), sample(t0 + timedelta(seconds=30), now)
    )
    assert util == 30.0
    capped = lpar(3000, 3000, "cap")
    assert (
        powervm._cpu_util(
            lpar(0, 0, "cap"),
            capped,
            sample(t0, before),
            sample(t0 + timedelta(seconds=30), capped),
        )
        == 100.0
    )
    # Counters that went backwards (a restart, an LPAR that migrated in) give nothing.
    assert powervm._cpu_util(now, before, sample(t0, now), sample(t0, before)) is None


def test_vnics_client_adapters_and_sriov_ports(pvm_conf, pvm, novalink):
    inst = nova_instance()
    pvm_lpar(pvm, inst, sriov=True)
    insp = powervm.PowerVMInspector(pvm_conf)
    first = {n.name: n for n in insp.inspect_vnics(inst, None)}
    _, sample, _ = _reported(pvm, inst)
    veas = {v.physical_location: v for v in sample.network.veas}
    ports = {p.physical_location: p for p in sample.network.sriov_ports}
    assert set(first) == set(veas) | set(ports) and len(veas) == len(ports) == 1
    (loc,) = veas
    cna = first[loc]
    assert cna.parameters == {"adapter_type": "cna"}
    assert (cna.rx_bytes, cna.tx_bytes) == (veas[loc].received_bytes, veas[loc].sent_bytes)
    assert (cna.rx_packets, cna.tx_packets) == (
        veas[loc].received_packets,
        veas[loc].sent_packets,
    )
    assert cna.rx_drop == veas[loc].dropped_packets
    (sloc,) = ports
    sr = first[sloc]
    assert sr.parameters == {"adapter_type": "sriov"}
    assert (sr.rx_bytes, sr.tx_bytes) == (ports[sloc].recevied_bytes, ports[sloc].sent_bytes)
    assert (sr.rx_drop, sr.tx_drop) == (
        ports[sloc].dropped_received_packets,
        ports[sloc].dropped_sent_packets,
    )
    assert (sr.rx_errors, sr.tx_errors) == (ports[sloc].error_in, ports[sloc].error_out)
    assert cna.rx_bytes_delta is None and sr.rx_bytes_delta is None
    assert all(r.rx_bytes_rate is None for r in insp.inspect_vnic_rates(inst, None))

    _next_sample(novalink, insp)
    second = {n.name: n for n in insp.inspect_vnics(inst, None)}
    for name in first:
        assert second[name].rx_bytes_delta == second[name].rx_bytes - first[name].rx_bytes > 0
        assert second[name].tx_bytes_delta == second[name].tx_bytes - first[name].tx_bytes
    rates = {r.name: r for r in insp.inspect_vnic_rates(inst, None)}
    assert rates[loc].rx_bytes_rate == second[loc].rx_bytes_delta / monitor.SAMPLE_SECONDS


def test_disks_per_client_adapter(pvm_conf, pvm, novalink):
    inst = nova_instance()
    pvm_lpar(pvm, inst, vdisk=True)
    insp = powervm.PowerVMInspector(pvm_conf)
    (disk,) = list(insp.inspect_disks(inst, None))
    _, sample, metric = _reported(pvm, inst)
    (client,) = sample.storage.v_stor_adpts
    (server,) = metric.storage.virt_adpts
    assert disk.device == client.physical_location
    assert (disk.read_requests, disk.write_requests) == (server.num_reads, server.num_writes)
    assert (disk.read_bytes, disk.write_bytes) == (server.read_bytes, server.write_bytes)
    assert disk.rd_total_times is None and disk.wr_total_times is None  # PCM has no latency


def test_unknown_and_stopped_instances(pvm_conf, pvm, novalink):
    insp = powervm.PowerVMInspector(pvm_conf)
    with pytest.raises(virt_inspector.InstanceNotFoundException):
        insp.inspect_instance(nova_instance(), None)
    inst = nova_instance()
    lpar = pvm_lpar(pvm, inst)
    pvm_power.power_off(lpar, pvm[1].uuid, force_immediate=True)
    _next_sample(novalink, insp)
    with pytest.raises(virt_inspector.InstanceShutOffException):
        insp.inspect_instance(inst, None)


def test_monitor_switched_on_only_when_off(pvm_conf, pvm, novalink):
    inst = nova_instance()
    pvm_lpar(pvm, inst)

    def pref_writes():
        return sum(
            1
            for r in novalink_log(novalink).records()
            if r.method == "POST" and "preferences" in r.path
        )

    powervm.PowerVMInspector(pvm_conf).inspect_instance(inst, None)
    assert pref_writes() == 1
    insp = powervm.PowerVMInspector(pvm_conf)
    insp.inspect_instance(inst, None)
    assert pref_writes() == 1  # already on: read, not written
    # Switched off behind our back: the next cycle has no sample and turns it on again.
    novalink.emu.ext["pcm"].prefs["LongTermMonitorEnabled"] = False
    _next_sample(novalink, insp)
    with pytest.raises(virt_inspector.NoDataException):
        insp.inspect_instance(inst, None)
    assert pref_writes() == 2
    insp._cycle.expire()
    assert insp.inspect_instance(inst, None).cpu_time > 0


def test_requests_per_cycle_do_not_grow_with_instances(pvm_conf, pvm, novalink):
    few = [nova_instance() for _ in range(1)]
    many = [nova_instance() for _ in range(4)]
    for inst in few + many:
        pvm_lpar(pvm, inst, vdisk=False)
    insp = powervm.PowerVMInspector(pvm_conf)

    def cycle(instances):
        _next_sample(novalink, insp)
        before = _requests(novalink)
        for inst in instances:
            insp.inspect_instance(inst, None)
            list(insp.inspect_vnics(inst, None))
            list(insp.inspect_disks(inst, None))
        return _requests(novalink) - before

    cycle(few)  # log on, find the host, check the monitor
    assert cycle(few) == cycle(few + many) == 3 + 2  # feed, phyp, lpar, 2 VIOSes
    insp._cycle.expire()  # a new cycle within the same 30-second sample: the feed only
    before = _requests(novalink)
    insp.inspect_instance(few[0], None)
    assert _requests(novalink) - before == 1


def test_an_lpar_new_on_this_host_gives_no_delta(pvm_conf, pvm, novalink):
    """An LPAR that appears between two cycles (deployed, or migrated in with its
    cycle counters) has cumulative meters but no rate or delta yet."""
    insp = powervm.PowerVMInspector(pvm_conf)
    other = nova_instance()
    pvm_lpar(pvm, other)
    insp.inspect_instance(other, None)
    arrived = nova_instance()
    pvm_lpar(pvm, arrived)
    _next_sample(novalink, insp)
    stats = insp.inspect_instance(arrived, None)
    assert stats.cpu_time > 0 and stats.cpu_util is None
    assert all(n.rx_bytes_delta is None for n in insp.inspect_vnics(arrived, None))
    assert insp.inspect_instance(other, None).cpu_util is not None


def test_unreachable_novalink_fails_the_cycle_not_the_agent(pvm_conf, novalink, caplog):
    caplog.set_level(logging.DEBUG)
    port = novalink.port
    novalink.stop()
    insp = powervm.PowerVMInspector(pvm_conf)
    calls = []
    real = insp._connect
    insp._connect = lambda: (calls.append(1), real())[1]
    inst = nova_instance()
    with pytest.raises(virt_inspector.InspectorException) as exc:
        insp.inspect_instance(inst, None)
    assert not isinstance(exc.value, virt_inspector.InstanceNotFoundException)
    assert "127.0.0.1" in str(exc.value) and str(port) in str(exc.value)
    for _ in range(3):  # the other instances and meters of the cycle: no new attempt
        with pytest.raises(virt_inspector.InspectorException):
            list(insp.inspect_vnics(inst, None))
    assert len(calls) == 1
    assert NOVALINK_PASSWORD not in caplog.text and NOVALINK_PASSWORD not in str(exc.value)


def test_hung_novalink_times_out(pvm_conf, monkeypatch):
    """A NovaLink that accepts but never answers fails the cycle within the timeout."""
    import socket
    import threading

    monkeypatch.setattr(powervm, "REQUEST_TIMEOUT", 0.5)
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(8)  # the kernel completes connections; nothing ever reads them
        pvm_conf.set_override("novalink_port", hung.getsockname()[1], group="powervm")
        insp = powervm.PowerVMInspector(pvm_conf)
        raised = []

        def inspect():
            try:
                insp.inspect_instance(nova_instance(), None)
            except virt_inspector.InspectorException as exc:
                raised.append(exc)

        # A thread, so that without the timeout the test fails instead of hanging 1200 s.
        worker = threading.Thread(target=inspect, daemon=True)
        worker.start()
        worker.join(30)
    assert len(raised) == 1 and "NovaLink unreachable" in str(raised[0])
