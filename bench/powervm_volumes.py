"""PowerVM volume connectors through real Nova: NovaLink requests per attach,
extend and detach of each connector type, and for a boot from an NPIV volume.

Each row is one Nova API action; the count is the requests NovaLink received
while the driver's volume calls ran (get_volume_connector, attach_volume,
extend_volume, detach_volume, and spawn for the boot), event long-polls
excluded, job polls counted separately. Zero emulator delays; wall times are
Nova's and the driver's own work on this machine.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from bench.powervm import SETTLE, _run, driver_requests, job_polls

MEASURED = ("get_volume_connector", "attach_volume", "extend_volume", "detach_volume", "spawn")


@dataclass
class VolRow:
    what: str
    seconds: float
    requests: int
    polls: int
    detail: str


def _scenario_base():
    from ibmvirt.conf import powervm as pvm_conf
    from ibmvirt.sandbox import powervm as sandbox

    class Scenario(sandbox.PowerVMSingleComputeTestBase):
        protocol = "fibre_channel"
        strategy = "vscsi"

        @property
        def inventory(self):
            from ibmvirt.emulators.novalink import inventory

            inv = inventory.load("small")
            inv["management_partition"]["io_server"] = True
            return inv

        def driver_flags(self):
            super().driver_flags()
            if self.strategy == "npiv":
                emu = self.novalink.emu
                with emu.lock:
                    ports = {
                        p.findtext("{*}PortName") + "/" + v.field("PartitionName"): p.findtext(
                            "{*}WWPN"
                        )
                        for v in emu.store.list("VirtualIOServer")
                        for p in v.elem.iter("{*}PhysicalFibreChannelPort")
                    }
                from nova import conf as nova_conf

                pvm_conf.fabric_port_wwpns(nova_conf.CONF, "A")
                self.flags(
                    fc_attach_strategy="npiv",
                    fabrics=["A"],
                    fabric_A_port_wwpns=[w for k, w in ports.items() if k.startswith("fcs0")],
                    group="powervm",
                )

        def setUp(self):
            super().setUp()
            self.array.protocol = self.protocol
            self._rows: list[VolRow] = []
            self._calls: list = []
            drv = self.computes["compute"].manager.driver
            log = self.nl_control.log
            for name in MEASURED:
                self._wrap(drv, log, name)

        def _wrap(self, drv, log, name):
            orig = getattr(drv, name)
            calls = self._calls

            def measured(*args, **kwargs):
                start = len(log.records())
                try:
                    return orig(*args, **kwargs)
                finally:
                    time.sleep(SETTLE)
                    calls.append((name, driver_requests(log.records()[start:])))

            setattr(drv, name, measured)

        def step(self, what, action):
            before = len(self._calls)
            t0 = time.monotonic()
            action()
            elapsed = time.monotonic() - t0
            mine = self._calls[before:]
            records = [r for _, rs in mine for r in rs]
            detail = ", ".join(f"{n} {len(rs)}" for n, rs in mine)
            self._rows.append(VolRow(what, elapsed, len(records), job_polls(records), detail))

        def test_volume(self):
            server = self.boot_from_image([])
            vol = self.array.SWAP_OLD_VOL
            label = self.protocol if self.strategy == "vscsi" else "fibre_channel (npiv)"
            if self.protocol == "fibre_channel" and self.strategy == "vscsi":
                label = "fibre_channel (vscsi)"

            def attach():
                self.api.post_server_volume(server["id"], {"volumeAttachment": {"volumeId": vol}})
                self._wait_for_volume_attach(server["id"], vol)

            def extend():
                self.array.grow(vol, 2)
                self.api.create_server_external_events(
                    [{"name": "volume-extended", "server_uuid": server["id"], "tag": vol}]
                )

            def detach():
                self.api.delete_server_volume(server["id"], vol)
                self._wait_for_volume_detach(server["id"], vol)

            self.step(f"attach, {label}", attach)
            self.step(f"extend, {label}", extend)
            self.step(f"detach, {label}", detach)
            if self.strategy == "npiv":
                self.step("boot from an NPIV volume", lambda: self.boot_from_volume([]))

    return Scenario


def volumes() -> list[VolRow]:
    base = _scenario_base()
    rows: list[VolRow] = []
    for protocol, strategy in (
        ("fibre_channel", "vscsi"),
        ("fibre_channel", "npiv"),
        ("iscsi", "vscsi"),
        ("local", "vscsi"),
        ("rbd", "vscsi"),
    ):
        cls = type("Case", (base,), {"protocol": protocol, "strategy": strategy})
        case = cls("test_volume")
        _run(case)
        rows += case._rows
    return rows


def main() -> list[str]:
    lines = [
        "### PowerVM volume connectors through Nova (small inventory, zero delays)",
        "",
        "| operation | wall time | NovaLink requests | of which job polls | driver calls |",
        "|---|---:|---:|---:|---|",
    ]
    for r in volumes():
        lines.append(f"| {r.what} | {r.seconds:.2f} s | {r.requests} | {r.polls} | {r.detail} |")
    lines.append("")
    return lines


if __name__ == "__main__":
    import logging
    import os

    os.environ.setdefault("OS_NOVA_DISABLE_EVENTLET_PATCHING", "1")
    logging.getLogger("pypowervm").setLevel(logging.ERROR)
    print("\n".join(main()))
