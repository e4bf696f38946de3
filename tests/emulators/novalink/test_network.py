"""Virtual switches, client network adapters, the SEA network bridger and
SR-IOV vNICs, with pypowervm's own helpers."""

from __future__ import annotations

import pypowervm.exceptions as pvm_exc
import pytest
from pypowervm.tasks import cna as tsk_cna
from pypowervm.tasks import network_bridger as net_br
from pypowervm.tasks import partition as pvm_part
from pypowervm.wrappers import iocard as pvm_card
from pypowervm.wrappers import managed_system as pvm_ms
from pypowervm.wrappers import network as pvm_net
from pypowervm.wrappers import virtual_io_server as pvm_vios

from .test_lpar import build


def test_vswitches_from_inventory(adapter, host):
    names = sorted(s.name for s in pvm_net.VSwitch.get(adapter, parent=host))
    assert names == ["ETHERNET0", "MGMTSWITCH"]
    vs = pvm_net.VSwitch.search(
        adapter,
        parent_type=pvm_ms.System,
        parent_uuid=host.uuid,
        one_result=True,
        name="MGMTSWITCH",
    )
    assert vs.switch_id == 1


def test_client_network_adapter_lifecycle(adapter, host):
    lpar = build(adapter, host).create(parent=host)
    vs = pvm_net.VSwitch.search(
        adapter, parent_type=pvm_ms.System, parent_uuid=host.uuid, one_result=True, name="ETHERNET0"
    )
    cna = pvm_net.CNA.bld(adapter, 100, vs.related_href, addl_tagged_vlans=[101, 102])
    cna = cna.create(parent=lpar)
    assert cna.pvid == 100 and cna.tagged_vlans == [101, 102]
    assert len(cna.mac) == 12 and cna.slot >= 2
    listed = pvm_net.CNA.get(adapter, parent=lpar)
    assert [c.mac for c in listed] == [cna.mac]
    # The same MAC cannot be used twice.
    with pytest.raises(pvm_exc.HttpError) as exc:
        tsk_cna.crt_cna(adapter, host.uuid, lpar.uuid, 100, vswitch="ETHERNET0", mac_addr=cna.mac)
    assert "already in use" in exc.value.her_wrap.message
    with pytest.raises(pvm_exc.HttpError):
        tsk_cna.crt_cna(adapter, host.uuid, lpar.uuid, 5000, vswitch="ETHERNET0")
    listed[0].delete()
    assert pvm_net.CNA.get(adapter, parent=lpar) == []
    plain = tsk_cna.crt_cna(adapter, host.uuid, lpar.uuid, 100, vswitch="ETHERNET0")
    assert plain.tagged_vlans == [] and plain.mac != cna.mac


def test_crt_cna_addl_vlans_garbage_is_refused(adapter, host):
    """pypowervm 1.1.27's crt_cna joins addl_vlans into a string that the CNA
    setter then splits into characters ("1 0 1   1 0 2"); the server refuses it."""
    lpar = build(adapter, host).create(parent=host)
    with pytest.raises(pvm_exc.HttpError) as exc:
        tsk_cna.crt_cna(
            adapter, host.uuid, lpar.uuid, 100, vswitch="ETHERNET0", addl_vlans=["101", "102"]
        )
    assert "more than once" in exc.value.her_wrap.message
    assert pvm_net.CNA.get(adapter, parent=lpar) == []


def test_trunk_adapter_on_management_partition(adapter, host):
    mgmt = pvm_part.get_mgmt_partition(adapter)
    vs = pvm_net.VSwitch.search(
        adapter, parent_type=pvm_ms.System, parent_uuid=host.uuid, one_result=True, name="ETHERNET0"
    )
    trunk = pvm_net.CNA.bld(adapter, 2000, vs.related_href, trunk_pri=1).create(parent=mgmt)
    assert trunk.is_trunk and trunk.dev_name.startswith("ibmveth")  # Linux
    # A device name the client chooses (nova-powervm's OVS driver: tap...) stays.
    named = pvm_net.CNA.bld(adapter, 2001, vs.related_href, trunk_pri=1, dev_name="tap0a1b2c3d-4e")
    assert named.create(parent=mgmt).dev_name == "tap0a1b2c3d-4e"


def test_hotplug_needs_rmc(emulator, adapter, host):
    from pypowervm.tasks import power

    emulator.emu.config.rmc_on_boot = False
    lpar = build(adapter, host).create(parent=host)
    power.power_on(lpar, host.uuid)
    with pytest.raises(pvm_exc.HttpError) as exc:
        tsk_cna.crt_cna(adapter, host.uuid, lpar.uuid, 100, vswitch="ETHERNET0")
    assert "RMC" in exc.value.her_wrap.message


def test_network_bridger_ensure_and_remove_vlan(adapter, host):
    nb = pvm_net.NetBridge.get(adapter, parent=host)[0]
    assert nb.pvid == 1 and not nb.supports_vlan(1001)
    net_br.ensure_vlan_on_nb(adapter, host.uuid, nb.uuid, 1001)
    net_br.ensure_vlans_on_nb(adapter, host.uuid, nb.uuid, [1002, 1003])
    nb = pvm_net.NetBridge.get(adapter, parent=host)[0]
    assert all(nb.supports_vlan(v) for v in (1001, 1002, 1003))
    assert len(nb.load_grps) == 2  # the primary and one additional trunk adapter
    # The VIOS now has the new trunk adapter, with a server-assigned device.
    vios1 = next(v for v in pvm_vios.VIOS.get(adapter, xag=["ViosNetwork"]) if v.name == "vios1")
    assert len(vios1.trunk_adapters) == 2
    assert all(t.dev_name.startswith("ent") for t in vios1.trunk_adapters)
    net_br.remove_vlan_from_nb(adapter, host.uuid, nb.uuid, 1002)
    nb = pvm_net.NetBridge.get(adapter, parent=host)[0]
    assert not nb.supports_vlan(1002) and nb.supports_vlan(1001)


def test_bridging_a_vlan_twice_is_refused(adapter, host):
    nb = pvm_net.NetBridge.get(adapter, parent=host)[0]
    net_br.ensure_vlan_on_nb(adapter, host.uuid, nb.uuid, 1001)
    nb = pvm_net.NetBridge.get(adapter, parent=host)[0]
    nb.load_grps[1].trunk_adapters[0].tagged_vlans.append(1)  # the primary PVID
    nb.seas[0].addl_adpts[0].tagged_vlans.append(1)
    with pytest.raises(pvm_exc.HttpError) as exc:
        nb.update()
    assert "already bridged" in exc.value.her_wrap.message


def test_sriov_vnic_create_uses_a_logical_port(adapter, host):
    lpar = build(adapter, host).create(parent=host)
    vios1 = next(v for v in pvm_vios.VIOS.get(adapter) if v.name == "vios1")
    adapters = host.asio_config.sriov_adapters
    pport = adapters[0].phys_ports[0]
    labels = {(a.sriov_adap_id, p.port_id): p.label for a in adapters for p in a.phys_ports}
    assert labels[(1, 0)] == "physnet-prod"
    before = pport.cfg_lps
    back = pvm_card.VNICBackDev.bld(adapter, vios1.uuid, adapters[0].sriov_adap_id, pport.port_id)
    vnic = pvm_card.VNIC.bld(adapter, pvid=100, back_devs=[back]).create(parent=lpar)
    assert vnic.pvid == 100 and len(vnic.mac) == 12
    assert vnic.back_devs[0].sriov_adap_id == adapters[0].sriov_adap_id
    host = host.refresh()
    after = host.asio_config.sriov_adapters[0].phys_ports[0].cfg_lps
    assert after == before + 1
    assert [v.uuid for v in pvm_card.VNIC.get(adapter, parent=lpar)] == [vnic.uuid]


def test_crt_cna_can_create_the_vswitch(adapter, host):
    lpar = build(adapter, host).create(parent=host)
    cna = tsk_cna.crt_cna(adapter, host.uuid, lpar.uuid, 10, vswitch="TENANT1", crt_vswitch=True)
    vs = pvm_net.VSwitch.search(
        adapter, parent_type=pvm_ms.System, parent_uuid=host.uuid, one_result=True, name="TENANT1"
    )
    assert vs.switch_id == 2 and cna.vswitch_id == 2


def test_host_only_allows_renaming(adapter, host):
    host.set_parm_value("SystemName", "renamed-host")
    host = host.update()
    assert host.system_name == "renamed-host"
    host.asio_config  # noqa: B018 - parsed fine
    host.set_parm_value("AssociatedSystemMemoryConfiguration/MemoryRegionSize", "128")
    with pytest.raises(pvm_exc.HttpError) as exc:
        host.update()
    assert "only SystemName" in exc.value.her_wrap.message
