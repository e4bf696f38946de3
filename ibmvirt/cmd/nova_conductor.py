"""``ibmvirt-nova-conductor``: Nova's conductor with ibmvirt's objects registered.

Run it instead of ``nova-conductor`` (same arguments) in a cloud with PowerVM
compute hosts: the conductor deserializes the PowerVM live-migrate-data
between the destination's and the source's checks, and a plain
nova-conductor does not know the class (the live migration then fails with
"Unsupported object type PowerVMLiveMigrateData").
"""

from __future__ import annotations


def main() -> None:
    from nova.cmd import conductor

    import ibmvirt.powervm.lpm_data  # noqa: F401  (registers PowerVMLiveMigrateData)

    conductor.main()
