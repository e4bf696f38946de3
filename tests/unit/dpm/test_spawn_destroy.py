"""Spawn, destroy and their failure paths, judged by what is left on the HMC."""

from __future__ import annotations

import pytest
from nova import exception

from ibmvirt import contract
from ibmvirt.dpm import bootparams
from ibmvirt.dpm import exceptions as dpm_exc
from tests.unit.dpm.conftest import HOST, TARGETS, make_env, vif

MAC1 = "fa:16:3e:00:00:01"
MAC2 = "fa:16:3e:00:00:02"


def _nics(part):
    return list(part.nics.list())


def _hbas(part):
    return list(part.hbas.list())


def test_prepare_for_spawn_creates_stopped_partition_with_recorded_wwpns(env, saved_sysmeta):
    inst = env.instance(vcpus=3, memory_mb=4096)
    env.driver.prepare_for_spawn(inst)
    # Persisted through a separate Instance object (not the compute manager's).
    assert saved_sysmeta[inst.uuid][-1] == dict(inst.system_metadata)
    assert saved_sysmeta[inst.uuid][-1]["dpm_wwpns"]

    part = env.partition(inst)
    assert part.properties["name"] == f"OpenStack-{HOST}-{inst.uuid}"
    assert HOST in part.properties["description"]
    assert part.properties["status"] == "stopped"
    assert part.properties["ifl-processors"] == 3
    assert part.properties["initial-memory"] == 4096
    assert part.properties["maximum-memory"] == 4096

    wwpns = env.driver.get_volume_connector(inst)["wwpns"]
    if env.gen == "z13":
        hbas = _hbas(part)
        assert [h.properties["adapter-port-uri"] for h in hbas] == [
            f"/api/adapters/{a}/storage-ports/0" for a in env.ids.fcp_adapters
        ]
        assert wwpns == [h.properties["wwpn"].lower() for h in hbas]
    else:
        (sg,) = env.storage_groups()
        assert sg.properties["name"] == part.properties["name"]
        assert sg.properties["shared"] is False
        assert sg.properties["max-partitions"] == 1
        assert part.properties["storage-group-uris"] == [sg.uri]
        vsrs = list(sg.virtual_storage_resources.list())
        assert sorted(wwpns) == sorted(v.properties["world-wide-port-name"] for v in vsrs)
    assert len(wwpns) == 2 and len(set(wwpns)) == 2


def test_spawn_boots_partition_from_volume_with_nics(env):
    inst = env.instance()
    vifs = [
        vif("port-a", MAC1, env.ids.vswitch_osa_port0),
        # The OSA port comes from the virtual switch on the HMC, not from Neutron.
        vif("port-b", MAC2, env.ids.vswitch_osa_port1),
    ]
    env.spawn(inst, vifs, lun=5)

    part = env.partition(inst)
    props = part.properties
    assert props["status"] == "active"
    wwpns = env.driver.get_volume_connector(inst)["wwpns"]
    if env.gen == "z13":
        boot_hba = env.session.hmc.lookup_by_uri(props["boot-storage-device"])
        assert props["boot-device"] == "storage-adapter"
        assert boot_hba.properties["wwpn"].lower() == wwpns[0]
        assert boot_hba.properties["adapter-port-uri"].startswith(
            f"/api/adapters/{env.ids.fcp_adapters[0]}/"
        )
        assert props["boot-world-wide-port-name"] == TARGETS[0]
        assert props["boot-logical-unit-number"] == "0005000000000000"
    else:
        sv = env.session.hmc.lookup_by_uri(props["boot-storage-volume"])
        assert props["boot-device"] == "storage-volume"
        assert sv.properties["usage"] == "boot"
        assert sv.properties["fulfillment-state"] == "complete"
        paths = sv.properties["paths"]
        assert len(paths) == 2  # one per configured FCP port
        for path in paths:
            assert path["target-world-wide-port-name"] == TARGETS[0]
            assert path["logical-unit-number"] == "0005000000000000"

    nics = {n.properties["name"]: n.properties for n in _nics(part)}
    assert set(nics) == {"OpenStack_Port_port-a", "OpenStack_Port_port-b"}
    a = nics["OpenStack_Port_port-a"]
    assert contract.parse_dpm_nic_description(a["description"]) == (HOST, MAC1)
    assert a["virtual-switch-uri"] == f"/api/virtual-switches/{env.ids.vswitch_osa_port0}"

    records = {r.devno: r for r in bootparams.parse(props["boot-os-specific-parameters"])}
    devno_a = nics["OpenStack_Port_port-a"]["device-number"].lower()
    devno_b = nics["OpenStack_Port_port-b"]["device-number"].lower()
    assert set(records) == {devno_a, devno_b}
    assert records[devno_b].port == 1
    if env.gen == "z13":
        # The HMC cannot set the MAC: the guest tools set it from the record.
        assert records[devno_a].mac == MAC1.replace(":", "")
        assert "mac-address" not in a or a.get("mac-address") != MAC1
    else:
        assert a["mac-address"] == MAC1
        assert records[devno_a].mac is None

    # Nova waited for both ports to be plugged.
    assert env.virtapi.waited == [
        [("network-vif-plugged", "port-a"), ("network-vif-plugged", "port-b")]
    ]


def test_spawn_needs_at_most_ten_hmc_requests(env):
    inst = env.instance()
    env.log.clear()
    env.spawn(inst, [vif("port-a", MAC1, env.ids.vswitch_osa_port0)])
    # No job polls on the in-process HMC: every request counts.
    assert len(env.log) <= 10, "\n".join(map(str, env.log.requests))


def test_spawn_without_power_on_leaves_partition_stopped(env):
    inst = env.instance()
    env.spawn(inst, power_on=False)
    assert env.partition(inst).properties["status"] == "stopped"


def test_boot_from_image_refused_before_anything_is_created(env):
    inst = env.instance(image_ref="a2459075-d96c-40d5-893e-577ff92e721c")
    with pytest.raises(exception.InstanceUnacceptable, match="boot from a Cinder volume"):
        env.driver.prepare_for_spawn(inst)
    assert env.partitions() == []
    assert env.storage_groups() == []


def _assert_nothing_left(env, inst):
    assert env.partition(inst) is None
    assert env.storage_groups() == []
    assert env.driver.list_instances() == []


def test_spawn_failure_on_bad_vswitch_leaves_nothing(env):
    inst = env.instance()
    bad = vif("port-a", MAC1, "00000000-0000-4000-8000-00000000dead")
    with pytest.raises(
        dpm_exc.InvalidVIF, match="virtual switch 00000000-0000-4000-8000-00000000dead"
    ):
        env.spawn(inst, [bad])
    _assert_nothing_left(env, inst)


def test_spawn_refuses_wrong_vif_type_and_vlan(env):
    inst = env.instance()
    with pytest.raises(exception.InvalidInput, match="vif_type 'ovs'"):
        env.spawn(inst, [vif("port-a", MAC1, env.ids.vswitch_osa_port0, vif_type="ovs")])
    _assert_nothing_left(env, inst)
    inst = env.instance()
    with pytest.raises(exception.InvalidInput, match="flat networks only"):
        env.spawn(inst, [vif("port-a", MAC1, env.ids.vswitch_osa_port0, vlan=100)])
    _assert_nothing_left(env, inst)


def test_too_many_nics_refused_before_any_nic_is_created(env):
    inst = env.instance()
    # A record is 21 characters with the MAC (z13), 8 without (z15).
    count = 13 if env.gen == "z13" else 33
    vifs = [
        vif(f"port-{i}", f"fa:16:3e:00:00:{i:02x}", env.ids.vswitch_osa_port0) for i in range(count)
    ]
    env.driver.prepare_for_spawn(inst)
    env.log.clear()
    with pytest.raises(exception.InvalidInput, match="256"):
        env.driver.spawn(env.context, inst, None, [], None, {}, vifs, env.block_device_info(inst))
    assert not [r for r in env.log.requests if r[1].endswith("/nics")]
    _assert_nothing_left(env, inst)


def test_non_fc_boot_volume_refused_and_cleaned_up(env):
    inst = env.instance()
    env.driver.prepare_for_spawn(inst)
    bdi = env.block_device_info(inst, volume_type="iscsi")
    with pytest.raises(exception.InvalidInput, match="'iscsi'.*FCP only"):
        env.driver.spawn(env.context, inst, None, [], None, {}, [], bdi)
    _assert_nothing_left(env, inst)


def test_all_targets_ignored_is_refused_naming_the_option(conf):
    env = make_env(conf, "z13", target_wwpn_ignore_list=[t.upper() for t in TARGETS])
    inst = env.instance()
    with pytest.raises(exception.InvalidInput, match="target_wwpn_ignore_list"):
        env.spawn(inst)
    _assert_nothing_left(env, inst)


def test_ignored_target_is_skipped(conf):
    env = make_env(conf, "z13", target_wwpn_ignore_list=[TARGETS[0]])
    inst = env.instance()
    env.spawn(inst)
    assert env.partition(inst).properties["boot-world-wide-port-name"] == TARGETS[1]


def test_start_failure_leaves_nothing_and_names_the_cause(env):
    # More IFLs than the CPC has (placement would normally prevent it): Start fails.
    inst = env.instance(vcpus=env.ids.processor_count_ifl + 1)
    with pytest.raises(dpm_exc.PartitionOperationFailed, match="start failed.*IFL processors"):
        env.spawn(inst, [vif("port-a", MAC1, env.ids.vswitch_osa_port0)])
    _assert_nothing_left(env, inst)


def test_vif_plug_timeout_is_fatal_and_cleans_up(env):
    env.virtapi.time_out = True
    inst = env.instance()
    with pytest.raises(exception.VirtualInterfaceCreateException):
        env.spawn(inst, [vif("port-a", MAC1, env.ids.vswitch_osa_port0)])
    _assert_nothing_left(env, inst)


def test_vif_plug_timeout_not_fatal_when_configured(env, conf):
    conf.config(vif_plugging_is_fatal=False)
    env.virtapi.time_out = True
    inst = env.instance()
    env.spawn(inst, [vif("port-a", MAC1, env.ids.vswitch_osa_port0)])
    assert env.partition(inst).properties["status"] == "active"


def test_failed_spawn_cleanup_removes_prepared_partition(env):
    inst = env.instance()
    env.driver.prepare_for_spawn(inst)
    env.driver.failed_spawn_cleanup(inst)
    _assert_nothing_left(env, inst)
    env.driver.failed_spawn_cleanup(inst)  # idempotent


def test_prepare_for_spawn_replaces_leftover_partition(env):
    inst = env.instance()
    env.driver.prepare_for_spawn(inst)
    # A reschedule back to this host: nova-compute restarted in between.
    drv = env.new_driver()
    drv.prepare_for_spawn(inst)
    assert len(env.partitions()) == 1
    assert len(env.storage_groups()) == (1 if env.gen == "z15" else 0)


def test_destroy_removes_everything_and_is_idempotent(env):
    inst = env.instance()
    env.spawn(inst, [vif("port-a", MAC1, env.ids.vswitch_osa_port0)])
    env.driver.destroy(env.context, inst, [])
    _assert_nothing_left(env, inst)
    env.driver.destroy(env.context, inst, [])
    # A new driver (restart) with a stale view also copes.
    env.new_driver().destroy(env.context, inst, [])


def test_destroy_after_partition_deleted_outside_still_removes_storage_group(z15):
    inst = z15.instance()
    z15.driver.prepare_for_spawn(inst)
    part = z15.partition(inst)
    part.properties["storage-group-uris"] = []
    z15.cpc.partitions.remove(part.oid)
    z15.driver.destroy(z15.context, inst, [])
    assert z15.storage_groups() == []


def test_destroy_of_paused_partition(env):
    inst = env.instance()
    env.spawn(inst)
    env.set_status(inst, "paused")  # in-band shutdown
    env.driver.destroy(env.context, inst, [])
    _assert_nothing_left(env, inst)


def test_restart_removes_orphan_storage_groups_of_this_host_only(conf):
    env = make_env(conf, "z15")
    kept, orphan = env.instance(), env.instance()
    env.spawn(kept)
    env.driver.prepare_for_spawn(orphan)
    other = env.new_driver("subset2")
    theirs = env.instance()
    other.prepare_for_spawn(theirs)
    # nova-compute died in the middle of destroying `orphan`: partition gone, group left.
    part = env.partition(orphan)
    part.properties["storage-group-uris"] = []
    env.cpc.partitions.remove(part.oid)
    for vsr_owner in env.storage_groups():
        if vsr_owner.properties["name"].endswith(orphan.uuid):
            orphan_group = vsr_owner.properties["name"]

    env.new_driver(HOST)

    names = sorted(g.properties["name"] for g in env.storage_groups())
    assert orphan_group not in names
    assert names == sorted([f"OpenStack-{HOST}-{kept.uuid}", f"OpenStack-subset2-{theirs.uuid}"])


def test_vifs_already_active_are_not_waited_for(env):
    inst = env.instance()
    active = vif("port-a", MAC1, env.ids.vswitch_osa_port0)
    active["active"] = True
    env.spawn(inst, [active, vif("port-b", MAC2, env.ids.vswitch_osa_port1)])
    assert env.virtapi.waited == [[("network-vif-plugged", "port-b")]]


def test_two_ports_of_one_fcp_adapter_get_one_hba_each(conf):
    env = make_env(conf, "z13", init=False)
    adapter_id = env.ids.fcp_adapters[0]
    adapter = env.cpc.adapters.lookup_by_oid(adapter_id)
    adapter.ports.add({"element-id": "1", "name": "Port 1", "index": 1})
    conf.config(
        group="dpm",
        physical_storage_adapter_mappings=[f"{adapter_id}:0", f"{adapter_id}:1"],
    )
    env.driver.init_host(HOST)
    inst = env.instance()
    env.spawn(inst)
    hbas = {h.properties["adapter-port-uri"]: h.properties for h in env.partition(inst).hbas.list()}
    wwpns = env.driver.get_volume_connector(inst)["wwpns"]
    ports = [f"/api/adapters/{adapter_id}/storage-ports/{p}" for p in "01"]
    assert wwpns == [hbas[p]["wwpn"].lower() for p in ports]
    assert env.partition(inst).properties["boot-storage-device"] == hbas[ports[0]]["element-uri"]


@pytest.mark.parametrize("gen", ["z13", "z15"])
def test_a_failure_at_any_hmc_request_of_a_boot_leaves_nothing(conf, gen):
    probe = make_env(conf, gen)
    probe.spawn(probe.instance(), [vif("port-a", MAC1, probe.ids.vswitch_osa_port0)])
    count = len(probe.log)
    assert count >= 8
    for i in range(count):
        env = make_env(conf, gen)
        inst = env.instance()
        env.log.fail_at = i
        with pytest.raises(Exception) as info:
            env.spawn(inst, [vif("port-a", MAC1, env.ids.vswitch_osa_port0)])
        # Nova's fault message is str() of the exception: it must name the cause.
        assert "injected HMC failure" in str(info.value)
        request = env.log.requests[i]
        assert env.partitions() == [], (request, info.value)
        assert env.storage_groups() == [], request


def test_concurrent_boots_and_deletes(env):
    # nova-compute (threading mode) builds and deletes servers in parallel threads.
    from concurrent.futures import ThreadPoolExecutor

    instances = [env.instance(vcpus=1, memory_mb=1024) for _ in range(4)]
    vifs = {
        inst.uuid: [vif(f"port-{i}", f"fa:16:3e:00:01:{i:02x}", env.ids.vswitch_osa_port0)]
        for i, inst in enumerate(instances)
    }
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda inst: env.spawn(inst, vifs[inst.uuid]), instances))
    assert sorted(env.driver.list_instance_uuids()) == sorted(i.uuid for i in instances)
    for inst in instances:
        part = env.partition(inst)
        assert part.properties["status"] == "active"
        (nic,) = part.nics.list()
        assert nic.properties["name"] == f"OpenStack_Port_{vifs[inst.uuid][0]['id']}"
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda inst: env.driver.destroy(env.context, inst, []), instances))
    assert env.partitions() == []
    assert env.storage_groups() == []
