"""The PowerVM live-migrate-data object (Nova removed its own in Zed).

Nova's conductor deserializes ``migrate_data`` between the destination's and
the source's checks, so the class must be registered in nova-conductor as
well as in nova-compute: the compute driver imports this module, and
``ibmvirt-nova-conductor`` (``ibmvirt.cmd.nova_conductor``) imports it before
running Nova's conductor. It imports nothing but Nova, so a conductor host
needs no pypowervm.
"""

from __future__ import annotations

from nova.objects import base as obj_base
from nova.objects import fields, migrate_data


@obj_base.NovaObjectRegistry.register
class PowerVMLiveMigrateData(migrate_data.LiveMigrateData):
    """What the source needs from the destination to move an LPAR."""

    # Version 1.0: initial version (ibmvirt)
    VERSION = "1.0"

    fields = {
        #: The destination's managed system name (the Migrate job's target).
        "dest_sys_name": fields.StringField(),
        #: The destination NovaLink (management partition) address.
        "dest_ip": fields.StringField(),
        #: The destination's supported processor compatibility modes, comma-separated.
        "dest_proc_compat": fields.StringField(),
        #: The destination's memory region size (MB); LPM needs the source's to match.
        "dest_memory_region_mb": fields.IntegerField(),
        #: Where the destination's boot disks live (the SSP's UUID), or None.
        "dest_storage": fields.StringField(nullable=True),
        #: Volume id -> what the destination's connector prepared (its devices).
        "vol_data": fields.DictOfStringsField(),
        #: Adapter MAC (12 hex digits) -> PVID of the trunk prepared on the
        #: destination (ovs ports; pypowervm's VlanMappings).
        "vlan_mappings": fields.DictOfStringsField(),
    }

    def vlan_mapping_list(self) -> list[str]:
        """``MAC/PVID`` strings as pypowervm's migrate_lpar takes them."""
        mappings = self.vlan_mappings if "vlan_mappings" in self else {}
        return [f"{mac}/{pvid}" for mac, pvid in sorted(mappings.items())]


def register() -> None:
    """(Re-)register the class: Nova's test base restores the object registry
    after each test, dropping classes registered at import time."""
    classes = obj_base.NovaObjectRegistry.obj_classes().get(PowerVMLiveMigrateData.obj_name(), [])
    if PowerVMLiveMigrateData not in classes:
        obj_base.NovaObjectRegistry.register(PowerVMLiveMigrateData)
