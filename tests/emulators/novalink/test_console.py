"""Management console (SSH keys for mobility) and the shared processor pool."""

from __future__ import annotations

from pypowervm.tasks import management_console as tsk_mc
from pypowervm.wrappers import shared_proc_pool as pvm_spp


def test_public_key_and_authorized_keys(adapter):
    key = tsk_mc.get_public_key(adapter)
    assert key.startswith("ssh-rsa ")
    assert list(tsk_mc.get_authorized_keys(adapter)) == []
    tsk_mc.add_authorized_key(adapter, "ssh-rsa AAAAB3Nza-peer wlp@pvm-host-2")
    tsk_mc.add_authorized_key(adapter, "ssh-rsa AAAAB3Nza-peer wlp@pvm-host-2")  # idempotent
    assert list(tsk_mc.get_authorized_keys(adapter)) == ["ssh-rsa AAAAB3Nza-peer wlp@pvm-host-2"]


def test_default_shared_processor_pool_tracks_free_units(adapter, host):
    pools = pvm_spp.SharedProcPool.get(adapter, parent=host)
    assert [p.id for p in pools] == [0]
    assert pools[0].is_default
    assert float(pools[0].element.findtext("AvailableProcUnits")) == host.proc_units_avail
