"""A compute service taking itself out of scheduling and back (set_host_enabled,
host_maintenance_mode), in Nova's own service record and Placement.

The record is the state: nothing is kept in the driver, so it survives a
restart. A reason the driver sets starts with :data:`PREFIX` (Nova's mark of
an automatic disable): the driver re-enables only a service it disabled
itself, never one an operator disabled.
"""

from __future__ import annotations

from nova import context as nova_context
from nova import objects

PREFIX = "AUTO: "
MAINTENANCE = PREFIX + "maintenance mode (the compute driver's host_maintenance_mode)"
DISABLED = PREFIX + "disabled by the compute driver's set_host_enabled"


def set_state(virtapi, host: str, node_uuid: str, enabled: bool, reason: str) -> bool:
    """Disable the service of ``host`` with ``reason``, or enable it if it was
    disabled with that reason; also the COMPUTE_STATUS_DISABLED trait of its
    node. Returns whether the service is enabled afterwards."""
    ctx = nova_context.get_admin_context()
    service = objects.Service.get_by_compute_host(ctx, host)
    if not enabled and not service.disabled:
        service.disabled, service.disabled_reason = True, reason
        service.save()
    elif enabled and service.disabled and service.disabled_reason == reason:
        service.disabled, service.disabled_reason = False, None
        service.save()
    virtapi.update_compute_provider_status(ctx, node_uuid, not service.disabled)
    return not service.disabled
