"""What the emulated PowerVM host offers to placement, as the scheduler sees it."""

from __future__ import annotations

import math

from nova import context as nova_context

from ibmvirt.sandbox import powervm


class TestInventory(powervm.PowerVMSingleComputeTestBase):
    def _provider(self):
        rps = self.placement.get("/resource_providers", version="1.14").body
        (rp,) = rps["resource_providers"]
        return rp

    def _io_partitions(self):
        """Processor units and memory of the VIOSes and the NovaLink partition."""
        emu = self.novalink.emu
        with emu.lock:
            parts = list(emu.store.list("VirtualIOServer")) + [
                p
                for p in emu.store.list("LogicalPartition")
                if p.field("IsManagementPartition") == "true"
            ]
            units = sum(float(p.elem.findtext(".//{*}DesiredProcessingUnits")) for p in parts)
            memory = sum(int(p.elem.findtext(".//{*}DesiredMemory")) for p in parts)
        return units, memory

    def test_vcpu_memory_and_disk_inventory(self):
        rp = self._provider()
        inv = self.placement.get(
            f"/resource_providers/{rp['uuid']}/inventories", version="1.14"
        ).body["inventories"]
        units, memory = self._io_partitions()
        with self.novalink.emu.lock:
            ms = self.novalink.emu.ms
            configurable_units = float(ms.elem.findtext(".//{*}ConfigurableSystemProcessorUnits"))
            configurable_mb = int(ms.elem.findtext(".//{*}ConfigurableSystemMemory"))
        # A vCPU is proc_units_factor (0.1) processor units; no overcommit by default.
        self.assertEqual(round(configurable_units / 0.1), inv["VCPU"]["total"])
        self.assertEqual(math.ceil(units / 0.1 - 1e-9), inv["VCPU"]["reserved"])
        self.assertEqual(1.0, inv["VCPU"]["allocation_ratio"])
        self.assertEqual(configurable_mb, inv["MEMORY_MB"]["total"])
        self.assertEqual(memory, inv["MEMORY_MB"]["reserved"])
        self.assertEqual(500, inv["DISK_GB"]["total"])  # datavg of the small inventory
        traits = self.placement.get(f"/resource_providers/{rp['uuid']}/traits", version="1.6").body[
            "traits"
        ]
        self.assertIn("HW_ARCH_PPC64LE", traits)
        self.assertIn("COMPUTE_IMAGE_TYPE_RAW", traits)
        self.assertNotIn("COMPUTE_IMAGE_TYPE_QCOW2", traits)

    def test_an_operators_ratio_and_reservation_are_added(self):
        self.flags(cpu_allocation_ratio=2.0, reserved_host_cpus=3)
        self.computes["compute"].manager.update_available_resource(nova_context.get_admin_context())
        rp = self._provider()
        inv = self.placement.get(
            f"/resource_providers/{rp['uuid']}/inventories", version="1.14"
        ).body["inventories"]
        units, _ = self._io_partitions()
        self.assertEqual(2.0, inv["VCPU"]["allocation_ratio"])
        self.assertEqual(math.ceil(units / 0.1 - 1e-9) + 3, inv["VCPU"]["reserved"])
