"""Shipped HMC emulator inventories and the fixed object-ids they contain.

Why: driver tests and the demo configure ``[dpm] cpc_object_id``, storage adapter
mappings and vswitch/adapter mappings by object-id, so the ids in the shipped YAML
files are fixed and exported here. The files use zhmcclient.mock's HMC definition
format (``FakedSession.from_hmc_yaml``).

    from ibmvirt.emulators.hmc import inventories
    inventories.Z13            # path of z13.yaml (HBA storage, no MAC at NIC create)
    inventories.Z15            # path of z15.yaml (DPM storage management)
    inventories.Z15_IDS.cpc    # '15c0c000-0000-4000-8000-000000000001'
"""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = ["Z13", "Z15", "Z13_IDS", "Z15_IDS", "InventoryIds", "ALL"]

_HERE = os.path.dirname(os.path.abspath(__file__))

#: z13 (2964, SE 2.13.1): FCP through HBAs; NIC MAC generated, not settable.
Z13 = os.path.join(_HERE, "z13.yaml")
#: z15 (8561, SE 2.15.0): dpm-storage-management (storage groups, VSRs, fulfillment).
Z15 = os.path.join(_HERE, "z15.yaml")


@dataclass(frozen=True)
class InventoryIds:
    """Object-ids and names of the resources of one shipped inventory."""

    cpc: str
    cpc_name: str
    fcp_adapters: tuple[str, str]  # each has one storage port, element-id '0'
    osa_adapter: str  # two network ports, element-ids '0' and '1'
    hipersockets_adapter: str  # one network port, element-id '0'
    vswitch_osa_port0: str
    vswitch_osa_port1: str
    vswitch_hipersockets: str
    processor_count_ifl: int
    storage_customer_mib: int
    se_version: str
    dpm_storage_management: bool


def _ids(gen: str, name: str, ifl: int, mem: int, se: str, sm: bool) -> InventoryIds:
    return InventoryIds(
        cpc=f"{gen}c0c000-0000-4000-8000-000000000001",
        cpc_name=name,
        fcp_adapters=(
            f"{gen}fc0000-0000-4000-8000-000000000120",
            f"{gen}fc0000-0000-4000-8000-000000000121",
        ),
        osa_adapter=f"{gen}a50000-0000-4000-8000-000000000130",
        hipersockets_adapter=f"{gen}e50000-0000-4000-8000-0000000007c0",
        vswitch_osa_port0=f"{gen}d50000-0000-4000-8000-000000001300",
        vswitch_osa_port1=f"{gen}d50000-0000-4000-8000-000000001301",
        vswitch_hipersockets=f"{gen}d50000-0000-4000-8000-0000000017c0",
        processor_count_ifl=ifl,
        storage_customer_mib=mem,
        se_version=se,
        dpm_storage_management=sm,
    )


Z13_IDS = _ids("13", "Z13A", 24, 1048576, "2.13.1", False)
Z15_IDS = _ids("15", "Z15A", 34, 2097152, "2.15.0", True)

#: inventory path -> its ids, for parametrised tests
ALL: dict[str, InventoryIds] = {Z13: Z13_IDS, Z15: Z15_IDS}


def with_hmc_version(inventory: str, hmc_version: str, api_version: str, directory: str) -> str:
    """A copy of ``inventory`` whose HMC has another version (e.g. a z15 managed
    by an HMC 2.16.0, API 4.10); the CPC is unchanged. Returns the new path."""
    import yaml  # zhmcclient.mock's own dependency

    with open(inventory, encoding="utf-8") as f:
        data = yaml.safe_load(f)
    hmc = data["hmc_definition"]
    hmc["api_version"] = api_version
    hmc["consoles"][0]["properties"]["version"] = hmc_version
    path = os.path.join(directory, f"{os.path.basename(inventory)[:-5]}-hmc{hmc_version}.yaml")
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(data, f, sort_keys=False)
    return path
