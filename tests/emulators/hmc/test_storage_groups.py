"""z15 DPM storage management: the boot-from-volume flow and its refusals."""

from __future__ import annotations

import pytest
import zhmcclient

from ibmvirt.emulators.hmc import inventories

from .conftest import http_error, new_partition

IDS = inventories.Z15_IDS
TARGET_WWPN = "500507680b2155aa"
LUN = "0001000000000000"


def _ports(cpc):
    return [cpc.adapters.find(**{"object-id": oid}).ports.list()[0] for oid in IDS.fcp_adapters]


def _new_sg(client, cpc, name="OpenStack-host1-sg", ports=None, **extra):
    props = {
        "name": name,
        "cpc-uri": cpc.uri,
        "type": "fcp",
        "shared": False,
        "max-partitions": 1,
        "connectivity": 2,
    }
    if ports is not None:
        props["candidate-adapter-port-uris"] = [p.uri for p in ports]
    props.update(extra)
    return client.consoles.console.storage_groups.create(props)


def test_boot_from_volume_flow(z15_client, z15_cpc, z15):
    ports = _ports(z15_cpc)
    part = new_partition(z15_cpc)
    sg = _new_sg(z15_client, z15_cpc, ports=ports[:1])
    sg.add_candidate_adapter_ports(ports[1:])
    sg.pull_full_properties()
    assert sorted(p.uri for p in sg.list_candidate_adapter_ports()) == sorted(p.uri for p in ports)
    sg.pull_full_properties()
    unassigned = sg.get_property("unassigned-world-wide-port-names")
    assert len(unassigned) == 2  # connectivity x max-partitions, zonable before attach

    boot = sg.storage_volumes.create({"name": "boot", "size": 20.0, "usage": "boot"})
    boot.pull_full_properties()
    assert boot.get_property("fulfillment-state") == "pending"

    part.attach_storage_group(sg)
    assert [g.uri for g in part.list_attached_storage_groups()] == [sg.uri]
    assert [p.uri for p in sg.list_attached_partitions()] == [part.uri]
    vsrs = sg.virtual_storage_resources.list(full_properties=True)
    assert len(vsrs) == 2
    assert sorted(v.get_property("world-wide-port-name") for v in vsrs) == sorted(unassigned)
    assert {v.get_property("adapter-port-uri") for v in vsrs} == {p.uri for p in ports}
    assert {v.get_property("partition-uri") for v in vsrs} == {part.uri}
    assert len({v.get_property("device-number") for v in vsrs}) == 2
    sg.pull_full_properties()
    assert sg.get_property("unassigned-world-wide-port-names") == []

    # Starting from an unfulfilled boot volume fails; the partition stays stopped.
    part.update_properties({"boot-device": "storage-volume", "boot-storage-volume": boot.uri})
    with pytest.raises(zhmcclient.HTTPError) as exc:
        part.start()
    assert http_error(exc) == (500, 263)
    assert "fulfil" in exc.value.message
    part.pull_full_properties()
    assert part.get_property("status") == "stopped"

    boot.indicate_fulfillment_fcp(TARGET_WWPN, LUN, ports[0])
    boot.pull_full_properties()
    assert boot.get_property("fulfillment-state") == "complete"
    paths = boot.get_property("paths")
    assert {p["target-world-wide-port-name"] for p in paths} == {TARGET_WWPN}
    assert {p["logical-unit-number"] for p in paths} == {LUN}
    assert {p["device-number"] for p in paths} == {v.get_property("device-number") for v in vsrs}
    sg.pull_full_properties()
    assert sg.get_property("fulfillment-state") == "complete"
    vsr = sg.virtual_storage_resources.list(full_properties=True)[0]
    assert vsr.get_property("world-wide-port-name-info")["status"] == "validated"

    part.start()
    part.pull_full_properties()
    assert part.get_property("status") == "active"

    # In use: no delete of the group, no delete of the boot volume, no detach.
    with pytest.raises(zhmcclient.HTTPError) as exc:
        sg.delete()
    assert http_error(exc) == (409, 122)
    with pytest.raises(zhmcclient.HTTPError) as exc:
        boot.delete()
    assert http_error(exc) == (409, 122)
    with pytest.raises(zhmcclient.HTTPError) as exc:
        part.detach_storage_group(sg)
    assert http_error(exc) == (409, 1)

    # A data volume can come and go while the partition runs.
    data = sg.storage_volumes.create({"name": "data", "size": 5, "usage": "data"})
    sg.pull_full_properties()
    assert sg.get_property("fulfillment-state") == "pending"
    data.delete()

    part.stop()
    part.detach_storage_group(sg)
    assert sg.virtual_storage_resources.list() == []
    sg.pull_full_properties()
    assert sorted(sg.get_property("unassigned-world-wide-port-names")) == sorted(unassigned)
    part.pull_full_properties()
    assert part.get_property("storage-group-uris") == []
    sg.delete()
    assert z15_client.consoles.console.storage_groups.list() == []
    with z15.emulator.lock:
        assert z15.emulator.faked_hmc.consoles.console.storage_groups.list() == []


def test_attach_refusals(z15_client, z15_cpc):
    ports = _ports(z15_cpc)
    a = new_partition(z15_cpc, "a")
    b = new_partition(z15_cpc, "b")
    empty = _new_sg(z15_client, z15_cpc, "no-ports")
    with pytest.raises(zhmcclient.HTTPError) as exc:
        a.attach_storage_group(empty)
    assert http_error(exc) == (409, 1)
    assert "candidate" in exc.value.message

    sg = _new_sg(z15_client, z15_cpc, ports=ports)
    a.attach_storage_group(sg)
    with pytest.raises(zhmcclient.HTTPError) as exc:
        a.attach_storage_group(sg)
    assert http_error(exc) == (409, 120)
    with pytest.raises(zhmcclient.HTTPError) as exc:
        b.attach_storage_group(sg)  # max-partitions 1
    assert http_error(exc) == (409, 123)
    assert "max-partitions" in exc.value.message
    with pytest.raises(zhmcclient.HTTPError) as exc:
        b.detach_storage_group(sg)
    assert http_error(exc) == (409, 121)
    # A candidate port that carries a VSR cannot be removed.
    with pytest.raises(zhmcclient.HTTPError) as exc:
        sg.remove_candidate_adapter_ports(ports[:1])
    assert http_error(exc) == (409, 122)
    assert len(sg.virtual_storage_resources.list()) == 2


def test_shared_group_serves_two_partitions(z15_client, z15_cpc):
    ports = _ports(z15_cpc)
    sg = _new_sg(z15_client, z15_cpc, "shared", ports=ports, shared=True, **{"max-partitions": 2})
    a = new_partition(z15_cpc, "a")
    b = new_partition(z15_cpc, "b")
    a.attach_storage_group(sg)
    b.attach_storage_group(sg)
    vsrs = sg.virtual_storage_resources.list(full_properties=True)
    assert len(vsrs) == 4
    assert len({v.get_property("world-wide-port-name") for v in vsrs}) == 4
    b.delete()  # deleting a stopped partition detaches its groups
    assert len(sg.virtual_storage_resources.list()) == 2
    assert [p.name for p in sg.list_attached_partitions()] == ["a"]


def test_storage_group_refusals(z15_client, z15_cpc, z13_client, z13_cpc):
    _new_sg(z15_client, z15_cpc, "dup")
    with pytest.raises(zhmcclient.HTTPError) as exc:
        _new_sg(z15_client, z15_cpc, "dup")
    assert http_error(exc) == (400, 8)
    with pytest.raises(zhmcclient.HTTPError) as exc:
        _new_sg(z15_client, z15_cpc, "t", type="tape")
    assert http_error(exc) == (400, 7)
    with pytest.raises(zhmcclient.HTTPError) as exc:
        _new_sg(z15_client, z15_cpc, "t", **{"cpc-uri": "/api/cpcs/nope"})
    assert http_error(exc) == (404, 2)
    sg = z15_client.consoles.console.storage_groups.find(name="dup")
    sg.storage_volumes.create({"name": "v", "size": 1})
    with pytest.raises(zhmcclient.HTTPError) as exc:
        sg.storage_volumes.create({"name": "v", "size": 1})
    assert http_error(exc) == (400, 8)
    with pytest.raises(zhmcclient.HTTPError) as exc:
        sg.storage_volumes.create({"name": "nosize"})
    assert exc.value.http_status == 400
    vol = sg.storage_volumes.find(name="v")
    port = z15_cpc.adapters.find(**{"object-id": IDS.fcp_adapters[0]}).ports.list()[0]
    with pytest.raises(zhmcclient.HTTPError) as exc:
        vol.indicate_fulfillment_fcp(TARGET_WWPN, LUN, port)  # not a candidate port
    assert http_error(exc) == (400, 7)
    # z13 has no DPM storage management: no storage groups.
    with pytest.raises(zhmcclient.HTTPError) as exc:
        _new_sg(z13_client, z13_cpc, "z13-sg")
    assert http_error(exc) == (409, 5)
    assert "dpm-storage-management" in exc.value.message


def test_cpc_lists_associated_storage_groups(z15_client, z15_cpc):
    _new_sg(z15_client, z15_cpc, "one")
    _new_sg(z15_client, z15_cpc, "two")
    names = sorted(g.name for g in z15_cpc.list_associated_storage_groups())
    assert names == ["one", "two"]


def test_group_and_volume_names_are_unique_at_create_and_rename(z15_client, z15_cpc):
    """The one uniqueness rule for groups (per HMC) and volumes (per group)."""
    sg = _new_sg(z15_client, z15_cpc, "sg-a")
    _new_sg(z15_client, z15_cpc, "sg-b")
    with pytest.raises(zhmcclient.HTTPError) as exc:
        _new_sg(z15_client, z15_cpc, "sg-b")
    assert http_error(exc) == (400, 8)
    with pytest.raises(zhmcclient.HTTPError) as exc:
        sg.update_properties({"name": "sg-b"})
    assert http_error(exc) == (400, 8)
    v1 = sg.storage_volumes.create({"name": "v1", "size": 1.0, "usage": "boot"})
    v2 = sg.storage_volumes.create({"name": "v2", "size": 1.0, "usage": "data"})
    with pytest.raises(zhmcclient.HTTPError) as exc:
        sg.storage_volumes.create({"name": "v1", "size": 1.0})
    assert http_error(exc) == (400, 8)
    with pytest.raises(zhmcclient.HTTPError) as exc:
        v2.update_properties({"name": "v1"})
    assert http_error(exc) == (400, 8)
    v1.update_properties({"name": "v1"})  # its own name: fine
    sg.pull_full_properties()
    assert sorted(v.name for v in sg.storage_volumes.list()) == ["v1", "v2"]
    assert sg.name == "sg-a"
