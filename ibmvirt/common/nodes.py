"""Stable compute-node UUIDs derived from the hypervisor's identity.

Nova's default keeps a node id in a file under state_path; several compute
services on one machine (CPC subsets, or a NovaLink re-installed) would share or
lose it. A UUID derived from the machine's id and the host name needs no file
and survives a reinstall. Nova 34 still insists that the file exists on every
start after the first, so the drivers write it (``remember_identity``).
"""

from __future__ import annotations

import logging
import uuid

from nova.virt import node as nova_node

LOG = logging.getLogger(__name__)

#: Namespace of every node UUID ibmvirt derives (kept: existing nodes use it).
_NODE_NAMESPACE = uuid.UUID("0d6a2a0e-8f7e-4b59-9a39-5c1f7b1d2e30")


def node_uuid(machine_id: str, host: str) -> str:
    """Compute node UUID of service ``host`` on the machine ``machine_id``."""
    return str(uuid.uuid5(_NODE_NAMESPACE, f"{machine_id.lower()}/{host}"))


def remember_identity(node: str) -> None:
    """Write Nova's node identity file (``state_path/compute_id``) if none exists.

    nova-compute refuses to start a second time without it ("No local node
    identity found"). Our node UUIDs do not depend on the file, so one that
    already exists (another service's on a shared state_path, or a UUID Nova
    generated before) is left as it is.
    """
    found = nova_node.read_local_node_uuid()
    if found is None:
        nova_node.write_local_node_uuid(node)
    elif found != node:
        LOG.info(
            "Nova's node identity file holds %s, not this service's node %s; kept "
            "(the driver's node UUID does not depend on it)",
            found,
            node,
        )
