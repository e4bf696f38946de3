"""List Partitions of a CPC: ``additional-properties`` exists from HMC 2.16.0 on."""

from __future__ import annotations

import pytest
import zhmcclient

from ibmvirt.emulators.hmc import HMCEmulatorFixture, inventories

from .conftest import new_partition


def test_additional_properties_refused_before_hmc_2_16(z15_cpc, z15):
    new_partition(z15_cpc)
    with pytest.raises(zhmcclient.HTTPError) as info:
        z15_cpc.partitions.list(additional_properties=["nic-uris"])
    assert (info.value.http_status, info.value.reason) == (400, 1)
    assert "2.16.0" in info.value.message
    # Without it the list still works.
    assert [p.name for p in z15_cpc.partitions.list()] == ["inst-1"]


def test_additional_properties_on_hmc_2_16(tmp_path):
    fx = HMCEmulatorFixture(
        inventories.with_hmc_version(inventories.Z15, "2.16.0", "4.10", str(tmp_path))
    )
    fx.setUp()
    try:
        client = zhmcclient.Client(fx.session())
        assert client.query_api_version()["hmc-version"] == "2.16.0"
        cpc = client.cpcs.find(**{"object-id": inventories.Z15_IDS.cpc})
        part = new_partition(cpc)
        vswitch = cpc.virtual_switches.list()[0]
        nic = part.nics.create({"name": "n1", "virtual-switch-uri": vswitch.uri})
        before = fx.emulator.request_count()
        (listed,) = cpc.partitions.list(additional_properties=["nic-uris"])
        assert listed.properties["nic-uris"] == [nic.uri]
        assert listed.properties["status"] == "stopped"
        assert fx.emulator.request_count() == before + 1
    finally:
        fx.cleanUp()
