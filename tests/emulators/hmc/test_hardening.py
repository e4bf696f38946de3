"""What the HMC emulator refuses to trust: other local users, hostile filters,
anonymous bodies, browsers on this machine (doc/security.md)."""

from __future__ import annotations

import os
import socket
import ssl
import stat
import threading

import pytest
import requests
import zhmcclient

from ibmvirt.emulators import httpserver, tls
from ibmvirt.emulators.hmc import HMCEmulator, filters, inventories

from .conftest import new_partition

OTHER_UID = 65534  # nobody


# -- state directory ------------------------------------------------------------------


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to hand a directory to another user")
def test_state_dir_of_another_user_is_refused_and_left_alone(tmp_path):
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    os.chown(state, OTHER_UID, OTHER_UID)
    emu = HMCEmulator(inventories.Z13, state_dir=str(state))
    with pytest.raises(tls.UnsafeDirectoryError, match=f"belongs to uid {OTHER_UID}"):
        emu.start()
    assert state.is_dir() and list(state.iterdir()) == []


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o1777])
def test_group_or_other_writable_state_dir_is_refused(tmp_path, mode):
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(mode)
    with pytest.raises(tls.UnsafeDirectoryError, match="writable by group or others"):
        HMCEmulator(inventories.Z13, state_dir=str(state)).start()
    assert list(state.iterdir()) == []


def test_tls_subdirectory_writable_by_others_is_refused(tmp_path):
    (tmp_path / "tls").mkdir()
    (tmp_path / "tls").chmod(0o757)
    with pytest.raises(tls.UnsafeDirectoryError, match="tls is writable by group or others"):
        HMCEmulator(inventories.Z13, state_dir=str(tmp_path)).start()


def test_symlinked_tls_files_are_replaced_not_followed(tmp_path):
    """Links planted where the key and CA go: the targets are untouched."""
    (tmp_path / "tls").mkdir(mode=0o700)
    victim = tmp_path / "victim"
    victim.write_text("do not overwrite")
    for name in ("ca.pem", "server.pem", "server-key.pem"):
        (tmp_path / "tls" / name).symlink_to(victim)
    with HMCEmulator(inventories.Z13, state_dir=str(tmp_path)) as emu:
        assert victim.read_text() == "do not overwrite"
        for name, mode in (("ca.pem", 0o644), ("server.pem", 0o644), ("server-key.pem", 0o600)):
            st = os.lstat(tmp_path / "tls" / name)
            assert stat.S_ISREG(st.st_mode), name
            assert (stat.S_IMODE(st.st_mode), st.st_uid) == (mode, os.geteuid()), name
        assert sorted(os.listdir(tmp_path / "tls")) == ["ca.pem", "server-key.pem", "server.pem"]
        requests.get(emu.url + "/api/version", verify=emu.ca_file, timeout=10).raise_for_status()


# -- query filters --------------------------------------------------------------------


def _get(fx, session, path):
    return requests.get(
        fx.emulator.url + path,
        headers={"X-API-Session": session.session_id},
        verify=fx.emulator.ca_file,
        timeout=30,
    )


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        ("(a|a)*$", "an alternation inside a repetition"),
        ("(a*)*", "a repetition inside a repetition"),
        ("(a+)+b", "a repetition inside a repetition"),
        ("(x)\\1", "backreferences"),
        ("(?=a)a", "lookahead"),
        ("a*b*c*", "more than 2 repetitions"),
        ("(ab|ba)(ab|ba)(ab|ba)(ab|ba)(ab|ba)", "more than 16 combinations"),
        ("a" * 257, "longer than 256 characters"),
        ("(", "not a valid regular expression"),
    ],
)
def test_filters_that_could_freeze_the_emulator_are_refused(z15, z15_cpc, pattern, why):
    new_partition(z15_cpc, "a" * 26)
    session = z15_cpc.manager.session
    resp = _get(z15, session, f"{z15_cpc.uri}/partitions?name={requests.utils.quote(pattern)}")
    assert (resp.status_code, resp.json()["reason"]) == (400, 1)
    assert why in resp.json()["message"]


def test_filters_match_whole_names_as_the_hmc_does(z15, z15_cpc):
    for name in ("web-1", "web-2", "db-1", "a" * 26):
        new_partition(z15_cpc, name)

    def names(**filter_args):
        return sorted(p.name for p in z15_cpc.partitions.list(filter_args=filter_args))

    assert names(name="web-.*") == ["web-1", "web-2"]
    assert names(name="(web|db)-1") == ["db-1", "web-1"]
    assert names(name=["db-1", "web-2"]) == ["db-1", "web-2"]
    assert names(name="web") == []  # the whole name must match
    assert names(name="a" * 26) == ["a" * 26]
    assert names(name="a{26}") == ["a" * 26]
    assert names(name=".*", status="stopped") == sorted(["web-1", "web-2", "db-1", "a" * 26])
    # A pattern of exactly the limit is matched.
    assert names(name="w" + "." * (filters.MAX_PATTERN_LENGTH - 1)) == []


def test_filter_is_matched_outside_the_engine_lock(z15, z15_cpc, monkeypatch):
    """While one client's filter is being matched, another client is answered."""
    new_partition(z15_cpc, "slow")
    other = zhmcclient.Client(z15.session())
    answered = threading.Event()
    lock_free = []
    matches = filters._matches

    def slow_match(f, value, folded):
        if f.patterns == ("sl.w",):
            lock_free.append(z15.emulator.engine.lock.acquire(timeout=30))
            z15.emulator.engine.lock.release()
            answered.wait(timeout=30)  # a slow match: until the other client is served
        return matches(f, value, folded)

    monkeypatch.setattr(filters, "_matches", slow_match)
    result: list = []
    first = threading.Thread(
        target=lambda: result.extend(z15_cpc.partitions.list(filter_args={"name": "sl.w"}))
    )
    first.start()
    try:
        other.cpcs.list()  # would wait for the lock if matching held it
        answered.set()
    finally:
        answered.set()
        first.join(timeout=60)
    assert lock_free == [True]
    assert [p.name for p in result] == ["slow"]


def test_refused_filter_from_a_client_without_session_is_403(z15, z15_cpc):
    resp = requests.get(
        f"{z15.emulator.url}{z15_cpc.uri}/partitions?name=(a|a)*",
        verify=z15.emulator.ca_file,
        timeout=10,
    )
    assert (resp.status_code, resp.json()["reason"]) == (403, 4)


# -- sessions and bodies --------------------------------------------------------------


def _tls_raw(fx, data: bytes, timeout: float = 10.0) -> bytes:
    ctx = ssl.create_default_context(cafile=fx.emulator.ca_file)
    with socket.create_connection(("127.0.0.1", fx.emulator.port), timeout=timeout) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            s.sendall(data)
            out = b""
            try:
                while b"\r\n\r\n" not in out or not out.rstrip().endswith(b"}"):
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    out += chunk
            except (TimeoutError, ssl.SSLError, ConnectionResetError):
                pass
            return out


def test_anonymous_body_is_neither_read_nor_parsed(z15, z15_cpc):
    """A client without a session announcing 150 MB hears 403 at once."""
    answer = _tls_raw(
        z15,
        f"POST {z15_cpc.uri}/partitions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: application/json\r\nContent-Length: 157286400\r\n\r\n".encode()
        + b"{" * 1024,
    )
    assert answer.startswith(b"HTTP/1.1 403")
    assert b"Connection: close" in answer
    assert z15.emulator.request_log[-1][2] == 403


@pytest.mark.parametrize(
    ("length", "status"),
    [("-1", 400), ("0x10", 400), (str(httpserver.MAX_BODY + 1), 413)],
)
def test_bad_or_oversized_content_length_is_refused(z15, z15_cpc, length, status):
    token = z15_cpc.manager.session.session_id
    answer = _tls_raw(
        z15,
        f"POST {z15_cpc.uri}/partitions HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Session: {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n".encode(),
    )
    assert answer.startswith(f"HTTP/1.1 {status}".encode())


def test_notification_topics_carry_nothing_of_the_session_token(z15):
    session = z15.session()
    session.logon()
    topics = (session.object_topic, session.job_topic)
    assert all(session.session_id[:8] not in t for t in topics)
    other = z15.session()
    other.logon()
    assert other.object_topic != session.object_topic


# -- connections ----------------------------------------------------------------------


def test_idle_tls_connection_is_closed_after_the_handshake(z15):
    z15.emulator._server.idle_timeout = 0.5
    ctx = ssl.create_default_context(cafile=z15.emulator.ca_file)
    with socket.create_connection(("127.0.0.1", z15.emulator.port), timeout=30) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            assert s.recv(1) == b""  # the server closed the idle connection


# -- control endpoint -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Content-Type": "text/plain"}, 415),
        ({}, 415),
        ({"Content-Type": "application/json", "Origin": "https://attacker.example"}, 403),
        ({"Content-Type": "application/json", "Host": "rebound.attacker.example:6794"}, 403),
    ],
)
def test_control_endpoint_refuses_cross_origin_and_rebound_requests(z15, headers, status):
    resp = requests.post(
        z15.emulator.url + "/_emulator/sessions/expire",
        data="{}",
        headers=headers,
        verify=z15.emulator.ca_file,
        timeout=10,
    )
    assert resp.status_code == status
    session = z15.session()
    session.logon()
    assert z15.emulator.engine.session_count() == 1  # nothing was expired
