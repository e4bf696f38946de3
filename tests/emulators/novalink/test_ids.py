"""Generated MACs and WWPNs (state/ids.py): unique across the types that hold
MACs, and the same in every process for the same system (no salted hash())."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys

import pypowervm.exceptions as pvm_exc
import pytest
from pypowervm.tasks import cna as tsk_cna
from pypowervm.wrappers import iocard as pvm_card

from ibmvirt.emulators.novalink.state import ids

from .test_lpar import build

_SCRIPT = """
import json
from ibmvirt.emulators.novalink import app
from ibmvirt.emulators.novalink.state import ids
srv = app.start("small", token_dir={tmp!r})
try:
    emu = srv.emu
    with emu.lock:
        out = {{"uuid": emu.ms.uuid, "macs": [ids.new_mac(emu) for _ in range(2)],
               "wwpns": ids.new_wwpns(emu, 2)}}
finally:
    srv.stop()
print(json.dumps(out))
"""


def _generated_in_a_new_process(tmp_path, seed: str) -> dict:
    env = dict(os.environ, PYTHONHASHSEED=seed)
    out = subprocess.run(
        [sys.executable, "-c", _SCRIPT.format(tmp=str(tmp_path / seed))],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_addresses_are_the_same_in_every_process(tmp_path):
    """Two processes with different hash seeds hand out the same addresses
    for the same system (before, hash() of the UUID made them differ)."""
    one = _generated_in_a_new_process(tmp_path, "1")
    two = _generated_in_a_new_process(tmp_path, "2")
    assert one == two
    prefix = ids.host_prefix(one["uuid"])
    assert all(m.startswith("FA" + prefix) and len(m) == 12 for m in one["macs"])
    assert all(w.startswith("C05076" + prefix) and len(w) == 16 for w in one["wwpns"])
    assert len(set(one["macs"])) == 2 and len(set(one["wwpns"])) == 2


def test_host_prefix_tells_systems_apart():
    a = ids.host_prefix("3A4C1B5E-0000-4000-8000-000000000001")
    assert a == ids.host_prefix("3a4c1b5e-0000-4000-8000-000000000001")
    assert a != ids.host_prefix("3A4C1B5E-0000-4000-8000-000000000002")
    assert len(a) == 4 and int(a, 16) >= 0


def test_new_mac_skips_one_a_client_already_chose(emulator, adapter, host):
    """A client may set a MAC that the generator would hand out next: the
    generator skips it instead of creating a duplicate."""
    emu = emulator.emu
    lpar = build(adapter, host).create(parent=host)
    with emu.lock:
        # The counter as a restarted one would be: at a value already handed out.
        emu.ext["mac_counter"] = itertools.count(0x500)
        upcoming = f"FA{ids.host_prefix(emu.ms.uuid)}{0x500:06X}"
    taken = tsk_cna.crt_cna(
        adapter, host.uuid, lpar.uuid, 100, vswitch="ETHERNET0", mac_addr=upcoming
    )
    assert taken.mac == upcoming
    generated = tsk_cna.crt_cna(adapter, host.uuid, lpar.uuid, 100, vswitch="ETHERNET0")
    assert generated.mac == f"{upcoming[:6]}{0x501:06X}"


def test_mac_of_a_cna_cannot_be_reused_by_an_sriov_logical_port(emulator, adapter, host):
    """One MAC space for virtual adapters and SR-IOV logical ports."""
    lpar = build(adapter, host).create(parent=host)
    cna = tsk_cna.crt_cna(adapter, host.uuid, lpar.uuid, 100, vswitch="ETHERNET0")
    with pytest.raises(pvm_exc.HttpError) as exc:
        pvm_card.SRIOVEthLPort.bld(adapter, 1, 0, mac=cna.mac).create(parent=lpar)
    assert "already in use" in exc.value.her_wrap.message
    lp = pvm_card.SRIOVEthLPort.bld(adapter, 1, 0).create(parent=lpar)
    with pytest.raises(pvm_exc.HttpError) as exc:
        tsk_cna.crt_cna(adapter, host.uuid, lpar.uuid, 100, vswitch="ETHERNET0", mac_addr=lp.mac)
    assert "already in use" in exc.value.her_wrap.message
