"""End to end: what the driver writes on the HMC is what the guest configures.

A server boots through Nova with NICs on the OSA adapter's port 1; the value
the HMC then holds in boot-os-specific-parameters becomes the kernel command
line of a fake guest running the real guest tools (guest-tools/dpm). The guest
must bring up exactly the partition's NICs, on the virtual switch's port, and
(on a z13) give each interface its Neutron MAC.
"""

import tempfile
from pathlib import Path

from ibmvirt.emulators.hmc import inventories
from ibmvirt.sandbox import dpm
from tests.guest_tools.fakeguest import FakeGuest
from tests.guest_tools.test_contract import IMAGE_ARGS, boot


class GuestContractScenarios:
    vswitch = "vswitch_osa_port1"

    def test_guest_configures_what_the_driver_created(self):
        view = dpm.HMCView(self.hmc)
        server = self._create_server_boot_from_volume(
            networks=[{"port": self.neutron.port_1["id"]}]
        )
        self.api.attach_interface(
            server["id"], {"interfaceAttachment": {"net_id": self.neutron.network_1["id"]}}
        )
        self.notifier.wait_for_versioned_notifications("instance.interface_attach.end")
        name = f"OpenStack-compute-{server['id']}"
        nics = view.nics(name)
        self.assertEqual(2, len(nics))
        value = view.partition(name)["boot-os-specific-parameters"]

        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "root"
            root.mkdir()
            ports, macs = boot(FakeGuest(root), f"{IMAGE_ARGS} {value}")

        bus_ids = {f"0.0.{n['device-number'].lower()}" for n in nics}
        self.assertEqual({b: 1 for b in bus_ids}, ports)  # the vswitch is on port 1
        self.assertEqual(self.expected_macs(nics), macs)

    def expected_macs(self, nics):
        return {}


class TestZ13(GuestContractScenarios, dpm.DPMSingleComputeTestBase):
    inventory = inventories.Z13

    def expected_macs(self, nics):
        # The HMC cannot set the MAC: the guest sets the Neutron MAC of each port.
        port_macs = {p["id"]: p["mac_address"] for p in self.neutron._ports.values()}
        return {
            f"0.0.{n['device-number'].lower()}": next(
                mac for port_id, mac in port_macs.items() if port_id in n["name"]
            )
            for n in nics
        }


class TestZ15(GuestContractScenarios, dpm.DPMSingleComputeTestBase):
    """The HMC set the MACs at NIC creation; the guest leaves them alone."""

    inventory = inventories.Z15
