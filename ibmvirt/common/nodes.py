"""Stable compute-node UUIDs derived from the hypervisor's identity.

Nova's default keeps a node id in a file under state_path; several compute
services on one machine (CPC subsets, or a NovaLink re-installed) would share or
lose it. A UUID derived from the machine's id and the host name needs no file
and survives a reinstall.
"""

from __future__ import annotations

import uuid

#: Namespace of every node UUID ibmvirt derives (kept: existing nodes use it).
_NODE_NAMESPACE = uuid.UUID("0d6a2a0e-8f7e-4b59-9a39-5c1f7b1d2e30")


def node_uuid(machine_id: str, host: str) -> str:
    """Compute node UUID of service ``host`` on the machine ``machine_id``."""
    return str(uuid.uuid5(_NODE_NAMESPACE, f"{machine_id.lower()}/{host}"))
