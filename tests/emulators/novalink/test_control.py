"""Latency model, job delays and fault injection through the control endpoint."""

from __future__ import annotations

import json
import urllib.request

import pypowervm.exceptions as pvm_exc
import pytest
from pypowervm.helpers import vios_busy
from pypowervm.tasks import power as pvm_power
from pypowervm.wrappers import logical_partition as pvm_lpar
from pypowervm.wrappers import virtual_io_server as pvm_vios

from .test_lpar import build

#: Control requests with a body must say they are JSON (faults.control_refusal).
JSON = {"Content-Type": "application/json"}


def ctl(emulator, method, sub, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        emulator.url + "/_emulator" + sub, data=data, method=method, headers=JSON
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        raw = resp.read()
        return resp.status, (json.loads(raw) if raw else None)


def test_job_delay_makes_jobs_run_and_pypowervm_polls(emulator, adapter, host):
    lpar = build(adapter, host).create(parent=host)
    ctl(emulator, "PUT", "/latency", {"job_delays": {"PowerOn": 0.3}})
    pvm_power.power_on(lpar, host.uuid)  # submit returns RUNNING; client polls
    assert lpar.refresh().state == "running"
    _, log = ctl(emulator, "GET", "/requests")
    polls = [r for r in log["requests"] if r["method"] == "GET" and "/jobs/" in r["path"]]
    assert polls, "pypowervm never had to poll the job"


def test_injected_vios_busy_is_retried_by_pypowervm_helper(emulator, session, monkeypatch):
    import pypowervm.adapter as pvm_adpt

    monkeypatch.setattr(vios_busy, "SLEEP", lambda s: None)  # else 5 s per retry
    adapter = pvm_adpt.Adapter(session, helpers=[vios_busy.vios_busy_retry_helper])
    status, out = ctl(
        emulator,
        "POST",
        "/faults",
        {
            "method": "GET",
            "uri_pattern": "/VirtualIOServer",
            "status": 500,
            "times": 2,
            "message": "VIOS0014 The VIOS is busy processing another request.",
        },
    )
    assert status == 201
    vioses = pvm_vios.VIOS.get(adapter)
    assert len(vioses) == 2
    _, faults = ctl(emulator, "GET", "/faults")
    assert faults["faults"][0]["fired"] == 2


def test_injected_error_reaches_client_once(emulator, adapter):
    ctl(
        emulator,
        "POST",
        "/faults",
        {"method": "GET", "uri_pattern": "LogicalPartition", "status": 503, "nth": 1},
    )
    with pytest.raises(pvm_exc.HttpError) as exc:
        pvm_lpar.LPAR.get(adapter)
    assert exc.value.response.status == 503
    assert pvm_lpar.LPAR.get(adapter)  # the rule is spent


def test_expired_sessions_are_renewed_by_pypowervm(emulator, adapter):
    ctl(emulator, "POST", "/sessions/expire")
    assert pvm_lpar.LPAR.search(adapter, name="novalink")  # 401 -> re-logon -> retry
    _, log = ctl(emulator, "GET", "/requests")
    statuses = [(r["method"], r["status"]) for r in log["requests"]]
    assert ("GET", 401) in statuses and ("PUT", 200) in statuses


def test_state_reports_counts(emulator, adapter):
    _, state = ctl(emulator, "GET", "/state")
    assert state["objects"]["LogicalPartition"] == 1
    assert state["sessions"] >= 1


def test_bad_fault_rule_is_refused(emulator):
    with pytest.raises(urllib.error.HTTPError) as exc:
        ctl(emulator, "POST", "/faults", {"uri_pattern": "("})
    assert exc.value.code == 400


def test_vios_busy_shortcut_then_retry(emulator, session, monkeypatch):
    import pypowervm.adapter as pvm_adpt

    monkeypatch.setattr(vios_busy, "SLEEP", lambda s: None)
    vios1 = next(v for v in pvm_vios.VIOS.get(pvm_adpt.Adapter(session)) if v.name == "vios1")
    status, _ = ctl(emulator, "POST", "/vios-busy", {"vios": "vios1", "times": 2})
    assert status == 201
    with pytest.raises(pvm_exc.HttpError) as exc:
        vios1.refresh()
    assert exc.value.her_wrap.is_vios_busy()
    retrying = pvm_adpt.Adapter(session, helpers=[vios_busy.vios_busy_retry_helper])
    got = pvm_vios.VIOS.get(retrying, uuid=vios1.uuid)
    assert got.name == "vios1"


def test_injected_reason_becomes_reason_code(emulator, adapter):
    ctl(
        emulator,
        "POST",
        "/faults",
        {"method": "GET", "uri_pattern": "LogicalPartition", "status": 500, "reason": 42},
    )
    with pytest.raises(pvm_exc.HttpError) as exc:
        pvm_lpar.LPAR.get(adapter)
    assert exc.value.her_wrap.reason_code == "42"
    assert "EMUL0099" in exc.value.her_wrap.message


def test_injected_drop_closes_the_connection_without_answer(emulator, adapter):
    ctl(
        emulator,
        "POST",
        "/faults",
        {"method": "GET", "uri_pattern": "LogicalPartition", "drop": True},
    )
    with pytest.raises(pvm_exc.Error) as exc:
        pvm_lpar.LPAR.get(adapter)
    assert not isinstance(exc.value, pvm_exc.HttpError)  # no HTTP answer at all
    assert pvm_lpar.LPAR.get(adapter)  # spent; the server still serves
    _, log = ctl(emulator, "GET", "/requests")
    assert [r["status"] for r in log["requests"] if "LogicalPartition" in r["path"]][:1] == [0]


def test_injected_delay_slows_only_the_matching_request(emulator, adapter, host):
    import time

    ctl(
        emulator,
        "POST",
        "/faults",
        {"method": "GET", "uri_pattern": "LogicalPartition", "delay": 0.5},
    )
    started = time.monotonic()
    assert pvm_lpar.LPAR.get(adapter)  # delayed, then answered normally
    assert time.monotonic() - started >= 0.5
    started = time.monotonic()
    pvm_lpar.LPAR.get(adapter)
    assert time.monotonic() - started < 0.5


def test_request_delay_applies_to_every_api_request(emulator, adapter, host):
    import time

    status, state = ctl(emulator, "PUT", "/latency", {"request_delay": 0.2})
    assert status == 200 and state["request_delay"] == 0.2
    started = time.monotonic()
    pvm_lpar.LPAR.get(adapter)
    host.refresh()
    assert time.monotonic() - started >= 0.4
    ctl(emulator, "PUT", "/latency", {"request_delay": 0})
    started = time.monotonic()
    pvm_lpar.LPAR.get(adapter)
    assert time.monotonic() - started < 0.2


class _FakeRequest:
    """What Control.handle needs of a request handler, from a given client address."""

    def __init__(self, address):
        self.client_address = (address, 40000)
        self.headers = {"Host": f"127.0.0.1:{40001}"}
        self.sent = []

    def send(self, status, body=b"", ctype=None, headers=None):
        self.sent.append((status, body))


def test_control_endpoint_refuses_non_loopback_clients(emulator):
    from ibmvirt.emulators.novalink import errors
    from ibmvirt.emulators.novalink.control import Control

    control = Control(emulator.emu)
    with pytest.raises(errors.RestError) as exc:
        control.handle(_FakeRequest("192.0.2.2"), "GET", "/_emulator/state", b"")
    assert exc.value.status == 403
    with pytest.raises(errors.RestError):
        control.handle(
            _FakeRequest("192.0.2.2"), "POST", "/_emulator/faults", b'{"uri_pattern": "x"}'
        )
    assert control.injector.rules() == []
    for loopback in ("127.0.0.1", "::1"):
        req = _FakeRequest(loopback)
        control.handle(req, "GET", "/_emulator/state", b"")
        assert req.sent[0][0] == 200


def test_server_answers_non_loopback_control_request_with_403(emulator):
    """The HTTP handler maps the refusal onto a 403 HttpErrorResponse (no socket needed)."""
    import email.message
    import io

    handler_cls = emulator.httpd.RequestHandlerClass
    h = handler_cls.__new__(handler_cls)
    h.client_address = ("192.0.2.2", 40000)
    h.path = "/_emulator/faults"
    h.command, h.request_version, h.requestline = "POST", "HTTP/1.1", "POST /_emulator/faults"
    h.headers = email.message.Message()
    h.headers["Content-Length"] = "2"
    h.rfile, h.wfile = io.BytesIO(b"{}"), io.BytesIO()
    h.close_connection = True
    h._handle("POST")
    out = h.wfile.getvalue().decode()
    assert out.startswith("HTTP/1.1 403")
    assert "only answers loopback clients" in out
