"""The PowerVM agents' device set and worker thread on their own: what an
event reported during a slow listing does to the listing's result, and how
failed NovaLink work is retried without ending the thread."""

from __future__ import annotations

import threading
import time

from pypowervm import exceptions as pvm_ex

from ibmvirt.neutron.agent.devices import Device, DeviceSet, Worker

A = Device("fa:16:3e:00:00:0a", "LPAR-1", "CNA-A", 0, (10,))
B = Device("fa:16:3e:00:00:0b", "LPAR-1", "CNA-B", 0, (11,))
C = Device("fa:16:3e:00:00:0c", "LPAR-2", "CNA-C", 0, (12,))


def test_a_listing_replaces_the_set():
    devices = DeviceSet()
    devices.put(A)
    devices.begin_listing()
    devices.end_listing([B, C])
    assert devices.macs() == {B.mac, C.mac}


def test_changes_reported_during_a_listing_win_over_it():
    devices = DeviceSet()
    devices.put(A)
    devices.begin_listing()
    devices.drop_adapter("cna-a")  # deleted after the listing read LPAR-1
    devices.put(C)  # created after the listing read LPAR-2
    devices.end_listing([A, B])
    assert devices.macs() == {B.mac, C.mac}


def test_a_deleted_lpar_during_a_listing_takes_all_its_devices():
    devices = DeviceSet()
    devices.begin_listing()
    devices.drop_lpar("lpar-1")
    devices.end_listing([A, B, C])
    assert devices.macs() == {C.mac}


def test_one_lpar_read_replaces_only_that_lpar():
    devices = DeviceSet()
    for d in (A, B, C):
        devices.put(d)
    devices.replace_lpar("LPAR-1", [A])
    assert devices.macs() == {A.mac, C.mac}


def test_a_failed_listing_vouches_for_nothing():
    devices = DeviceSet()
    devices.put(A)
    devices.put(B)
    devices.begin_listing()
    assert devices.abort_listing() == 2
    assert devices.macs() == set()
    devices.put(C)  # no listing in progress any more: nothing replayed later
    devices.begin_listing()
    devices.end_listing([A])
    assert devices.macs() == {A.mac}


def _worker(retry: float = 0.05) -> Worker:
    worker = Worker("test-worker", retry)
    worker.start()
    return worker


def test_a_failed_task_is_retried_after_the_interval():
    worker = _worker(retry=0.1)
    calls = []

    def flaky():
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise pvm_ex.ConnectionError("NovaLink down")

    worker.submit("list", flaky)
    assert worker.wait_idle(timeout=5, within=1.0)  # retries due within 1 s done too
    worker.stop()
    assert len(calls) == 3
    assert calls[2] - calls[1] >= 0.1  # exactly the retry interval, not sooner


def test_a_bug_in_a_task_does_not_end_the_thread():
    worker = _worker()
    done = threading.Event()
    attempts = []

    def buggy():
        attempts.append(1)
        if len(attempts) == 1:
            raise KeyError("bug")
        done.set()

    worker.submit("buggy", buggy)
    assert done.wait(5)
    worker.stop()


def test_a_burst_of_submissions_runs_once():
    worker = Worker("test-worker", 0.05)
    runs = []
    for _ in range(50):
        worker.submit(("read", "LPAR-1", None), lambda: runs.append(1))
    worker.start()
    assert worker.wait_idle(timeout=5)
    worker.stop()
    assert runs == [1]


def test_the_earlier_due_time_wins():
    worker = Worker("test-worker", 0.05)
    worker.submit("heal", lambda: None, delay=1800)
    worker.submit("heal", lambda: None)  # heal now
    assert worker.pending()["heal"] <= 0
    worker.submit("heal", lambda: None, delay=1800)  # later: ignored
    assert worker.pending()["heal"] <= 0


def test_cancel_and_stop():
    worker = _worker()
    ran = []
    worker.submit(("read", "x"), lambda: ran.append("read"), delay=0.2)
    worker.submit("list", lambda: ran.append("list"), delay=0.2)
    worker.cancel(lambda key: isinstance(key, tuple))
    assert worker.wait_idle(timeout=5, within=1.0)
    assert ran == ["list"]
    worker.stop()
    worker.submit("late", lambda: ran.append("late"))
    time.sleep(0.1)
    assert ran == ["list"]
