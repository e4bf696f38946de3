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

#: Control requests with a body must say they are JSON (faults.control_refusal).
JSON = {"Content-Type": "application/json"}


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
        import threading

        stopper = threading.Thread(target=srv.stop, daemon=True)
        stopper.start()
        stopper.join(3)
        assert not stopper.is_alive(), "stop() hangs on an idle connection"
        # The server cut the idle connections.
        idle.settimeout(2)
        assert idle.recv(1) == b""
        idle.close()
        idle_tls.close()


def test_migration_between_two_emulator_processes(tmp_path):
    """Two console-script processes sharing one SSP; the target is registered as
    a peer through the source's control endpoint; pypowervm's migration task
    moves a running LPAR booted from a logical unit."""
    import pathlib

    import pypowervm.const as pvm_const
    import yaml
    from pypowervm.tasks import migration as pvm_mig
    from pypowervm.tasks import power as pvm_power
    from pypowervm.tasks import scsi_mapper as tsk_map
    from pypowervm.tasks import storage as tsk_stg
    from pypowervm.wrappers import logical_partition as pvm_lpar
    from pypowervm.wrappers import storage as pvm_stg
    from pypowervm.wrappers import virtual_io_server as pvm_vios

    from ibmvirt.emulators.novalink import inventory

    from .test_lpar import build

    logging.getLogger("pypowervm").setLevel(logging.CRITICAL)
    small = yaml.safe_load(
        (pathlib.Path(inventory.__file__).parent / "inventories" / "small.yaml").read_text()
    )
    small["host"] = dict(small["host"], name="pvm-host-2", mtms="8408-E8E*10678CW")
    target_inv = tmp_path / "target.yaml"
    target_inv.write_text(yaml.safe_dump(small))
    procs = []
    try:
        for name, inv in (("src", "small"), ("dst", str(target_inv))):
            proc, info = _start_process(
                "--inventory", inv, "--port", "0", "--state-dir", str(tmp_path / name)
            )
            procs.append((proc, info["NovaLink emulator URL"]))
        (_, src_url), (_, dst_url) = procs
        body = json.dumps({"name": "pvm-host-2", "url": dst_url}).encode()
        req = urllib.request.Request(
            src_url + "/_emulator/peers", data=body, method="POST", headers=JSON
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 201

        def adapter(url):
            port = int(re.search(r":(\d+)$", url).group(1))
            sess = pvm_adpt.Session(
                "127.0.0.1", "neo", "passw0rd", protocol="http", port=port, conn_tries=1
            )
            return pvm_adpt.Adapter(sess)

        src, dst = adapter(src_url), adapter(dst_url)
        host = pvm_ms.System.get(src)[0]
        ssp = pvm_stg.SSP.get(src)[0]
        _, lu = tsk_stg.crt_lu(tsk_stg.default_tier_for_ssp(ssp), "mover-boot", 2)
        lpar = build(src, host, name="mover", mem=2048).create(parent=host)
        vios = next(v for v in pvm_vios.VIOS.get(src) if v.name == "vios1")
        tsk_map.add_vscsi_mapping(host.uuid, vios.uuid, lpar.uuid, lu)
        pvm_power.power_on(lpar, host.uuid)
        pvm_mig.migrate_lpar(lpar.refresh(), "pvm-host-2", tgt_mgmt_svr="127.0.0.1")
        assert pvm_lpar.LPAR.search(src, name="mover") == []
        moved = pvm_lpar.LPAR.get(dst, uuid=lpar.uuid)
        assert (moved.name, moved.state, moved.mem_config.desired) == ("mover", "running", 2048)
        assert pvm_ms.System.get(dst)[0].system_name == "pvm-host-2"
        dst_maps = [
            m.backing_storage.udid
            for v in pvm_vios.VIOS.get(dst, xag=[pvm_const.XAG.VIO_SMAP])
            for m in tsk_map.find_maps(v.scsi_mappings, client_lpar_id=lpar.uuid)
        ]
        assert dst_maps == [lu.udid]
        for a in (src, dst):
            a.session._logoff()
        del src, dst, a
        gc.collect()
    finally:
        for proc, _ in procs:
            proc.send_signal(signal.SIGTERM)
        for proc, _ in procs:
            assert proc.wait(timeout=10) == 0
