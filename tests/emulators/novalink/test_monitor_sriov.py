"""The long-term monitor's clock (advance) and SR-IOV ports in its phyp samples."""

from __future__ import annotations

from pypowervm.tasks import power as pvm_power
from pypowervm.tasks.monitor import util as mon_util
from pypowervm.wrappers import iocard as pvm_card

from ibmvirt.emulators.novalink.state import monitor, monitor_sriov

from .test_lpar import build


def test_advance_moves_the_sampling_clock(emulator, adapter, host):
    mon_util.ensure_ltm_monitors(adapter, host.uuid)
    first = max(m.updated_datetime for m in mon_util.query_ltm_feed(adapter, host.uuid))
    monitor.advance(emulator.emu, 3 * monitor.SAMPLE_SECONDS)
    later = max(m.updated_datetime for m in mon_util.query_ltm_feed(adapter, host.uuid))
    assert (later - first).total_seconds() == 3 * monitor.SAMPLE_SECONDS
    # The documents of the new samples are served; counters grew by 90 s of load.
    _, phyp, _, _ = mon_util.latest_stats(adapter, host.uuid)
    assert phyp.sample.time_stamp.startswith(later.strftime("%Y-%m-%dT%H:%M:%S"))


def test_sriov_logical_ports_are_in_the_partition_network(emulator, adapter, host):
    mon_util.ensure_ltm_monitors(adapter, host.uuid)
    lpar = build(adapter, host).create(parent=host)
    lp = pvm_card.SRIOVEthLPort.bld(adapter, 1, 0, pvid=100, cfg_capacity=0.1).create(parent=lpar)
    pvm_power.power_on(lpar, host.uuid)
    _, phyp, _, _ = mon_util.latest_stats(adapter, host.uuid)
    (sample,) = [s for s in phyp.sample.lpars if s.uuid == lpar.uuid]
    (port,) = sample.network.sriov_ports
    assert port.physical_location == lp.loc_code
    assert port.drc_index == lp.lport_id and port.phys_port_id == 0
    assert port.received_packets > 0 and port.recevied_bytes == (
        port.received_packets * monitor_sriov.BYTES_PER_PACKET
    )
    before = port.received_packets
    monitor.advance(emulator.emu, monitor.SAMPLE_SECONDS)
    _, phyp, _, _ = mon_util.latest_stats(adapter, host.uuid)
    (sample,) = [s for s in phyp.sample.lpars if s.uuid == lpar.uuid]
    grown = sample.network.sriov_ports[0].received_packets - before
    assert grown == monitor.SAMPLE_SECONDS * monitor_sriov.PACKETS_PER_SECOND
