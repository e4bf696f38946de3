"""vNIC capability flags, as pypowervm's ``sriov.set_vnic_back_devs`` (what
nova-powervm's vNIC driver called) reads them: the system and its VIOSes say
they host vNICs with failover, so a vNIC gets one backing VF per port asked."""

from __future__ import annotations

import copy

import pypowervm.adapter as pvm_adpt
import pypowervm.exceptions as pvm_exc
import pytest
from pypowervm.tasks import sriov as pvm_sriov
from pypowervm.wrappers import iocard as pvm_card
from pypowervm.wrappers import managed_system as pvm_ms
from pypowervm.wrappers import virtual_io_server as pvm_vios

from ibmvirt.emulators.novalink import app, inventory

from .test_lpar import build


def _link_up_ports(host) -> list[str]:
    return [
        p.loc_code
        for a in host.asio_config.sriov_adapters
        for p in a.phys_ports
        if p.link_status and p.cfg_max_lps > 4
    ]


def test_a_vnic_with_two_backing_vfs(adapter, host):
    assert host.get_capability("vnic_capable") and host.get_capability("vnic_failover_capable")
    assert all(v.vnic_capable and v.vnic_failover_capable for v in pvm_vios.VIOS.get(adapter))
    lpar = build(adapter, host).create(parent=host)
    vnic = pvm_card.VNIC.bld(adapter, pvid=10)
    pvm_sriov.set_vnic_back_devs(vnic, _link_up_ports(host), sys_w=host, redundancy=2)
    vnic = vnic.create(parent=lpar)
    assert len(vnic.back_devs) == 2
    assert len({(b.sriov_adap_id, b.pport_id) for b in vnic.back_devs}) == 2


def test_a_system_without_failover_refuses_redundancy(tmp_path):
    inv = copy.deepcopy(inventory.load("small"))
    inv["host"]["vnic_failover_capable"] = False
    srv = app.start(inv, token_dir=str(tmp_path))
    sess = pvm_adpt.Session(
        "127.0.0.1", "neo", "passw0rd", protocol="http", port=srv.port, conn_tries=1
    )
    try:
        adapter = pvm_adpt.Adapter(sess)
        host = pvm_ms.System.get(adapter)[0]
        vnic = pvm_card.VNIC.bld(adapter, pvid=10)
        with pytest.raises(pvm_exc.VNICFailoverNotSupportedSys):
            pvm_sriov.set_vnic_back_devs(vnic, _link_up_ports(host), sys_w=host, redundancy=2)
        pvm_sriov.set_vnic_back_devs(vnic, _link_up_ports(host), sys_w=host, redundancy=1)
        assert len(vnic.back_devs) == 1
    finally:
        sess._logoff()
        srv.stop()


def _two_backed_vnic(adapter, host, priorities):
    ports = _link_up_ports(host)[:2]
    vios1 = next(v for v in pvm_vios.VIOS.get(adapter) if v.name == "vios1")
    by_loc = {p.loc_code: p for a in host.asio_config.sriov_adapters for p in a.phys_ports}
    backs = []
    for loc, pri in zip(ports, priorities, strict=True):
        pp = by_loc[loc]
        backs.append(
            pvm_card.VNICBackDev.bld(
                adapter, vios1.uuid, pp.sriov_adap_id, pp.port_id, failover_pri=pri
            )
        )
    return pvm_card.VNIC.bld(adapter, pvid=10, back_devs=backs)


def test_the_backing_device_with_the_highest_failover_priority_is_active(adapter, host):
    """Priority 1 is tried first (pypowervm's VNICBackDev.failover_pri): the
    device with the lowest number carries the traffic, wherever it is listed."""
    lpar = build(adapter, host).create(parent=host)
    vnic = _two_backed_vnic(adapter, host, [20, 10]).create(parent=lpar)
    assert [(b.failover_pri, b.is_active) for b in vnic.back_devs] == [(20, False), (10, True)]


@pytest.mark.parametrize("bad", [0, 101])
def test_a_failover_priority_outside_1_to_100_is_refused(adapter, host, bad):
    lpar = build(adapter, host).create(parent=host)
    before = [p.cfg_lps for a in host.asio_config.sriov_adapters for p in a.phys_ports]
    with pytest.raises(pvm_exc.HttpError) as exc:
        _two_backed_vnic(adapter, host, [1, bad]).create(parent=lpar)
    assert exc.value.response.status == 400
    assert "FailOverPriority" in exc.value.her_wrap.message
    host = host.refresh()
    # Refused before any logical port was taken.
    assert before == [p.cfg_lps for a in host.asio_config.sriov_adapters for p in a.phys_ports]
    assert pvm_card.VNIC.get(adapter, parent=lpar) == []


def test_boundaries_1_and_100_are_accepted(adapter, host):
    lpar = build(adapter, host).create(parent=host)
    vnic = _two_backed_vnic(adapter, host, [100, 1]).create(parent=lpar)
    assert [(b.failover_pri, b.is_active) for b in vnic.back_devs] == [(100, False), (1, True)]
