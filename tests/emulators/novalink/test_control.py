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


def ctl(emulator, method, sub, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(emulator.url + "/_emulator" + sub, data=data, method=method)
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
