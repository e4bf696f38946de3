"""PowerVM agents benchmark: NovaLink requests per agent cycle, and adapter
creation to port ACTIVE.

    .venv/bin/python -m bench.neutron_powervm

1. The SEA agent with 10, 100 and 500 client adapters (2 per LPAR, on 10
   VLANs already on the SEA) and the SR-IOV agent with 10 and 90 vNICs (the
   emulated host's SR-IOV ports hold 96 logical ports): requests of the
   listing at start, of one steady-state loop cycle (``get_all_devices`` and
   nothing to plug), of a heal pass (listing, SEA VLAN check and clean-up)
   and of the loop cycle after it that plugs every device again, and what it
   costs to learn one new adapter from the event feed (1 or 2 reads: the
   adapter's ADD_URI and Nova's NOVA_PVM_VIF event name the same adapter and
   are read once when both arrive before the read starts). Requests are counted
   in the emulator's request log (the event feed's long polls left out);
   times at zero and at 50 ms per NovaLink request.
2. Adapter creation to port ACTIVE through real ML2 (Neutron's agent loop
   over oslo.messaging, as in tests/neutron) with that many adapters already
   on the host: Nova's PowerVM driver code creates the client adapter and
   pushes its NOVA_PVM_VIF event; the agent's loop runs back to back, so a
   real agent adds up to one [AGENT] polling_interval (2 s) on top.

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
from dataclasses import dataclass

os.environ.setdefault("OS_NOVA_DISABLE_EVENTLET_PATCHING", "1")

import neutron.tests.unit  # noqa: E402,F401  (selects oslo.service's threading backend first)
from neutron.plugins.ml2.drivers.agent import _agent_manager_base as amb  # noqa: E402
from neutron_lib.api.definitions import portbindings  # noqa: E402
from oslo_config import cfg  # noqa: E402
from pypowervm.tasks import network_bridger as net_br  # noqa: E402
from pypowervm.tasks import sriov as pvm_sriov  # noqa: E402
from pypowervm.wrappers import iocard as pvm_card  # noqa: E402
from pypowervm.wrappers import managed_system as pvm_ms  # noqa: E402
from pypowervm.wrappers import network as pvm_net  # noqa: E402

from ibmvirt import contract  # noqa: E402
from ibmvirt.neutron.agent import sea, sriov  # noqa: E402
from ibmvirt.powervm import vif  # noqa: E402
from tests.neutron.novalink import NovaLinkAgentTestCase, small_inventory, vif_of  # noqa: E402

SEA_SIZES = (10, 100, 500)
SRIOV_SIZES = (10, 90)
PER_LPAR = 2
VLANS = tuple(range(10, 20))
LATENCY = 0.05
SRIOV_LABELS = {f"{a}/{p}": "physnet1" for a in (1, 2) for p in range(4)}


@dataclass
class CycleRow:
    agent: str
    ports: int
    lpars: int
    start: int = 0
    steady: int = 0
    heal: int = 0
    replug: int = 0
    learn: int = 0
    start_s: float = 0.0
    steady_s: float = 0.0
    heal_s: float = 0.0
    heal_s_latency: float = 0.0


class _Bench(NovaLinkAgentTestCase):
    """Emulated host, ML2 and an agent; each test method fills ``results``."""

    agent = "sea"
    ports = 10
    results: list = []

    def setUp(self):
        if self.agent == "sriov":
            type(self).inventory = small_inventory(host__sriov_port_labels=SRIOV_LABELS)
        super().setUp()
        self.lpars = []

    # -- populating the host (Nova's requests, before the agent runs) -------------
    def populate(self) -> None:
        eth0 = next(
            s for s in pvm_net.VSwitch.get(self.nova, parent=self.host) if s.name == "ETHERNET0"
        )
        if self.agent == "sea":
            nb = pvm_net.NetBridge.get(self.nova, parent=self.host)[0]
            net_br.ensure_vlans_on_nb(self.nova, self.host.uuid, nb.uuid, list(VLANS))
        for i in range(self.ports):
            if i % PER_LPAR == 0:
                self.lpars.append(self.make_lpar(f"vm-{i // PER_LPAR:04d}"))
            if self.agent == "sea":
                vif.create_cna(self.nova, self.lpars[-1], VLANS[i % len(VLANS)], eth0)
            else:
                host = pvm_ms.System.get(self.nova)[0]  # its ports' use, current
                vnic = pvm_card.VNIC.bld(self.nova, pvid=VLANS[i % len(VLANS)])
                pvm_sriov.set_vnic_back_devs(vnic, _ports(host), sys_w=host, redundancy=1)
                vnic.create(parent=self.lpars[-1])

    def manager(self):
        return sea.SEAAgentManager() if self.agent == "sea" else sriov.SRIOVAgentManager()

    def count(self, since: int) -> int:
        return len(self.novalink_requests()) - since

    def mark(self) -> int:
        return len(self.novalink_requests())

    # -- 1. requests per cycle -----------------------------------------------------------
    def test_cycles(self):
        self.populate()
        time.sleep(0.2)  # the log records a request after answering it: Nova's last one
        row = CycleRow(self.agent, self.ports, len(self.lpars))
        mark, t0 = self.mark(), time.monotonic()
        manager = self.manager()
        manager.start()
        self.addCleanup(manager.stop)
        row.start_s, row.start = time.monotonic() - t0, self.count(mark)
        assert len(manager.get_all_devices()) == self.ports, manager.get_all_devices()
        self.settle(manager)
        mark, t0 = self.mark(), time.monotonic()
        devices = manager.get_all_devices()
        row.steady_s, row.steady = time.monotonic() - t0, self.count(mark)
        for latency in (0.0, LATENCY):
            self.novalink.emu.config.request_delay = latency
            mark, t0 = self.mark(), time.monotonic()
            manager.heal()
            elapsed = time.monotonic() - t0
            if latency:
                row.heal_s_latency = elapsed
            else:
                row.heal_s, row.heal = elapsed, self.count(mark)
        self.novalink.emu.config.request_delay = 0.0
        mark = self.mark()
        for i, device in enumerate(sorted(devices)):  # the loop cycle after a heal
            segment = amb.NetworkSegment("vlan", "physnet1", VLANS[i % len(VLANS)], 1500)
            assert manager.plug_interface("net", segment, device, "compute:nova")
        row.replug = self.count(mark)
        self.settle(manager)
        mark = self.mark()
        self.learn_one(manager)
        row.learn = len(
            [
                r
                for r in self.novalink_requests()[mark:]
                if r.method == "GET" and f"/{manager.adapter_kind}/" in r.path
            ]
        )
        self.results.append(row)

    def learn_one(self, manager) -> None:
        """One adapter more, created as Nova does (the agent reads it once)."""
        before = len(manager.get_all_devices())
        if self.agent == "sea":
            port = {
                "id": "p",
                "address": "fa:16:3e:ff:00:01",
                "type": "pvm_sea",
                "details": contract.pvm_sea_vif_details(VLANS[0]),
            }
            vif.SEAVifDriver(self.nova, self.host.uuid, cfg.CONF).plug(
                self.lpars[0], {**port, "network": None}, "instance-1"
            )
        else:
            host = pvm_ms.System.get(self.nova)[0]
            vnic = pvm_card.VNIC.bld(self.nova, pvid=VLANS[0])
            pvm_sriov.set_vnic_back_devs(vnic, _ports(host), sys_w=host, redundancy=1)
            vnic.create(parent=self.lpars[0])
        self.wait_until(lambda: len(manager.get_all_devices()) == before + 1, what="new adapter")

    # -- 2. creation to ACTIVE ------------------------------------------------------------
    def test_activation(self):
        self.populate()
        manager = self.manager()
        agent_type = (
            contract.AGENT_TYPE_PVM_SEA if self.agent == "sea" else (contract.AGENT_TYPE_PVM_SRIOV)
        )
        binary = (
            contract.AGENT_BINARY_PVM_SEA
            if self.agent == "sea"
            else (contract.AGENT_BINARY_PVM_SRIOV)
        )
        loop = self.start_agent(manager, agent_type, binary)
        loop.set_rpc_timeout(300)  # the first cycle asks ML2 about every adapter's MAC
        self.run_agent_once()
        self.run_agent_once()
        self.novalink.emu.config.request_delay = LATENCY
        net = self.make_network("vlan", "physnet1", 99)
        vnic_type = portbindings.VNIC_NORMAL if self.agent == "sea" else portbindings.VNIC_DIRECT
        port = self.make_port(net, "host1", vnic_type)
        start = time.monotonic()
        if self.agent == "sea":
            vif.SEAVifDriver(self.nova, self.host.uuid, cfg.CONF).plug(
                self.lpars[0], vif_of(self.port(port["id"])), "instance-1"
            )
        else:
            details = self.port(port["id"])["binding:vif_details"]
            vnic = pvm_card.VNIC.bld(
                self.nova, pvid=99, mac_addr=contract.pvm_mac(port["mac_address"])
            )
            pvm_sriov.set_vnic_back_devs(
                vnic, details["physical_ports"], redundancy=details["redundancy"]
            )
            vnic.create(parent=self.lpars[0])
        created = time.monotonic()
        self.wait_for_port_status(port["id"], "ACTIVE", timeout=120)
        self.results.append((self.agent, self.ports, created - start, time.monotonic() - created))


def _ports(host) -> list[str]:
    return [
        p.loc_code
        for a in host.asio_config.sriov_adapters
        for p in a.phys_ports
        if a.mode == "Sriov"
    ]


def _run(method: str, agent: str, ports: int):
    case = type("Bench", (_Bench,), {"agent": agent, "ports": ports})
    before = len(_Bench.results)
    suite = unittest.TestSuite([case(method)])
    result = unittest.TextTestRunner(stream=io.StringIO(), verbosity=0).run(suite)
    if not result.wasSuccessful():
        raise RuntimeError((result.errors + result.failures)[0][1])
    return _Bench.results[before]


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

    logging.disable(logging.WARNING)  # the agents warn about MACs ML2 does not know
    sizes = [("sea", n) for n in SEA_SIZES] + [("sriov", n) for n in SRIOV_SIZES]
    report = Report(echo)
    report.add(
        f"### PowerVM agents: NovaLink requests per cycle ({PER_LPAR} adapters per LPAR)",
        "",
        "| agent | ports | LPARs | start (checks + listing) | steady cycle | heal pass | "
        "cycle after heal (re-plug all) | learn 1 new adapter | start / steady / heal, 0 ms | "
        "heal, "
        f"{LATENCY * 1000:.0f} ms per request |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    )
    for agent, n in sizes:
        r = _run("test_cycles", agent, n)
        report.add(
            f"| {r.agent} | {r.ports} | {r.lpars} | {r.start} | {r.steady} | {r.heal} | "
            f"{r.replug} | {r.learn} | {r.start_s:.3f} s / {r.steady_s * 1000:.2f} ms / "
            f"{r.heal_s:.3f} s | {r.heal_s_latency:.3f} s |"
        )
    report.add(
        "",
        f"### PowerVM agents: adapter creation to port ACTIVE through ML2 ({LATENCY * 1000:.0f} "
        "ms per NovaLink request; "
        "add up to one polling_interval, 2 s, for the wait until the next cycle)",
        "",
        "| agent | adapters already there | Nova creates the adapter | then to ACTIVE |",
        "|---|---:|---:|---:|",
    )
    for agent, n in sizes:
        _, _, create_s, active_s = _run("test_activation", agent, n)
        report.add(f"| {agent} | {n} | {create_s:.3f} s | {active_s:.3f} s |")
    report.add("")
    return list(report)


if __name__ == "__main__":
    started = time.monotonic()
    main(echo=True)
    print(f"(benchmark took {time.monotonic() - started:.0f} s)")
    sys.exit(0)
