"""DPM agent benchmark: HMC requests per poll, and NIC creation to port ACTIVE.

    .venv/bin/python -m bench.neutron_dpm

1. One agent poll (``get_all_devices``) with 10, 100 and 500 NICs of this host
   on the CPC (plus as many of another host), the first poll after start-up
   and a steady-state one, on an HMC 2.15 (one Get Inventory per poll) and an
   HMC 2.16 (List Partitions with nic-uris and the virtual-switch list; a NIC
   new to the agent is read once). Requests are counted in the emulator's
   request log; times at zero and at 50 ms per HMC request.
2. NIC creation to port ACTIVE through real ML2 (Neutron's agent loop over
   oslo.messaging, as in tests/neutron): the Nova side creates the NIC of a
   bound port over HTTPS and the agent's next poll reports it. The poll is
   started right after the creation, so a real agent adds up to one
   [AGENT] polling_interval (2 s) of waiting on top.

Neutron's process: run on its own, not from bench/run.py (Nova's process).
Request counts are deterministic; times depend on the machine and are
reported, never asserted.
"""

from __future__ import annotations

import io
import os
import sys
import time
import unittest
import uuid
from dataclasses import dataclass

os.environ.setdefault("OS_NOVA_DISABLE_EVENTLET_PATCHING", "1")

import fixtures  # noqa: E402
import neutron.tests.unit  # noqa: E402,F401  (selects oslo.service's threading backend first)
from neutron_lib.api.definitions import portbindings  # noqa: E402
from oslo_config import cfg  # noqa: E402

from ibmvirt import contract  # noqa: E402
from ibmvirt.emulators.hmc import inventories  # noqa: E402
from ibmvirt.neutron.agent import dpm  # noqa: E402
from tests.neutron.base import Ml2TestCase  # noqa: E402
from tests.neutron.dpm_fixtures import DpmHmc  # noqa: E402

SIZES = (10, 100, 500)
LATENCY = 0.05  # a remote HMC: ~50 ms per request
NICS_PER_PARTITION = 8
IDS = inventories.Z15_IDS


@dataclass
class PollRow:
    hmc: str
    nics: int
    first_requests: int
    steady_requests: int
    first_s: float
    steady_s: float
    first_s_latency: float
    steady_s_latency: float


def _populate(hmc: DpmHmc, host: str, count: int) -> None:
    """``count`` NICs of ``host`` as Nova creates them, written into the faked HMC
    directly (faster than 1,000 HTTPS requests; the agent reads them over HTTPS)."""
    with hmc.emu.lock:
        cpc = hmc.emu.faked_hmc.cpcs.lookup_by_oid(IDS.cpc)
        part = None
        for i in range(count):
            if i % NICS_PER_PARTITION == 0:
                part = cpc.partitions.add(
                    {
                        "name": f"OpenStack-{host}-{i:06d}",
                        "ifl-processors": 1,
                        "initial-memory": 1024,
                        "maximum-memory": 1024,
                        "status": "stopped",
                    }
                )
            mac = f"fa:16:3e:{1 if host == 'host1' else 2:02x}:{i >> 8:02x}:{i & 0xFF:02x}"
            part.nics.add(
                {
                    "name": contract.dpm_nic_name(
                        str(uuid.uuid5(uuid.NAMESPACE_URL, f"{host}/{i}"))
                    ),
                    "description": contract.dpm_nic_description(host, mac),
                    "virtual-switch-uri": f"/api/virtual-switches/{IDS.vswitch_osa_port0}",
                    "type": "osd",
                    "mac-address": mac,
                }
            )


def _inventory(hmc_version: str, tmp: str) -> str:
    if hmc_version == "2.15.0":
        return inventories.Z15
    return inventories.with_hmc_version(inventories.Z15, hmc_version, "4.10", tmp)


def poll_costs(hmc_version: str, nics: int) -> PollRow:
    tmp = fixtures.TempDir()
    tmp.setUp()
    hmc = DpmHmc(_inventory(hmc_version, tmp.path), IDS)
    hmc.setUp()
    conf = cfg.ConfigOpts()
    try:
        _populate(hmc, "host1", nics)
        _populate(hmc, "host2", nics)
        conf.register_opt(cfg.StrOpt("host"))
        conf([], project="ibmvirt-bench")
        hmc.configure(conf, [f"physnet1:{IDS.osa_adapter}"])
        row = PollRow(hmc_version, nics, 0, 0, 0.0, 0.0, 0.0, 0.0)
        for latency in (0.0, LATENCY):
            hmc.emu.request_delay = latency
            manager = dpm.make_manager(conf)
            first, first_s = _poll(hmc, manager, nics)
            steady, steady_s = _poll(hmc, manager, nics)
            row.first_requests, row.steady_requests = first, steady
            if latency:
                row.first_s_latency, row.steady_s_latency = first_s, steady_s
            else:
                row.first_s, row.steady_s = first_s, steady_s
        return row
    finally:
        conf.reset()  # overrides live in the shared option group
        hmc.cleanUp()
        tmp.cleanUp()


def _poll(hmc: DpmHmc, manager, nics: int) -> tuple[int, float]:
    before = hmc.emu.request_count()
    start = time.monotonic()
    devices = manager.get_all_devices()
    elapsed = time.monotonic() - start
    if len(devices) != nics:
        raise RuntimeError(f"the agent saw {len(devices)} of {nics} NICs")
    return hmc.emu.request_count() - before, elapsed


class ActivationBench(Ml2TestCase):
    """NIC creation to port ACTIVE with ``nics`` NICs of the host already there."""

    hmc_version = "2.15.0"
    nics = 10
    results: list[tuple[str, int, float, float]] = []

    def test_activation(self):
        tmp = self.useFixture(fixtures.TempDir()).path
        hmc = self.useFixture(DpmHmc(_inventory(self.hmc_version, tmp), IDS))
        _populate(hmc, "host1", self.nics)
        _populate(hmc, "host2", self.nics)
        hmc.configure(cfg.CONF, [f"physnet1:{IDS.osa_adapter}"])
        hmc.emu.request_delay = LATENCY
        manager = dpm.make_manager(cfg.CONF)
        loop = self.start_agent(manager, contract.AGENT_TYPE_DPM, contract.AGENT_BINARY_DPM)
        # The first poll asks ML2 about up to 500 ports it does not know (the
        # NICs stand for ports made elsewhere): more than the harness's 10 s.
        loop.set_rpc_timeout(300)
        self.run_agent_once()
        self.run_agent_once()
        port = self.make_port(self.make_network("flat", "physnet1"), "host1")
        vswitch = port[portbindings.VIF_DETAILS][contract.VIF_DETAILS_DPM_VSWITCH_ID]
        part = hmc.partition()
        start = time.monotonic()
        hmc.create_nic(part, port["id"], vswitch, "host1", port["mac_address"])
        created = time.monotonic()
        self.wait_for_port_status(port["id"], "ACTIVE")
        done = time.monotonic()
        self.results.append((self.hmc_version, self.nics, created - start, done - created))


def activation(hmc_version: str, nics: int) -> tuple[float, float]:
    case = type("Bench", (ActivationBench,), {"hmc_version": hmc_version, "nics": nics})
    before = len(ActivationBench.results)
    result = unittest.TextTestRunner(stream=io.StringIO(), verbosity=0).run(
        unittest.defaultTestLoader.loadTestsFromTestCase(case)
    )
    if not result.wasSuccessful():
        raise RuntimeError((result.errors + result.failures)[0][1])
    (_, _, create_s, active_s) = ActivationBench.results[before]
    return create_s, active_s


class Report(list):
    """Markdown lines, printed as they come when ``echo`` (it takes minutes)."""

    def __init__(self, echo: bool = False) -> None:
        super().__init__()
        self.echo = echo

    def add(self, *lines: str) -> None:
        self.extend(lines)
        if self.echo:
            print("\n".join(lines), flush=True)


def main(echo: bool = False) -> list[str]:
    """The report as Markdown lines."""
    import logging

    logging.disable(logging.WARNING)  # the agent warns about ports ML2 does not know
    report = Report(echo)
    report.add(
        "### DPM agent: HMC requests per poll (z15 CPC)",
        "",
        "| HMC | NICs of this host (+ as many of another) | first poll: requests | "
        "steady poll: requests | first / steady poll, 0 ms | first / steady poll, "
        f"{LATENCY * 1000:.0f} ms per request |",
        "|---|---:|---:|---:|---:|---:|",
    )
    for version in ("2.15.0", "2.16.0"):
        for n in SIZES:
            r = poll_costs(version, n)
            report.add(
                f"| {version} | {n} | {r.first_requests} | {r.steady_requests} | "
                f"{r.first_s:.3f} s / {r.steady_s:.3f} s | "
                f"{r.first_s_latency:.3f} s / {r.steady_s_latency:.3f} s |"
            )
    report.add(
        "",
        f"### DPM agent: NIC creation to port ACTIVE through ML2 ({LATENCY * 1000:.0f} ms per "
        "HMC request; add up to one polling_interval, 2 s, for the wait until the next poll)",
        "",
        "| HMC | NICs already there (+ as many of another host) | Create NIC | poll to ACTIVE |",
        "|---|---:|---:|---:|",
    )
    for version in ("2.15.0", "2.16.0"):
        for n in SIZES:
            create_s, active_s = activation(version, n)
            report.add(f"| {version} | {n} | {create_s:.3f} s | {active_s:.3f} s |")
    report.add("")
    return list(report)


if __name__ == "__main__":
    started = time.monotonic()
    main(echo=True)
    print(f"(benchmark took {time.monotonic() - started:.0f} s)")
    sys.exit(0)
