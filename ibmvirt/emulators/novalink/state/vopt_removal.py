"""PowerOn's ``remove_optical_name`` / ``remove_optical_time``: NovaLink takes
a virtual optical medium (a config drive) away from the partition that many
minutes after it was started, and deletes it (pypowervm's RemoveOptical:
"the time, in minutes, to wait before deleting the media").

Guess (no capture shows the server doing it): the medium's vSCSI mapping to
that partition is removed as a client's VIOS update would remove it (its
adapters freed, a ``VirtualSCSIMappings`` event), then the medium is deleted
from its repository; a medium mapped to another partition too is only unmapped
from this one.
"""

from __future__ import annotations

import threading
from typing import Any

from ibmvirt.emulators.novalink import xmlutil as x
from ibmvirt.emulators.novalink.emulator import Emulator
from ibmvirt.emulators.novalink.state import power, slots, storage, vios
from ibmvirt.emulators.novalink.store import Resource

NAME, MINUTES = "remove_optical_name", "remove_optical_time"


def after_power_on(emu: Emulator, part: Resource, params: dict[str, Any]) -> None:
    name = params.get(NAME)
    if not name:
        return
    delay = float(params.get(MINUTES) or 0) * 60
    timer = threading.Timer(delay, remove, args=(emu, part.uuid, name))
    timer.daemon = True
    emu.ext.setdefault("vopt_removal_timers", []).append(timer)
    timer.start()


def _is_medium(m, name: str) -> bool:
    stg = m.find(x.q("Storage"))
    return stg is not None and any(
        x.local(c) == "VirtualOpticalMedia" and c.findtext(x.q("MediaName")) == name for c in stg
    )


def remove(emu: Emulator, part_uuid: str, name: str) -> None:
    """Unmap medium ``name`` from the partition, then delete it if nothing maps it."""
    changed = []
    with emu.lock:
        for v in emu.store.list("VirtualIOServer"):
            new = x.deep(v.elem)
            gone = []
            for m in slots.mappings(new):
                client = slots.client_of(emu, m, "medium removal")
                if client is not None and client.uuid == part_uuid and _is_medium(m, name):
                    gone.append(m)
            if not gone:
                continue
            for m in gone:
                m.getparent().remove(m)
            vios._update(emu, v, new)
            v.bump("ViosSCSIMapping")
            changed.append(v)
        still_mapped = slots.mapped_storage(emu)
        for vg in emu.store.list("VolumeGroup"):
            v = vg.parent
            if v is None or still_mapped.get((v.uuid, "VirtualOpticalMedia", name)):
                continue
            new = x.deep(vg.elem)
            media = [m for m in storage.vopts(new) if m.findtext(x.q("MediaName")) == name]
            if not media:
                continue
            for m in media:
                m.getparent().remove(m)
            vg.elem = new
            vg.bump()
            emu.uploads.pop("vopt:" + name, None)
            storage.sync_vios_storage(emu, v)
            changed.append(v)
    for v in changed:
        emu.publish("MODIFY_URI", v, "VirtualSCSIMappings,Other")


def register(emu: Emulator) -> None:
    power.add_power_on_hook(emu, after_power_on)
