"""``make demo``: a server's life on an emulated DPM CPC, through real Nova.

Starts the HMC emulator (HTTPS, verified TLS) and an in-process Nova (API,
conductor, scheduler, Placement, nova-compute with ``ibmvirt.DPMDriver``),
boots a server from an FCP volume and walks it through its lifecycle, printing
each step's wall time and the number of HMC requests it cost. Nova runs in
its functional-test harness (shipped in the nova wheel); Neutron and Cinder
are played by the fixtures in :mod:`ibmvirt.sandbox.dpm`.
"""

from __future__ import annotations

import io
import logging
import sys
import time
import unittest
from collections.abc import Callable
from typing import Any

import nova.tests.functional  # noqa: F401  (selects Nova's concurrency backend first)
from nova.tests.functional.api import client
from oslo_utils.fixture import uuidsentinel as uuids

from ibmvirt.dpm import bootparams
from ibmvirt.emulators.hmc import inventories
from ibmvirt.sandbox import dpm

INVENTORIES = {"z13": inventories.Z13, "z15": inventories.Z15}


class _Steps:
    """Prints one line per step: what happened, how long, how many HMC requests."""

    def __init__(self, emulator, out) -> None:
        self.emulator = emulator
        self.out = out
        self.total_requests = 0
        self.total_time = 0.0
        #: (step, seconds, HMC requests, of which job polls)
        self.results: list[tuple[str, float, int, int]] = []

    def run(self, title: str, action: Callable[[], Any], describe=None) -> Any:
        before = len(self.emulator.request_log)
        start = time.monotonic()
        result = action()
        elapsed = time.monotonic() - start
        records = self.emulator.request_log[before:]
        polls = sum(1 for r in records if r.path.startswith("/api/jobs/"))
        self.results.append((title, elapsed, len(records), polls))
        self.total_requests += len(records)
        self.total_time += elapsed
        note = f"  {describe(result)}" if describe else ""
        jobs = f" ({polls} job polls)" if polls else ""
        print(f"  {title:<34} {elapsed:6.2f} s {len(records):4d}{jobs:<15}{note}", file=self.out)
        return result


class DemoScenario(dpm.DPMSingleComputeTestBase):
    """One run of the demo, as a test case of Nova's functional harness."""

    out = sys.stdout
    inventory = inventories.Z15

    def setUp(self):
        self._started = time.monotonic()
        super().setUp()
        self._setup_time = time.monotonic() - self._started

    def test_demo(self):
        out = self.out
        emu, ids, view = self.hmc, self.ids, dpm.HMCView(self.hmc)
        cpc = emu.faked_hmc.cpcs.list()[0].properties
        print(
            f"HMC emulator {emu.url} (CA certificate {emu.ca_file})\n"
            f"CPC {cpc['name']}: {cpc.get('machine-type')} SE {cpc.get('se-version')}, "
            f"{'storage groups' if ids.dpm_storage_management else 'HBAs'}; "
            f"compute host 'compute' offers {self.max_processors} IFLs, "
            f"{self.max_memory} MiB\n",
            file=out,
        )
        print(f"  {'step':<34} {'time':>8} {'HMC requests':<19} result", file=out)
        steps = self._steps = _Steps(emu, out)
        steps.results.append(("start nova-compute", self._setup_time, len(emu.request_log), 0))
        print(
            f"  {'start Nova and nova-compute':<34} {self._setup_time:6.2f} s "
            f"{len(emu.request_log):4d}{'':<15}  init_host checked the CPC and options",
            file=out,
        )
        port = self.neutron.port_1
        server = steps.run(
            "boot server from an FCP volume",
            lambda: self._create_server_boot_from_volume(networks=[{"port": port["id"]}]),
            lambda s: s["status"],
        )
        name = f"OpenStack-compute-{server['id']}"
        partition = view.partition(name)
        (nic,) = view.nics(name)
        records = bootparams.parse(partition["boot-os-specific-parameters"])
        print(
            f"      partition {name}\n"
            f"      status {partition['status']}, boot-device {partition['boot-device']}, "
            f"NIC {nic['device-number']} on vswitch port 0, MAC {nic.get('mac-address')}\n"
            f"      boot-os-specific-parameters {partition['boot-os-specific-parameters']!r}"
            f" -> {len(records)} NIC record(s) for the guest tools",
            file=out,
        )
        status = lambda s: s["status"]  # noqa: E731
        server = steps.run("stop", lambda: self._stop_server(server), status)
        server = steps.run("start", lambda: self._start_server(server), status)
        steps.run("reboot (hard)", lambda: self._reboot_server(server, hard=True), status)
        steps.run("console log", lambda: self._console(server), str)
        steps.run(
            "attach a data volume",
            lambda: self._attach_volume(server, uuids.demo_data_volume),
            lambda _: f"LUN masked to {len(self.array.masking[uuids.demo_data_volume])} WWPNs",
        )
        steps.run(
            "detach the data volume",
            lambda: self._detach_volume(server, uuids.demo_data_volume),
        )
        attachment = steps.run(
            "attach an interface",
            lambda: self._attach_new_interface(server),
            lambda _: f"{len(view.nics(name))} NICs",
        )
        steps.run(
            "detach the interface",
            lambda: self._detach_interface(server, attachment["port_id"]),
            lambda _: f"{len(view.nics(name))} NIC",
        )
        steps.run(
            "delete",
            lambda: self._delete_server(server),
            lambda _: f"left on the HMC: {view.owned_by('compute') or 'nothing'}",
        )
        self.assertEqual([], view.owned_by("compute"))
        print(
            f"\n  {'total':<34} {steps.total_time:6.2f} s {steps.total_requests:4d}",
            file=out,
        )

    def _console(self, server) -> str:
        try:
            output = self.api.post_server_action(
                server["id"], {"os-getConsoleOutput": {"length": 3}}
            )["output"]
        except client.OpenStackApiException as exc:
            # z13 (SE 2.13) has no OS-messages API: Nova answers 501.
            return f"HTTP {exc.response.status_code}: not offered by this CPC"
        return f"last line: {output.splitlines()[-1][:48]!r}"

    def _detach_volume(self, server, volume_id):
        self.api.delete_server_volume(server["id"], volume_id)
        self._wait_for_volume_detach(server["id"], volume_id)

    def _attach_new_interface(self, server):
        body = {"interfaceAttachment": {"net_id": self.neutron.network_1["id"]}}
        attachment = self.api.attach_interface(server["id"], body).body["interfaceAttachment"]
        self.notifier.wait_for_versioned_notifications("instance.interface_attach.end")
        return attachment


def run_scenario(
    inventory: str = "z15", out=sys.stdout, **settings: Any
) -> tuple[unittest.TestResult, list[tuple[str, float, int, int]]]:
    """Run the walk-through once; ``settings`` override DemoScenario attributes
    (e.g. ``op_delay``, ``request_latency``). Returns the result and the steps."""
    attrs = {"inventory": INVENTORIES[inventory], "out": out, **settings}
    case = type("Demo", (DemoScenario,), attrs)("test_demo")
    # Nova's thread pools announce their shutdown on stdout; not news here.
    logging.getLogger("nova.thread_pool_factory").setLevel(logging.WARNING)
    result = unittest.TextTestRunner(stream=io.StringIO(), verbosity=0).run(
        unittest.TestSuite([case])
    )
    steps = case.__dict__.get("_steps")
    return result, (steps.results if steps else [])


def run(inventory: str = "z15", out=sys.stdout) -> int:
    """Run the demo; returns a process exit status."""
    print(f"ibmvirt demo: IBM Z DPM driver in Nova 34, emulated {inventory} CPC\n", file=out)
    started = time.monotonic()
    result, _ = run_scenario(inventory, out)
    for _, trace in result.errors + result.failures:
        print(trace, file=sys.stderr)
    verdict = "done" if result.wasSuccessful() else "FAILED"
    print(f"\n{verdict} in {time.monotonic() - started:.1f} s", file=out)
    return 0 if result.wasSuccessful() else 1
