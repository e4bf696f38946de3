"""``ibmvirt-ceilometer-polling`` as a real process against ``ibmvirt-hmc-emulator``.

Both are separate processes as on a compute host; only Ceilometer's instance
discovery (a Nova API call) is replaced, in the agent process, by a fixed
instance. The agent runs its cotyledon worker, polls, and on SIGTERM must delete
the HMC metrics context and log off: workers leave by os._exit, so nothing but
the terminate hook can do it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import ssl
import subprocess
import sys
import textwrap
import time
import urllib.request
import uuid

import zhmcclient

from ibmvirt.dpm import naming
from ibmvirt.emulators.hmc import inventories

from .conftest import HOST

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
USERID = "operator"
PASSWORD = "s3cret"  # noqa: S105 - the emulated HMC user of this test

# The agent process: the real console script's main() with discovery fixed.
AGENT = textwrap.dedent(
    """
    import sys
    from ceilometer.compute import discovery

    INSTANCE = discovery.NovaLikeServer(
        id=sys.argv[1], name="vm", flavor={"name": "m1", "vcpus": 2, "ram": 4096},
        status="ACTIVE", metadata={}, image=None, user_id="u1", tenant_id="p1",
        hostId="h1", **{"OS-EXT-SRV-ATTR:instance_name": "instance-vm"})

    def init(self, conf):
        super(discovery.InstanceDiscovery, self).__init__(conf)

    discovery.InstanceDiscovery.__init__ = init
    discovery.InstanceDiscovery.discover = lambda self, manager, param=None: [INSTANCE]

    from ibmvirt.cmd import ceilometer_polling
    sys.argv = ["ibmvirt-ceilometer-polling", "--config-file", sys.argv[2],
                "--polling-namespaces", "compute"]
    ceilometer_polling.main()
    """
)


def _env(**extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def _start_hmc(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "ibmvirt.cmd.hmc_emulator", "--inventory", "z15", "--port", "0"]
        + ["--state-dir", str(tmp_path / "hmc"), "--userid", USERID],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(IBMVIRT_HMC_EMULATOR_PASSWORD=PASSWORD),
        cwd=REPO,
    )
    url = re.search(r"https://127\.0\.0\.1:(\d+)", proc.stdout.readline())
    ca = re.search(r"CA certificate: (\S+)", proc.stdout.readline())
    assert url and ca, proc.stderr.read()
    return proc, int(url.group(1)), ca.group(1)


def _requests(port, ca):
    ctx = ssl.create_default_context(cafile=ca)
    with urllib.request.urlopen(  # noqa: S310 - https to the loopback emulator
        f"https://127.0.0.1:{port}/_emulator/requests", context=ctx, timeout=10
    ) as resp:
        return [(r["method"], r["path"]) for r in json.load(resp)["requests"]]


def _write_conf(tmp_path, port, ca):
    (tmp_path / "polling.yaml").write_text(
        "sources:\n  - name: vcpus\n    interval: 1\n    meters: [vcpus, cpu]\n"
    )
    conf = tmp_path / "ceilometer.conf"
    conf.write_text(
        textwrap.dedent(
            f"""
            [DEFAULT]
            host = {HOST}
            hypervisor_inspector = dpm
            transport_url = fake:/
            [oslo_messaging_notifications]
            driver = noop
            [polling]
            cfg_file = {tmp_path / "polling.yaml"}
            [dpm]
            hmc = 127.0.0.1
            hmc_port = {port}
            hmc_username = {USERID}
            hmc_password = {PASSWORD}
            hmc_ca_file = {ca}
            cpc_object_id = {inventories.Z15_IDS.cpc}
            """
        )
    )
    return conf


def _partition(port, ca, instance_id):
    session = zhmcclient.Session("127.0.0.1", USERID, PASSWORD, port=port, verify_cert=ca)
    cpc = zhmcclient.Client(session).cpcs.find(**{"object-id": inventories.Z15_IDS.cpc})
    part = cpc.partitions.create(
        {
            "name": naming.partition_name(HOST, instance_id),
            "description": naming.partition_description(HOST),
            "ifl-processors": 2,
            "initial-memory": 4096,
            "maximum-memory": 4096,
        }
    )
    part.start()
    session.logoff()


def _wait_for(predicate, what, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_sigterm_deletes_the_metrics_context_and_logs_off(tmp_path):
    hmc, port, ca = _start_hmc(tmp_path)
    agent = None
    try:
        instance_id = str(uuid.uuid4())
        _partition(port, ca, instance_id)
        conf = _write_conf(tmp_path, port, ca)
        agent = subprocess.Popen(
            [sys.executable, "-c", AGENT, instance_id, str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=open(tmp_path / "agent.log", "w"),  # noqa: SIM115 - closed with the process
            env=_env(),
            cwd=REPO,
        )

        def polled():
            return [p for m, p in _requests(port, ca) if m == "GET" and "/metrics/context/" in p]

        gets = _wait_for(polled, "the agent's Get Metrics")
        context = gets[0]
        assert ("POST", "/api/services/metrics/context") in _requests(port, ca)
        before = _requests(port, ca)
        assert ("DELETE", context) not in before

        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=60)

        after = _requests(port, ca)
        assert ("DELETE", context) in after, (tmp_path / "agent.log").read_text()[-3000:]
        assert any(m == "DELETE" and p.startswith("/api/sessions/this-session") for m, p in after)
    finally:
        if agent is not None and agent.poll() is None:
            agent.kill()
        hmc.send_signal(signal.SIGTERM)
        hmc.communicate(timeout=30)
