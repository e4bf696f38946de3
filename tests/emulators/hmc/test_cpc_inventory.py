"""CPC, adapters, ports and virtual switches as the DPM driver and agent read them."""

from __future__ import annotations

import pytest
import zhmcclient
from zhmcclient.mock import FakedSession

from ibmvirt.emulators.hmc import inventories

CASES = [
    ("z13", inventories.Z13_IDS, "2964", False),
    ("z15", inventories.Z15_IDS, "8561", True),
]


@pytest.mark.parametrize(("fixture", "ids", "machine_type", "storage_mgmt"), CASES)
def test_cpc_found_by_object_id_with_driver_properties(
    request, fixture, ids, machine_type, storage_mgmt
):
    fx = request.getfixturevalue(fixture)
    client = zhmcclient.Client(fx.session())
    cpc = client.cpcs.find(**{"object-id": ids.cpc})
    cpc.pull_full_properties()
    assert cpc.name == ids.cpc_name
    assert cpc.dpm_enabled is True
    assert cpc.get_property("processor-count-ifl") == ids.processor_count_ifl
    assert cpc.get_property("storage-customer") == ids.storage_customer_mib
    assert cpc.get_property("se-version") == ids.se_version
    assert cpc.get_property("machine-type") == machine_type
    assert cpc.get_property("status") == "active"
    assert cpc.firmware_feature_enabled("dpm-storage-management") is storage_mgmt
    if storage_mgmt:
        names = [f["name"] for f in cpc.get_property("available-features-list")]
        assert "dpm-storage-management" in names
    else:
        assert "available-features-list" not in cpc.properties


@pytest.mark.parametrize(("fixture", "ids", "machine_type", "storage_mgmt"), CASES)
def test_adapters_ports_and_vswitches(request, fixture, ids, machine_type, storage_mgmt):
    fx = request.getfixturevalue(fixture)
    client = zhmcclient.Client(fx.session())
    cpc = client.cpcs.find(**{"object-id": ids.cpc})
    for oid in ids.fcp_adapters:
        fcp = cpc.adapters.find(**{"object-id": oid})
        assert fcp.get_property("type") == "fcp"
        ports = fcp.ports.list()
        assert [p.get_property("element-id") for p in ports] == ["0"]
        assert ports[0].uri == f"/api/adapters/{oid}/storage-ports/0"
    osa = cpc.adapters.find(**{"object-id": ids.osa_adapter})
    assert osa.get_property("type") == "osd"
    assert sorted(p.get_property("element-id") for p in osa.ports.list()) == ["0", "1"]
    hs = cpc.adapters.find(**{"object-id": ids.hipersockets_adapter})
    assert hs.get_property("type") == "hipersockets"

    # The networking agent's lookup: vswitch by backing adapter and port number.
    vs0 = cpc.virtual_switches.find(**{"backing-adapter-uri": osa.uri, "port": 0})
    vs1 = cpc.virtual_switches.find(**{"backing-adapter-uri": osa.uri, "port": 1})
    vshs = cpc.virtual_switches.find(**{"backing-adapter-uri": hs.uri, "port": 0})
    assert vs0.get_property("object-id") == ids.vswitch_osa_port0
    assert vs1.get_property("object-id") == ids.vswitch_osa_port1
    assert vshs.get_property("object-id") == ids.vswitch_hipersockets
    assert vshs.get_property("type") == "hipersockets"
    assert vs0.get_connected_nics() == []


@pytest.mark.parametrize("path", [inventories.Z13, inventories.Z15])
def test_inventories_are_plain_zhmcclient_mock_definitions(path):
    # An inventory is exactly what zhmcclient.mock reads (so a dump from a real
    # HMC with zhmcclient works as an inventory, and ours work in-process too).
    session = FakedSession.from_hmc_yaml_file(path)
    cpcs = zhmcclient.Client(session).cpcs.list()
    assert len(cpcs) == 1
    assert inventories.ALL[path].cpc == cpcs[0].get_property("object-id")


def test_unknown_cpc_object_id_is_not_found(z15_client):
    with pytest.raises(zhmcclient.NotFound):
        z15_client.cpcs.find(**{"object-id": "00000000-0000-4000-8000-000000000000"})
