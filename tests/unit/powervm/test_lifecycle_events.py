"""Out-of-band LPAR state changes become Nova lifecycle events: one per burst,
none while Nova works on the instance or already knows the state."""

from __future__ import annotations

import threading
import types

from nova.compute import power_state
from nova.virt import event as virtevent

from ibmvirt.powervm import event

LPAR = "2B1E3C4D-5A6B-4C7D-8E9F-0A1B2C3D4E5F"


class States:
    def __init__(self, state):
        self.state = state
        self.reads = 0

    def get(self, lpar_uuid):
        self.reads += 1
        return self.state


def _handler(monkeypatch, pvm_state, task_state=None, nova_power=power_state.RUNNING):
    instance = types.SimpleNamespace(
        uuid=LPAR.lower(), task_state=task_state, power_state=nova_power
    )
    monkeypatch.setattr(event, "instance_of", lambda lpar_uuid: instance)
    emitted, done = [], threading.Event()

    def emit(e):
        emitted.append(e)
        done.set()

    states = States(pvm_state)
    return event.LifecycleEvents(states, emit, delay=0.2), states, emitted, done


def test_a_burst_of_changes_gives_one_event_in_the_final_state(monkeypatch):
    lifecycle, states, emitted, done = _handler(monkeypatch, "not activated")
    for _ in range(5):
        lifecycle.changed(LPAR)
    assert done.wait(5)
    lifecycle.stop()
    threading.Event().wait(0.4)  # no further timer fires
    assert [e.transition for e in emitted] == [virtevent.EVENT_LIFECYCLE_STOPPED]
    assert emitted[0].uuid == LPAR.lower()
    assert states.reads == 1


def test_nothing_is_reported_while_nova_has_the_instance_in_a_task(monkeypatch):
    lifecycle, _, emitted, done = _handler(monkeypatch, "not activated", task_state="powering-off")
    lifecycle.changed(LPAR)
    assert not done.wait(0.8)
    assert emitted == []


def test_nothing_is_reported_when_nova_already_has_that_state(monkeypatch):
    lifecycle, _, emitted, done = _handler(monkeypatch, "running", nova_power=power_state.RUNNING)
    lifecycle.changed(LPAR)
    assert not done.wait(0.8)
    assert emitted == []


def test_an_lpar_uuid_names_nova_uuids_with_and_without_the_top_bit():
    from ibmvirt.powervm import vm

    assert vm.nova_uuid_candidates("2B1E3C4D-0000-4000-8000-000000000000") == [
        "2b1e3c4d-0000-4000-8000-000000000000",
        "ab1e3c4d-0000-4000-8000-000000000000",
    ]
    assert (
        event.lpar_uuid_of("https://h/rest/api/uom/ManagedSystem/x/LogicalPartition/" + LPAR)
        == LPAR
    )
    assert event.lpar_uuid_of("https://h/rest/api/uom/VirtualIOServer/" + LPAR) is None


def test_a_whole_system_changing_is_reported_by_one_thread(monkeypatch):
    monkeypatch.setattr(
        event,
        "instance_of",
        lambda u: types.SimpleNamespace(uuid=u.lower(), task_state=None, power_state=1),
    )
    emitted, done = [], threading.Event()

    def emit(e):
        emitted.append(e)
        if len(emitted) == 1000:
            done.set()

    lifecycle = event.LifecycleEvents(States("not activated"), emit, delay=0.2)
    threads = threading.active_count()
    uuids = [f"{i:08X}-0000-4000-8000-000000000000" for i in range(1000)]
    for u in uuids:
        lifecycle.changed(u)
    assert threading.active_count() <= threads + 1
    assert done.wait(10)
    lifecycle.stop()
    assert sorted(e.uuid for e in emitted) == sorted(u.lower() for u in uuids)
