"""Fault injection (API and loopback control endpoint) as a real client sees it."""

from __future__ import annotations

import pytest
import requests
import zhmcclient

from ibmvirt.emulators.faults import ControlError, FaultInjector, RequestLog, is_loopback
from ibmvirt.emulators.hmc import inventories

from .conftest import http_error, new_partition

START = r"/api/partitions/[^/]+/operations/start$"


def _control(fx, method, path, **kwargs):
    return requests.request(
        method,
        fx.emulator.url + "/_emulator" + path,
        verify=fx.emulator.ca_file,
        timeout=30,
        **kwargs,
    )


def test_nth_matching_request_fails_with_status_and_reason(z15_cpc, z15):
    a = new_partition(z15_cpc, "a")
    b = new_partition(z15_cpc, "b")
    z15.emulator.inject_fault("POST", START, nth=2, status=409, reason=2, message="busy")
    a.start()  # 1st matching request: passes
    with pytest.raises(zhmcclient.HTTPError) as exc:
        b.start()  # 2nd: fails as injected, and nothing happened on the HMC
    assert http_error(exc) == (409, 2)
    assert exc.value.message == "busy"
    b.pull_full_properties()
    assert b.get_property("status") == "stopped"
    b.start()  # the rule is spent
    b.pull_full_properties()
    assert b.get_property("status") == "active"
    assert [r.status for r in z15.emulator.request_log if r.path.endswith("/start")] == [
        202,
        409,
        202,
    ]


def test_injected_403_5_makes_the_client_log_on_again(z15_cpc, z15):
    z15.emulator.inject_fault("GET", r"/partitions", status=403, reason=5)
    assert z15_cpc.partitions.list() == []
    assert z15.emulator.request_count("POST", r"^/api/sessions$") == 2


def test_delay_fault_slows_but_answers(z15_cpc, z15):
    z15.emulator.inject_fault("GET", r"/api/cpcs/[^/]+/partitions", delay=0.2)
    new_partition(z15_cpc)
    assert [p.name for p in z15_cpc.partitions.list()] == ["inst-1"]
    rule = z15.emulator.faults.rules()[0]
    assert rule.fired == 1 and rule.spent


def test_dropped_post_is_a_connection_error_and_changes_nothing(z15_cpc, z15):
    z15.emulator.inject_fault("POST", r"/api/cpcs/[^/]+/partitions$", drop=True)
    with pytest.raises(zhmcclient.ConnectionError):
        new_partition(z15_cpc)
    assert z15_cpc.partitions.list() == []
    assert z15.emulator.request_count("POST", r"/partitions$") == 1
    assert z15.emulator.request_log[-2].status == 0  # recorded as dropped


def test_dropped_get_is_retried_by_the_client(z15_cpc, z15):
    # zhmcclient retries reads for GET only: the drop is invisible to the caller.
    z15.emulator.inject_fault("GET", r"/api/cpcs/[^/]+/partitions", drop=True)
    assert z15_cpc.partitions.list() == []
    statuses = [r.status for r in z15.emulator.request_log if r.path.endswith("/partitions")]
    assert statuses == [0, 200]


def test_fault_can_repeat(z15_cpc, z15):
    z15.emulator.inject_fault("GET", r"/partitions", status=503, reason=0, times=2)
    for _ in range(2):
        with pytest.raises(zhmcclient.HTTPError) as exc:
            z15_cpc.partitions.list()
        assert exc.value.http_status == 503
    assert z15_cpc.partitions.list() == []


def test_control_endpoint_over_https(z15_cpc, z15):
    r = _control(
        z15,
        "POST",
        "/faults",
        json={"method": "POST", "uri_pattern": START, "status": 500, "reason": 263},
    )
    assert r.status_code == 201
    assert r.json()["fault"]["spent"] is False
    part = new_partition(z15_cpc)
    with pytest.raises(zhmcclient.HTTPError) as exc:
        part.start()
    assert http_error(exc) == (500, 263)
    faults = _control(z15, "GET", "/faults").json()["faults"]
    assert faults[0]["fired"] == 1

    count = _control(
        z15, "GET", "/requests/count", params={"method": "POST", "pattern": "/operations/start"}
    ).json()["count"]
    assert count == 1
    log = _control(z15, "GET", "/requests").json()["requests"]
    assert {"method": "POST", "path": part.uri + "/operations/start", "status": 500} in log
    # Control requests are not API requests: they are not in the log.
    assert not any(e["path"].startswith("/_emulator") for e in log)

    r = _control(z15, "POST", "/partition-status", json={"partition": "inst-1", "status": "x"})
    assert r.status_code == 400
    r = _control(
        z15, "POST", "/partition-status", json={"partition": "inst-1", "status": "terminated"}
    )
    assert r.json() == {"partition-uri": part.uri, "status": "terminated"}
    part.pull_full_properties()
    assert part.get_property("status") == "terminated"
    assert _control(z15, "POST", "/sessions/expire", json={}).json() == {"expired": 1}
    assert _control(z15, "PUT", "/op-delay", json={"op-delay": 0.25}).json() == {"op-delay": 0.25}
    assert z15.emulator.op_delay == 0.25
    assert _control(z15, "PUT", "/op-delay", json={"op-delay": -1}).status_code == 400
    assert _control(z15, "PUT", "/latency", json={"request_delay": 0.01}).json() == {
        "request_delay": 0.01,
        "op_delay": 0.25,
    }
    assert z15.emulator.request_delay == 0.01
    assert _control(z15, "PUT", "/latency", json={"job_delay": 1}).status_code == 400
    state = _control(z15, "GET", "/state").json()
    assert state["sessions"] == 0 and state["inventory"] == inventories.Z15

    assert _control(z15, "DELETE", "/faults").status_code == 204
    assert _control(z15, "GET", "/faults").json() == {"faults": []}
    assert _control(z15, "DELETE", "/requests").status_code == 204
    assert z15.emulator.request_count() == 0


@pytest.mark.parametrize(
    "body",
    [
        {"method": "GET"},  # no uri_pattern
        {"uri_pattern": "("},  # bad regex
        {"uri_pattern": "x"},  # no effect given
        {"uri_pattern": "x", "status": 200},  # not an error status
        {"uri_pattern": "x", "status": 500, "nth": 0},
        {"uri_pattern": "x", "status": 500, "colour": "red"},
        {"uri_pattern": "x", "status": "500"},
    ],
)
def test_control_endpoint_rejects_bad_fault_specs(z15, body):
    r = _control(z15, "POST", "/faults", json=body)
    assert r.status_code == 400
    assert r.json()["error"]
    assert z15.emulator.faults.rules() == []


def test_unknown_control_route_is_404(z15):
    assert _control(z15, "GET", "/nothing").status_code == 404


def test_injector_counts_only_matching_requests():
    inj = FaultInjector()
    inj.add("GET", r"^/api/x$", nth=2, status=500)
    assert inj.check("POST", "/api/x") is None
    assert inj.check("GET", "/api/y") is None
    assert inj.check("GET", "/api/x") is None
    action = inj.check("get", "/api/x")
    assert action is not None and action.status == 500
    assert inj.check("GET", "/api/x") is None  # spent
    with pytest.raises(ControlError):
        inj.add(None, "x", delay=-1)


def test_latency_rule_stacks_with_error_rules():
    inj = FaultInjector()
    inj.add(None, "", delay=0.5, times=10**9)  # latency on everything
    inj.add("GET", "^/x$", delay=0.25, times=10**9)
    inj.add("POST", "^/x$", nth=2, status=409, reason=1)
    first = inj.check("POST", "/x")
    assert (first.status, first.delay) == (None, 0.5)
    second = inj.check("POST", "/x")
    assert (second.status, second.reason, second.delay) == (409, 1, 0.5)
    assert inj.check("GET", "/x").delay == 0.75
    assert inj.check("POST", "/x").status is None  # the error rule is spent


def test_request_log_count_filters():
    log = RequestLog(maxlen=3)
    for path in ("/a", "/b", "/a/1", "/a/2"):
        log.append("get", path, 200)
    assert [r.path for r in log.records()] == ["/b", "/a/1", "/a/2"]
    assert log.count("GET", r"^/a") == 2
    assert log.count("POST") == 0


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1", True),
        ("127.8.9.1", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("10.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("not-an-ip", False),
    ],
)
def test_loopback_detection(address, expected):
    assert is_loopback(address) is expected
