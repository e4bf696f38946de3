"""The PowerVM part of ``make demo``: a server's life on an emulated NovaLink host.

Starts the NovaLink emulator (real pypowervm over HTTP, local file logon as
on a NovaLink partition) and an in-process Nova with ``ibmvirt.PowerVMDriver``,
boots a server from a raw ppc64le image onto a localdisk boot disk with one
``pvm_sea`` port and a config drive, and walks it through its lifecycle with
the shared step printer of :mod:`ibmvirt.sandbox.demo`. After each step it
shows what the emulated host holds: the LPAR's state, its boot disk, the VIOS
vSCSI mappings and the client network adapters. Glance, Neutron (the SEA
agent) and Cinder (a Fibre Channel array) are played by
:mod:`ibmvirt.sandbox.powervm`.

The request column counts what the driver asks NovaLink, with the jobs it
ran (``PUT .../do/<operation>``) and their polls; the emulator finishes jobs
at once, so pypowervm, which polls a running job once a second, never has to.
The event feed's long polls (``GET /rest/api/uom/Event``) run in the
background and are counted apart, in the total line.
"""

from __future__ import annotations

import sys
import time
import unittest
from typing import Any

import nova.tests.functional  # noqa: F401  (selects Nova's concurrency backend first)
from nova import conf as nova_conf
from oslo_utils.fixture import uuidsentinel as uuids

from ibmvirt.emulators.faults import RequestRecord
from ibmvirt.sandbox import demo, powervm

CONF = nova_conf.CONF

EVENT_FEED = "/rest/api/uom/Event"
JOBS = "/rest/api/uom/jobs/"


def _event_read(record: RequestRecord) -> bool:
    return record.path.startswith(EVENT_FEED)


def _is_poll(record: RequestRecord) -> bool:
    return record.method == "GET" and record.path.startswith(JOBS)


def _is_job(record: RequestRecord) -> bool:
    return record.method == "PUT" and "/do/" in record.path


def _status(server: dict) -> str:
    return server["status"]


class PowerVMDemoScenario(powervm.PowerVMSingleComputeTestBase):
    """The PowerVM part, as a test case of Nova's functional harness."""

    out = sys.stdout

    def setUp(self):
        self._started = time.monotonic()
        super().setUp()
        self._setup_time = time.monotonic() - self._started

    def driver_flags(self):
        super().driver_flags()
        # The demo's SAN is Fibre Channel only, and the host says so: Cinder's
        # connector needs no iSCSI initiator, so none is read from the VIOSes.
        self.flags(group="powervm", iscsi_volumes=False)

    def _requests(self) -> list[RequestRecord]:
        return [r for r in self.nl_control.log.records() if not _event_read(r)]

    def test_demo(self):
        out, view = self.out, self.nl_view
        driver = self.drivers()["compute"]
        system = driver.host.system
        disk_total, _ = driver.disk.capacity_gb()
        vioses = sorted(
            v.field("PartitionName") for v in self.novalink.emu.store.list("VirtualIOServer")
        )
        print(
            f"NovaLink emulator http://127.0.0.1:{self.novalink.port} (local file logon)\n"
            f"managed system {system.system_name} ({system.mtms.mtms_str}), "
            f"VIOSes {', '.join(vioses)}; compute host 'compute' offers "
            f"{driver.host.vcpus()} VCPUs ({system.proc_units_configurable:g} processor units "
            f"/ proc_units_factor {CONF.powervm.proc_units_factor:g}), "
            f"{driver.host.memory_mb()} MiB, {int(disk_total)} GB (localdisk, volume group "
            f"{self.volume_group})\n",
            file=out,
        )
        steps = self._steps = demo.Steps(
            out, self._requests, _is_poll, "NovaLink requests", is_job=_is_job
        )
        steps.line(
            "start Nova and nova-compute",
            self._setup_time,
            self._requests(),
            "init_host checked the system, VIOSes, volume group",
        )
        port = self.neutron.port_1
        server = steps.run(
            "boot from image on localdisk",
            lambda: self.boot_from_image([{"port": port["id"]}], config_drive=True),
            _status,
        )
        ((name, lpar),) = view.lpars().items()
        self._show(name, lpar["uuid"])
        server = steps.run("stop", lambda: self._stop_server(server), _status)
        self._show_state(name)
        server = steps.run("start", lambda: self._start_server(server), _status)
        self._show_state(name)
        for hard in (False, True):
            server = steps.run(
                f"reboot ({'hard' if hard else 'soft'})",
                lambda s=server, hard=hard: self._reboot_server(s, hard=hard),
                _status,
            )
            self._show_state(name)
        steps.run(
            "attach a data volume (vSCSI)",
            lambda: self._attach_volume(server, uuids.demo_data_volume),
            lambda _: f"LUN masked to {len(self.array.masking[uuids.demo_data_volume])} WWPNs",
        )
        self._show_mappings()
        steps.run(
            "detach the data volume",
            lambda: self._detach_volume(server, uuids.demo_data_volume),
        )
        self._show_mappings()
        steps.run("delete", lambda: self._delete_server(server))
        left = self._left()
        cached = ", ".join(d for d in view.virtual_disks() if d.startswith("i_"))
        steps.detail(
            f"left on the host: {', '.join(left) or 'nothing'} "
            f"(the cached image {cached} stays for Nova's image cache manager)"
        )
        self.assertEqual([], left)
        steps.total()
        events = sum(1 for r in self.nl_control.log.records() if _event_read(r))
        print(f"  (and {events} event feed reads in the background)", file=out)

    def _show(self, name: str, lpar_uuid: str) -> None:
        view = self.nl_view
        lpar = view.lpars()[name]
        port_mac = self.neutron.port_1["mac_address"].replace(":", "").upper()
        adapters = [
            f"{a['mac']} VLAN {a['vlan']} ({'the port' if a['mac'] == port_mac else 'RMC'})"
            for a in view.adapters_of(lpar_uuid)
        ]
        disks = view.virtual_disks()
        boot = [d for d in disks if d.startswith("b_")]
        cached = [d for d in disks if d.startswith("i_")]
        self._steps.detail(
            f"LPAR {name} (id {lpar['id']}): {lpar['state']}",
            f"boot disk {', '.join(boot)}, copied from the cached image {', '.join(cached)}",
            f"client adapters {', '.join(adapters)}",
        )
        self._show_mappings()

    def _show_state(self, name: str) -> None:
        self._steps.detail(f"LPAR {self.nl_view.lpars()[name]['state']}")

    def _show_mappings(self) -> None:
        maps = self.nl_view.scsi_mappings()
        self._steps.detail(
            "vSCSI mappings " + (", ".join(f"{v}: {stg}" for v, stg in maps) or "none")
        )

    def _left(self) -> list[str]:
        view = self.nl_view
        return (
            [f"LPAR {n}" for n in view.lpars()]
            + [f"disk {d}" for d in view.virtual_disks() if d.startswith("b_")]
            + [f"media {m}" for m in view.optical_media() if m.startswith("cfg_")]
            + [f"mapping {v}: {s}" for v, s in view.scsi_mappings()]
            + [f"adapter {m}" for m in view.client_macs()]
        )

    def _detach_volume(self, server, volume_id):
        self.api.delete_server_volume(server["id"], volume_id)
        self._wait_for_volume_detach(server["id"], volume_id)


def run_scenario(out=sys.stdout, **settings: Any) -> tuple[unittest.TestResult, list]:
    """Run the PowerVM walk-through once; ``settings`` override scenario attributes."""
    return demo.run_case(PowerVMDemoScenario, out, **settings)
