"""Waiting for Neutron's ``network-vif-plugged`` events while a driver plugs NICs.

Both drivers create the hypervisor side of a port and then need Neutron's L2
agent to report it up before the guest boots; Nova's virtapi does the waiting.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from nova import conf as nova_conf
from nova import exception
from oslo_log import log as logging

LOG = logging.getLogger(__name__)
CONF = nova_conf.CONF


def plug_events(network_info) -> list[tuple[str, str]]:
    """The events to wait for: one per VIF Neutron has not reported active yet."""
    if not CONF.vif_plugging_timeout:
        return []
    return [
        ("network-vif-plugged", vif["id"])
        for vif in network_info
        if vif.get("active", True) is False
    ]


def _neutron_failed(event_name, instance) -> None:
    LOG.error("Neutron reported failure on event %s", event_name, instance=instance)
    if CONF.vif_plugging_is_fatal:
        raise exception.VirtualInterfaceCreateException()


@contextlib.contextmanager
def vifs_plugged(virtapi, instance, network_info) -> Iterator[None]:
    """Run the body (which plugs the VIFs) inside Nova's wait for their events.

    Honours ``vif_plugging_timeout`` (0: no wait) and ``vif_plugging_is_fatal``
    (a timeout or a failed event then fails the operation).
    """
    events = plug_events(network_info or [])
    try:
        with virtapi.wait_for_instance_event(
            instance, events, timeout=CONF.vif_plugging_timeout, error_callback=_neutron_failed
        ):
            yield
    except exception.InstanceEventTimeout:
        LOG.warning("Timeout waiting for network-vif-plugged events", instance=instance)
        if CONF.vif_plugging_is_fatal:
            raise exception.VirtualInterfaceCreateException() from None
