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
