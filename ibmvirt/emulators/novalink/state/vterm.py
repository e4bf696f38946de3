"""Partition virtual terminals: what each partition's OS writes to its console.

On a real system the terminal is the hypervisor's virtual serial line; on the
NovaLink partition ``mkvterm --id N`` attaches to it (one session per
partition) and shows what is written from then on. The hypervisor keeps no
history. The emulator keeps the last :data:`SCROLLBACK` bytes of each
partition's terminal, as a console logger on the NovaLink partition would,
and serves them on its control endpoint only (``GET
/_emulator/vterm?lpar=<uuid>``; *emulator-only*, there is no such REST
resource): the text is what an emulated Linux prints at power on, shutdown
and a dump restart, plus what a test makes the guest write (``POST
/_emulator/vterm/write {"lpar", "text"}``).
"""

from __future__ import annotations

import time
from typing import Any

from ibmvirt.emulators.novalink.emulator import Emulator
from ibmvirt.emulators.novalink.state import partition, power
from ibmvirt.emulators.novalink.store import Resource

#: Bytes of terminal output kept per partition (older output drops out).
SCROLLBACK = 64 * 1024
_KEY = "vterm"


def _scrollback(res: Resource) -> bytearray:
    return res.ext.setdefault(_KEY, bytearray())


def write(res: Resource, text: str | bytes) -> None:
    """Append to the partition's terminal (call under the emulator's lock)."""
    data = text.encode() if isinstance(text, str) else bytes(text)
    buf = _scrollback(res)
    buf += data
    if len(buf) > SCROLLBACK:
        del buf[: len(buf) - SCROLLBACK]


def output(res: Resource) -> bytes:
    return bytes(res.ext.get(_KEY, b""))


def _stamp(res: Resource) -> str:
    booted = res.ext.get("booted_at")
    return f"[{time.time() - booted:12.6f}]" if booted else "[    0.000000]"


def _on_state(emu: Emulator, res: Resource, old: str, new: str) -> None:
    if res.kind != "LogicalPartition" or old == new:
        return
    name = partition.name_of(res.elem)
    if new == partition.STARTING:
        booted = res.ext.get("boot_device")
        write(
            res,
            f"\r\nIBM PowerVM partition firmware: partition {name} (id "
            f"{res.field('PartitionID')})\r\n"
            "Elapsed time since release of system processors: 0 mins 1 secs\r\n"
            "OF stdout device is: /vdevice/vty@30000000\r\n"
            + (f"Booting from {booted[0]} ({booted[1]})\r\n" if booted else "")
            + f"{_stamp(res)} Linux version 6.4.0 (ppc64le) #1 SMP\r\n",
        )
    elif new == partition.RUNNING and old == partition.STARTING:
        write(res, f"\r\n{name} login: ")
    elif new == partition.SHUTTING_DOWN:
        write(res, f"\r\n{_stamp(res)} reboot: System is going down\r\n")
    elif new == partition.NOT_ACTIVATED:
        write(res, f"{_stamp(res)} reboot: Power down\r\n")


def _on_dump(emu: Emulator, res: Resource) -> None:
    write(
        res,
        f"\r\n{_stamp(res)} sysrq: Trigger a crash\r\n"
        f"{_stamp(res)} Kernel panic - not syncing: sysrq triggered crash\r\n"
        f"{_stamp(res)} kdump: saving vmcore, then restarting\r\n",
    )


def _find(emu: Emulator, ident: Any) -> Resource:
    ident = str(ident or "")
    for res in emu.store.list("LogicalPartition"):
        if res.uuid.upper() == ident.upper() or partition.name_of(res.elem) == ident:
            return res
    raise ValueError(f"no partition {ident!r} (give its UUID or name as 'lpar')")


def _read(emu: Emulator, query: dict[str, list[str]]) -> tuple[int, Any]:
    res = _find(emu, (query.get("lpar") or [""])[0])
    data = output(res)
    return 200, {"lpar": res.uuid, "bytes": len(data), "output": data.decode("latin-1")}


def _write(emu: Emulator, body: Any) -> tuple[int, Any]:
    if not isinstance(body, dict) or not isinstance(body.get("text"), str):
        raise ValueError("vterm/write needs 'lpar' and 'text' (a string)")
    res = _find(emu, body.get("lpar"))
    write(res, body["text"])
    return 200, {"lpar": res.uuid, "bytes": len(output(res))}


def register(emu: Emulator) -> None:
    power.add_state_hook(emu, _on_state)
    power.add_dump_hook(emu, _on_dump)
    emu.control_queries["/vterm"] = lambda query: _read(emu, query)
    emu.control_routes["/vterm/write"] = lambda body: _write(emu, body)
