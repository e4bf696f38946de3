"""Tasks on the LPAR itself: create, power, delete."""

from __future__ import annotations

from oslo_log import log as logging
from taskflow import task

from ibmvirt.powervm import flavor, vm

LOG = logging.getLogger(__name__)


class Create(task.Task):
    """Create the LPAR from the flavor; revert deletes it.

    Recreating an LPAR (evacuate, a move to another host), ``nvram`` is the
    NVRAM it had and ``slot_map`` its slots: at least as many virtual slots.
    """

    def __init__(self, host, instance, flavor_obj, image_meta, conf, nvram=None, slot_map=None):
        super().__init__(name="create_lpar", provides="lpar")
        self.host, self.instance = host, instance
        self.flavor, self.image_meta, self.conf = flavor_obj, image_meta, conf
        self.nvram, self.slot_map = nvram, slot_map

    def execute(self):
        system = self.host.require_system()
        attrs = flavor.lpar_attributes(
            self.flavor,
            self.image_meta,
            name=vm.lpar_name(self.instance),
            pvm_uuid=vm.pvm_uuid_of(self.instance),
            shared_proc_pool_id=self.host.shared_proc_pool_id,
        )
        wrapper = flavor.build_lpar(
            self.host.adapter,
            system,
            attrs,
            proc_units_factor=self.conf.powervm.proc_units_factor,
            uncapped_weight=self.conf.powervm.uncapped_proc_weight,
        )
        if self.slot_map is not None and self.slot_map.max_slots:
            io = wrapper.io_config
            io.max_virtual_slots = max(io.max_virtual_slots or 0, self.slot_map.max_slots)
        if self.nvram:
            wrapper.nvram = self.nvram
        lpar = wrapper.create(parent=system)
        self.host.states.changed(lpar.uuid)
        return lpar

    def revert(self, result, flow_failures, **kwargs):
        if isinstance(result, vm.pvm_lpar.LPAR):
            LOG.info("Spawn failed: deleting LPAR %s", result.name, instance=self.instance)
            vm.delete(self.host.adapter, result)
            self.host.states.gone(result.uuid)


class PowerOn(task.Task):
    """Start the LPAR; revert stops it at once."""

    def __init__(self, host, instance, opts=None):
        super().__init__(name="power_on")
        self.host, self.instance, self.opts = host, instance, opts

    def execute(self, lpar):
        vm.power_on(lpar, self.opts)
        self.host.states.changed(lpar.uuid)

    def revert(self, lpar, result, flow_failures, **kwargs):
        vm.power_off(lpar)
        self.host.states.changed(lpar.uuid)


class UpdateIBMi(task.Task):
    """IBM i: point the load source and console at the boot device (tagged I/O)."""

    def __init__(self, host, boot_type: str):
        super().__init__(name="update_ibmi_settings")
        self.host, self.boot_type = host, boot_type

    def execute(self, lpar):
        from pypowervm.tasks import ibmi

        lpar = lpar.refresh()
        ibmi.update_ibmi_settings(self.host.adapter, lpar, self.boot_type).update()


class Find(task.Task):
    """The instance's LPAR on this host (InstanceNotFound if it has none)."""

    def __init__(self, host, instance):
        super().__init__(name="find_lpar", provides="lpar")
        self.host, self.instance = host, instance

    def execute(self):
        return vm.get_lpar(self.host.adapter, self.instance)


class StopForMove(task.Task):
    """Stop the LPAR (OS shutdown first with ``timeout``); revert starts it
    again if it was running, so a failed move leaves the server as it was."""

    def __init__(self, host, instance, timeout: int = 0):
        super().__init__(name="stop_for_move")
        self.host, self.instance, self.timeout = host, instance, timeout
        self.stopped = False

    def execute(self, lpar):
        self.stopped = vm.power_off(lpar, timeout=self.timeout)
        self.host.states.changed(lpar.uuid)

    def revert(self, lpar, result, flow_failures, **kwargs):
        if self.stopped:
            LOG.warning("Move failed: starting LPAR %s again", lpar.name, instance=self.instance)
            vm.power_on(lpar)
            self.host.states.changed(lpar.uuid)


class ApplyFlavor(task.Task):
    """Resize the stopped LPAR to ``flavor``; revert gives it ``previous`` again."""

    def __init__(self, host, instance, flavor_obj, previous, image_meta, conf):
        super().__init__(name="apply_flavor")
        self.host, self.instance, self.conf = host, instance, conf
        self.flavor, self.previous, self.image_meta = flavor_obj, previous, image_meta
        self.applied = False

    def execute(self, lpar):
        vm.apply_flavor(self.host, self.instance, self.flavor, self.image_meta, self.conf)
        self.applied = True

    def revert(self, lpar, result, flow_failures, **kwargs):
        if self.applied and self.previous is not None:
            LOG.warning(
                "Move failed: LPAR %s gets flavor %s back",
                lpar.name,
                self.previous.name,
                instance=self.instance,
            )
            vm.apply_flavor(self.host, self.instance, self.previous, self.image_meta, self.conf)


class StopForDelete(task.Task):
    """Find the LPAR (None if it is gone already) and stop it at once."""

    def __init__(self, host, instance):
        super().__init__(name="stop_for_delete", provides="lpar")
        self.host, self.instance = host, instance

    def execute(self):
        lpar = vm.find_lpar(self.host.adapter, self.instance)
        if lpar is not None:
            vm.power_off(lpar)
        return lpar


class Delete(task.Task):
    """Close the LPAR's terminal (its VNC server), then delete the LPAR."""

    def __init__(self, host, vterm=None):
        super().__init__(name="delete_lpar")
        self.host, self.vterm = host, vterm

    def execute(self, lpar):
        if lpar is None:
            return
        if self.vterm is not None:
            try:
                self.vterm.close(lpar.uuid)
            except Exception as exc:  # noqa: BLE001  (a stale terminal must not keep the LPAR)
                LOG.warning("Could not close the terminal of LPAR %s: %s", lpar.name, exc)
        vm.delete(self.host.adapter, lpar)
        self.host.states.gone(lpar.uuid)
