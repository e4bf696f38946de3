"""NovaLink emulator benchmarks: REST requests and wall time of pypowervm flows.

1. The pypowervm calls a PowerVM driver's spawn, power and delete flows are
   made of (nova-powervm's flows: create the LPAR, plug a network adapter,
   create and map a boot disk over a VIOS FeedTask, power on and off, unmap
   and delete), one row per step, at zero delays and at realistic NovaLink
   delays, on the ``small`` inventory.
2. Reads on a host with 500 partitions (the ``large`` inventory): the
   partition feed, every partition's state one request each (how nova-powervm
   read states) against one ``quick/All`` request, the VIOS feed a storage
   FeedTask starts from, and the ManagedSystem (host statistics).

Requests are counted by the emulator (job polls included: pypowervm polls a
running job about once a second). Counts are deterministic; times depend on
the machine and are reported, never asserted.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import pypowervm.adapter as pvm_adpt
import pypowervm.const as pvm_const
from pypowervm.tasks import cna as pvm_cna
from pypowervm.tasks import partition as pvm_part
from pypowervm.tasks import power as pvm_power
from pypowervm.tasks import scsi_mapper as pvm_map
from pypowervm.tasks import storage as pvm_stg
from pypowervm.utils import lpar_builder as lpar_bldr
from pypowervm.utils import uuid as pvm_uuid
from pypowervm.utils import validation as pvm_vldn
from pypowervm.wrappers import base_partition as pvm_bp
from pypowervm.wrappers import logical_partition as pvm_lpar
from pypowervm.wrappers import managed_system as pvm_ms
from pypowervm.wrappers import storage as pvm_stor
from pypowervm.wrappers import virtual_io_server as pvm_vios

from ibmvirt.emulators.novalink import app

#: Realistic NovaLink: ~50 ms per request, power jobs of 2 s.
REALISTIC = {"request_delay": 0.05, "job_delay": 2.0}
ZERO = {"request_delay": 0.0, "job_delay": 0.0}
USER, PASSWORD = "neo", "passw0rd"  # the shipped inventories' user


@dataclass
class Row:
    what: str
    seconds: float
    requests: int


class Client:
    """One pypowervm session on an emulated host, counting its requests."""

    def __init__(self, srv: app.NovaLinkServer) -> None:
        self.srv = srv
        self.session = pvm_adpt.Session(
            "127.0.0.1", USER, PASSWORD, protocol="http", port=srv.port, conn_tries=1
        )
        self.adapter = pvm_adpt.Adapter(self.session)
        self.host = pvm_ms.System.get(self.adapter)[0]

    def measure(self, what: str, action: Callable[[], object]) -> Row:
        before = self.srv.emu.request_count
        start = time.monotonic()
        action()
        return Row(what, time.monotonic() - start, self.srv.emu.request_count - before)

    def close(self) -> None:
        self.session._logoff()


def _vios(adapter: pvm_adpt.Adapter, name: str) -> pvm_vios.VIOS:
    return next(v for v in pvm_vios.VIOS.get(adapter, xag=[]) if v.name == name)


def operations(delays: dict[str, float]) -> list[Row]:
    """A partition's life through pypowervm; one row per step."""
    with app.running("small", token_dir=tempfile.mkdtemp(), **delays) as srv:
        c = Client(srv)
        ad, host = c.adapter, c.host
        made: dict[str, object] = {}

        def create() -> None:
            attrs = {
                lpar_bldr.NAME: "bench-vm",
                lpar_bldr.MEM: 4096,
                lpar_bldr.VCPU: 2,
                lpar_bldr.PROC_UNITS: 0.5,
                lpar_bldr.ENV: pvm_bp.LPARType.AIXLINUX,
                lpar_bldr.UUID: pvm_uuid.convert_uuid_to_pvm(str(uuid.uuid4())).upper(),
            }
            std = lpar_bldr.DefaultStandardize(host)
            wrapper = lpar_bldr.LPARBuilder(ad, attrs, std).build()
            pvm_vldn.LPARWrapperValidator(wrapper, host).validate_all()
            made["lpar"] = wrapper.create(parent=host)

        def boot_disk() -> None:
            vios1 = _vios(ad, "vios1")
            vg = next(g for g in pvm_stor.VG.get(ad, parent=vios1) if g.name == "datavg")
            made["vg"], made["disk"] = vg, pvm_stg.crt_vdisk(ad, vios1.uuid, vg.uuid, "b_vm", 20)

        def map_disk() -> None:
            lpar = made["lpar"]
            ftsk = pvm_part.build_active_vio_feed_task(ad, xag=[pvm_const.XAG.VIO_SMAP])

            def add(vios_w: pvm_vios.VIOS) -> bool:
                if vios_w.name != "vios1":
                    return False
                m = pvm_map.build_vscsi_mapping(host.uuid, vios_w, lpar.uuid, made["disk"])
                return pvm_map.add_map(vios_w, m) is not None

            ftsk.add_functor_subtask(add)
            ftsk.execute()

        def unmap_and_delete_disk() -> None:
            lpar = made["lpar"]
            ftsk = pvm_part.build_active_vio_feed_task(ad, xag=[pvm_const.XAG.VIO_SMAP])
            ftsk.add_functor_subtask(pvm_map.remove_maps, lpar.uuid)
            ftsk.execute()
            vg = pvm_stor.VG.get(ad, uuid=made["vg"].uuid, parent=_vios(ad, "vios1"))
            pvm_stg.rm_vg_storage(vg, vdisks=[made["disk"]])

        try:
            return [
                c.measure("create the LPAR (LPARBuilder, validate, PUT)", create),
                c.measure(
                    "plug a network adapter (crt_cna)",
                    lambda: pvm_cna.crt_cna(ad, host.uuid, made["lpar"].uuid, 100),
                ),
                c.measure("create a 20 GB boot disk (crt_vdisk)", boot_disk),
                c.measure("map it over a VIOS FeedTask", map_disk),
                c.measure(
                    "power on", lambda: pvm_power.power_on(made["lpar"].refresh(), host.uuid)
                ),
                c.measure(
                    "power off (progressive: OS shutdown first)",
                    lambda: pvm_power.power_off_progressive(made["lpar"].refresh()),
                ),
                c.measure("unmap and delete the disk", unmap_and_delete_disk),
                c.measure("delete the LPAR", lambda: made["lpar"].refresh().delete()),
            ]
        finally:
            c.close()


def reads(delays: dict[str, float]) -> list[Row]:
    """Reads of a host with 500 generated partitions (and the small host's)."""
    with app.running("large", token_dir=tempfile.mkdtemp(), **delays) as srv:
        c = Client(srv)
        ad, host = c.adapter, c.host
        lpars = pvm_lpar.LPAR.get(ad)

        def states_one_by_one() -> None:
            for lp in lpars:
                ad.read(
                    "LogicalPartition",
                    root_id=lp.uuid,
                    suffix_type="quick",
                    suffix_parm="PartitionState",
                )

        def states_at_once() -> None:
            body = ad.read(
                "ManagedSystem",
                root_id=host.uuid,
                child_type="LogicalPartition",
                suffix_type="quick",
                suffix_parm="All",
            ).body
            assert len(json.loads(body)) == len(lpars)

        try:
            return [
                c.measure(f"partition feed ({len(lpars)} LPARs)", lambda: pvm_lpar.LPAR.get(ad)),
                c.measure("every partition's state, one request each", states_one_by_one),
                c.measure("every partition's state, quick/All", states_at_once),
                c.measure(
                    "VIOS feed with storage and mappings (FeedTask start)",
                    lambda: pvm_part.build_active_vio_feed_task(ad).feed,
                ),
                c.measure("the ManagedSystem (host statistics)", lambda: host.refresh()),
            ]
        finally:
            c.close()


def main() -> list[str]:
    """Run everything; returns the report as Markdown lines."""
    logging.getLogger("pypowervm").setLevel(logging.ERROR)  # "Unencrypted ..." warnings
    lines: list[str] = []
    for label, delays in (("zero delays", ZERO), ("realistic delays", REALISTIC)):
        lines += [
            f"### pypowervm flows on the NovaLink emulator, {label} "
            f"({delays['request_delay'] * 1000:.0f} ms per request, "
            f"{delays['job_delay']:.0f} s jobs)",
            "",
            "| step | wall time | REST requests |",
            "|---|---:|---:|",
        ]
        lines += [f"| {r.what} | {r.seconds:.2f} s | {r.requests} |" for r in operations(delays)]
        lines.append("")
    for label, delays in (("zero delays", ZERO), ("realistic delays", REALISTIC)):
        lines += [
            f"### Reads on a host with 500 partitions, {label}",
            "",
            "| read | wall time | REST requests |",
            "|---|---:|---:|",
        ]
        lines += [f"| {r.what} | {r.seconds:.3f} s | {r.requests} |" for r in reads(delays)]
        lines.append("")
    return lines


if __name__ == "__main__":
    print("\n".join(main()))
