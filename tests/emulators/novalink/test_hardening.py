"""What the NovaLink emulator refuses to trust: other local users, remote clients,
browsers, unbounded bodies and idle connections (doc/security.md)."""

from __future__ import annotations

import io
import json
import os
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pypowervm.exceptions as pvm_exc
import pytest
from pypowervm.tasks import storage as tsk_stg
from pypowervm.wrappers import vios_file as pvm_file

from ibmvirt.emulators import httpserver
from ibmvirt.emulators.novalink import app, auth

from .test_storage import vg_named, vios_named

OTHER_UID = 65534  # nobody

LOCAL_LOGON = (
    b'<LogonRequest xmlns="http://www.ibm.com/xmlns/systems/power/firmware/web/mc/2012_10/"'
    b' schemaVersion="V1_0"><UserID>root</UserID>'
    b"<GenerateX-API-SessionFile>true</GenerateX-API-SessionFile></LogonRequest>"
)


def _raw(port: int, data: bytes, host: str = "127.0.0.1", timeout: float = 10.0) -> bytes:
    """Send raw bytes, return everything the server answers until it closes or pauses."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
                if b"\r\n\r\n" in out:
                    head, _, body = out.partition(b"\r\n\r\n")
                    length = [
                        int(line.split(b":", 1)[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ]
                    if length and len(body) >= length[0]:
                        break
        except TimeoutError:
            pass
        return out


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def _logon(port: int, body: bytes = LOCAL_LOGON, host: str = "127.0.0.1"):
    req = urllib.request.Request(
        f"http://{host}:{port}/rest/api/web/Logon",
        data=body,
        method="PUT",
        headers={"Content-Type": "application/vnd.ibm.powervm.web+xml; type=LogonRequest"},
    )
    return urllib.request.urlopen(req, timeout=10)  # noqa: S310 - loopback test server


def _session_file(resp) -> str:
    from lxml import etree

    doc = etree.fromstring(resp.read())
    return doc.findtext("{*}X-API-SessionFile")


# -- state directories ----------------------------------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ibmvirt.cmd.novalink_emulator", "--inventory", "small", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to hand a directory to another user")
def test_state_dir_of_another_user_is_refused_and_left_alone(tmp_path):
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    os.chown(state, OTHER_UID, OTHER_UID)

    result = _cli("--port", "0", "--https", "--state-dir", str(state))

    assert result.returncode == 2
    assert f"belongs to uid {OTHER_UID}" in result.stderr
    assert list(state.iterdir()) == []  # no key, no CA, no token directory written


def test_group_writable_state_dir_is_refused(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(0o777)

    result = _cli("--port", "0", "--https", "--state-dir", str(state))

    assert result.returncode == 2
    assert "writable by group or others (mode 0777)" in result.stderr
    assert list(state.iterdir()) == []


def test_token_directory_of_another_user_is_refused(tmp_path):
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    tokens.chmod(0o733)  # others may drop files (or links) in it
    with pytest.raises(PermissionError, match="writable by group or others"):
        app.start("small", token_dir=str(tokens))


# -- local (file) logon -------------------------------------------------------------


def test_local_logon_is_served_to_loopback_clients_only(tmp_path):
    with app.running("small", host="0.0.0.0", token_dir=str(tmp_path / "t")) as srv:  # noqa: S104
        resp = _logon(srv.port)
        path = _session_file(resp)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        address = _non_loopback_address()
        if address is None:
            pytest.skip("this machine has no non-loopback IPv4 address to test from")
        with pytest.raises(urllib.error.HTTPError) as exc:
            _logon(srv.port, host=address)
        assert exc.value.code == 401
        assert b"only served to clients on this machine" in exc.value.read()
        assert os.listdir(tmp_path / "t") == [os.path.basename(path)]


def _non_loopback_address() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent
            address = s.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def test_local_logons_are_bounded_and_the_oldest_logged_off(tmp_path):
    tokens = tmp_path / "t"
    with app.running("small", token_dir=str(tokens)) as srv:
        paths = [_session_file(_logon(srv.port)) for _ in range(auth.MAX_FILE_SESSIONS + 3)]
        assert sorted(os.listdir(tokens)) == sorted(
            os.path.basename(p) for p in paths[3:]
        )  # exactly the limit, the newest
        assert srv.emu.sessions.count == auth.MAX_FILE_SESSIONS


def test_token_files_of_expired_sessions_do_not_survive(tmp_path):
    tokens = tmp_path / "t"
    with app.running("small", token_dir=str(tokens)) as srv:
        for _ in range(3):
            _session_file(_logon(srv.port))
        req = urllib.request.Request(
            srv.url + "/_emulator/sessions/expire",
            data=b"{}",
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        urllib.request.urlopen(req, timeout=10).read()  # noqa: S310
        assert os.listdir(tokens) == []
        _session_file(_logon(srv.port))
    assert os.listdir(tokens) == []  # stopped: no token file left


# -- request bodies -------------------------------------------------------------------


def test_unauthenticated_body_is_never_read(emulator):
    """A client without a session announcing 150 MB hears 401 at once."""
    answer = _raw(
        emulator.port,
        b"PUT /rest/api/uom/LogicalPartition HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/xml\r\nContent-Length: 157286400\r\n\r\n" + b"x" * 1024,
    )
    assert _status(answer) == 401
    assert b"Connection: close" in answer or answer.count(b"HTTP/1.1") == 1


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        (b"Transfer-Encoding: chunked\r\n\r\n-10\r\n", 400),
        (b"Transfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
        (b"Content-Length: -1\r\n\r\n", 400),
        (b"Content-Length: %d\r\n\r\n" % (httpserver.MAX_BODY + 1), 413),
    ],
)
def test_malformed_or_oversized_bodies_are_refused_without_reading(session, headers, status):
    token = session._sessToken
    answer = _raw(
        session.port,
        b"PUT /rest/api/uom/LogicalPartition HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"X-API-Session: " + token.encode() + b"\r\nContent-Type: application/xml\r\n" + headers,
    )
    assert _status(answer) == status


def test_body_of_exactly_the_limit_is_read(session):
    token = session._sessToken.encode()
    body = b"<x/>" + b" " * (httpserver.MAX_BODY - 4)
    answer = _raw(
        session.port,
        b"PUT /rest/api/uom/LogicalPartition HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Session: "
        + token
        + b"\r\nContent-Type: application/xml\r\nContent-Length: %d\r\n\r\n" % len(body)
        + body,
        timeout=60,
    )
    assert _status(answer) not in (413, 401)


# -- connections ----------------------------------------------------------------------


def test_idle_connections_are_closed_and_do_not_lock_others_out(emulator):
    emulator.httpd.idle_timeout = 0.5
    emulator.httpd.max_connections = 2
    idle = [socket.create_connection(("127.0.0.1", emulator.port), timeout=30) for _ in range(2)]
    try:
        deadline = time.monotonic() + 10
        while emulator.httpd.serving < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        # At the cap: a third client is closed without an answer.
        assert _raw(emulator.port, b"GET /rest/api/web/Logon HTTP/1.1\r\nHost: x\r\n\r\n") == b""
        # The idle ones are cut by the server (recv sees the end of the stream) ...
        for s in idle:
            assert s.recv(1) == b""
        # ... and a new client is served again.
        deadline = time.monotonic() + 10
        while emulator.httpd.serving and time.monotonic() < deadline:
            time.sleep(0.01)
        answer = _raw(emulator.port, b"GET /rest/api/uom/ManagedSystem HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _status(answer) == 401
    finally:
        for s in idle:
            s.close()


# -- control endpoint -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "status"),
    [
        ({"Content-Type": "text/plain"}, 415),
        ({"Content-Type": "application/x-www-form-urlencoded"}, 415),
        ({"Content-Type": "application/json", "Origin": "http://attacker.example"}, 403),
        ({"Content-Type": "application/json", "Origin": "null"}, 403),
        ({"Content-Type": "application/json", "Host": "attacker.example"}, 403),
    ],
)
def test_control_endpoint_refuses_what_a_browser_page_can_send(emulator, extra, status):
    req = urllib.request.Request(
        emulator.url + "/_emulator/faults",
        data=json.dumps({"uri_pattern": "x", "status": 500}).encode(),
        method="POST",
        headers=extra,
    )
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(req, timeout=10)  # noqa: S310
    assert exc.value.code == status
    req = urllib.request.Request(emulator.url + "/_emulator/faults")
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
        assert json.loads(resp.read()) == {"faults": []}


def test_control_endpoint_accepts_json_from_a_loopback_origin(emulator):
    req = urllib.request.Request(
        emulator.url + "/_emulator/faults",
        data=json.dumps({"uri_pattern": "x", "status": 500}).encode(),
        method="POST",
        headers={
            "Content-Type": "application/json; charset=utf-8",
            "Origin": f"http://localhost:{emulator.port}",
        },
    )
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
        assert resp.status == 201


# -- kept disk data -------------------------------------------------------------------


def test_upload_refused_for_capacity_leaves_the_kept_data_alone(tmp_path):
    import pypowervm.adapter as pvm_adpt

    disks = tmp_path / "d"
    with app.running("small", token_dir=str(tmp_path / "t"), disk_dir=str(disks)) as srv:
        sess = pvm_adpt.Session(
            "127.0.0.1", "neo", "passw0rd", protocol="http", port=srv.port, conn_tries=1
        )
        adapter = pvm_adpt.Adapter(sess)
        vios1 = vios_named(adapter, "vios1")
        vg = vg_named(adapter, vios1, "rootvg")
        vdisk = tsk_stg.crt_vdisk(adapter, vios1.uuid, vg.uuid, "small", 0.001)  # ~1 MiB
        first = b"a" * 1000
        f = pvm_file.File.bld(
            adapter,
            "f1",
            pvm_file.FileType.DISK_IMAGE,
            vios1.uuid,
            f_size=len(first),
            tdev_udid=vdisk.udid,
        ).create()
        adapter.upload_file(f.element, io.BytesIO(first))
        (kept,) = os.listdir(disks)
        big = b"b" * (2 << 20)
        f = pvm_file.File.bld(
            adapter,
            "f2",
            pvm_file.FileType.DISK_IMAGE,
            vios1.uuid,
            f_size=len(big),
            tdev_udid=vdisk.udid,
        ).create()
        with pytest.raises(pvm_exc.HttpError) as exc:
            adapter.upload_file(f.element, io.BytesIO(big))
        assert "do not fit" in exc.value.her_wrap.message
        assert os.listdir(disks) == [kept]  # no partial file, no replaced data
        assert (disks / kept).read_bytes() == first
        assert stat.S_IMODE((disks / kept).stat().st_mode) == 0o600
        assert srv.emu.uploads[vdisk.udid]["bytes"] == len(first)
        sess._logoff()


def test_xml_external_entities_are_not_resolved(emulator, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("s3cr3t-value")
    body = (
        f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY e SYSTEM "file://{secret}">]>'
        '<LogonRequest xmlns="http://www.ibm.com/xmlns/systems/power/firmware/web/mc/2012_10/"'
        ' schemaVersion="V1_0"><UserID>&e;</UserID><Password>x</Password></LogonRequest>'
    ).encode()
    with pytest.raises(urllib.error.HTTPError) as exc:
        _logon(emulator.port, body)
    assert exc.value.code in (400, 401)
    assert b"s3cr3t-value" not in exc.value.read()


def test_upload_names_cannot_leave_the_disk_directory(tmp_path):
    import pypowervm.adapter as pvm_adpt
    from pypowervm.tasks import vopt as tsk_vopt

    disks = tmp_path / "d"
    with app.running("small", token_dir=str(tmp_path / "t"), disk_dir=str(disks)) as srv:
        sess = pvm_adpt.Session(
            "127.0.0.1", "neo", "passw0rd", protocol="http", port=srv.port, conn_tries=1
        )
        adapter = pvm_adpt.Adapter(sess)
        vios_uuid, _ = tsk_vopt.validate_vopt_repo_exists(adapter)
        iso = b"CD001" * 100
        tsk_stg.upload_vopt(adapter, vios_uuid, io.BytesIO(iso), "../../escape.iso", len(iso))
        assert not (tmp_path / "escape.iso").exists()
        (kept,) = os.listdir(disks)
        assert "/" not in kept and (disks / kept).read_bytes() == iso
        sess._logoff()


def test_control_request_from_off_loopback_is_refused_before_its_body_is_read(tmp_path):
    address = _non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to test from")
    with app.running("small", host="0.0.0.0", token_dir=str(tmp_path / "t")) as srv:  # noqa: S104
        answer = _raw(
            srv.port,
            b"POST /_emulator/faults HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 157286400\r\n\r\n{",
            host=address,
        )
        assert _status(answer) == 403
        assert b"only answers loopback clients" in answer
        assert srv.emu.sessions.count == 0
