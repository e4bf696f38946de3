"""The zhmcclient calls the DPM driver makes, each against the emulator over TLS."""

import pytest
import zhmcclient

from ibmvirt.emulators.hmc import inventories

IDS = inventories.Z15_IDS


def _partition(cpc, name):
    return cpc.partitions.create(
        {"name": name, "ifl-processors": 1, "initial-memory": 1024, "maximum-memory": 1024}
    )


def test_partition_list_filtered_by_name_regex_returns_only_matches(z15_cpc):
    for name in ("OpenStack-a-1", "OpenStack-a-2", "OpenStack-b-1", "other"):
        _partition(z15_cpc, name)
    names = {p.name for p in z15_cpc.partitions.list(filter_args={"name": "^OpenStack-a-.*$"})}
    assert names == {"OpenStack-a-1", "OpenStack-a-2"}
    # The listing carries the status the power-state sync reads.
    assert {p.prop("status", None) for p in z15_cpc.partitions.list()} == {"stopped"}


def test_find_by_name_and_selected_properties(z15_cpc):
    _partition(z15_cpc, "OpenStack-a-1")
    partition = z15_cpc.partitions.find_by_name("OpenStack-a-1")
    assert partition.get_properties_pulled(["status", "initial-memory"]) == ["stopped", 1024]
    with pytest.raises(zhmcclient.NotFound):
        z15_cpc.partitions.find_by_name("OpenStack-missing")


def test_wait_for_status_after_start(z15_cpc):
    partition = _partition(z15_cpc, "OpenStack-a-1")
    partition.start()
    partition.wait_for_status(["active"], status_timeout=10)
    assert partition.get_property("status") == "active"


def test_nic_find_by_name(z15_cpc):
    partition = _partition(z15_cpc, "OpenStack-a-1")
    partition.nics.create(
        {
            "name": "OpenStack_Port_p1",
            "virtual-switch-uri": f"/api/virtual-switches/{IDS.vswitch_osa_port1}",
        }
    )
    nic = partition.nics.find(name="OpenStack_Port_p1")
    assert nic.get_property("virtual-switch-uri").endswith(IDS.vswitch_osa_port1)
    with pytest.raises(zhmcclient.NotFound):
        partition.nics.find(name="OpenStack_Port_p2")


def test_virtual_switch_ports_in_full_listing(z15_cpc):
    ports = {
        vs.get_property("object-id"): vs.get_property("port")
        for vs in z15_cpc.virtual_switches.list(full_properties=True)
    }
    assert ports[IDS.vswitch_osa_port0] == 0
    assert ports[IDS.vswitch_osa_port1] == 1


def test_storage_groups_listed_by_cpc(z15_client, z15_cpc):
    groups = z15_client.consoles.console.storage_groups
    groups.create({"name": "OpenStack-a-1", "cpc-uri": z15_cpc.uri, "type": "fcp"})
    listed = groups.list(filter_args={"cpc-uri": z15_cpc.uri})
    assert [g.name for g in listed] == ["OpenStack-a-1"]
    assert groups.list(filter_args={"cpc-uri": "/api/cpcs/no-such-cpc"}) == []
