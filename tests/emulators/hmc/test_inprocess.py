"""EngineSession: the emulator's HMC behaviour in-process, through real zhmcclient objects."""

from __future__ import annotations

import pytest
import zhmcclient

from ibmvirt.emulators.hmc import inventories
from ibmvirt.emulators.hmc.inprocess import EngineSession

from .conftest import http_error, new_partition


@pytest.fixture
def session():
    s = EngineSession.from_inventory(inventories.Z15)
    yield s
    s.engine.shutdown()


def test_same_behaviour_as_over_https(session):
    client = zhmcclient.Client(session)
    assert client.version_info() == (3, 1)
    cpc = client.cpcs.find(**{"object-id": inventories.Z15_IDS.cpc})
    part = new_partition(cpc)
    with pytest.raises(zhmcclient.HTTPError) as exc:
        new_partition(cpc)
    assert http_error(exc) == (400, 8)
    part.start()  # 202 + job, waited for
    part.pull_full_properties()
    assert part.get_property("status") == "active"
    job = part.stop(wait_for_completion=False)
    assert isinstance(job, zhmcclient.Job)
    assert job.check_for_completion()[0] == "complete"
    assert part.list_os_messages()["os-messages"]
    assert session.request_log.count("GET", r"^/api/jobs/") == 2


def test_results_are_copies_and_sessions_renew(session):
    client = zhmcclient.Client(session)
    cpc = client.cpcs.find(**{"object-id": inventories.Z15_IDS.cpc})
    props = session.get(cpc.uri)
    props["processor-count-ifl"] = 999  # the caller's copy only
    assert session.get(cpc.uri)["processor-count-ifl"] == inventories.Z15_IDS.processor_count_ifl
    old = session.session_id
    session.engine.expire_sessions()
    assert cpc.partitions.list() == []
    assert session.session_id != old
    assert [r.status for r in session.request_log.records() if r.path.endswith("/partitions")] == [
        403,
        200,
    ]
    session.logoff()
    assert session.engine.session_count() == 0


def test_job_wait_honours_the_session_operation_timeout():
    session = EngineSession.from_inventory(inventories.Z13, op_delay=5.0)
    try:
        session.retry_timeout_config.operation_timeout = 0.1
        cpc = zhmcclient.Client(session).cpcs.find(**{"object-id": inventories.Z13_IDS.cpc})
        part = new_partition(cpc)
        with pytest.raises(zhmcclient.OperationTimeout):
            part.start()
        part.pull_full_properties()
        assert part.get_property("status") == "starting"
    finally:
        session.engine.shutdown()
