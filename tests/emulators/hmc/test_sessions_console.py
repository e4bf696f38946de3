"""Sessions (TLS, logon, expiry, re-logon) and partition OS messages."""

from __future__ import annotations

import os

import pytest
import requests
import zhmcclient

from ibmvirt.emulators import tls
from ibmvirt.emulators.hmc import HMCEmulator, HMCEmulatorFixture, inventories

from .conftest import http_error, new_partition


def test_tls_is_verified_against_the_emulator_ca(z15, tmp_path):
    # The right CA: works. Another CA (a fresh emulator identity): refused.
    client = zhmcclient.Client(z15.session())
    assert client.version_info() == (3, 1)
    other = tls.make_tls_material(str(tmp_path / "other"))
    bad = zhmcclient.Session(
        "127.0.0.1", z15.userid, z15.password, port=z15.emulator.port, verify_cert=other.ca_file
    )
    with pytest.raises(zhmcclient.ConnectionError):
        bad.logon()
    # Default verification (system CAs) does not trust the emulator either.
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(z15.emulator.url + "/api/version", timeout=10)


def test_wrong_password_is_refused(z15):
    session = zhmcclient.Session(
        "127.0.0.1", z15.userid, "wrong", port=z15.emulator.port, verify_cert=z15.emulator.ca_file
    )
    with pytest.raises(zhmcclient.ServerAuthError) as exc:
        session.logon()
    assert exc.value.details.http_status == 403
    assert z15.emulator.engine.session_count() == 0


def test_requests_without_session_are_refused(z15):
    resp = requests.get(z15.emulator.url + "/api/cpcs", verify=z15.emulator.ca_file, timeout=10)
    assert resp.status_code == 403
    assert resp.json()["reason"] == 4
    resp = requests.get(
        z15.emulator.url + "/api/cpcs",
        verify=z15.emulator.ca_file,
        headers={"X-API-Session": "forged"},
        timeout=10,
    )
    assert (resp.status_code, resp.json()["reason"]) == (403, 5)


def test_session_expiry_and_transparent_relogon(z15):
    session = z15.session()
    client = zhmcclient.Client(session)
    cpc = client.cpcs.find(**{"object-id": inventories.Z15_IDS.cpc})
    old_id = session.session_id
    assert z15.emulator.expire_sessions() == 1
    # The next call gets 403/5, logs on again and retries, invisibly to the caller.
    assert cpc.partitions.list() == []
    assert session.session_id != old_id
    statuses = [r.status for r in z15.emulator.request_log if "/partitions" in r.path]
    assert statuses == [403, 200]
    assert z15.emulator.request_count("POST", r"^/api/sessions$") == 2


def test_idle_sessions_expire_by_timeout():
    fx = HMCEmulatorFixture(inventories.Z13, session_timeout=0.0)
    fx.setUp()
    try:
        session = fx.session()
        session.logon()
        # Every session is already expired: the client re-logs on once and then
        # gives up with the 403/5 of the retried request.
        with pytest.raises(zhmcclient.ServerAuthError) as exc:
            zhmcclient.Client(session).cpcs.list()
        assert exc.value.details.reason == 5
    finally:
        fx.cleanUp()


def test_logoff_ends_the_session(z15):
    session = z15.session()
    session.logon()
    assert z15.emulator.engine.session_count() == 1
    session.logoff()
    assert z15.emulator.engine.session_count() == 0


def test_os_messages_follow_the_lifecycle(z15_cpc):
    part = new_partition(z15_cpc, "console-vm")
    assert part.list_os_messages()["os-messages"] == []
    with pytest.raises(zhmcclient.HTTPError) as exc:
        part.open_os_message_channel()
    assert http_error(exc) == (409, 1)

    part.update_properties(
        {"boot-device": "network-adapter", "boot-os-specific-parameters": "console=ttysclp0"}
    )
    part.start()
    msgs = part.list_os_messages()["os-messages"]
    texts = [m["message-text"] for m in msgs]
    assert any("Linux version" in t for t in texts)
    assert any("console=ttysclp0" in t for t in texts)
    assert texts[-1] == "console-vm login: "
    seqs = [m["sequence-number"] for m in msgs]
    assert seqs == list(range(len(msgs)))
    for m in msgs:
        assert {"message-id", "is-priority", "is-held", "prompt-text", "timestamp"} <= set(m)
    part.pull_full_properties()
    assert part.get_property("os-type") == "Linux"
    topic = part.open_os_message_channel()
    assert part.uri.rsplit("/", 1)[1] in topic

    part.send_os_command("uname -a")
    window = part.list_os_messages(begin=2, end=4)["os-messages"]
    assert [m["sequence-number"] for m in window] == [2, 3, 4]
    part.stop()
    after = part.list_os_messages(begin=len(msgs))["os-messages"]
    assert after[0]["message-text"] == "uname -a"
    assert any("System halted" in m["message-text"] for m in after)


def test_emulator_without_start_has_no_port():
    emu = HMCEmulator(inventories.Z13)
    with pytest.raises(RuntimeError):
        _ = emu.port


def test_list_os_messages_needs_se_2_14(z13_cpc):
    part = new_partition(z13_cpc)
    part.start()
    with pytest.raises(zhmcclient.HTTPError) as exc:
        part.list_os_messages()
    assert http_error(exc) == (404, 1)
    assert "2.14" in exc.value.message
    assert part.open_os_message_channel()  # SE 2.13.1 has the message channel


def test_stopped_emulator_answers_nobody():
    fx = HMCEmulatorFixture(inventories.Z15)
    fx.setUp()
    try:
        session = fx.session(
            retry_timeout_config=zhmcclient.RetryTimeoutConfig(
                connect_retries=0, read_retries=0, connect_timeout=5, read_timeout=5
            )
        )
        client = zhmcclient.Client(session)
        cpc = client.cpcs.find(**{"object-id": inventories.Z15_IDS.cpc})
        fx.emulator.stop()  # also cuts the client's open keep-alive connection
        with pytest.raises(zhmcclient.ConnectionError):
            cpc.partitions.list()
    finally:
        fx.cleanUp()


def test_hmc_outage_and_return(z15):
    client = zhmcclient.Client(z15.session())
    cpc = client.cpcs.find(**{"object-id": inventories.Z15_IDS.cpc})
    new_partition(cpc, "survivor")
    port, ca = z15.emulator.port, z15.emulator.ca_file
    z15.emulator.stop(final=False)
    with pytest.raises(zhmcclient.ConnectionError):
        zhmcclient.Session(
            "127.0.0.1",
            z15.userid,
            z15.password,
            port=port,
            verify_cert=ca,
            retry_timeout_config=zhmcclient.RetryTimeoutConfig(connect_retries=0),
        ).logon()
    z15.emulator.start()
    assert (z15.emulator.port, z15.emulator.ca_file) == (port, ca)
    # The old session is gone; the client logs on again and finds its objects.
    assert [p.name for p in cpc.partitions.list()] == ["survivor"]
    assert z15.emulator.request_count("POST", r"^/api/sessions$") >= 2


def test_emulator_context_manager_and_clean_restart():
    with HMCEmulator(inventories.Z13) as emu:
        ca = emu.ca_file
        assert os.path.isfile(ca)
    assert not os.path.exists(ca)  # the temporary state dir is gone
    emu.start()  # a final stop() allows a fresh start with a new identity
    try:
        session = zhmcclient.Session("127.0.0.1", "u", "p", port=emu.port, verify_cert=emu.ca_file)
        assert zhmcclient.Client(session).version_info() == (1, 7)
    finally:
        emu.stop()


def test_partition_without_boot_device_loads_nothing(z15_cpc):
    part = new_partition(z15_cpc)
    part.start()
    texts = [m["message-text"] for m in part.list_os_messages()["os-messages"]]
    assert len(texts) == 1 and "no boot device" in texts[0]
    part.pull_full_properties()
    assert part.get_property("os-type") == ""
