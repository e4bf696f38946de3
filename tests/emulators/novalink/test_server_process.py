"""The console script runs a real server process; HTTPS with generated certs."""

from __future__ import annotations

import gc
import json
import logging
import re
import signal
import subprocess
import sys
import urllib.request

import pypowervm.adapter as pvm_adpt
import pytest
from pypowervm.wrappers import managed_system as pvm_ms

from ibmvirt.emulators.novalink import app, tlsfiles


def _start_process(*args):
    proc = subprocess.Popen(
        [sys.executable, "-m", "ibmvirt.cmd.novalink_emulator", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = {}
    while True:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"emulator exited early: {proc.stderr.read()}")
        key, _, value = line.partition(": ")
        lines[key] = value.strip()
        if key == "Token directory":
            return proc, lines


def test_console_script_serves_https_to_pypowervm(tmp_path, monkeypatch):
    logging.getLogger("pypowervm").setLevel(logging.CRITICAL)
    proc, info = _start_process(
        "--inventory", "small", "--port", "0", "--https", "--state-dir", str(tmp_path)
    )
    try:
        url = info["NovaLink emulator URL"]
        port = int(re.search(r":(\d+)$", url).group(1))
        assert url.startswith("https://127.0.0.1:")
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", info["CA certificate"])
        sess = pvm_adpt.Session(
            "127.0.0.1",
            "neo",
            "passw0rd",
            protocol="https",
            port=port,
            certpath=str(tmp_path / "no-pin") + "/",
            conn_tries=1,
        )
        ms = pvm_ms.System.get(pvm_adpt.Adapter(sess))[0]
        assert ms.system_name == "pvm-host-1"
        sess._logoff()
        del sess
        gc.collect()
        # The control endpoint of the process answers on loopback.
        with _ctl(url, info) as resp:
            state = json.loads(resp.read())
        assert state["objects"]["VirtualIOServer"] == 2
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


def _ctl(url, info):
    import ssl

    ctx = ssl.create_default_context(cafile=info["CA certificate"])
    return urllib.request.urlopen(url + "/_emulator/state", context=ctx, timeout=5)


def test_bad_inventory_is_reported(tmp_path):
    bad = tmp_path / "inv.yaml"
    bad.write_text("vioses:\n  - {name: a}\n  - {name: b}\n  - {name: c}\n")
    res = subprocess.run(
        [sys.executable, "-m", "ibmvirt.cmd.novalink_emulator", "--inventory", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 2
    assert "vioses" in res.stderr


def test_https_ca_bundle_verification(tmp_path, monkeypatch):
    """pypowervm verifies against REQUESTS_CA_BUNDLE (its pinning mode is broken on py3)."""
    ctx, files = tlsfiles.prepare(str(tmp_path / "tls"))
    srv = app.start("small", ssl_context=ctx, token_dir=str(tmp_path))
    try:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", files.ca_file)
        sess = pvm_adpt.Session(
            "127.0.0.1",
            "neo",
            "passw0rd",
            protocol="https",
            port=srv.port,
            certpath=str(tmp_path / "nothing") + "/",
            conn_tries=1,
        )
        assert sess.mc_type == "PVM"
        sess._logoff()
    finally:
        gc.collect()
        srv.stop()


def test_untrusted_certificate_is_refused(tmp_path, monkeypatch):
    import pypowervm.exceptions as pvm_exc

    ctx, _files = tlsfiles.prepare(str(tmp_path / "tls"))
    srv = app.start("small", ssl_context=ctx, token_dir=str(tmp_path))
    try:
        monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
        monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
        with pytest.raises(pvm_exc.Error):
            pvm_adpt.Session(
                "127.0.0.1",
                "neo",
                "passw0rd",
                protocol="https",
                port=srv.port,
                certpath=str(tmp_path / "nothing") + "/",
                conn_tries=1,
            )
    finally:
        srv.stop()


def test_server_does_not_import_the_client_library():
    code = (
        "import sys\n"
        "from ibmvirt.emulators.novalink import app\n"
        "with app.running('small') as srv:\n"
        "    print(srv.url.startswith('http://127.0.0.1:'))\n"
        "print(sorted(m for m in sys.modules if m.startswith('pypowervm')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    ).stdout.split()
    assert out == ["True", "[]"]


def test_idle_connection_does_not_block_https(tmp_path):
    """A raw TCP client that never handshakes must not stall other clients or stop()."""
    import socket
    import ssl
    import time

    ctx, files = tlsfiles.prepare(str(tmp_path / "tls"))
    srv = app.start("small", ssl_context=ctx, token_dir=str(tmp_path))
    idle = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    idle_tls = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    try:
        time.sleep(0.2)  # let the server accept both connections
        client_ctx = ssl.create_default_context(cafile=files.ca_file)
        url = srv.url + "/_emulator/state"
        with urllib.request.urlopen(url, context=client_ctx, timeout=5) as resp:
            assert json.loads(resp.read())["objects"]["VirtualIOServer"] == 2
        # A keep-alive HTTPS client that went idle after its handshake.
        idle_tls = client_ctx.wrap_socket(idle_tls, server_hostname="127.0.0.1")
    finally:
        started = time.monotonic()
        srv.stop()
        assert time.monotonic() - started < 3
        # The server cut the idle connections.
        idle.settimeout(2)
        assert idle.recv(1) == b""
        idle.close()
        idle_tls.close()
