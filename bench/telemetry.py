"""Ceilometer inspectors: requests per polling cycle at 10, 100 and 500 instances.

Each cycle asks every instance for instance stats and vNICs (PowerVM also
disks), as Ceilometer's compute pollsters do, after the emulator's clock moved
to the next sample. Cycle 1 also logs on and reads what is read once.
"""

from __future__ import annotations

import gc
import logging
import tempfile
import time

import zhmcclient
from oslo_config import cfg

SIZES = (10, 100, 500)
CYCLES = 3


def _cycles(insp, instances, advance, requests, disks: bool) -> list[tuple[int, float]]:
    out = []
    for _ in range(CYCLES):
        advance()
        insp._cycle.expire()
        before, t0 = requests(), time.monotonic()
        for inst in instances:
            insp.inspect_instance(inst, None)
            list(insp.inspect_vnics(inst, None))
            if disks:
                list(insp.inspect_disks(inst, None))
        out.append((requests() - before, time.monotonic() - t0))
    return out


def _instance(iid: str):
    from ceilometer.compute.discovery import NovaLikeServer

    return NovaLikeServer(id=iid, name=f"vm-{iid[:8]}")


def _powervm(n: int) -> list[tuple[int, float]]:
    import uuid

    import pypowervm.adapter as pvm_adpt
    from pypowervm.tasks import cna as tsk_cna
    from pypowervm.tasks import power as pvm_power
    from pypowervm.utils import lpar_builder as lb
    from pypowervm.utils import uuid as pvm_uuid
    from pypowervm.wrappers import base_partition as pvm_bp
    from pypowervm.wrappers import managed_system as pvm_ms

    from ibmvirt.conf import telemetry as telemetry_conf
    from ibmvirt.emulators.novalink import app
    from ibmvirt.emulators.novalink.state import monitor
    from ibmvirt.telemetry import powervm

    logging.getLogger("pypowervm").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tokens:
        srv = app.start("small", token_dir=tokens)
        try:
            sess = pvm_adpt.Session("127.0.0.1", "neo", "passw0rd", protocol="http",
                                    port=srv.port, conn_tries=1)  # fmt: skip
            adapter = pvm_adpt.Adapter(sess)
            host = pvm_ms.System.get(adapter)[0]
            instances = []
            for _ in range(n):
                inst = _instance(str(uuid.uuid4()))
                attrs = {
                    lb.NAME: inst.name,
                    lb.MEM: 512,
                    lb.VCPU: 1,
                    lb.PROC_UNITS: 0.05,
                    lb.ENV: pvm_bp.LPARType.AIXLINUX,
                    lb.UUID: pvm_uuid.convert_uuid_to_pvm(inst.id).upper(),
                }
                std = lb.DefaultStandardize(host)
                lpar = lb.LPARBuilder(adapter, attrs, std).build().create(parent=host)
                tsk_cna.crt_cna(adapter, host.uuid, lpar.uuid, 100, vswitch="ETHERNET0")
                pvm_power.power_on(lpar, host.uuid)
                instances.append(inst)
            conf = cfg.ConfigOpts()
            conf([])
            telemetry_conf.register_opts(conf)
            for k, v in {
                "novalink_host": "127.0.0.1",
                "novalink_protocol": "http",
                "novalink_port": srv.port,
                "novalink_username": "neo",
                "novalink_password": "passw0rd",
            }.items():
                conf.set_override(k, v, group="powervm")
            insp = powervm.PowerVMInspector(conf)
            return _cycles(
                insp,
                instances,
                lambda: monitor.advance(srv.emu, monitor.SAMPLE_SECONDS),
                lambda: srv.emu.request_count,
                disks=True,
            )
        finally:
            gc.collect()
            srv.stop()


def _dpm(n: int) -> list[tuple[int, float]]:
    import uuid

    from ibmvirt.conf import telemetry as telemetry_conf
    from ibmvirt.dpm import naming
    from ibmvirt.emulators.hmc import HMCEmulatorFixture, inventories
    from ibmvirt.emulators.hmc import metrics as hmc_metrics
    from ibmvirt.telemetry import dpm

    fx = HMCEmulatorFixture(inventories.Z15)
    fx.setUp()
    try:
        client = zhmcclient.Client(fx.session())
        cpc = client.cpcs.find(**{"object-id": inventories.Z15_IDS.cpc})
        vswitch = cpc.virtual_switches.list()[0]
        instances = []
        for _ in range(n):
            inst = _instance(str(uuid.uuid4()))
            part = cpc.partitions.create(
                {
                    "name": naming.partition_name("bench", inst.id),
                    "ifl-processors": 1,
                    "initial-memory": 1024,
                    "maximum-memory": 1024,
                }
            )
            part.nics.create({"name": "n1", "virtual-switch-uri": vswitch.uri})
            fx.emulator.set_partition_status(part.uri, "active")
            instances.append(inst)
        conf = cfg.ConfigOpts()
        conf.register_opts([cfg.StrOpt("host", default="bench")])
        conf([])
        telemetry_conf.register_opts(conf)
        for k, v in {
            "hmc": ["127.0.0.1"],
            "hmc_port": fx.emulator.port,
            "hmc_username": fx.userid,
            "hmc_password": fx.password,
            "hmc_ca_file": fx.emulator.ca_file,
            "cpc_object_id": inventories.Z15_IDS.cpc,
        }.items():
            conf.set_override(k, v, group="dpm")
        insp = dpm.DPMInspector(conf)
        try:
            return _cycles(
                insp,
                instances,
                lambda: fx.emulator.engine.metrics.advance(hmc_metrics.SAMPLE_SECONDS),
                fx.emulator.request_count,
                disks=False,
            )
        finally:
            insp.close()
    finally:
        fx.cleanUp()


def main() -> list[str]:
    lines = [
        "## Ceilometer inspectors: requests per polling cycle",
        "",
        "| hypervisor | instances | cycle 1 (warm-up) | cycle 2 | cycle 3 | cycle 3 time |",
        "|---|---|---|---|---|---|",
    ]
    for name, run in (("PowerVM", _powervm), ("DPM", _dpm)):
        for n in SIZES:
            (r1, _), (r2, _), (r3, t3) = run(n)
            lines.append(f"| {name} | {n} | {r1} | {r2} | {r3} | {t3 * 1000:.0f} ms |")
    lines.append("")
    return lines


if __name__ == "__main__":
    print("\n".join(main()))
