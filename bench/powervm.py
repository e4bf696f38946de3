"""PowerVM driver benchmarks: NovaLink requests and wall time, on the NovaLink emulator.

1. Operations through real Nova (the sandbox harness, one emulator per
   scenario): spawn on localdisk (image not cached, then cached), on SSP and
   from a Cinder volume; stop, start, reboot; delete. The driver's methods are
   wrapped so that each row counts the requests made while the driver call ran,
   and each spawn's requests are listed by method and path.
2. 10 and 50 concurrent spawns on one host through Nova (multi-create, as
   many concurrent builds as servers): failures and ETag conflicts (HTTP 412,
   retried by pypowervm) from the emulator's request log.
3. Periodic work of a host with 10, 100, 500 and 1,000 client LPARs (the
   E1080's partition limit), the driver object after init_host: the
   power-state sync as Nova's ``_sync_power_states`` runs it
   (``get_num_instances``, then ``get_info`` per instance) with a valid cache,
   after lost events and after out-of-band changes; the resource update
   (``get_available_resource`` and ``update_provider_tree``).
4. Resident memory of a fresh process that imported nova-compute and ran the
   driver's init_host, power-state sync and resource update on 1,000 LPARs.

The emulator's event feed is long-polled by the driver's listener (``GET
/rest/api/uom/Event``) all the time; those polls are left out of every count.
Counts are deterministic; times depend on the machine and are reported,
never asserted.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import io
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
import unittest
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

#: Requests the driver makes in the background, not for the operation measured.
_EVENT_POLL = re.compile(r"^/rest/api/uom/Event\?")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_JOB_ID = re.compile(r"/jobs/\d+")
#: The image upload: pypowervm's upload_new_vdisk (VG read, VDisk create, File
#: create, upload, File delete); the first spawn of an image on the host pays it.
_UPLOAD = re.compile(r"/rest/api/web/File")
SIZES = (10, 100, 500, 1000)
#: The emulator logs a request just after answering it; wait that long to see it.
SETTLE = 0.05


@dataclass
class Call:
    """One driver call and the requests made while it ran."""

    method: str
    seconds: float
    records: list = field(default_factory=list)
    error: str = ""


@dataclass
class Row:
    what: str
    seconds: float
    requests: int
    detail: str = ""


def driver_requests(records) -> list:
    """Requests minus the event listener's long polls."""
    return [r for r in records if not (r.method == "GET" and _EVENT_POLL.match(r.path))]


def job_polls(records) -> int:
    return sum(1 for r in records if r.method == "GET" and _JOB_ID.search(r.path))


def upload_requests(records) -> int:
    """The image upload's requests (File create, upload and delete, and the
    VG read and VDisk create before them)."""
    files = [i for i, r in enumerate(records) if _UPLOAD.search(r.path)]
    return len(files) + 2 if files else 0


def shape(path: str) -> str:
    """A request path with UUIDs and job ids replaced, query kept."""
    return _JOB_ID.sub("/jobs/<job>", _UUID.sub("<uuid>", path))


# -- 1. operations through Nova -----------------------------------------------------------


def _scenario_base():
    # Imported late: the harness pulls in Nova's functional test machinery.
    from ibmvirt.sandbox import powervm as sandbox

    class Scenario(sandbox.PowerVMSingleComputeTestBase):
        """A bench scenario as a test case of Nova's functional harness."""

        # Private names: Nova's TestCase deletes public attributes at cleanup.
        _steps: list[Row]
        _calls: list[Call]
        _spawns: list[tuple[str, list]]
        concurrent = 0

        def driver_flags(self):
            super().driver_flags()
            if self.concurrent:
                self.flags(max_concurrent_builds=self.concurrent)
                self.flags(instances=-1, cores=-1, ram=-1, group="quota")

        def setUp(self):
            super().setUp()
            self._steps, self._calls, self._spawns = [], [], []
            self._wrap_driver()

        def _wrap_driver(self):
            drv = self.computes["compute"].manager.driver
            log = self.nl_control.log
            calls = self._calls

            def wrap(name):
                orig = getattr(drv, name)

                def measured(*args, **kwargs):
                    start, t0 = len(log.records()), time.monotonic()
                    error = ""
                    try:
                        return orig(*args, **kwargs)
                    except Exception as exc:
                        error = f"{type(exc).__name__}: {exc}"
                        raise
                    finally:
                        time.sleep(SETTLE)
                        elapsed = time.monotonic() - t0
                        calls.append(Call(name, elapsed, log.records()[start:], error))

                setattr(drv, name, measured)

            for name in ("spawn", "destroy", "power_off", "power_on", "reboot", "snapshot"):
                if hasattr(drv, name):
                    wrap(name)

        def step(self, what: str, action, method: str | None = None):
            """Run one step; its row counts the driver call's requests (``method``)."""
            before = len(self._calls)
            t0 = time.monotonic()
            result = action()
            elapsed = time.monotonic() - t0
            mine = [c for c in self._calls[before:] if method is None or c.method == method]
            records = driver_requests([r for c in mine for r in c.records])
            polls, upload = job_polls(records), upload_requests(records)
            detail = f"{polls} job polls" if polls else ""
            if upload:
                detail = ", ".join(d for d in (detail, f"{upload} image upload") if d)
            self._steps.append(Row(what, elapsed, len(records), detail))
            if method == "spawn":
                self._spawns.append((what, records))
            return result

        def port(self):
            return [{"uuid": self.neutron.network_1["id"]}]

    return Scenario


def _run(case) -> None:
    # Nova's thread pools announce their shutdown on stdout; not news here.
    logging.getLogger("nova.thread_pool_factory").setLevel(logging.WARNING)
    result = unittest.TextTestRunner(stream=io.StringIO(), verbosity=0).run(
        unittest.TestSuite([case])
    )
    if not result.wasSuccessful():
        trace = (result.errors + result.failures)[0][1]
        raise RuntimeError(f"bench scenario {case.id()} failed:\n{trace}")


def operations() -> tuple[list[Row], list[tuple[str, list]], list[str]]:
    """Each operation through Nova; rows, each spawn's requests, notes."""
    base = _scenario_base()
    notes: list[str] = []

    class LocalDisk(base):
        def test_ops(self):
            self.step("spawn, localdisk, image not cached yet", self._boot, "spawn")
            server = self.step("spawn, localdisk, image cached", self._boot, "spawn")
            server = self.step("power off (stop)", lambda: self._stop_server(server), "power_off")
            server = self.step("power on (start)", lambda: self._start_server(server), "power_on")
            for kind in ("SOFT", "HARD"):
                server = self.step(
                    f"reboot ({kind.lower()})",
                    lambda s=server, hard=kind == "HARD": self._reboot_server(s, hard=hard),
                    "reboot",
                )
            if "snapshot" in vars(type(self.computes["compute"].manager.driver)):
                self.step("snapshot", lambda: self._snapshot(server), "snapshot")
                failed = [c.error for c in self._calls if c.method == "snapshot" and c.error]
                if failed:
                    notes.append(f"snapshot failed: {failed[0]}")
            else:
                notes.append("snapshot: PowerVMDriver.snapshot does not exist yet; not measured")
            self.step("destroy (delete)", lambda: self._delete_server(server), "destroy")

        def _boot(self):
            return self.boot_from_image(self.port())

        def _snapshot(self, server):
            """createImage, then wait for the driver call to end (Nova runs it
            after the API answered)."""
            before = len(self._calls)
            self._snapshot_server(server, "bench-snapshot")
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                if any(c.method == "snapshot" for c in self._calls[before:]):
                    break
                time.sleep(0.1)
            return self._wait_for_server_parameter(server, {"OS-EXT-STS:task_state": None})

    class SSP(base):
        disk_driver = "ssp"

        def test_ops(self):
            self.step("spawn, SSP, image not in the cluster yet", self._boot, "spawn")
            server = self.step("spawn, SSP, image LU present", self._boot, "spawn")
            self.step("destroy (delete), SSP", lambda: self._delete_server(server), "destroy")

        def _boot(self):
            return self.boot_from_image(self.port())

    class Volume(base):
        def test_ops(self):
            server = self.step(
                "spawn from a Cinder volume (vSCSI FC)",
                lambda: self.boot_from_volume(self.port()),
                "spawn",
            )
            self.step(
                "destroy (delete), volume-backed", lambda: self._delete_server(server), "destroy"
            )

    rows: list[Row] = []
    spawns: list[tuple[str, list]] = []
    for cls in (LocalDisk, SSP, Volume):
        case = cls("test_ops")
        _run(case)
        rows += case._steps
        spawns += case._spawns
    return rows, spawns, notes


# -- 2. concurrent spawns ---------------------------------------------------------------


class _VirtAPI:
    """Nova's virtapi without Neutron: no network-vif-plugged to wait for."""

    @contextlib.contextmanager
    def wait_for_instance_event(self, instance, events, timeout=300, error_callback=None):
        yield


class _ImageBytes:
    """The sandbox image, read as pypowervm's upload reads a Glance download."""

    def __init__(self, context, image_id) -> None:
        from ibmvirt.sandbox import powervm as sandbox

        self._data = io.BytesIO(sandbox.IMAGE_BYTES)

    def read(self, size: int = -1) -> bytes:
        return self._data.read(size)


def concurrent(count: int) -> dict:
    """``count`` spawns of the driver object at once (threads, as nova-compute
    runs concurrent builds), one pvm_sea VIF each, the image already cached."""
    from concurrent import futures

    from nova import context as nova_context
    from nova import objects
    from nova.network import model as net_model
    from oslo_config import cfg

    from ibmvirt import contract
    from ibmvirt.powervm import disk as pvm_disk
    from ibmvirt.powervm import driver as pvm_driver
    from ibmvirt.sandbox import powervm as sandbox

    cfg.CONF.set_override("vif_plugging_timeout", 0)
    cfg.CONF.set_override("lifecycle_event_delay", 3600, group="powervm")  # no Nova DB here
    original, pvm_disk.GlanceImageFile = pvm_disk.GlanceImageFile, _ImageBytes
    localdisk = sys.modules.get("ibmvirt.powervm.disk.localdisk")
    out: dict = {}
    try:
        with scale_host(0) as srv:
            log = srv.httpd.RequestHandlerClass.control.log
            _configure(srv.port)
            drv = pvm_driver.PowerVMDriver(_VirtAPI())
            drv.init_host("bench")
            localdisk = sys.modules["ibmvirt.powervm.disk.localdisk"]
            localdisk.GlanceImageFile = _ImageBytes
            ctx = nova_context.get_admin_context()
            image = objects.ImageMeta.from_dict(
                {
                    "id": sandbox.IMAGE_ID,
                    "size": len(sandbox.IMAGE_BYTES),
                    "disk_format": "raw",
                    "container_format": "bare",
                    "properties": {"architecture": "ppc64le"},
                }
            )
            flavor = objects.Flavor(
                name="bench", memory_mb=2048, vcpus=1, root_gb=1, ephemeral_gb=0, extra_specs={}
            )

            def spawn(i: int) -> str | None:
                inst = objects.Instance(
                    uuid=str(uuid.uuid4()),
                    id=i + 1,
                    flavor=flavor,
                    config_drive="",
                    metadata={},
                    system_metadata={},
                    image_ref=sandbox.IMAGE_ID,
                    host="bench",
                    task_state=None,
                )
                vif = net_model.VIF(
                    id=str(uuid.uuid4()),
                    address=f"fa:16:3e:00:{i // 256:02x}:{i % 256:02x}",
                    type=contract.VIF_TYPE_PVM_SEA,
                    details={contract.VIF_DETAILS_PVM_VLAN: str(sandbox.NETWORK_VLAN)},
                    network=net_model.Network(id="net", bridge="", meta={}),
                    active=True,
                )
                try:
                    drv.spawn(ctx, inst, image, [], None, {}, net_model.NetworkInfo([vif]))
                except Exception as exc:  # counted and reported, not raised
                    return f"{type(exc).__name__}: {exc}"
                return None

            first = spawn(count)  # uploads the image into the cache
            assert first is None, first
            time.sleep(SETTLE)
            start, t0 = len(log.records()), time.monotonic()
            with futures.ThreadPoolExecutor(max_workers=count) as pool:
                errors = [e for e in pool.map(spawn, range(count)) if e]
            out["seconds"] = time.monotonic() - t0
            time.sleep(SETTLE)
            records = driver_requests(log.records()[start:])
            out["failed"] = len(errors)
            out["first_error"] = errors[0] if errors else ""
            out["running"] = (
                sum(
                    1
                    for lp in sandbox.NovaLinkView(srv).lpars().values()
                    if lp["state"] == "running"
                )
                - 1
            )
            out["requests"] = len(records)
            out["etag_412"] = sum(1 for r in records if r.status == 412)
            out["conflicts"] = collections.Counter(
                f"{r.method} {shape(r.path).split('?')[0]}" for r in records if r.status == 412
            )
            out["other_errors"] = sum(1 for r in records if r.status >= 400 and r.status != 412)
            drv.cleanup_host("bench")
    finally:
        pvm_disk.GlanceImageFile = original
        if localdisk is not None:
            localdisk.GlanceImageFile = original
        cfg.CONF.clear_override("vif_plugging_timeout")
        cfg.CONF.clear_override("lifecycle_event_delay", group="powervm")
    return out


# -- 3. periodic work at scale --------------------------------------------------------------


def _inventory() -> dict:
    from ibmvirt.emulators.novalink import inventory as inv_mod

    inv = copy.deepcopy(inv_mod.load("small"))
    # Room for 1,000 powered-off LPARs of 512 MB and 0.05 units (the large
    # inventory's generated partitions) beside the small host's own.
    inv["host"].update(memory_mb=2 * 1024 * 1024, proc_units=128)
    return inv


#: An E1080's partition limit (VIOSes and the NovaLink partition included).
MAX_PARTITIONS = 1000


@contextlib.contextmanager
def scale_host(lpars: int) -> Iterator:
    """An emulated host with ``lpars`` client LPARs, as many as fit in 1,000 partitions.

    The emulated system's captured ManagedSystem allows 800 partitions; the
    bench raises that to an E1080's 1,000 before adding its LPARs, whose UUIDs
    have the top bit clear as PowerVM's (and Nova instances' LPARs) do.
    """
    from pypowervm.utils import uuid as pvm_uuid

    from ibmvirt.emulators.novalink import app
    from ibmvirt.emulators.novalink import schema as nl_schema
    from ibmvirt.emulators.novalink.state import lpar as nl_lpar
    from ibmvirt.emulators.novalink.state import partition as nl_part

    tokens = tempfile.mkdtemp(prefix="ibmvirt-bench-")
    with app.running(_inventory(), token_dir=tokens, event_wait=1.0) as srv:
        emu = srv.emu
        with emu.lock:
            nl_schema.set_field(emu.ms.elem, "MaximumPartitions", str(MAX_PARTITIONS))
            present = len(nl_part.all_partitions(emu))
            for i in range(min(lpars, MAX_PARTITIONS - present)):
                name = f"scale-lpar-{i:04d}"
                lpar_uuid = pvm_uuid.convert_uuid_to_pvm(str(uuid.uuid5(uuid.NAMESPACE_DNS, name)))
                nl_lpar.seed_lpar(
                    emu,
                    {"name": name, "uuid": lpar_uuid, "memory_mb": 512, "proc_units": 0.05},
                )
        yield srv


def _configure(port: int) -> None:
    from oslo_config import cfg

    import ibmvirt.conf  # noqa: F401  (registers [powervm])

    conf = cfg.CONF
    for name, value in {
        "novalink_port": port,
        "disk_driver": "localdisk",
        "volume_group_name": "datavg",
        "vios_ready_timeout": 0,
    }.items():
        conf.set_override(name, value, group="powervm")
    conf.set_override("host", "bench")


class _Lost:
    """An event telling the listener that events were lost (NovaLink sends it
    when its queue for this client overflowed)."""

    def __init__(self) -> None:
        from pypowervm.wrappers import event as pvm_evt

        self.etype, self.data, self.detail = pvm_evt.EventType.MISSING_EVENTS, "", ""


def start_driver(port: int):
    """The PowerVM driver as nova-compute builds it, after init_host."""
    from nova.virt import virtapi

    from ibmvirt.powervm import driver as pvm_driver

    _configure(port)
    drv = pvm_driver.PowerVMDriver(virtapi.VirtAPI())
    drv.init_host("bench")
    return drv


def instances_of(drv) -> list:
    """A Nova instance object for every client LPAR (what the DB would hold)."""
    from nova import objects

    from ibmvirt.powervm import vm

    return [
        objects.Instance(uuid=vm.nova_uuid_candidates(u)[0], id=i + 1)
        for i, u in enumerate(sorted(vm.read_all_states(drv.host.adapter, drv.host.uuid)))
    ]


def sync(drv, instances) -> None:
    """Nova's _sync_power_states, minus its database."""
    assert drv.get_num_instances() == len(instances)
    for inst in instances:
        drv.get_info(inst)


def resource_update(drv) -> None:
    from nova.compute import provider_tree

    from ibmvirt.common import nodes

    drv.get_available_resource("bench")
    tree = provider_tree.ProviderTree()
    tree.new_root("bench", nodes.node_uuid(drv.host.uuid, "bench"))
    drv.update_provider_tree(tree, "bench")


def periodic(lpars: int) -> tuple[int, list[Row]]:
    """The periodic tasks' rows at ``lpars`` client LPARs (fewer if 1,000
    partitions would be exceeded); returns the LPAR count too."""
    from ibmvirt.emulators.novalink.state import partition as nl_part
    from ibmvirt.powervm import vm

    rows: list[Row] = []
    with scale_host(lpars) as srv:
        lpars = len(nl_part.all_partitions(srv.emu)) - 3  # NovaLink and two VIOSes
        log = srv.httpd.RequestHandlerClass.control.log

        def measure(what: str, action):
            start, t0 = len(log.records()), time.monotonic()
            result = action()
            elapsed = time.monotonic() - t0
            time.sleep(SETTLE)
            records = driver_requests(log.records()[start:])
            kinds = collections.Counter(
                f"{r.method} {shape(r.path).split('?')[0]}" for r in records
            )
            which = "; ".join(f"{k} x{v}" if v > 1 else k for k, v in sorted(kinds.items()))
            rows.append(Row(what, elapsed, len(records), which))
            return result

        drv = measure("init_host", lambda: start_driver(srv.port))
        try:
            instances = instances_of(drv)
            assert len(instances) == lpars, (len(instances), lpars)
            changed = instances[: max(2, lpars // 10)]
            measure("power-state sync, first after start", lambda: sync(drv, instances))
            measure("power-state sync, cache valid", lambda: sync(drv, instances))
            drv.host.lifecycle.stop()  # the bench plays the events itself

            def lost():
                _handler(drv).process([_Lost()])
                sync(drv, instances)

            measure("power-state sync after lost events", lost)

            def out_of_band():
                # What the event handler does for each PartitionState event.
                for inst in changed:
                    drv.host.states.changed(vm.pvm_uuid_of(inst))
                sync(drv, instances)

            measure(f"power-state sync after {len(changed)} out-of-band changes", out_of_band)
            measure("resource update", lambda: resource_update(drv))
        finally:
            drv.cleanup_host("bench")
    return lpars, rows


def _handler(drv):
    from ibmvirt.powervm import event

    return event.EventHandler(drv.host.states, drv.host.lifecycle)


# -- 4. resident memory -------------------------------------------------------------------


def _rss_child(port: int, what: str) -> None:
    """Runs in a fresh process: print its VmRSS/VmHWM after ``what``."""
    import nova.compute.manager  # noqa: F401  (what nova-compute imports)
    from nova import objects

    objects.register_all()
    if what == "driver":
        logging.disable(logging.WARNING)
        drv = start_driver(port)
        instances = instances_of(drv)
        sync(drv, instances)
        resource_update(drv)
        drv.list_instances()
    with open("/proc/self/status") as f:
        status = dict(line.split(":", 1) for line in f.read().splitlines() if ":" in line)
    print(json.dumps({k: int(status[k].split()[0]) // 1024 for k in ("VmRSS", "VmHWM")}))
    sys.stdout.flush()
    # pypowervm's event poll thread is not a daemon: leave without waiting for it.
    os._exit(0)


def rss(lpars: int) -> dict[str, dict[str, int]]:
    """MiB of a fresh process with Nova's compute manager imported, without and
    with the driver started on a host of ``lpars`` partitions."""
    out = {}
    with scale_host(lpars) as srv:
        for what in ("imports", "driver"):
            proc = subprocess.run(
                [sys.executable, "-m", "bench.powervm", "--rss-child", str(srv.port), what],
                capture_output=True,
                text=True,
                check=False,
                env={**os.environ, "OS_NOVA_DISABLE_EVENTLET_PATCHING": "1"},
                cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
            )
            if proc.returncode:
                raise RuntimeError(f"RSS child ({what}) failed:\n{proc.stderr[-3000:]}")
            out[what] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


# -- report -------------------------------------------------------------------------------


def main() -> list[str]:
    """Run everything; returns the report as Markdown lines."""
    logging.getLogger("pypowervm").setLevel(logging.ERROR)  # "Unencrypted ..." warnings
    lines: list[str] = []
    rows, spawns, notes = operations()
    lines += [
        "### PowerVM driver operations through Nova (small inventory, zero delays)",
        "",
        "| operation | wall time | NovaLink requests (driver call) | of which |",
        "|---|---:|---:|---|",
    ]
    lines += [f"| {r.what} | {r.seconds:.2f} s | {r.requests} | {r.detail} |" for r in rows]
    lines += [f"\n{n}" for n in notes]
    lines.append("")
    for what, records in spawns:
        lines += [f"#### Requests of: {what} ({len(records)})", "", "```"]
        lines += [
            f"{i + 1:2d} {r.method:6} {shape(r.path)} -> {r.status}" for i, r in enumerate(records)
        ]
        lines += ["```", ""]
    logging.disable(logging.WARNING)  # Nova's harness leaves its handlers on stdout
    lines += [
        "### Concurrent spawns on one host (driver object, threads, image cached)",
        "",
        "| spawns | wall time | failed | LPARs running | requests | per spawn "
        "| ETag 412 retries | where | other 4xx/5xx |",
        "|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for n in (10, 50):
        c = concurrent(n)
        where = ", ".join(f"{k} x{v}" for k, v in c["conflicts"].most_common()) or "-"
        lines.append(
            f"| {n} | {c['seconds']:.1f} s | {c['failed']} | {c['running']} | {c['requests']} | "
            f"{c['requests'] / n:.1f} | {c['etag_412']} | {where} | {c['other_errors']} |"
        )
        if c["first_error"]:
            lines.append(f"\nfirst failure: {c['first_error']}\n")
    lines += [
        "",
        "### Periodic work of one host (driver object after init_host, zero delays)",
        "",
        "| client LPARs | task | wall time | NovaLink requests | which |",
        "|---:|---|---:|---:|---|",
    ]
    for n in SIZES:
        count, rows = periodic(n)
        for r in rows:
            lines.append(f"| {count} | {r.what} | {r.seconds:.3f} s | {r.requests} | {r.detail} |")
    mem = rss(1000)
    lines += [
        "",
        "### Resident memory, 1,000 LPARs on the host",
        "",
        "| process | RSS | peak RSS |",
        "|---|---:|---:|",
        f"| nova-compute's imports (nova.compute.manager) | {mem['imports']['VmRSS']} MiB | "
        f"{mem['imports']['VmHWM']} MiB |",
        f"| + PowerVMDriver init_host, power-state sync and resource update | "
        f"{mem['driver']['VmRSS']} MiB | {mem['driver']['VmHWM']} MiB |",
        "",
    ]
    return lines


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--rss-child":
        _rss_child(int(sys.argv[2]), sys.argv[3])
        sys.exit(0)
    print("\n".join(main()))
