"""Names and descriptions that mark HMC objects as owned by one compute host.

Ownership is read back from the HMC itself (no local database): a partition
named ``OpenStack-<host>-<instance uuid>`` belongs to the nova-compute service
whose ``[DEFAULT] host`` is ``<host>``, so several services can share one CPC
without seeing each other's partitions.
"""

from __future__ import annotations

import re

#: Partition and storage-group names are String(1-64) on the HMC.
MAX_NAME_LENGTH = 64
PREFIX = "OpenStack"
_UUID = r"[0-9a-f]{8}-(?:[0-9a-f]{4}-){3}[0-9a-f]{12}"
#: ``OpenStack-`` + ``-`` + a 36-character UUID.
MAX_HOST_LENGTH = MAX_NAME_LENGTH - len(PREFIX) - 2 - 36


def partition_name(host: str, instance_uuid: str) -> str:
    """Name of the partition (and z14+ storage group) of an instance."""
    return f"{PREFIX}-{host}-{instance_uuid}"


def partition_description(host: str, instance_name: str = "") -> str:
    """Description naming the owning host, for operators looking at the HMC."""
    desc = f"{PREFIX} CPCSubset={host}"
    return f"{desc} instance={instance_name}" if instance_name else desc


def storage_group_description(host: str) -> str:
    """Description of an instance's storage group, naming the owning host."""
    return f"{PREFIX} CPCSubset={host} boot and data volumes"


def hba_name(adapter_id: str, port: str) -> str:
    """HBA name: one HBA per configured adapter port, unique in the partition."""
    return f"{PREFIX}_Port_{adapter_id}_{port}"


def hba_description(host: str) -> str:
    """Description of an HBA, naming the owning host."""
    return f"{PREFIX} CPCSubset={host}"


def owned_name_pattern(host: str) -> re.Pattern[str]:
    """Regex matching exactly the partition names created by ``host``."""
    return re.compile(rf"^{PREFIX}-{re.escape(host)}-({_UUID})$")


def owned_name_filter(host: str) -> str:
    """Server-side name filter (HMC regex) narrowing a partition list to ``host``."""
    return f"{PREFIX}-{re.escape(host)}-.*"


def instance_uuid_from_name(host: str, name: str) -> str | None:
    """The instance UUID in a partition name owned by ``host``, else None."""
    m = owned_name_pattern(host).match(name or "")
    return m.group(1) if m else None
