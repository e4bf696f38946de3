"""``make demo``: a server's life on an emulated DPM CPC and on an emulated
PowerVM host, through real Nova.

Each part starts its emulator and an in-process Nova (API, conductor,
scheduler, Placement, nova-compute with the part's driver), walks one server
through its lifecycle and prints one line per step: its wall time, the
number of requests it cost the emulated management console, how many of
them were job polls, and what the emulated machine shows afterwards. Nova
runs in its functional-test harness (shipped in the nova wheel); Neutron,
Cinder and Glance are played by the sandbox fixtures.

This module holds the shared step printer (:class:`Steps`), the DPM part
(:class:`DemoScenario`: an emulated z15 or z13, HMC emulator over verified
TLS, boot from an FCP volume) and :func:`run`, which runs both parts; the
PowerVM part is :mod:`ibmvirt.sandbox.demo_powervm`.
"""

from __future__ import annotations

import io
import logging
import sys
import time
import unittest
from collections.abc import Callable, Sequence
from typing import Any

import nova.tests.functional  # noqa: F401  (selects Nova's concurrency backend first)
from nova.tests.functional.api import client
from oslo_utils.fixture import uuidsentinel as uuids

from ibmvirt.dpm import bootparams
from ibmvirt.emulators.faults import RequestRecord
from ibmvirt.emulators.hmc import inventories
from ibmvirt.sandbox import dpm

INVENTORIES = {"z13": inventories.Z13, "z15": inventories.Z15}

#: (step, seconds, requests, of which job polls)
StepResult = tuple[str, float, int, int]

_TITLE = 34


class Steps:
    """Prints one line per step: what happened, how long, how many requests.

    ``records`` returns the emulator's request log so far (oldest first),
    ``is_poll`` tells a job poll from other requests and ``is_job``, where
    given, the request that starts a job; ``label`` heads the request column
    ("HMC requests", "NovaLink requests").
    """

    def __init__(
        self,
        out,
        records: Callable[[], Sequence[RequestRecord]],
        is_poll: Callable[[RequestRecord], bool],
        label: str,
        is_job: Callable[[RequestRecord], bool] | None = None,
    ) -> None:
        self.out = out
        self.records = records
        self.is_poll = is_poll
        self.is_job = is_job
        self.total_requests = 0
        self.total_time = 0.0
        self.results: list[StepResult] = []
        print(f"  {'step':<{_TITLE}} {'time':>8} {label:<19} result", file=out)

    def line(self, title: str, seconds: float, records: Sequence[RequestRecord], note="") -> None:
        """Print and keep one step that took ``seconds`` and made ``records``."""
        polls = sum(1 for r in records if self.is_poll(r))
        self.results.append((title, seconds, len(records), polls))
        self.total_requests += len(records)
        self.total_time += seconds
        jobs = f"{polls} job polls" if polls else ""
        if self.is_job is not None:
            started = sum(1 for r in records if self.is_job(r))
            if started:
                what = f"{started} job{'s' if started > 1 else ''}"
                jobs = f"{what}, {polls} polls" if polls else what
        jobs = f" ({jobs})" if jobs else ""
        note = f"  {note}" if note else ""
        print(
            f"  {title:<{_TITLE}} {seconds:6.2f} s {len(records):4d}{jobs:<15}{note}", file=self.out
        )

    def run(self, title: str, action: Callable[[], Any], describe=None) -> Any:
        """Run ``action`` as one step; ``describe(result)`` is its result column."""
        before = len(self.records())
        start = time.monotonic()
        result = action()
        elapsed = time.monotonic() - start
        records = self.records()[before:]
        self.line(title, elapsed, records, describe(result) if describe else "")
        return result

    def detail(self, *lines: str) -> None:
        """What the emulated machine shows, indented under the last step."""
        for text in lines:
            print(f"      {text}", file=self.out)

    def total(self) -> None:
        print(
            f"\n  {'total':<{_TITLE}} {self.total_time:6.2f} s {self.total_requests:4d}",
            file=self.out,
        )


def _status(server: dict) -> str:
    return server["status"]


class DemoScenario(dpm.DPMSingleComputeTestBase):
    """The DPM part, as a test case of Nova's functional harness."""

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
        steps = self._steps = Steps(
            out, lambda: emu.request_log, lambda r: r.path.startswith("/api/jobs/"), "HMC requests"
        )
        steps.line(
            "start Nova and nova-compute",
            self._setup_time,
            emu.request_log,
            "init_host checked the CPC and options",
        )
        port = self.neutron.port_1
        server = steps.run(
            "boot server from an FCP volume",
            lambda: self._create_server_boot_from_volume(networks=[{"port": port["id"]}]),
            _status,
        )
        name = f"OpenStack-compute-{server['id']}"
        partition = view.partition(name)
        (nic,) = view.nics(name)
        records = bootparams.parse(partition["boot-os-specific-parameters"])
        steps.detail(
            f"partition {name}",
            f"status {partition['status']}, boot-device {partition['boot-device']}, "
            f"NIC {nic['device-number']} on vswitch port 0, MAC {nic.get('mac-address')}",
            f"boot-os-specific-parameters {partition['boot-os-specific-parameters']!r}"
            f" -> {len(records)} NIC record(s) for the guest tools",
        )
        server = steps.run("stop", lambda: self._stop_server(server), _status)
        server = steps.run("start", lambda: self._start_server(server), _status)
        steps.run("reboot (hard)", lambda: self._reboot_server(server, hard=True), _status)
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
        steps.total()

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


def run_case(
    scenario: type[unittest.TestCase], out=sys.stdout, **attrs: Any
) -> tuple[unittest.TestResult, list[StepResult]]:
    """Run one part once, as a subclass of ``scenario`` with ``attrs`` set
    (``out`` and e.g. ``op_delay``). Returns the result and the steps."""
    case = type("Demo", (scenario,), {"out": out, **attrs})("test_demo")
    _logs_to_stderr()
    result = unittest.TextTestRunner(stream=io.StringIO(), verbosity=0).run(
        unittest.TestSuite([case])
    )
    steps = case.__dict__.get("_steps")
    return result, (steps.results if steps else [])


def _logs_to_stderr() -> None:
    """Keep stdout for the demo's own lines. Importing Nova's test module sets
    up oslo.log with a root handler on stdout; it is what logs once a part's
    logging fixture is gone (emulator threads winding down, pypowervm's event
    listener at exit). Warnings and errors go to stderr instead, the rest nowhere."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stdout:
            handler.setStream(sys.stderr)
            handler.setLevel(logging.WARNING)
    # Nova's thread pools announce their shutdown; not news here.
    logging.getLogger("nova.thread_pool_factory").setLevel(logging.WARNING)


def run_scenario(
    inventory: str = "z15", out=sys.stdout, **settings: Any
) -> tuple[unittest.TestResult, list[StepResult]]:
    """Run the DPM walk-through once; ``settings`` override DemoScenario
    attributes (e.g. ``op_delay``, ``request_latency``)."""
    return run_case(DemoScenario, out, inventory=INVENTORIES[inventory], **settings)


def run(inventory: str = "z15", out=sys.stdout) -> int:
    """Run both parts of the demo; returns a process exit status."""
    from ibmvirt.sandbox import demo_powervm

    started = time.monotonic()
    parts = [
        (
            f"IBM Z DPM driver in Nova 34, emulated {inventory} CPC",
            lambda: run_scenario(inventory, out),
        ),
        (
            "PowerVM driver in Nova 34, emulated NovaLink host",
            lambda: demo_powervm.run_scenario(out=out),
        ),
    ]
    ok = True
    for number, (title, part) in enumerate(parts, 1):
        print(
            f"{'' if number == 1 else chr(10)}ibmvirt demo {number}/{len(parts)}: {title}\n",
            file=out,
        )
        part_started = time.monotonic()
        result, _ = part()
        for _, trace in result.errors + result.failures:
            print(trace, file=sys.stderr)
        verdict = "done" if result.wasSuccessful() else "FAILED"
        print(f"\n  part {number} {verdict} in {time.monotonic() - part_started:.1f} s", file=out)
        ok = ok and result.wasSuccessful()
    print(f"\n{'done' if ok else 'FAILED'} in {time.monotonic() - started:.1f} s", file=out)
    return 0 if ok else 1
