"""Volume connector, data volumes and interface hot-plug, as seen on the HMC."""

from __future__ import annotations

import os_resource_classes as orc
import os_traits
import pytest
from nova import exception
from nova.compute import provider_tree

from ibmvirt.dpm import bootparams
from tests.unit.dpm.conftest import HOST, connection_info, vif

MAC1 = "fa:16:3e:00:00:01"
MAC2 = "fa:16:3e:00:00:02"


def test_connector_wwpns_known_before_spawn_and_after_destroy_and_restart(env):
    inst = env.instance()
    env.driver.prepare_for_spawn(inst)
    before = env.driver.get_volume_connector(inst)
    assert before["host"] == inst.uuid
    assert before["platform"] == "s390x"
    assert before["multipath"] is True
    env.driver.destroy(env.context, inst, [])
    assert env.partitions() == []
    # nova-compute restarted: nothing in memory, the WWPNs come from Nova's record.
    restarted = env.new_driver()
    assert restarted.get_volume_connector(inst)["wwpns"] == before["wwpns"]


def test_connector_read_back_from_hmc_without_system_metadata(env):
    inst = env.instance()
    env.driver.prepare_for_spawn(inst)
    expected = env.driver.get_volume_connector(inst)["wwpns"]
    inst.system_metadata = {}
    assert env.new_driver().get_volume_connector(inst)["wwpns"] == expected


@pytest.fixture
def bdm_sizes(monkeypatch):
    """Nova's block device mappings (the database) for the volumes of the tests."""
    from nova import objects

    sizes = {"vol-data": 20}

    def get(context, volume_id, instance_uuid, expected_attrs=None):
        if volume_id not in sizes:
            raise exception.VolumeBDMNotFound(volume_id=volume_id)
        return objects.BlockDeviceMapping(volume_id=volume_id, volume_size=sizes[volume_id])

    monkeypatch.setattr(objects.BlockDeviceMapping, "get_by_volume_and_instance", get)
    return sizes


def test_data_volume_attach_and_detach(env, bdm_sizes):
    inst = env.instance()
    env.spawn(inst)
    wwpns = env.driver.get_volume_connector(inst)["wwpns"]
    info = connection_info(wwpns, lun=300, volume_id="vol-data")
    env.driver.attach_volume(env.context, info, inst, "/dev/sdb")
    if env.gen == "z15":
        (sg,) = env.storage_groups()
        data = [v for v in sg.storage_volumes.list() if v.properties["usage"] == "data"]
        assert [v.properties["name"] for v in data] == ["OpenStack-vol-data"]
        assert data[0].properties["size"] == 20
        # LUN 300 needs flat-space addressing in the 8-byte FCP LUN.
        assert data[0].properties["paths"][0]["logical-unit-number"] == "412c000000000000"
        assert data[0].properties["fulfillment-state"] == "complete"
    env.driver.detach_volume(env.context, info, inst, "/dev/sdb")
    env.driver.detach_volume(env.context, info, inst, "/dev/sdb")  # idempotent
    if env.gen == "z15":
        (sg,) = env.storage_groups()
        assert [v.properties["usage"] for v in sg.storage_volumes.list()] == ["boot"]


def test_iscsi_volume_attach_refused(env):
    inst = env.instance()
    env.spawn(inst)
    info = connection_info([], volume_type="iscsi", volume_id="vol-x")
    with pytest.raises(exception.InvalidInput, match="vol-x.*'iscsi'"):
        env.driver.attach_volume(env.context, info, inst, "/dev/sdb")


def test_attach_and_detach_interface(env):
    inst = env.instance()
    env.spawn(inst, [vif("port-a", MAC1, env.ids.vswitch_osa_port0)])
    env.driver.attach_interface(
        env.context, inst, None, vif("port-b", MAC2, env.ids.vswitch_hipersockets)
    )
    part = env.partition(inst)
    nics = {n.properties["name"]: n.properties for n in part.nics.list()}
    assert set(nics) == {"OpenStack_Port_port-a", "OpenStack_Port_port-b"}
    records = bootparams.parse(part.properties["boot-os-specific-parameters"])
    assert {r.devno for r in records} == {n["device-number"].lower() for n in nics.values()}

    env.driver.detach_interface(env.context, inst, vif("port-a", MAC1, env.ids.vswitch_osa_port0))
    nics = [n.properties for n in part.nics.list()]
    assert [n["name"] for n in nics] == ["OpenStack_Port_port-b"]
    records = bootparams.parse(part.properties["boot-os-specific-parameters"])
    assert [r.devno for r in records] == [nics[0]["device-number"].lower()]
    # Detaching again (or a port that never was attached) changes nothing.
    env.driver.detach_interface(env.context, inst, vif("port-a", MAC1, env.ids.vswitch_osa_port0))
    assert len(part.nics.list()) == 1


def test_attach_interface_to_unknown_vswitch_fails_cleanly(env):
    inst = env.instance()
    env.spawn(inst)
    with pytest.raises(exception.InterfaceAttachFailed):
        env.driver.attach_interface(
            env.context, inst, None, vif("port-z", MAC2, "00000000-0000-4000-8000-0000000000ff")
        )
    assert list(env.partition(inst).nics.list()) == []


def test_resources_and_provider_tree(env):
    res = env.driver.get_available_resource(HOST)
    assert res["vcpus"] == 8
    assert res["memory_mb"] == 65536
    assert res["hypervisor_type"] == "prsm"
    assert res["hypervisor_version"] == (2015000 if env.gen == "z15" else 2013001)
    assert res["supported_instances"] == [("s390x", "prsm", "hvm")]

    tree = provider_tree.ProviderTree()
    tree.new_root(HOST, "2c3b1a02-5d6e-4bb1-9b06-6a6f0b2b6d10")
    env.driver.update_provider_tree(tree, HOST)
    inv = tree.data(HOST).inventory
    assert inv[orc.VCPU]["total"] == 8 and inv[orc.VCPU]["max_unit"] == 8
    assert inv[orc.MEMORY_MB]["total"] == 65536
    assert orc.DISK_GB not in inv  # boot from volume only
    assert {os_traits.HW_ARCH_S390X, os_traits.COMPUTE_ARCH_S390X} <= tree.data(HOST).traits
    # Static: no HMC request for the periodic resource update.
    assert len(env.log) == 0


def test_data_volumes_given_at_boot_are_defined_with_the_boot_volume(z15):
    inst = z15.instance()
    z15.driver.prepare_for_spawn(inst)
    bdi = z15.block_device_info(inst, lun=2)
    wwpns = z15.driver.get_volume_connector(inst)["wwpns"]
    bdi["block_device_mapping"].append(
        {
            "boot_index": None,
            "mount_device": "/dev/sdb",
            "volume_size": 5,
            "connection_info": connection_info(wwpns, lun=3, volume_id="vol-extra"),
        }
    )
    z15.driver.spawn(z15.context, inst, None, [], None, {}, [], bdi)
    (sg,) = z15.storage_groups()
    volumes = {v.properties["name"]: v.properties for v in sg.storage_volumes.list()}
    assert volumes["OpenStack-vol-boot"]["usage"] == "boot"
    extra = volumes["OpenStack-vol-extra"]
    assert (extra["usage"], extra["size"], extra["fulfillment-state"]) == ("data", 5, "complete")
    assert z15.partition(inst).properties["status"] == "active"


def test_attach_interface_failing_after_nic_creation_leaves_no_nic(env):
    inst = env.instance()
    env.spawn(inst)
    # The update of the boot parameters (the request after Create NIC) fails.
    env.log.clear()
    env.log.fail_at = 2  # GET partition, POST nics, POST partition
    with pytest.raises(exception.InterfaceAttachFailed):
        env.driver.attach_interface(
            env.context, inst, None, vif("port-b", MAC2, env.ids.vswitch_osa_port0)
        )
    assert env.log.requests[1][1].endswith("/nics")
    assert list(env.partition(inst).nics.list()) == []
