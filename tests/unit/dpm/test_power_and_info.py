"""Power operations, instance listing and the cost of Nova's power-state sync."""

from __future__ import annotations

import pytest
from nova import exception
from nova.compute import power_state

from ibmvirt.dpm import host as dpm_host
from tests.unit.dpm.conftest import HOST, make_env


@pytest.fixture
def running(env, monkeypatch):
    """A spawned instance, some time later: the HMC may have changed its status since."""
    inst = env.instance()
    env.spawn(inst)
    monkeypatch.setattr(dpm_host, "OPERATION_STATUS_SECONDS", 0.0)
    return env, inst


def test_status_after_spawn_and_power_ops_costs_no_request(env):
    # Nova reads the power state (use_cache=False) right after each operation.
    inst = env.instance()
    env.spawn(inst)
    env.log.clear()
    assert env.driver.get_info(inst, use_cache=False).state == power_state.RUNNING
    env.driver.power_off(inst)
    env.log.clear()
    assert env.driver.get_info(inst, use_cache=False).state == power_state.SHUTDOWN
    assert len(env.log) == 0


def _status(env, inst):
    return env.partition(inst).properties["status"]


def test_power_off_and_on(running):
    env, inst = running
    env.driver.power_off(inst)
    assert _status(env, inst) == "stopped"
    assert env.driver.get_info(inst).state == power_state.SHUTDOWN
    env.driver.power_off(inst)  # already off: nothing to do
    env.driver.power_on(env.context, inst, [])
    assert _status(env, inst) == "active"
    assert env.driver.get_info(inst).state == power_state.RUNNING


@pytest.mark.parametrize("status", ["paused", "terminated"])
def test_power_on_recovers_paused_and_terminated_partitions(running, status):
    # In-band shutdown leaves 'paused'; the HMC refuses Start until Stop resets it.
    env, inst = running
    env.set_status(inst, status)
    assert env.driver.get_info(inst, use_cache=False).state in (
        power_state.SHUTDOWN,
        power_state.CRASHED,
    )
    env.driver.power_on(env.context, inst, [])
    assert _status(env, inst) == "active"


def test_power_on_when_running_is_a_no_op(running):
    env, inst = running
    env.log.clear()
    env.driver.power_on(env.context, inst, [])
    assert _status(env, inst) == "active"
    assert [m for m, _ in env.log.requests] == ["GET"]


@pytest.mark.parametrize("reboot_type", ["SOFT", "HARD"])
def test_reboot_restarts_the_partition(running, reboot_type):
    env, inst = running
    env.log.clear()
    env.driver.reboot(env.context, inst, [], reboot_type)
    assert _status(env, inst) == "active"
    ops = [u.rsplit("/", 1)[-1] for m, u in env.log.requests if m == "POST"]
    assert ops == ["stop", "start"]


def test_reboot_of_a_stopped_instance_starts_it(running):
    env, inst = running
    env.driver.power_off(inst)
    env.driver.reboot(env.context, inst, [], "HARD")
    assert _status(env, inst) == "active"


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("active", power_state.RUNNING),
        ("degraded", power_state.RUNNING),
        ("stopped", power_state.SHUTDOWN),
        ("paused", power_state.SHUTDOWN),
        ("terminated", power_state.CRASHED),
        ("starting", power_state.NOSTATE),
        ("stopping", power_state.NOSTATE),
        ("communications-not-active", power_state.NOSTATE),
    ],
)
def test_get_info_maps_partition_status(running, status, state):
    env, inst = running
    env.partition(inst).properties["status"] = status
    info = env.driver.get_info(inst, use_cache=False)
    assert info.state == state
    env.driver.list_instances()  # refresh the snapshot
    assert env.driver.get_info(inst).state == state


def test_operations_on_missing_partition_raise_instance_not_found(env):
    inst = env.instance()
    for call in (
        lambda: env.driver.get_info(inst, use_cache=False),
        lambda: env.driver.power_on(env.context, inst, []),
        lambda: env.driver.power_off(inst),
        lambda: env.driver.reboot(env.context, inst, [], "HARD"),
    ):
        with pytest.raises(exception.InstanceNotFound):
            call()
    assert env.driver.instance_exists(inst) is False


def test_power_sync_costs_one_request_whatever_the_number_of_partitions(env):
    instances = []
    for _ in range(5):
        inst = env.instance(vcpus=1, memory_mb=1024)
        env.spawn(inst)
        instances.append(inst)
    env.driver.power_off(instances[0])
    env.set_status(instances[1], "paused")  # in-band shutdown, behind our back

    # What ComputeManager._sync_power_states does: count, then get_info per instance.
    fresh = env.new_driver()
    env.log.clear()
    assert len(fresh.list_instances()) == 5
    states = [fresh.get_info(i).state for i in instances]
    assert len(env.log) == 1, env.log.requests
    assert states == [power_state.SHUTDOWN, power_state.SHUTDOWN] + [power_state.RUNNING] * 3


def test_instance_gone_from_snapshot_is_reported_not_found(running):
    env, inst = running
    env.driver.list_instances()
    env.cpc.partitions.remove(env.partition(inst).oid)
    # Still in the snapshot taken before the removal: stale but never wrong for long;
    # a fresh listing shows the truth.
    env.driver.list_instances()
    with pytest.raises(exception.InstanceNotFound):
        env.driver.get_info(inst)


def test_each_host_sees_only_its_own_partitions(conf, env):
    mine = env.instance()
    env.spawn(mine)
    # An operator's partition and a partition of another compute host on the CPC.
    env.cpc.partitions.add(
        {"name": "LINUX01", "ifl-processors": 1, "initial-memory": 1024, "maximum-memory": 1024}
    )
    other_host = env.new_driver("subset2")
    theirs = env.instance()
    other_host.prepare_for_spawn(theirs)
    assert other_host.list_instance_uuids() == [theirs.uuid]

    conf.config(host=HOST)
    assert env.driver.list_instance_uuids() == [mine.uuid]
    assert env.driver.list_instances() == [f"OpenStack-{HOST}-{mine.uuid}"]
    # subset1 is a prefix of subset12: the match must be exact.
    env.new_driver("subset12")
    assert env.new_driver("subset12").list_instances() == []


def test_get_console_output_returns_os_messages(conf):
    env = make_env(conf, "z15")
    inst = env.instance()
    env.spawn(inst)
    out = env.driver.get_console_output(env.context, inst)
    lines = out.splitlines()
    # The emulated Linux boot: IPL from the storage volume the driver configured.
    assert lines[0] == f"Partition OpenStack-{HOST}-{inst.uuid}: IPL from storage-volume started"
    assert "Linux version" in out
    assert out.endswith("\n")


def test_console_output_not_offered_before_se_2_14(z13):
    inst = z13.instance()
    z13.spawn(inst)
    with pytest.raises(NotImplementedError, match="SE 2.14.0"):
        z13.driver.get_console_output(z13.context, inst)


def test_jobs_that_take_time_are_waited_for(conf):
    env = make_env(conf, "z15", op_delay=0.3)
    inst = env.instance()
    env.spawn(inst)
    assert env.partition(inst).properties["status"] == "active"
    env.driver.power_off(inst)
    assert env.partition(inst).properties["status"] == "stopped"


def test_job_slower_than_operation_timeout_fails_naming_the_option(conf):
    env = make_env(conf, "z13", op_delay=0.6)
    env.session.retry_timeout_config.operation_timeout = 0.2
    inst = env.instance()
    with pytest.raises(exception.NovaException, match=r"\[dpm\] operation_timeout"):
        env.spawn(inst)
    # The clean-up's Stop was just as slow; deleting the server later removes it.
    env.session.retry_timeout_config.operation_timeout = 60
    env.driver.destroy(env.context, inst, [])
    assert env.partition(inst) is None


def test_partition_created_while_listing_is_not_reported_missing(env, monkeypatch):
    inst = env.instance()
    partitions = env.driver.host.require_cpc().partitions
    original = partitions.list

    def list_then_spawn_elsewhere(*args, **kwargs):
        result = original(*args, **kwargs)  # the HMC answered before the create
        env.driver.prepare_for_spawn(inst)  # another thread builds a server meanwhile
        return result

    monkeypatch.setattr(partitions, "list", list_then_spawn_elsewhere)
    assert env.driver.list_instances() == []
    monkeypatch.setattr(partitions, "list", original)
    assert env.driver.get_info(inst).state == power_state.SHUTDOWN
