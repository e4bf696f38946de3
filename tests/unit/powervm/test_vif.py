"""What Neutron's binding may put in a pvm_sea port's VLAN."""

from __future__ import annotations

import pytest
from nova import exception
from nova.network import model

from ibmvirt.powervm import vif


def _vif(vlan=None, meta_vlan=None):
    network = model.Network(id="net", bridge=None, meta={"vlan": meta_vlan} if meta_vlan else {})
    details = {} if vlan is None else {"vlan": vlan}
    return model.VIF(id="port-1", address="fa:16:3e:00:00:01", network=network, details=details)


@pytest.mark.parametrize(
    ("vlan", "expected"), [("1", 1), ("4094", 4094), (2001, 2001), (None, 1), ("", 1)]
)
def test_vlan_ids_at_their_limits(vlan, expected):
    assert vif.vlan_of(_vif(vlan)) == expected


def test_the_network_meta_vlan_is_the_fallback():
    assert vif.vlan_of(_vif(meta_vlan=100)) == 100


@pytest.mark.parametrize("vlan", ["0", "4095", "-1", "abc", "1;reboot", "0x10", "1.5"])
def test_anything_else_is_refused_naming_the_port(vlan):
    with pytest.raises(exception.VirtualInterfacePlugException) as err:
        vif.vlan_of(_vif(vlan))
    assert "port-1" in str(err.value) and "1-4094" in str(err.value)
