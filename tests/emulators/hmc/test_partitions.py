"""Partition lifecycle over HTTPS: create, update, start/stop jobs, delete, refusals."""

from __future__ import annotations

import time

import pytest
import zhmcclient

from ibmvirt.emulators.hmc import HMCEmulatorFixture, inventories

from .conftest import http_error, new_partition


def test_create_list_find_update_delete(z15_cpc, z15):
    part = new_partition(z15_cpc, "inst-a")
    assert part.uri.startswith("/api/partitions/")
    oid = part.uri.rsplit("/", 1)[1]
    assert len(oid) == 36  # HMC object-ids are UUID-style
    assert [p.name for p in z15_cpc.partitions.list()] == ["inst-a"]
    found = z15_cpc.partitions.find(name="inst-a")
    found.pull_full_properties()
    assert found.get_property("status") == "stopped"
    assert found.get_property("ifl-processors") == 2
    assert found.get_property("boot-device") == "none"

    found.update_properties({"boot-device": "none", "boot-os-specific-parameters": "ro quiet"})
    found.pull_full_properties()
    assert found.get_property("boot-os-specific-parameters") == "ro quiet"

    found.delete()
    with pytest.raises(zhmcclient.NotFound):
        z15_cpc.partitions.find(name="inst-a")
    with z15.emulator.lock:
        cpc = z15.emulator.faked_hmc.cpcs.lookup_by_oid(inventories.Z15_IDS.cpc)
        assert cpc.partitions.list() == []


def test_duplicate_partition_name_refused_400_8(z15_cpc):
    new_partition(z15_cpc, "dup")
    with pytest.raises(zhmcclient.HTTPError) as exc:
        new_partition(z15_cpc, "dup")
    assert http_error(exc) == (400, 8)
    assert "dup" in exc.value.message
    assert len(z15_cpc.partitions.list()) == 1


def test_rename_to_existing_name_refused_400_8(z15_cpc):
    new_partition(z15_cpc, "a")
    b = new_partition(z15_cpc, "b")
    with pytest.raises(zhmcclient.HTTPError) as exc:
        b.update_properties({"name": "a"})
    assert http_error(exc) == (400, 8)


@pytest.mark.parametrize("prop", ["status", "object-id", "nic-uris", "os-name"])
def test_read_only_properties_refused_400_6(z15_cpc, prop):
    part = new_partition(z15_cpc)
    with pytest.raises(zhmcclient.HTTPError) as exc:
        part.update_properties({prop: "x"})
    assert http_error(exc) == (400, 6)
    part.pull_full_properties()
    assert part.get_property("status") == "stopped"


def test_unknown_property_and_status_at_create_refused(z15_cpc):
    part = new_partition(z15_cpc)
    with pytest.raises(zhmcclient.HTTPError) as exc:
        part.update_properties({"boot-devcie": "none"})  # typo in a driver
    assert http_error(exc) == (400, 6)
    with pytest.raises(zhmcclient.HTTPError) as exc:
        new_partition(z15_cpc, "x", status="active")
    assert http_error(exc) == (400, 6)
    with pytest.raises(zhmcclient.HTTPError) as exc:
        part.update_properties({"boot-os-specific-parameters": "x" * 257})
    assert http_error(exc) == (400, 7)


def test_start_stop_with_wait_for_completion(z15_cpc, z15):
    part = new_partition(z15_cpc)
    part.start()  # async job, polled by zhmcclient; op_delay 0 => done at first poll
    part.pull_full_properties()
    assert part.get_property("status") == "active"
    z15_cpc.pull_full_properties()
    assert z15_cpc.get_property("storage-customer-available") == (
        inventories.Z15_IDS.storage_customer_mib - 4096
    )
    part.stop()
    part.pull_full_properties()
    assert part.get_property("status") == "stopped"
    z15_cpc.pull_full_properties()
    assert (
        z15_cpc.get_property("storage-customer-available")
        == inventories.Z15_IDS.storage_customer_mib
    )
    # The job was polled and deleted by the client: nothing left behind.
    assert z15.emulator.request_count("GET", r"^/api/jobs/") == 2
    assert z15.emulator.request_count("DELETE", r"^/api/jobs/") == 2
    assert len(z15.emulator.engine.jobs) == 0


def _wait_job(job, deadline_s=20.0):
    end = time.monotonic() + deadline_s
    while True:
        status, result = job.check_for_completion()
        if status == "complete":
            return result
        assert time.monotonic() < end, "job did not complete"
        time.sleep(0.05)


def test_async_jobs_show_starting_and_stopping_with_op_delay():
    fx = HMCEmulatorFixture(inventories.Z15, op_delay=0.4)
    fx.setUp()
    try:
        client = zhmcclient.Client(fx.session())
        cpc = client.cpcs.find(**{"object-id": inventories.Z15_IDS.cpc})
        part = new_partition(cpc)
        job = part.start(wait_for_completion=False)
        assert isinstance(job, zhmcclient.Job)
        part.pull_full_properties()
        assert part.get_property("status") == "starting"
        status, _ = client.session.get(job.uri)["status"], None
        assert status == "running"
        # A running job cannot be deleted.
        with pytest.raises(zhmcclient.HTTPError) as exc:
            client.session.delete(job.uri)
        assert exc.value.http_status == 409
        # Another start while starting is refused: wrong state.
        with pytest.raises(zhmcclient.HTTPError) as exc:
            part.start(wait_for_completion=False)
        assert http_error(exc) == (409, 1)
        assert _wait_job(job) is None
        part.pull_full_properties()
        assert part.get_property("status") == "active"

        job = part.stop(wait_for_completion=False)
        part.pull_full_properties()
        assert part.get_property("status") == "stopping"
        _wait_job(job)
        part.pull_full_properties()
        assert part.get_property("status") == "stopped"
        with pytest.raises(zhmcclient.HTTPError) as exc:
            client.session.get(job.uri)  # deleted after completion
        assert http_error(exc) == (404, 1)
    finally:
        fx.cleanUp()


def test_wrong_state_refusals_409_1(z15_cpc):
    part = new_partition(z15_cpc)
    with pytest.raises(zhmcclient.HTTPError) as exc:
        part.stop()
    assert http_error(exc) == (409, 1)
    part.start()
    with pytest.raises(zhmcclient.HTTPError) as exc:
        part.start()
    assert http_error(exc) == (409, 1)
    with pytest.raises(zhmcclient.HTTPError) as exc:
        part.delete()
    assert http_error(exc) == (409, 1)
    assert z15_cpc.partitions.find(name="inst-1").get_property("status") == "active"


def test_start_refused_when_ifls_exceed_cpc(z15_cpc):
    too_many = inventories.Z15_IDS.processor_count_ifl + 1
    part = new_partition(z15_cpc, ifls=too_many)
    with pytest.raises(zhmcclient.HTTPError) as exc:
        part.start()
    assert http_error(exc) == (500, 263)
    assert "IFL" in exc.value.message
    part.pull_full_properties()
    assert part.get_property("status") == "stopped"


def test_start_refused_when_memory_exhausted(z15_cpc):
    total = inventories.Z15_IDS.storage_customer_mib
    big = new_partition(z15_cpc, "big", mem=total - 1024)
    big.start()
    small = new_partition(z15_cpc, "small", mem=2048)
    with pytest.raises(zhmcclient.HTTPError) as exc:
        small.start()
    assert http_error(exc) == (500, 263)
    assert "MiB" in exc.value.message and "small" in exc.value.message
    small.pull_full_properties()
    assert small.get_property("status") == "stopped"
    big.stop()
    small.start()
    small.pull_full_properties()
    assert small.get_property("status") == "active"


def test_dedicated_ifls_are_exclusive(z13_cpc):
    half = inventories.Z13_IDS.processor_count_ifl // 2 + 1
    a = new_partition(z13_cpc, "a", ifls=half, **{"processor-mode": "dedicated"})
    b = new_partition(z13_cpc, "b", ifls=half, **{"processor-mode": "dedicated"})
    a.start()
    with pytest.raises(zhmcclient.HTTPError) as exc:
        b.start()
    assert http_error(exc) == (500, 263)
    assert "dedicated" in exc.value.message
    # Shared IFLs are overcommittable: a shared partition of the same size starts.
    c = new_partition(z13_cpc, "c", ifls=half)
    c.start()
    c.pull_full_properties()
    assert c.get_property("status") == "active"


def test_z13_partition_has_no_storage_management_feature(z13_cpc, z15_cpc):
    p13 = new_partition(z13_cpc)
    p13.pull_full_properties()
    assert "available-features-list" not in p13.properties
    p15 = new_partition(z15_cpc)
    p15.pull_full_properties()
    names = [f["name"] for f in p15.get_property("available-features-list")]
    assert "dpm-storage-management" in names


def test_malformed_requests_are_refused(z15):
    import requests

    session = z15.session()
    session.logon()
    url = z15.emulator.url + f"/api/cpcs/{inventories.Z15_IDS.cpc}/partitions"
    headers = {"X-API-Session": session.session_id, "Content-Type": "application/json"}
    kw = {"verify": z15.emulator.ca_file, "headers": headers, "timeout": 10}
    r = requests.post(url, data=b"{not json", **kw)
    assert (r.status_code, r.json()["reason"]) == (400, 9)
    r = requests.post(url, **kw)
    assert (r.status_code, r.json()["reason"]) == (400, 3)
    r = requests.post(url, json={"name": "x", "initial-memory": 1024}, **kw)
    assert (r.status_code, r.json()["reason"]) == (400, 5)
    r = requests.post(
        url,
        json={
            "name": "x",
            "object-id": "1",
            "ifl-processors": 1,
            "initial-memory": 1,
            "maximum-memory": 1,
        },
        **kw,
    )
    assert (r.status_code, r.json()["reason"]) == (400, 6)
    r = requests.get(z15.emulator.url + "/api/partitions/nope", **kw)
    assert (r.status_code, r.json()["reason"]) == (404, 1)


def test_zhmcclient_is_the_pinned_version():
    # The engine uses zhmcclient.mock's private URI handler table; a new
    # zhmcclient must be re-validated against these tests before the pin moves.
    assert zhmcclient.__version__ == "1.26.0"


def test_guest_initiated_status_changes(z15_cpc, z15):
    part = new_partition(z15_cpc, "guest")
    part.start()
    # An in-band halt leaves the partition paused: Start is refused, Stop works.
    assert z15.emulator.set_partition_status("guest", "paused") == part.uri
    part.pull_full_properties()
    assert part.get_property("status") == "paused"
    with pytest.raises(zhmcclient.HTTPError) as exc:
        part.start()
    assert http_error(exc) == (409, 1)
    assert "stop it first" in exc.value.message
    part.stop()
    part.start()
    part.pull_full_properties()
    assert part.get_property("status") == "active"
    with pytest.raises(ValueError):
        z15.emulator.set_partition_status("guest", "sleeping")
    with pytest.raises(ValueError):
        z15.emulator.set_partition_status("nobody", "paused")


def test_concurrent_creates_of_one_name_yield_one_partition(z15):
    import threading

    outcomes = []

    def create():
        client = zhmcclient.Client(z15.session())
        cpc = client.cpcs.find(**{"object-id": inventories.Z15_IDS.cpc})
        try:
            new_partition(cpc, "race")
            outcomes.append("created")
        except zhmcclient.HTTPError as exc:
            outcomes.append((exc.http_status, exc.reason))

    threads = [threading.Thread(target=create) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(outcomes, key=str) == sorted(["created"] + [(400, 8)] * 5, key=str)
    with z15.emulator.lock:
        cpc = z15.emulator.faked_hmc.cpcs.lookup_by_oid(inventories.Z15_IDS.cpc)
        assert [p.name for p in cpc.partitions.list()] == ["race"]


def test_boot_device_must_suit_the_cpc_generation(z13_cpc, z15_cpc):
    p13 = new_partition(z13_cpc)
    with pytest.raises(zhmcclient.HTTPError) as exc:
        p13.update_properties({"boot-device": "storage-volume"})
    assert http_error(exc) == (400, 7)
    p15 = new_partition(z15_cpc)
    with pytest.raises(zhmcclient.HTTPError) as exc:
        p15.update_properties({"boot-device": "storage-adapter"})
    assert http_error(exc) == (400, 7)
    with pytest.raises(zhmcclient.HTTPError) as exc:
        p15.update_properties({"boot-storage-volume": "/api/storage-groups/x/storage-volumes/y"})
    assert http_error(exc) == (404, 2)
    with pytest.raises(zhmcclient.HTTPError) as exc:
        p15.update_properties({"boot-device": "floppy"})
    assert http_error(exc) == (400, 7)
