"""``ibmvirt-hmc-emulator`` as a separate process, as operators and the demo run it."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys

import pytest
import zhmcclient

from ibmvirt.emulators.hmc import inventories

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def _run(args, env_extra=None):
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    env.update(env_extra or {})
    return subprocess.Popen(
        [sys.executable, "-m", "ibmvirt.cmd.hmc_emulator", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )


def _banner(proc):
    lines = [proc.stdout.readline() for _ in range(3)]
    url = re.search(r"^HMC emulator URL: (https://127\.0\.0\.1:(\d+))$", lines[0].strip())
    ca = re.search(r"^CA certificate: (\S+)$", lines[1].strip())
    assert url and ca, f"unexpected banner {lines!r}; stderr: {proc.stderr.read()}"
    return url.group(1), int(url.group(2)), ca.group(1)


def _stop(proc):
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    return proc.returncode, out, err


def test_cli_serves_verified_https_and_stops_cleanly(tmp_path):
    state = tmp_path / "state"
    proc = _run(
        [
            "--inventory",
            "z15",
            "--port",
            "0",
            "--op-delay",
            "0",
            "--state-dir",
            str(state),
            "--userid",
            "operator",
        ],
        {"IBMVIRT_HMC_EMULATOR_PASSWORD": "s3cret"},
    )
    try:
        url, port, ca = _banner(proc)
        assert ca.startswith(str(state))
        session = zhmcclient.Session("127.0.0.1", "operator", "s3cret", port=port, verify_cert=ca)
        client = zhmcclient.Client(session)
        cpc = client.cpcs.find(**{"object-id": inventories.Z15_IDS.cpc})
        part = cpc.partitions.create(
            {"name": "cli-vm", "ifl-processors": 1, "initial-memory": 1024, "maximum-memory": 1024}
        )
        part.start()
        part.pull_full_properties()
        assert part.get_property("status") == "active"
        session.logoff()
        bad = zhmcclient.Session("127.0.0.1", "operator", "wrong", port=port, verify_cert=ca)
        with pytest.raises(zhmcclient.ServerAuthError):
            bad.logon()
    finally:
        rc, out, err = _stop(proc)
    assert rc == 0, err
    assert "HMC emulator stopped" in out
    assert "s3cret" not in out + err  # never print the password
    assert os.path.isfile(ca)  # an explicit state dir is kept
    with pytest.raises(ConnectionRefusedError):  # nothing listens any more
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_cli_rejects_missing_inventory(tmp_path):
    proc = _run(["--inventory", str(tmp_path / "nope.yaml"), "--port", "0"])
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "nope.yaml" in err and "z13" in err


def test_cli_reports_busy_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = _run(["--inventory", "z13", "--port", str(port)])
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert str(port) in err and "--port" in err


def test_busy_port_leaves_no_private_key_behind():
    import glob
    import socket
    import tempfile

    from ibmvirt.emulators.hmc import HMCEmulator, inventories

    pattern = f"{tempfile.gettempdir()}/ibmvirt-hmc-emu-*"
    before = set(glob.glob(pattern))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        emu = HMCEmulator(inventories.Z15, port=busy.getsockname()[1])
        try:
            emu.start()
        except OSError as exc:
            assert "choose another --port" in str(exc)
        else:
            emu.stop()
            raise AssertionError("the emulator started on a port in use")
    assert emu.state_dir is None
    assert set(glob.glob(pattern)) <= before


def test_cli_refuses_a_state_dir_others_can_write(tmp_path):
    state = tmp_path / "shared"
    state.mkdir()
    state.chmod(0o777)
    proc = _run(["--inventory", "z13", "--port", "0", "--state-dir", str(state)])
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert f"{state} is writable by group or others" in err
    assert list(state.iterdir()) == []


def test_cli_banner_says_when_any_logon_is_accepted(tmp_path):
    proc = _run(["--inventory", "z13", "--port", "0", "--state-dir", str(tmp_path / "s")])
    try:
        _banner(proc)  # URL, CA, inventory
        logon = proc.stdout.readline().strip()
    finally:
        _stop(proc)
    assert logon == "Logon: any userid and password (--userid requires one)"
