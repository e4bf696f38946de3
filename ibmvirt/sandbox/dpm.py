"""The DPM driver inside real Nova, against the HMC emulator.

What Nova needs from outside the compute host is played here, as close to the
real services as the DPM flows require:

* Cinder is :class:`ibmvirt.sandbox.fcarray.FibreChannelArray`, shared with
  the PowerVM sandbox.
* ``DPMNeutron``: Neutron with the DPM mechanism driver and agent. Ports bind
  as ``dpm_vswitch`` with the vswitch object-id of their physical network and
  stay DOWN until the NIC appears on the HMC; then, like the DPM L2 agent and
  Neutron server together, the port goes ACTIVE and Nova receives
  ``network-vif-plugged``.
* ``DPMComputeTestBase``: the harness bases with an HMC emulator per test and
  ``[dpm]`` options pointing at it.
"""

from __future__ import annotations

import fixtures
import nova.tests.functional  # noqa: F401  (selects Nova's concurrency backend first)
from oslo_log import log as logging

import ibmvirt.conf  # noqa: F401  (registers [dpm])
from ibmvirt import contract
from ibmvirt.emulators.hmc import HMCEmulator, HMCEmulatorFixture, inventories
from ibmvirt.sandbox import harness
from ibmvirt.sandbox.fcarray import FibreChannelArray
from ibmvirt.sandbox.neutron import AgentNeutron

LOG = logging.getLogger(__name__)

HMC_USER = "ibmvirt"
HMC_PASSWORD = "emulated-hmc-password"  # noqa: S105  (the emulator's own account)


def inventory_ids(inventory: str) -> inventories.InventoryIds:
    """Object-ids of a shipped inventory, for [dpm] options."""
    return {inventories.Z13: inventories.Z13_IDS, inventories.Z15: inventories.Z15_IDS}[inventory]


class DPMNeutron(AgentNeutron):
    """Neutron with the DPM ML2 driver: ports bind to a vswitch, go ACTIVE when
    the NIC shows up on the HMC, and Nova is told ``network-vif-plugged``."""

    agent_name = "dpm-agent"

    def __init__(self, test, emulator: HMCEmulator, vswitch_object_id: str):
        super().__init__(test)
        self.emulator = emulator
        self.vswitch_object_id = vswitch_object_id

    def bind(self, port: dict) -> None:
        port["binding:vif_type"] = contract.VIF_TYPE_DPM_VSWITCH
        # What the dpm mechanism driver binds (flat: the sandbox has no VLANs).
        port["binding:vif_details"] = contract.dpm_vif_details(
            contract.dpm_backing(vswitch_id=self.vswitch_object_id), None
        )

    def agent_sees(self, ports: list[dict]) -> set[str]:
        """A NIC naming the port (name or description) or carrying its MAC."""
        nics = hmc_nics(self.emulator)
        seen = set()
        for port in ports:
            port_id, mac = port["id"], port["mac_address"].lower()
            for nic in nics:
                if (
                    port_id in (nic.get("name") or "")
                    or port_id in (nic.get("description") or "")
                    or (nic.get("mac-address") or "").lower() == mac
                ):
                    seen.add(port_id)
                    break
        return seen


def hmc_nics(emulator: HMCEmulator) -> list[dict]:
    """Properties of every NIC on the emulated HMC, read from its state directly
    (not over the API, so request counts stay the driver's own)."""
    with emulator.lock:
        return [
            dict(nic.properties)
            for cpc in emulator.faked_hmc.cpcs.list()
            for partition in cpc.partitions.list()
            for nic in partition.nics.list()
        ]


def add_latency(emulator: HMCEmulator, seconds: float) -> None:
    """Delay every request to the emulated HMC, as a remote, busy HMC would."""
    emulator.request_delay = seconds


class DPMComputeMixin:
    """[dpm] options for a compute host on the emulated CPC."""

    compute_driver = "ibmvirt.DPMDriver"
    inventory = inventories.Z15
    max_processors = 8
    max_memory = 65536
    #: The inventory's virtual switch that Neutron binds ports to.
    vswitch = "vswitch_osa_port0"
    #: Seconds partition start/stop jobs run on the emulated HMC.
    op_delay = 0.0
    #: Seconds every HMC request takes (benchmarks with a realistic HMC).
    request_latency = 0.0

    def driver_flags(self):
        self.hmc_fixture = self.useFixture(
            HMCEmulatorFixture(
                self.inventory, op_delay=self.op_delay, userid=HMC_USER, password=HMC_PASSWORD
            )
        )
        self.hmc = emu = self.hmc_fixture.emulator
        if self.request_latency:
            add_latency(emu, self.request_latency)
        self.ids = ids = inventory_ids(self.inventory)
        self.flags(
            group="dpm",
            hmc=[emu.host],
            hmc_port=emu.port,
            hmc_username=HMC_USER,
            hmc_password=HMC_PASSWORD,
            hmc_ca_file=emu.ca_file,
            cpc_object_id=ids.cpc,
            max_processors=self.max_processors,
            max_memory=self.max_memory,
            physical_storage_adapter_mappings=[f"{a}:0" for a in ids.fcp_adapters],
        )

    def setUp(self):
        # Nova's bases build their Cinder and Neutron fixtures by these names.
        self.useFixture(fixtures.MockPatch("nova.tests.fixtures.CinderFixture", self._make_cinder))
        self.useFixture(
            fixtures.MockPatch("nova.tests.fixtures.NeutronFixture", self._make_neutron)
        )
        super().setUp()

    def boot_from_volume(self, networks, expected_state="ACTIVE", host=None, **server):
        """Boot a server from a new blank volume, as ``openstack server create
        --boot-from-volume 1`` does; wait for ``expected_state``."""
        body = self._build_server(networks=networks, **server)
        body.pop("imageRef")
        body["block_device_mapping_v2"] = [
            {
                "source_type": "blank",
                "destination_type": "volume",
                "boot_index": 0,
                "volume_size": 1,
            }
        ]
        if host:
            body["availability_zone"] = f"nova:{host}"
        created = self.api.post_server({"server": body})
        return self._wait_for_state_change(created, expected_state)

    def _make_cinder(self, test):
        self.array = FibreChannelArray(test)
        return self.array

    def _make_neutron(self, test):
        self.dpm_neutron = DPMNeutron(test, self.hmc, getattr(self.ids, self.vswitch))
        return self.dpm_neutron


class DPMSingleComputeTestBase(DPMComputeMixin, harness.SingleComputeTestBase):
    """Real Nova with one DPM compute host ``compute``."""


class DPMMultiComputeTestBase(DPMComputeMixin, harness.MultiComputeTestBase):
    """Real Nova; tests start DPM compute hosts with ``self._start_compute``."""


class HMCView:
    """What an operator would see on the emulated HMC, read from its state.

    Reads go straight to the emulator's state (under its lock), not over the
    API, so that request counts stay those of the driver under test.
    """

    def __init__(self, emulator: HMCEmulator):
        self.emulator = emulator

    def _cpc(self):
        return self.emulator.faked_hmc.cpcs.list()[0]

    def partitions(self) -> dict[str, dict]:
        with self.emulator.lock:
            return {p.properties["name"]: dict(p.properties) for p in self._cpc().partitions.list()}

    def partition(self, name: str) -> dict:
        return self.partitions()[name]

    def _faked_partition(self, name: str):
        for p in self._cpc().partitions.list():
            if p.properties["name"] == name:
                return p
        raise KeyError(name)

    def nics(self, partition: str) -> list[dict]:
        with self.emulator.lock:
            return [dict(n.properties) for n in self._faked_partition(partition).nics.list()]

    def hbas(self, partition: str) -> list[dict]:
        with self.emulator.lock:
            return [dict(h.properties) for h in self._faked_partition(partition).hbas.list()]

    def storage_groups(self) -> dict[str, dict]:
        """Storage groups by name, each with its ``volumes`` and ``vsrs``."""
        with self.emulator.lock:
            groups = {}
            for console in self.emulator.faked_hmc.consoles.list():
                for sg in console.storage_groups.list():
                    props = dict(sg.properties)
                    props["volumes"] = [dict(v.properties) for v in sg.storage_volumes.list()]
                    props["vsrs"] = [
                        dict(v.properties) for v in sg.virtual_storage_resources.list()
                    ]
                    groups[props["name"]] = props
            return groups

    def owned_by(self, host: str) -> list[str]:
        """Every partition and storage group whose name marks ``host`` as owner."""
        prefix = f"OpenStack-{host}-"
        names = [n for n in self.partitions() if n.startswith(prefix)]
        names += [f"storage-group:{n}" for n in self.storage_groups() if n.startswith(prefix)]
        return names
