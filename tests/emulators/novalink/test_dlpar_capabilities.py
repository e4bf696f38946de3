"""PartitionCapabilities: what pypowervm's can_modify_io/mem/proc read before a
DLPAR change (interface attach, volume attach) on a running partition."""

from __future__ import annotations

from pypowervm.tasks import partition as pvm_part
from pypowervm.tasks import power as pvm_power
from pypowervm.tasks import power_opts as pvm_popts
from pypowervm.wrappers import virtual_io_server as pvm_vios

from .test_lpar import build


def _can(lpar) -> list[tuple[bool, str | None]]:
    return [lpar.can_modify_io(), lpar.can_modify_mem(), lpar.can_modify_proc()]


def test_a_running_partition_with_rmc_active_can_take_dlpar_changes(adapter, host):
    lpar = build(adapter, host).create(parent=host)
    assert _can(lpar) == [(True, None)] * 3  # not activated: anything goes
    pvm_power.power_on(lpar, host.uuid)
    lpar = lpar.refresh()
    assert lpar.rmc_state == "active"
    caps = lpar.capabilities
    assert (caps.io_dlpar, caps.mem_dlpar, caps.proc_dlpar) == (True, True, True)
    assert _can(lpar) == [(True, None)] * 3
    # An update echoing the capabilities read earlier is no change of a read-only field.
    lpar.name = "vm1-renamed"
    assert lpar.update().name == "vm1-renamed"
    pvm_power.PowerOp.stop(lpar, opts=pvm_popts.PowerOffOpts().vsp_hard())
    caps = lpar.refresh().capabilities
    assert (caps.io_dlpar, caps.mem_dlpar, caps.proc_dlpar) == (False, False, False)


def test_without_rmc_a_running_partition_refuses_dlpar(emulator, adapter, host):
    emulator.emu.config.rmc_on_boot = False
    lpar = build(adapter, host).create(parent=host)
    pvm_power.power_on(lpar, host.uuid)
    lpar = lpar.refresh()
    caps = lpar.capabilities
    assert (lpar.state, caps.io_dlpar, caps.mem_dlpar, caps.proc_dlpar) == (
        "running",
        False,
        False,
        False,
    )
    possible, why = lpar.can_modify_io()
    assert not possible and "RMC" in why


def test_vioses_and_the_novalink_partition_are_dlpar_capable(adapter):
    for vios in pvm_vios.VIOS.get(adapter):
        assert vios.capabilities.io_dlpar and vios.can_modify_io() == (True, None)
    mgmt = pvm_part.get_mgmt_partition(adapter)
    assert mgmt.capabilities.io_dlpar and mgmt.can_modify_io() == (True, None)
