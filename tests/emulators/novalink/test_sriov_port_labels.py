"""SR-IOV physical port labels changed through the REST API, as
``pvmctl sriov update -s label=...`` and pypowervm's ``safe_update_pports``
do: the label is kept, and event listeners hear of it (the detail networking-
powervm's SR-IOV agent watched for)."""

from __future__ import annotations

import pypowervm.exceptions as pvm_exc
import pytest
from pypowervm.tasks import sriov as pvm_sriov
from pypowervm.wrappers import event as pvm_evt
from pypowervm.wrappers import managed_system as pvm_ms

CONFIG_CHANGE = "SRIOVPhysicalPort.ConfigChange"


def _labels(host) -> dict[str, str | None]:
    return {p.loc_code: p.label for a in host.asio_config.sriov_adapters for p in a.phys_ports}


def _relabel(adapter, host, loc_code: str, label: str):
    def change(sys_w):
        port = next(
            p
            for a in sys_w.asio_config.sriov_adapters
            for p in a.phys_ports
            if p.loc_code == loc_code
        )
        port.label = label
        return True

    return pvm_sriov.safe_update_pports(pvm_ms.System.getter(adapter, host.uuid), change)


def _events(adapter, appid: str) -> list:
    return [e for e in pvm_evt.Event.get(adapter, appid) if e.etype != "NEW_CLIENT"]


def test_a_label_change_is_kept_and_announced(emulator, adapter, host):
    emulator.emu.events.wait = 0.2
    _events(adapter, "labels")  # NEW_CLIENT: this listener is registered
    before = _labels(host)
    loc = next(loc for loc, label in before.items() if label == "physnet-stor")
    _relabel(adapter, host, loc, "physnet3")
    after = _labels(pvm_ms.System.get(adapter)[0])
    assert after == {**before, loc: "physnet3"}  # nothing else changed
    events = _events(adapter, "labels")
    change = [e for e in events if e.etype == "MODIFY_URI" and e.data.endswith(host.uuid)]
    assert [e.detail for e in change] == [CONFIG_CHANGE]


def test_an_unlabelled_port_gets_a_label(adapter, host):
    loc = next(loc for loc, label in _labels(host).items() if label is None)
    _relabel(adapter, host, loc, "physnet9")
    assert _labels(pvm_ms.System.get(adapter)[0])[loc] == "physnet9"


def test_a_rename_is_not_a_port_change(emulator, adapter, host):
    emulator.emu.events.wait = 0.2
    _events(adapter, "rename")
    host.set_parm_value("SystemName", "renamed-host")
    host.update()
    details = [e.detail for e in _events(adapter, "rename") if e.etype == "MODIFY_URI"]
    assert details == ["Other"]


def test_hardware_fields_are_still_refused_with_a_label(adapter, host):
    host = pvm_ms.System.get(adapter)[0]
    port = host.asio_config.sriov_adapters[0].phys_ports[0]
    port.label = "physnet7"
    host.set_parm_value("AssociatedSystemMemoryConfiguration/MemoryRegionSize", "128")
    with pytest.raises(pvm_exc.HttpError) as exc:
        host.update()
    assert "only SystemName" in exc.value.her_wrap.message
    assert port.loc_code not in {
        loc for loc, label in _labels(pvm_ms.System.get(adapter)[0]).items() if label == "physnet7"
    }
