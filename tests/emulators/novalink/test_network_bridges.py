"""Hosts with several Shared Ethernet Adapters (inventory ``network.sea`` as a
list), as a SEA agent with bridge_mappings sees them: one NetworkBridge each,
device names in the VIOS's numbering, VLANs bridged by one of them only."""

from __future__ import annotations

import copy

import pypowervm.adapter as pvm_adpt
import pypowervm.exceptions as pvm_exc
import pytest
from pypowervm import util as pvm_util
from pypowervm.tasks import network_bridger as net_br
from pypowervm.wrappers import managed_system as pvm_ms
from pypowervm.wrappers import network as pvm_net
from pypowervm.wrappers import virtual_io_server as pvm_vios

from ibmvirt.emulators.novalink import app, inventory


def _start(tmp_path, seas):
    inv = copy.deepcopy(inventory.load("small"))
    inv["network"]["sea"] = seas
    return app.start(inv, token_dir=str(tmp_path))


@pytest.fixture
def two(tmp_path):
    srv = _start(
        tmp_path,
        [
            {"vios": "vios1", "pvid": 1, "vswitch": "ETHERNET0", "backing_device": "ent0"},
            {"vios": "vios2", "pvid": 2, "vswitch": "ETHERNET0", "backing_device": "ent0"},
            {"vios": "vios1", "pvid": 3, "vswitch": "ETHERNET0", "backing_device": "ent1"},
        ],
    )
    sess = pvm_adpt.Session(
        "127.0.0.1", "neo", "passw0rd", protocol="http", port=srv.port, conn_tries=1
    )
    adapter = pvm_adpt.Adapter(sess)
    yield adapter, pvm_ms.System.get(adapter)[0]
    sess._logoff()
    srv.stop()


def _seas(adapter, host):
    names = {v.uuid.upper(): v.name for v in pvm_vios.VIOS.get(adapter)}
    return {
        (names[pvm_util.get_req_path_uuid(s.vio_uri).upper()], s.dev_name): nb
        for nb in pvm_net.NetBridge.get(adapter, parent=host)
        for s in nb.seas
    }


def test_each_sea_is_a_network_bridge(two):
    adapter, host = two
    seas = _seas(adapter, host)
    assert sorted(seas) == [("vios1", "ent5"), ("vios1", "ent7"), ("vios2", "ent5")]
    assert len({nb.uuid for nb in seas.values()}) == 3
    assert [seas[k].pvid for k in sorted(seas)] == [1, 3, 2]
    assert seas[("vios1", "ent7")].seas[0].primary_adpt.dev_name == "ent6"
    vios1 = next(v for v in pvm_vios.VIOS.get(adapter, xag=["ViosNetwork"]) if v.name == "vios1")
    assert sorted(s.dev_name for s in vios1.seas) == ["ent5", "ent7"]
    slots = [t.virtual_slot_number for t in vios1.trunk_adapters]
    assert len(set(slots)) == len(slots) == 2


def test_a_vlan_is_bridged_by_one_sea_only(two):
    adapter, host = two
    seas = _seas(adapter, host)
    second = seas[("vios2", "ent5")]
    net_br.ensure_vlan_on_nb(adapter, host.uuid, second.uuid, 42)
    assert _seas(adapter, host)[("vios2", "ent5")].supports_vlan(42)
    net_br.ensure_vlan_on_nb(adapter, host.uuid, _seas(adapter, host)[("vios1", "ent5")].uuid, 43)
    nb = _seas(adapter, host)[("vios1", "ent5")]
    nb.seas[0].addl_adpts[0].tagged_vlans.append(42)  # same switch: refused
    with pytest.raises(pvm_exc.HttpError) as exc:
        nb.update()
    assert "already bridged" in exc.value.her_wrap.message


def test_a_new_trunk_takes_a_free_device_name_on_its_vios(two):
    adapter, host = two
    first = _seas(adapter, host)[("vios1", "ent5")]
    net_br.ensure_vlan_on_nb(adapter, host.uuid, first.uuid, 100)
    vios1 = next(v for v in pvm_vios.VIOS.get(adapter, xag=["ViosNetwork"]) if v.name == "vios1")
    assert sorted(t.dev_name for t in vios1.trunk_adapters) == ["ent4", "ent6", "ent8"]
