"""LPAR lifecycle with pypowervm's own builder, validator and power tasks."""

from __future__ import annotations

import base64
import uuid as uuidlib

import pypowervm.exceptions as pvm_exc
import pytest
from pypowervm.tasks import power as pvm_power
from pypowervm.tasks import power_opts as pvm_popts
from pypowervm.utils import lpar_builder as lpar_bldr
from pypowervm.utils import uuid as pvm_uuid
from pypowervm.utils import validation as pvm_vldn
from pypowervm.wrappers import base_partition as pvm_bp
from pypowervm.wrappers import logical_partition as pvm_lpar


def refusal(exc_info, status: int, code: str, *words: str) -> str:
    """The refused request's message, checked as a client sees it.

    Status and code must match; a 500 must carry the REST layer's REST0126
    "Unknown internal error." wrapper around the PowerVM layer's code.
    """
    err = getattr(exc_info, "value", exc_info)
    her = err.her_wrap
    assert (err.response.status, code in her.message) == (status, True), her.message
    if status == 500:
        assert her.reason_code == "Unknown internal error."
        assert her.message.startswith(f"[REST0126] {code} "), her.message
    for word in words:
        assert word in her.message
    return her.message


def build(adapter, host, name="vm1", mem=4096, vcpu=2, units=0.5, validate=True, **extra):
    attrs = {
        lpar_bldr.NAME: name,
        lpar_bldr.MEM: mem,
        lpar_bldr.VCPU: vcpu,
        lpar_bldr.PROC_UNITS: units,
        lpar_bldr.ENV: pvm_bp.LPARType.AIXLINUX,
        lpar_bldr.UUID: pvm_uuid.convert_uuid_to_pvm(str(uuidlib.uuid4())).upper(),
        **extra,
    }
    wrapper = lpar_bldr.LPARBuilder(adapter, attrs, lpar_bldr.DefaultStandardize(host)).build()
    if validate:
        pvm_vldn.LPARWrapperValidator(wrapper, host).validate_all()
    return wrapper


def test_create_from_builder_keeps_client_uuid_and_adds_server_fields(adapter, host):
    pending = build(adapter, host)
    lpar = pending.create(parent=host)
    assert lpar.uuid == pending.uuid
    assert lpar.name == "vm1"
    assert lpar.state == "not activated" and lpar.rmc_state == "inactive"
    assert lpar.id > 3  # after NovaLink and the two VIOSes
    assert lpar.mem_config.desired == 4096
    assert lpar.proc_config.shared_proc_cfg.desired_units == 0.5
    assert lpar.assoc_sys_uuid.upper() == host.uuid.upper()
    # Listed under the host and found by search
    assert [w.uuid for w in pvm_lpar.LPAR.search(adapter, name="vm1")] == [lpar.uuid]
    assert lpar.uuid in [w.uuid for w in pvm_lpar.LPAR.get(adapter, parent=host)]
    # Creating does not consume host capacity; powering on does.
    assert host.refresh().memory_free == host.memory_free


def test_duplicate_name_refused(adapter, host):
    build(adapter, host).create(parent=host)
    with pytest.raises(pvm_exc.HttpError) as exc:
        build(adapter, host).create(parent=host)
    # As the console's REST layer reports a PowerVM refusal: 500, REST0126 + HSCL05DE.
    assert exc.value.response.status == 500
    msg = exc.value.her_wrap.message
    assert "REST0126" in msg and "HSCL05DE" in msg and "already uses the name vm1" in msg
    assert len(pvm_lpar.LPAR.search(adapter, name="vm1")) == 1


def test_name_clash_with_vios_refused(adapter, host):
    with pytest.raises(pvm_exc.HttpError) as exc:
        build(adapter, host, name="vios1").create(parent=host)
    assert "vios1" in exc.value.her_wrap.message


def test_power_on_off_moves_host_capacity_and_state(adapter, host):
    lpar = build(adapter, host, mem=8192, units=1.0).create(parent=host)
    free_mem, free_units = host.memory_free, host.proc_units_avail
    pvm_power.power_on(lpar, host.uuid)
    lpar = lpar.refresh()
    assert lpar.state == "running" and lpar.rmc_state == "active"
    assert lpar.mem_config.current == 8192
    host = host.refresh()
    assert host.memory_free == free_mem - 8192
    assert host.proc_units_avail == pytest.approx(free_units - 1.0)
    # Already on: pypowervm recognises the server's code and tolerates it.
    pvm_power.power_on(lpar, host.uuid)
    pvm_power.PowerOp.stop(lpar, opts=pvm_popts.PowerOffOpts().vsp_hard())
    lpar = lpar.refresh()
    assert lpar.state == "not activated" and lpar.mem_config.current == 0
    assert host.refresh().memory_free == free_mem
    # Already off: also tolerated (PVME04000005).
    pvm_power.PowerOp.stop(lpar, opts=pvm_popts.PowerOffOpts().vsp_hard())


def test_progressive_power_off_and_restart(adapter, host):
    lpar = build(adapter, host).create(parent=host)
    pvm_power.power_on(lpar, host.uuid)
    lpar = lpar.refresh()
    pvm_power.power_off_progressive(lpar, restart=True)
    assert lpar.refresh().state == "running"
    pvm_power.power_off_progressive(lpar.refresh())
    assert lpar.refresh().state == "not activated"


def test_os_shutdown_without_rmc_fails_with_pvm_code(emulator, adapter, host):
    lpar = build(adapter, host).create(parent=host)
    pvm_power.power_on(lpar, host.uuid)
    lpar = lpar.refresh()
    assert lpar.rmc_state == "active"
    # The guest loses RMC after the client read the partition: the server
    # refuses the OS shutdown with its code and pypowervm maps it.
    emu = emulator.emu
    res = emu.store.get("LogicalPartition", lpar.uuid)
    from ibmvirt.emulators.novalink import schema

    schema.set_field(res.elem, "ResourceMonitoringControlState", "inactive")
    with pytest.raises(pvm_exc.VMPowerOffFailure) as exc:
        pvm_power.PowerOp.stop(lpar, opts=pvm_popts.PowerOffOpts().os_immediate())
    assert "PVME01050905" in str(exc.value)
    assert lpar.refresh().state == "running"
    # The progressive power-off recognises that code and falls back to VSP.
    pvm_power.power_off_progressive(lpar)
    assert lpar.refresh().state == "not activated"


def test_rmc_stays_inactive_when_configured(emulator, adapter, host):
    emulator.emu.config.rmc_on_boot = False
    lpar = build(adapter, host).create(parent=host)
    pvm_power.power_on(lpar, host.uuid)
    lpar = lpar.refresh()
    assert (lpar.state, lpar.rmc_state) == ("running", "inactive")
    # Progressive power-off falls back from OS shutdown to VSP.
    pvm_power.power_off_progressive(lpar)
    assert lpar.refresh().state == "not activated"


def test_power_on_beyond_free_memory_fails_and_leaves_it_off(adapter, host):
    big = host.memory_free - host.memory_free % 256 + 256
    # pypowervm's validator would refuse this client-side; the server must too.
    lpar = build(adapter, host, mem=big, units=0.5, validate=False).create(parent=host)
    with pytest.raises(pvm_exc.VMPowerOnFailure) as exc:
        pvm_power.power_on(lpar, host.uuid)
    assert "Insufficient memory" in str(exc.value)
    assert lpar.refresh().state == "not activated"
    assert host.refresh().memory_free == host.memory_free


def test_delete_refused_while_running_then_allowed(adapter, host):
    lpar = build(adapter, host).create(parent=host)
    pvm_power.power_on(lpar, host.uuid)
    with pytest.raises(pvm_exc.HttpError) as exc:
        lpar.refresh().delete()
    refusal(exc, 500, "EMUL0007", "power it off")
    assert pvm_lpar.LPAR.get(adapter, uuid=lpar.uuid).state == "running"
    pvm_power.power_off_progressive(lpar.refresh())
    lpar.refresh().delete()
    with pytest.raises(pvm_exc.HttpNotFound):
        pvm_lpar.LPAR.get(adapter, uuid=lpar.uuid)


def test_update_offline_resize_and_rename(adapter, host):
    lpar = build(adapter, host).create(parent=host)
    lpar.mem_config.max = 8192
    lpar.mem_config.desired = 8192
    lpar.name = "vm1-renamed"
    lpar = lpar.update()
    got = pvm_lpar.LPAR.get(adapter, uuid=lpar.uuid)
    assert (got.name, got.mem_config.desired, got.mem_config.max) == ("vm1-renamed", 8192, 8192)


def test_dlpar_within_limits_while_running(adapter, host):
    lpar = build(adapter, host, mem=2048).create(parent=host)
    lpar.mem_config.max = 8192
    lpar = lpar.update()
    pvm_power.power_on(lpar, host.uuid)
    lpar = lpar.refresh()
    free = host.refresh().memory_free
    lpar.mem_config.desired = 4096  # within the running min/max: allowed
    lpar = lpar.update()
    assert lpar.mem_config.current == 4096
    assert host.refresh().memory_free == free - 2048
    lpar.mem_config.max = 16384  # limits cannot move while running
    with pytest.raises(pvm_exc.HttpError) as exc:
        lpar.update()
    refusal(exc, 500, "EMUL0010", "only change while it is powered off")
    lpar = pvm_lpar.LPAR.get(adapter, uuid=lpar.uuid)
    lpar.mem_config.desired = 12288  # beyond the max: refused
    with pytest.raises(pvm_exc.HttpError) as exc:
        lpar.update()
    refusal(exc, 400, "EMUL0009")
    assert pvm_lpar.LPAR.get(adapter, uuid=lpar.uuid).mem_config.desired == 4096


def test_power_events_carry_partition_state(emulator, adapter, host):
    from pypowervm.wrappers import event as pvm_evt

    emulator.emu.events.wait = 0.2
    pvm_evt.Event.get(adapter, "nova")
    lpar = build(adapter, host).create(parent=host)
    pvm_power.power_on(lpar, host.uuid)
    pvm_power.power_off_progressive(lpar.refresh())
    lpar.refresh().delete()
    evs = [(e.etype, e.detail, e.data) for e in pvm_evt.Event.get(adapter, "nova")]
    mine = [(t, d) for t, d, data in evs if data.endswith("LogicalPartition/" + lpar.uuid)]
    # A new partition's NVRAM event follows its ADD_URI (event_feed.txt).
    assert mine[:2] == [("ADD_URI", None), ("MODIFY_URI", "NVRAM")]
    # The real server's details (event_feed.txt): a comma-separated list.
    assert ("MODIFY_URI", "PartitionState,Other") in mine
    assert ("MODIFY_URI", "ReferenceCode,Other") in mine
    assert ("MODIFY_URI", "NVRAM") in mine
    assert mine[-1] == ("DELETE_URI", None)
    # NovaLink names partitions under their ManagedSystem in event data.
    assert all("/ManagedSystem/" in data for t, d, data in evs if "LogicalPartition/" in data)


def test_event_listener_thread_receives_changes(emulator, session, adapter, host):
    import threading

    import pypowervm.adapter as pvm_adpt

    emulator.emu.events.wait = 0.2
    seen = []
    got_state = threading.Event()

    class Handler(pvm_adpt.WrapperEventHandler):
        def process(self, events):
            for e in events:
                seen.append((e.etype, e.detail))
                if "PartitionState" in (e.detail or "").split(","):
                    got_state.set()

    listener = session.get_event_listener()
    handler = Handler()
    listener.subscribe(handler)
    try:
        lpar = build(adapter, host).create(parent=host)
        pvm_power.power_on(lpar, host.uuid)
        assert got_state.wait(10)
    finally:
        listener.shutdown()  # the poll thread is non-daemon
    assert ("ADD_URI", None) in seen


def test_nvram_group_changes_on_power_off(emulator, adapter, host):
    import pypowervm.const as pvm_const

    lpar = build(adapter, host).create(parent=host)
    first = pvm_lpar.LPAR.get(adapter, uuid=lpar.uuid, xag=[pvm_const.XAG.NVRAM])
    assert first.nvram
    plain = pvm_lpar.LPAR.get(adapter, uuid=lpar.uuid)
    assert plain.nvram is None  # only with the NVRAM group
    pvm_power.power_on(lpar, host.uuid)
    pvm_power.power_off_progressive(lpar.refresh())
    second = pvm_lpar.LPAR.get(adapter, uuid=lpar.uuid, xag=[pvm_const.XAG.NVRAM])
    assert second.nvram and second.nvram != first.nvram


def test_nvram_sent_at_creation_is_kept_and_an_update_sets_it(emulator, adapter, host):
    """A partition recreated from a backup starts with the NVRAM sent (what
    evacuate relies on); an update with the NVRAM group replaces it."""
    import pypowervm.const as pvm_const

    saved = base64.b64encode(b"boot-list:disk0\x00" * 64).decode()
    wrapper = build(adapter, host)
    wrapper.nvram = saved
    lpar = wrapper.create(parent=host)
    got = pvm_lpar.LPAR.get(adapter, uuid=lpar.uuid, xag=[pvm_const.XAG.NVRAM])
    assert got.nvram == saved
    newer = base64.b64encode(b"boot-list:disk1\x00" * 64).decode()
    got.nvram = newer
    got.update()
    again = pvm_lpar.LPAR.get(adapter, uuid=lpar.uuid, xag=[pvm_const.XAG.NVRAM])
    assert again.nvram == newer
    # Without the NVRAM sent, the hypervisor writes its own.
    other = build(adapter, host, name="vm2").create(parent=host)
    fresh = pvm_lpar.LPAR.get(adapter, uuid=other.uuid, xag=[pvm_const.XAG.NVRAM]).nvram
    assert fresh and fresh not in (saved, newer)


def test_second_power_operation_while_one_runs_is_refused(emulator, adapter, host):
    import threading

    emulator.emu.jobs.delays["PowerOn"] = 1.5
    lpar = build(adapter, host).create(parent=host)
    done = threading.Event()
    errors_seen = []

    def start():
        try:
            pvm_power.power_on(lpar, host.uuid)
        except Exception as exc:  # reported below
            errors_seen.append(exc)
        done.set()

    t = threading.Thread(target=start)
    t.start()
    res = emulator.emu.store.get("LogicalPartition", lpar.uuid)
    for _ in range(100):
        if res.field("IsOperationInProgress") == "true":
            break
        done.wait(0.02)
    assert (
        pvm_lpar.LPAR.get(adapter, uuid=lpar.uuid).element.findtext("IsOperationInProgress")
        == "true"
    )
    with pytest.raises(pvm_exc.VMPowerOffFailure) as exc:
        pvm_power.PowerOp.stop(lpar.refresh(), opts=pvm_popts.PowerOffOpts().vsp_hard())
    assert "HSCL05DF The partition is not in a state" in str(exc.value)
    assert "busy with PowerOn" in str(exc.value)
    t.join(30)
    assert not errors_seen
    got = pvm_lpar.LPAR.get(adapter, uuid=lpar.uuid)
    assert got.state == "running"
    assert got.element.findtext("IsOperationInProgress") == "false"


def test_power_on_while_shutting_down_is_a_state_error(emulator, adapter, host):
    """Not "already powered on" (which pypowervm would take as success)."""
    import threading

    lpar = build(adapter, host).create(parent=host)
    pvm_power.power_on(lpar, host.uuid)
    emulator.emu.jobs.delays["PowerOff"] = 1.5
    t = threading.Thread(
        target=pvm_power.PowerOp.stop,
        args=(lpar.refresh(),),
        kwargs={"opts": pvm_popts.PowerOffOpts().vsp_normal()},
    )
    t.start()
    res = emulator.emu.store.get("LogicalPartition", lpar.uuid)
    for _ in range(100):
        if res.field("PartitionState") == "shutting down":
            break
        threading.Event().wait(0.02)
    with pytest.raises(pvm_exc.VMPowerOnFailure) as exc:
        pvm_power.power_on(lpar.refresh(), host.uuid)
    assert "HSCL05DF" in str(exc.value)
    t.join(30)
    assert pvm_lpar.LPAR.get(adapter, uuid=lpar.uuid).state == "not activated"


def test_wrong_password_message_names_real_options(session, emulator):
    import pypowervm.adapter as pvm_adpt

    with pytest.raises(pvm_exc.Error) as exc:
        pvm_adpt.Session(
            "127.0.0.1", "neo", "wrong", protocol="http", port=emulator.port, conn_tries=1
        )
    text = str(exc.value) + str(getattr(exc.value, "response", None) and exc.value.response.body)
    assert "--password" not in text
    assert "IBMVIRT_NOVALINK_EMULATOR_PASSWORD" in text


def test_dlpar_growth_beyond_free_memory_is_refused(adapter, host):
    region = host.memory_region_size
    lpar = build(adapter, host, mem=2048).create(parent=host)
    lpar.mem_config.max = host.memory_configurable // region * region
    lpar = lpar.update()
    pvm_power.power_on(lpar, host.uuid)
    free = host.refresh().memory_free
    lpar = lpar.refresh()
    lpar.mem_config.desired = (2048 + free + region) // region * region
    assert lpar.mem_config.desired <= lpar.mem_config.max
    with pytest.raises(pvm_exc.HttpError) as exc:
        lpar.update()
    msg = refusal(exc, 500, "EMUL0005", "MB available")
    assert msg.count("EMUL0005") == 1
    assert pvm_lpar.LPAR.get(adapter, uuid=lpar.uuid).mem_config.desired == 2048
    assert host.refresh().memory_free == free


def test_reserved_memory_query_adds_the_hardware_page_table(adapter, host):
    from pypowervm.tasks import memory as pvm_mem

    # sys_with_sriov.txt: DefaultHardwarePageTableRatio 6, i.e. 1:64.
    shape = {"desired_mem": 4096, "max_mem": 65536}
    overhead, avail = pvm_mem.calculate_memory_overhead_on_host(adapter, host.uuid, shape)
    assert (overhead, avail) == (65536 // 64, host.memory_free)
    # A small table still takes a whole memory region.
    shape = {"desired_mem": 2048, "max_mem": 4096}
    overhead, _ = pvm_mem.calculate_memory_overhead_on_host(adapter, host.uuid, shape)
    assert overhead == host.memory_region_size
    # A refused query: pypowervm falls back to its default (and logs the error).
    shape = {"desired_mem": 8192, "max_mem": 4096}
    assert pvm_mem.calculate_memory_overhead_on_host(adapter, host.uuid, shape, default=-1) == (
        -1,
        None,
    )
