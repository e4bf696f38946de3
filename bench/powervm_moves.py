"""PowerVM resize and cold migration through real Nova: wall time and NovaLink requests.

Each row is one Nova API action, from the request until the server reached
its next state (the harness runs Nova's casts as calls), with the requests
each host's NovaLink received during the driver's calls for it:
migrate_disk_and_power_off and confirm_migration or finish_revert_migration
on the source, finish_migration and (on revert) destroy on the destination.
On one host both columns are the same NovaLink; its requests are counted once.
Zero emulator delays: the counts are what the driver costs; the times are
Nova's and the driver's own work on this machine.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from bench.powervm import SETTLE, Call, _run, driver_requests, job_polls

MEASURED = (
    "migrate_disk_and_power_off",
    "finish_migration",
    "confirm_migration",
    "finish_revert_migration",
    "destroy",
)


@dataclass
class MoveRow:
    what: str
    seconds: float
    source: int
    dest: int
    detail: str


def _scenario_base():
    from ibmvirt.sandbox import powervm as sandbox

    class Scenario(sandbox.PowerVMSingleComputeTestBase):
        """Resizes and migrations of one server; ``two_hosts`` adds host2."""

        two_hosts = False
        _rows: list[MoveRow]
        _calls: list[tuple[str, Call]]

        def setUp(self):
            super().setUp()
            self.flags(allow_resize_to_same_host=not self.two_hosts)
            if self.two_hosts:
                self._start_compute("host2")
            self._rows, self._calls = [], []
            for host in self.computes:
                self._wrap(host)
            self._small = self._create_flavor(
                name="small", memory_mb=2048, vcpu=1, disk=1, ephemeral=0
            )
            self._big = self._create_flavor(name="big", memory_mb=4096, vcpu=2, disk=2, ephemeral=0)

        def _wrap(self, host):
            drv = self.computes[host].manager.driver
            log = self.novalinks[host].httpd.RequestHandlerClass.control.log
            calls = self._calls

            def wrap(name):
                orig = getattr(drv, name)

                def measured(*args, **kwargs):
                    start, t0 = len(log.records()), time.monotonic()
                    try:
                        return orig(*args, **kwargs)
                    finally:
                        time.sleep(SETTLE)
                        calls.append(
                            (host, Call(name, time.monotonic() - t0, log.records()[start:]))
                        )

                setattr(drv, name, measured)

            for name in MEASURED:
                wrap(name)

        def step(self, what, action, source_host="compute", dest_host=None):
            before = len(self._calls)
            t0 = time.monotonic()
            result = action()
            elapsed = time.monotonic() - t0
            mine = self._calls[before:]
            per_host = {h: [] for h in self.computes}
            for host, call in mine:
                per_host[host] += driver_requests(call.records)
            source = per_host[source_host]
            dest = per_host[dest_host] if dest_host else source
            polls = job_polls(source) + (job_polls(dest) if dest is not source else 0)
            calls = ", ".join(
                f"{call.method}@{host} {len(driver_requests(call.records))}" for host, call in mine
            )
            detail = f"{calls}; {polls} job polls" if polls else calls
            self._rows.append(MoveRow(what, elapsed, len(source), len(dest), detail))
            return result

        def _boot(self):
            return self.boot_from_image(
                [{"uuid": self.neutron.network_1["id"]}], flavor_id=self._small, host="compute"
            )

        def _resize(self, server, flavor):
            self.api.post_server_action(server["id"], {"resize": {"flavorRef": flavor}})
            return self._wait_for_state_change(server, "VERIFY_RESIZE")

    return Scenario


def moves() -> list[MoveRow]:
    base = _scenario_base()

    class OneHost(base):
        def test_moves(self):
            server = self._boot()
            server = self.step(
                "resize, same host (localdisk)", lambda: self._resize(server, self._big)
            )
            server = self.step("confirm, same host", lambda: self._confirm_resize(server))
            server = self._resize(server, self._big_mem())
            self.step("revert, same host", lambda: self._revert_resize(server))

        def _big_mem(self):
            return self._create_flavor(name="bigmem", memory_mb=8192, vcpu=2, disk=2, ephemeral=0)

    class TwoHosts(base):
        two_hosts = True
        disk_driver = "ssp"

        def test_moves(self):
            server = self._boot()
            server = self.step(
                "resize, other host (SSP)",
                lambda: self._resize(server, self._big),
                "compute",
                "host2",
            )
            server = self.step(
                "confirm, other host", lambda: self._confirm_resize(server), "compute", "host2"
            )
            server = self.step(
                "cold migration, other host (SSP)",
                lambda: self._migrate_server(server, host="compute"),
                "host2",
                "compute",
            )
            self.step("revert, other host", lambda: self._revert_resize(server), "host2", "compute")

    rows: list[MoveRow] = []
    for cls in (OneHost, TwoHosts):
        case = cls("test_moves")
        _run(case)
        rows += case._rows
    return rows


def main() -> list[str]:
    lines = [
        "### PowerVM resize and cold migration through Nova (small inventory, zero delays)",
        "",
        "| operation | wall time | NovaLink requests, source | destination | driver calls |",
        "|---|---:|---:|---:|---|",
    ]
    for r in moves():
        dest = "(same NovaLink)" if "same host" in r.what else r.dest
        lines.append(f"| {r.what} | {r.seconds:.2f} s | {r.source} | {dest} | {r.detail} |")
    lines.append("")
    return lines


if __name__ == "__main__":
    import logging
    import os

    os.environ.setdefault("OS_NOVA_DISABLE_EVENTLET_PATCHING", "1")
    logging.getLogger("pypowervm").setLevel(logging.ERROR)
    print("\n".join(main()))
