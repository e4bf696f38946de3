"""DPM driver benchmarks: HMC requests and wall time, on the HMC emulator.

1. Operations through real Nova (the demo's walk-through): requests and time
   per step, at zero delays and at realistic HMC delays.
2. Periodic work of one compute host with 10, 100 and 500 of its partitions
   on the CPC (plus as many of another host): the power-state sync (what
   Nova's ``_sync_power_states`` calls: ``get_num_instances`` then ``get_info``
   per instance) and the resource update (``get_available_resource`` and
   ``update_provider_tree``). The driver runs against the emulator over HTTPS,
   exactly as in nova-compute; Nova's own bookkeeping is left out.

Request counts are deterministic; times depend on the machine and are
reported, never asserted.
"""

from __future__ import annotations

import io
import logging
import time
import uuid
from dataclasses import dataclass

import nova.tests.functional  # noqa: F401  (selects Nova's concurrency backend first)
from nova import context as nova_context
from nova import objects
from nova.compute import provider_tree
from nova.virt import virtapi
from oslo_config import cfg

import ibmvirt.conf  # noqa: F401  (registers [dpm])
from ibmvirt.common import nodes
from ibmvirt.dpm import driver as dpm_driver
from ibmvirt.dpm import naming
from ibmvirt.emulators.hmc import HMCEmulator, inventories
from ibmvirt.sandbox import demo, dpm

#: Realistic HMC: ~50 ms per request, partition start/stop jobs of 2 s.
REALISTIC = {"request_latency": 0.05, "op_delay": 2.0}
ZERO = {"request_latency": 0.0, "op_delay": 0.0}


@dataclass
class Row:
    what: str
    seconds: float
    requests: int
    job_polls: int = 0


def operations(inventory: str, delays: dict) -> list[Row]:
    """The demo walk-through through real Nova; one row per step."""
    result, steps = demo.run_scenario(inventory, out=io.StringIO(), **delays)
    if not result.wasSuccessful():
        trace = (result.errors + result.failures)[0][1]
        raise RuntimeError(f"walk-through failed on {inventory} {delays}:\n{trace}")
    return [Row(*s) for s in steps]


def _populate(emu: HMCEmulator, cpc_id: str, host: str, count: int) -> list[str]:
    """Add ``count`` partitions named for ``host`` (half active); return their uuids."""
    uuids = []
    with emu.lock:
        cpc = emu.faked_hmc.cpcs.lookup_by_oid(cpc_id)
        for i in range(count):
            instance_uuid = str(uuid.uuid4())
            cpc.partitions.add(
                {
                    "name": naming.partition_name(host, instance_uuid),
                    "description": naming.partition_description(host),
                    "ifl-processors": 1,
                    "initial-memory": 1024,
                    "maximum-memory": 1024,
                    "status": "active" if i % 2 else "stopped",
                }
            )
            uuids.append(instance_uuid)
    return uuids


def periodic(inventory: str, partitions: int, delays: dict) -> list[Row]:
    """Power-state sync and resource update with ``partitions`` of ours on the CPC."""
    ids = dpm.inventory_ids(inventory)
    emu = HMCEmulator(
        inventory,
        op_delay=delays["op_delay"],
        credentials={dpm.HMC_USER: dpm.HMC_PASSWORD},
    ).start()
    try:
        mine = _populate(emu, ids.cpc, "bench", partitions)
        _populate(emu, ids.cpc, "neighbour", partitions)
        if delays["request_latency"]:
            dpm.add_latency(emu, delays["request_latency"])
        conf = cfg.CONF
        for name, value in {
            "hmc": [emu.host],
            "hmc_port": emu.port,
            "hmc_username": dpm.HMC_USER,
            "hmc_password": dpm.HMC_PASSWORD,
            "hmc_ca_file": emu.ca_file,
            "cpc_object_id": ids.cpc,
            "max_processors": 8,
            "max_memory": 65536,
            "physical_storage_adapter_mappings": [f"{a}:0" for a in ids.fcp_adapters],
        }.items():
            conf.set_override(name, value, group="dpm")
        drv = dpm_driver.DPMDriver(virtapi.VirtAPI())
        rows = [_measure(emu, "init_host", lambda: drv.init_host("bench"))]
        instances = [objects.Instance(uuid=u, id=i + 1) for i, u in enumerate(mine)]

        def sync():
            assert drv.get_num_instances() == partitions
            for inst in instances:
                drv.get_info(inst)

        def resources():
            drv.get_available_resource("bench")
            tree = provider_tree.ProviderTree()
            tree.new_root("bench", nodes.node_uuid(ids.cpc, "bench"))
            drv.update_provider_tree(tree, "bench")

        rows.append(_measure(emu, "power-state sync", sync, fresh=True))
        rows.append(_measure(emu, "resource update", resources))
        return rows
    finally:
        emu.stop()


def _measure(emu: HMCEmulator, what: str, action, fresh: bool = False) -> Row:
    if fresh:
        time.sleep(0)  # the sync starts from whatever the driver knows
    before = len(emu.request_log)
    start = time.monotonic()
    action()
    elapsed = time.monotonic() - start
    return Row(what, elapsed, len(emu.request_log) - before)


def main() -> list[str]:
    """Run everything; returns the report as Markdown lines."""
    objects.register_all()
    nova_context.get_admin_context()
    lines = []
    for label, delays in (("zero delays", ZERO), ("realistic delays", REALISTIC)):
        for inventory in ("z15", "z13"):
            rows = operations(inventory, delays)
            lines += [
                f"### Operations through Nova, {inventory}, {label} "
                f"({delays['request_latency'] * 1000:.0f} ms per request, "
                f"{delays['op_delay']:.0f} s jobs)",
                "",
                "| step | wall time | HMC requests | of which job polls |",
                "|---|---:|---:|---:|",
            ]
            lines += [
                f"| {r.what} | {r.seconds:.2f} s | {r.requests} | {r.job_polls} |" for r in rows
            ]
            lines.append("")
    # Nova's harness left its log handlers on stdout; the report is enough.
    logging.disable(logging.WARNING)
    for label, delays in (("zero delays", ZERO), ("realistic delays", REALISTIC)):
        lines += [
            f"### Periodic work of one host, z15, {label}",
            "",
            "| partitions of this host (+ as many of another) | task | wall time | HMC requests |",
            "|---:|---|---:|---:|",
        ]
        for n in (10, 100, 500):
            for r in periodic(inventories.Z15, n, delays):
                lines.append(f"| {n} | {r.what} | {r.seconds:.3f} s | {r.requests} |")
        lines.append("")
    return lines
