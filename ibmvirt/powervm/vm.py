"""LPARs as Nova instances: names, UUIDs, states, power and lookups.

A Nova instance is one client LPAR whose PowerVM UUID is the instance UUID
with the top bit cleared (PowerVM's rule) and whose name is the instance name.
Functions take an adapter and names or UUIDs, never Nova objects beyond the
instance, so tasks and the driver stay thin.
"""

from __future__ import annotations

import json
import re

import pypowervm.exceptions as pvm_ex
from nova import exception
from nova.compute import power_state
from nova.virt import hardware
from oslo_concurrency import lockutils
from oslo_log import log as logging
from pypowervm import util as pvm_util
from pypowervm.tasks import power as pvm_power
from pypowervm.tasks import power_opts as pvm_popts
from pypowervm.utils import uuid as pvm_uuid
from pypowervm.wrappers import base_partition as pvm_bp
from pypowervm.wrappers import logical_partition as pvm_lpar

LOG = logging.getLogger(__name__)
_UUID_FORM = re.compile(r"^[0-9A-Fa-f]{8}-([0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}$")

S = pvm_bp.LPARState
#: PowerVM partition state -> Nova power state (unlisted states: NOSTATE).
POWER_STATES = {
    S.MIGRATING_RUNNING: power_state.RUNNING,
    S.RUNNING: power_state.RUNNING,
    S.STARTING: power_state.RUNNING,
    S.OPEN_FIRMWARE: power_state.RUNNING,
    S.SHUTTING_DOWN: power_state.RUNNING,
    S.SUSPENDING: power_state.RUNNING,
    S.MIGRATING_NOT_ACTIVE: power_state.SHUTDOWN,
    S.NOT_ACTIVATED: power_state.SHUTDOWN,
    S.RESUMING: power_state.SUSPENDED,
    S.SUSPENDED: power_state.SUSPENDED,
    S.ERROR: power_state.CRASHED,
}
#: States from which a power-on is possible / a power-off is needed.
STARTABLE = {S.NOT_ACTIVATED}
STOPPABLE = {
    S.RUNNING,
    S.STARTING,
    S.OPEN_FIRMWARE,
    S.SHUTTING_DOWN,
    S.ERROR,
    S.RESUMING,
    S.SUSPENDING,
}


def pvm_uuid_of(instance) -> str:
    """The LPAR UUID of a Nova instance (PowerVM clears the top bit), upper case."""
    return pvm_uuid.convert_uuid_to_pvm(instance.uuid).upper()


def is_lpar_uuid(text: str) -> bool:
    """Whether ``text`` has the form of a partition UUID."""
    return bool(_UUID_FORM.match(text or ""))


def nova_uuid_candidates(lpar_uuid: str) -> list[str]:
    """Nova UUIDs an LPAR UUID may come from: as is, or with the top bit set."""
    low = lpar_uuid.lower()
    high = f"{int(low[0], 16) | 8:x}{low[1:]}"
    return [low] if high == low else [low, high]


def lpar_name(instance) -> str:
    """The partition name: the instance name, made acceptable to PowerVM."""
    return pvm_util.sanitize_partition_name_for_api(instance.name)


def power_state_of(pvm_state: str | None) -> int:
    return POWER_STATES.get(pvm_state, power_state.NOSTATE)


def instance_info(pvm_state: str | None) -> hardware.InstanceInfo:
    return hardware.InstanceInfo(state=power_state_of(pvm_state))


def get_lpar(adapter, instance, xag=None) -> pvm_lpar.LPAR:
    """The instance's LPAR wrapper; InstanceNotFound if there is none."""
    try:
        return pvm_lpar.LPAR.get(adapter, uuid=pvm_uuid_of(instance), xag=xag or [])
    except pvm_ex.HttpNotFound:
        raise exception.InstanceNotFound(instance_id=instance.uuid) from None


def find_lpar(adapter, instance, xag=None) -> pvm_lpar.LPAR | None:
    try:
        return get_lpar(adapter, instance, xag)
    except exception.InstanceNotFound:
        return None


def read_state(adapter, lpar_uuid: str) -> str | None:
    """One LPAR's PartitionState (a quick property: a small JSON read); None if gone."""
    try:
        resp = adapter.read(
            pvm_lpar.LPAR.schema_type,
            root_id=lpar_uuid,
            suffix_type="quick",
            suffix_parm="PartitionState",
        )
    except pvm_ex.HttpNotFound:
        return None
    return json.loads(resp.body) if resp.body.startswith('"') else resp.body


def read_all_states(adapter, host_uuid: str) -> dict[str, str]:
    """Every client LPAR's state in one request (``quick/All``), by LPAR UUID."""
    resp = adapter.read(
        "ManagedSystem",
        root_id=host_uuid,
        child_type=pvm_lpar.LPAR.schema_type,
        suffix_type="quick",
        suffix_parm="All",
    )
    entries = json.loads(resp.body) if resp.body else []
    return {
        e["UUID"].upper(): e.get("PartitionState")
        for e in entries
        if str(e.get("IsManagementPartition", "false")).lower() != "true"
    }


def _power_lock(lpar_uuid: str):
    # One power operation per LPAR at a time (NovaLink runs one; a second fails).
    return lockutils.lock(f"powervm-power-{lpar_uuid}")


def power_on(lpar: pvm_lpar.LPAR, opts: pvm_popts.PowerOnOpts | None = None) -> bool:
    """Start the LPAR if it is off; False if it was not startable."""
    with _power_lock(lpar.uuid):
        lpar = lpar.refresh()
        if lpar.state not in STARTABLE:
            return False
        pvm_power.PowerOp.start(lpar, opts=opts)
        return True


def power_off(lpar: pvm_lpar.LPAR, timeout: int = 0, restart: bool = False) -> bool:
    """Stop the LPAR; with ``timeout``, OS shutdown first, then VSP normal, then hard.

    Returns False if it was not running.
    """
    with _power_lock(lpar.uuid):
        lpar = lpar.refresh()
        if lpar.state not in STOPPABLE:
            return False
        if timeout:
            pvm_power.power_off_progressive(lpar, restart=restart, timeout=timeout)
        else:
            opts = pvm_popts.PowerOffOpts().vsp_hard()
            if restart:
                opts = opts.restart()
            pvm_power.PowerOp.stop(lpar, opts=opts)
        return True


def _flavor_attributes(host, instance, flavor_obj, image_meta) -> dict:
    from ibmvirt.powervm import flavor

    return flavor.lpar_attributes(
        flavor_obj,
        image_meta,
        name=lpar_name(instance),
        pvm_uuid=pvm_uuid_of(instance),
        shared_proc_pool_id=host.shared_proc_pool_id,
    )


def check_flavor(host, instance, flavor_obj, image_meta, conf) -> None:
    """Refuse a flavor this host cannot give the LPAR (its extra specs against
    the host's pools, modes and memory regions), before anything changes."""
    from ibmvirt.powervm import flavor

    flavor.check_buildable(
        host.adapter,
        host.require_system(),
        _flavor_attributes(host, instance, flavor_obj, image_meta),
        proc_units_factor=conf.powervm.proc_units_factor,
        uncapped_weight=conf.powervm.uncapped_proc_weight,
    )


def apply_flavor(host, instance, flavor_obj, image_meta, conf) -> pvm_lpar.LPAR:
    """Give the (powered-off) LPAR the flavor's processors, memory and
    ``powervm:*`` settings; its adapters and storage stay."""
    from ibmvirt.powervm import flavor

    wrapper = flavor.rebuild_lpar(
        host.adapter,
        host.refresh_system(),
        get_lpar(host.adapter, instance),
        _flavor_attributes(host, instance, flavor_obj, image_meta),
        proc_units_factor=conf.powervm.proc_units_factor,
        uncapped_weight=conf.powervm.uncapped_proc_weight,
    )
    return wrapper.update()


def dump_restart(lpar: pvm_lpar.LPAR) -> None:
    """Tell the running OS to take a system dump and restart (``dumprestart``)."""
    with _power_lock(lpar.uuid):
        lpar = lpar.refresh()
        if lpar.state != S.RUNNING:
            raise exception.InstanceNotRunning(instance_id=lpar.name)
        opts = pvm_popts.PowerOffOpts().operation(pvm_popts.PowerOffOperation.DUMPRESTART)
        pvm_power.PowerOp.stop(lpar, opts=opts)


def delete(adapter, lpar: pvm_lpar.LPAR) -> None:
    """Delete the LPAR; fine if already gone."""
    try:
        lpar.refresh().delete()
    except pvm_ex.HttpNotFound:
        LOG.info("LPAR %s was already deleted", lpar.name)


def list_client_lpars(adapter) -> list[pvm_lpar.LPAR]:
    """Every client LPAR of the host (the NovaLink partition excluded)."""
    return [lp for lp in pvm_lpar.LPAR.get(adapter, xag=[]) if not lp.is_mgmt_partition]
