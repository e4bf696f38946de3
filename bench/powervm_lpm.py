"""PowerVM live migration through real Nova: wall time and NovaLink requests.

One server (SSP boot disk, a pvm_sea port) moves between two emulated
NovaLink hosts and back, first with zero emulator delays (what the driver
costs in requests), then at realistic delays: 50 ms per REST request, 1 s
per job and a 5 s Migrate job (the emulator spreads it over validation, the
memory copy and the hand-over). The emulator's delays are guesses, not
measurements of a real NovaLink. Wall time is from the API request until
the server is ACTIVE on the other host with both computes done; requests
are every request each NovaLink received in that time, event polls aside.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from bench.powervm import _run, driver_requests, job_polls

REALISTIC = {"request_delay": 0.05, "job_delay": 1.0, "migrate_seconds": 5.0}


@dataclass
class LpmRow:
    what: str
    seconds: float
    source: int
    dest: int
    polls: int


def _case(delays: dict | None):
    from ibmvirt.sandbox import powervm as sandbox

    class Scenario(sandbox.PowerVMSingleComputeTestBase):
        disk_driver = "ssp"

        def setUp(self):
            super().setUp()
            self.flags(live_migration_wait_for_vif_plug=False, group="compute")
            self._start_compute("host2")
            self._small = self._create_flavor(
                name="small", memory_mb=2048, vcpu=1, disk=1, ephemeral=0
            )
            self._rows: list[LpmRow] = []

        def _delays(self, on: bool):
            for server in self.novalinks.values():
                cfg = server.emu.config
                cfg.request_delay = delays["request_delay"] if on and delays else 0.0
                server.emu.jobs.delay = delays["job_delay"] if on and delays else 0.0
                server.emu.jobs.delays["Migrate"] = (
                    delays["migrate_seconds"] if on and delays else 0.0
                )

        def _move(self, server, src, dst):
            logs = {h: s.httpd.RequestHandlerClass.control.log for h, s in self.novalinks.items()}
            marks = {h: len(log.records()) for h, log in logs.items()}
            self._delays(True)
            t0 = time.monotonic()
            self.api.post_server_action(
                server["id"], {"os-migrateLive": {"host": dst, "block_migration": "auto"}}
            )

            def done():
                s = self.api.get_server(server["id"])
                busy = any(
                    t["name"] == "live_migration"
                    for c in self.computes.values()
                    for t in list(c.manager._in_progress_tasks.values())
                )
                ok = s["OS-EXT-SRV-ATTR:host"] == dst and s["OS-EXT-STS:task_state"] is None
                return ok and not busy and s

            server = sandbox.wait_for(done, "the live migration", timeout=300)
            elapsed = time.monotonic() - t0
            self._delays(False)
            got = {h: driver_requests(log.records()[marks[h] :]) for h, log in logs.items()}
            self._rows.append(
                LpmRow(
                    f"live migration {src} -> {dst}",
                    elapsed,
                    len(got[src]),
                    len(got[dst]),
                    job_polls(got[src]) + job_polls(got[dst]),
                )
            )
            return server

        def test_lpm(self):
            server = self.boot_from_image(
                [{"uuid": self.neutron.network_1["id"]}], flavor_id=self._small, host="compute"
            )
            server = self._move(server, "compute", "host2")
            self._move(server, "host2", "compute")

    return Scenario("test_lpm")


def main() -> list[str]:
    lines = [
        "### PowerVM live migration through Nova (SSP disk, pvm_sea port, two hosts)",
        "",
        "| delays | operation | wall time | NovaLink requests, source | destination | job polls |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for label, delays in (
        ("none", None),
        ("50 ms/request, 1 s/job, 5 s Migrate", REALISTIC),
    ):
        case = _case(delays)
        _run(case)
        for r in case._rows:
            lines.append(
                f"| {label} | {r.what} | {r.seconds:.2f} s | {r.source} | {r.dest} | {r.polls} |"
            )
    lines.append("")
    return lines


if __name__ == "__main__":
    import logging
    import os

    os.environ.setdefault("OS_NOVA_DISABLE_EVENTLET_PATCHING", "1")
    logging.getLogger("pypowervm").setLevel(logging.ERROR)
    print("\n".join(main()))
