"""PowerVM evacuate and rebuild through real Nova: wall time and NovaLink requests.

Two emulated hosts of one SSP cluster, the NVRAM kept in a directory both
share (``nvram_store = local``). Two servers run on ``compute`` (an SSP boot
disk, and booted from a volume), each with a pvm_sea port; their NVRAM is
saved. Then ``compute`` stops and is forced down, both are evacuated to
``host2`` (``rebuild(evacuate=True)``: the LPAR made again with its slots and
NVRAM, the SSP disk or the volume mapped again), ``compute`` comes back and
removes what they left (``destroy`` from init_host), and one server is
rebuilt on ``host2`` with a new image (Nova's default: ``destroy``, then
``spawn``). Each row is one step, from the API request until the server
reached its state (the source's return: until its LPARs are gone), with the
requests each host's NovaLink received during the driver's calls for it.
Zero emulator delays: the counts are what the driver costs; the times are
Nova's and the driver's own work on this machine.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from dataclasses import dataclass

from bench.powervm import SETTLE, Call, _run, driver_requests, job_polls

MEASURED = ("rebuild", "spawn", "destroy")
NEW_IMAGE = "7d2b1f0e-5bc5-4e2d-8a3b-2f6e4c7a9d02"


@dataclass
class EvacuateRow:
    what: str
    seconds: float
    source: int
    dest: int
    detail: str


def _case():
    # The sandbox first: it selects Nova's concurrency backend before the rest.
    from ibmvirt.sandbox import powervm as sandbox  # isort: skip

    import fixtures

    from ibmvirt.powervm import driver as pvm_driver
    from ibmvirt.powervm.nvram.local import LocalNvramStore

    class Scenario(sandbox.PowerVMSingleComputeTestBase):
        disk_driver = "ssp"
        # The spawns wait for network-vif-plugged, which comes through the API.
        CAST_AS_CALL = False
        _rows: list[EvacuateRow]
        _calls: list[tuple[str, Call]]

        def driver_flags(self):
            super().driver_flags()
            self._nvram_dir = tempfile.mkdtemp(prefix="ibmvirt-bench-nvram-")
            self.addCleanup(sandbox._rmtree, self._nvram_dir)
            self.flags(group="powervm", nvram_store="local", nvram_local_path=self._nvram_dir)

        def setUp(self):
            super().setUp()
            self._rows, self._calls = [], []
            self._wrap()
            self._start_compute("host2")
            self._small = self._create_flavor(
                name="small", memory_mb=2048, vcpu=1, disk=1, ephemeral=0
            )

        def _wrap(self):
            """On the class: a restarted nova-compute's new driver is measured too."""
            calls, novalinks = self._calls, self.novalinks

            def wrap(name):
                orig = getattr(pvm_driver.PowerVMDriver, name)

                def measured(drv, *args, **kwargs):
                    log = novalinks[drv.nova_host].httpd.RequestHandlerClass.control.log
                    start, t0 = len(log.records()), time.monotonic()
                    error = ""
                    try:
                        return orig(drv, *args, **kwargs)
                    except NotImplementedError:
                        error = "default"  # Nova's own rebuild follows
                        raise
                    finally:
                        time.sleep(SETTLE)
                        call = Call(name, time.monotonic() - t0, log.records()[start:], error)
                        calls.append((drv.nova_host, call))

                self.useFixture(
                    fixtures.MonkeyPatch(f"{pvm_driver.__name__}.PowerVMDriver.{name}", measured)
                )

            for name in MEASURED:
                wrap(name)

        def step(self, what, action, source_host, dest_host):
            before = len(self._calls)
            t0 = time.monotonic()
            result = action()
            elapsed = time.monotonic() - t0
            mine = [(h, c) for h, c in self._calls[before:] if c.error != "default"]
            per_host = {h: [] for h in self.computes}
            for host, call in mine:
                per_host[host] += driver_requests(call.records)
            source, dest = per_host[source_host], per_host[dest_host]
            polls = job_polls(source) + (job_polls(dest) if dest is not source else 0)
            calls = ", ".join(
                f"{call.method}@{host} {len(driver_requests(call.records))}" for host, call in mine
            )
            detail = f"{calls}; {polls} job polls" if polls else calls
            self._rows.append(EvacuateRow(what, elapsed, len(source), len(dest), detail))
            return result

        def _nvram_saved(self, server):
            store = LocalNvramStore(self._nvram_dir)
            sandbox.wait_for(lambda: store.fetch(server["id"]), "the NVRAM saved")

        def _force_down(self, down: bool):
            svc = self.api.get_services(host="compute", binary="nova-compute")[0]
            self.api.put_service_force_down(svc["id"], down)

        def _evacuate(self, server):
            self.api.microversion = "2.94"  # the server runs on as it ran (2.95 stops it)
            try:
                self.api.post_server_action(server["id"], {"evacuate": {}})
            finally:
                self.api.microversion = "latest"
            server = self._wait_for_server_parameter(
                server, {"status": "ACTIVE", "OS-EXT-SRV-ATTR:host": "host2"}
            )
            sandbox.wait_for(
                lambda: [
                    m
                    for m in self.api.api_get("/os-migrations").body["migrations"]
                    if m["instance_uuid"] == server["id"] and m["status"] == "done"
                ],
                "the evacuation done",
                timeout=60,
            )
            return server

        def _source_back(self, names):
            one = self.view_of("compute")
            self.restart_compute("compute")
            self._force_down(False)
            sandbox.wait_for(
                lambda: not set(names) & set(one.lpars()), "the source's LPARs removed"
            )

        def _rebuild(self, server):
            self.api.post_server_action(server["id"], {"rebuild": {"imageRef": NEW_IMAGE}})
            return sandbox.wait_for(
                lambda: (
                    (s := self.api.get_server(server["id"]))["status"] == "ACTIVE"
                    and s["OS-EXT-STS:task_state"] is None
                    and s["image"]["id"] == NEW_IMAGE
                    and s
                ),
                "the rebuild",
                timeout=120,
            )

        def test_evacuate(self):
            port = [{"uuid": self.neutron.network_1["id"]}]
            ssp = self.boot_from_image(port, flavor_id=self._small, host="compute")
            bfv = self.boot_from_volume(port, flavor_id=self._small, host="compute")
            for server in (ssp, bfv):
                self._nvram_saved(server)
            self.computes["compute"].stop()
            self._force_down(True)
            ssp = self.step(
                "evacuate, SSP boot disk", lambda: self._evacuate(ssp), "compute", "host2"
            )
            self.step("evacuate, boot from volume", lambda: self._evacuate(bfv), "compute", "host2")
            names = [s["OS-EXT-SRV-ATTR:instance_name"] for s in (ssp, bfv)]
            self.step(
                "source back: both LPARs' leftovers removed",
                lambda: self._source_back(names),
                "compute",
                "host2",
            )
            image = dict(self.glance.images[sandbox.IMAGE_ID])
            image.update(id=NEW_IMAGE, name="rhel-ppc64le-2")
            data = hashlib.sha256(b"ibmvirt ppc64le image, release 2").digest() * 4096
            self.glance.create(None, image, data=sandbox._Bytes(data))
            self.step(
                "rebuild, same host, new image (SSP)",
                lambda: self._rebuild(ssp),
                "host2",
                "host2",
            )

    return Scenario("test_evacuate")


def main() -> list[str]:
    lines = [
        "### PowerVM evacuate and rebuild through Nova (SSP, two hosts, zero delays)",
        "",
        "| operation | wall time | NovaLink requests, source | destination | driver calls |",
        "|---|---:|---:|---:|---|",
    ]
    case = _case()
    _run(case)
    for r in case._rows:
        dest = "(same NovaLink)" if "same host" in r.what else r.dest
        source = "(down)" if r.what.startswith("evacuate") else r.source
        lines.append(f"| {r.what} | {r.seconds:.2f} s | {source} | {dest} | {r.detail} |")
    lines.append("")
    return lines


if __name__ == "__main__":
    import logging
    import os

    os.environ.setdefault("OS_NOVA_DISABLE_EVENTLET_PATCHING", "1")
    logging.getLogger("pypowervm").setLevel(logging.ERROR)
    print("\n".join(main()))
