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

import threading

import fixtures
import nova.tests.functional  # noqa: F401  (selects Nova's concurrency backend first)
from nova.tests import fixtures as nova_fixtures
from oslo_log import log as logging

import ibmvirt.conf  # noqa: F401  (registers [dpm])
from ibmvirt import contract
from ibmvirt.emulators.hmc import HMCEmulator, HMCEmulatorFixture, inventories
from ibmvirt.sandbox import harness
from ibmvirt.sandbox.fcarray import FibreChannelArray

LOG = logging.getLogger(__name__)

HMC_USER = "ibmvirt"
HMC_PASSWORD = "emulated-hmc-password"  # noqa: S105  (the emulator's own account)


def inventory_ids(inventory: str) -> inventories.InventoryIds:
    """Object-ids of a shipped inventory, for [dpm] options."""
    return {inventories.Z13: inventories.Z13_IDS, inventories.Z15: inventories.Z15_IDS}[inventory]


class DPMNeutron(nova_fixtures.NeutronFixture):
    """Neutron with the DPM ML2 driver: ports bind to a vswitch, go ACTIVE when
    the NIC shows up on the HMC, and Nova is told ``network-vif-plugged``."""

    def __init__(self, test, emulator: HMCEmulator, vswitch_object_id: str):
        super().__init__(test)
        self.emulator = emulator
        self.vswitch_object_id = vswitch_object_id
        self._plugged: set[str] = set()
        self._stop = threading.Event()
        #: Called with the port just before it is reported up (tests use it to
        #: act in the middle of a spawn, e.g. expire the HMC sessions).
        self.before_plug = None
        #: False plays a DPM agent that is down: NICs are never reported.
        self.agent_alive = True

    def setUp(self):
        super().setUp()
        # NeutronFixture turns vif-plugged waiting off; the DPM flow uses it.
        self.test.flags(vif_plugging_timeout=60, vif_plugging_is_fatal=True)
        agent = threading.Thread(target=self._agent_loop, name="dpm-agent", daemon=True)
        agent.start()
        self.addCleanup(agent.join, 5)
        self.addCleanup(self._stop.set)

    def create_port(self, body=None):
        """Neutron's default base_mac (fa:16:3e) gives locally administered MACs."""
        created = super().create_port(body)["port"]
        if created["mac_address"].startswith("00:"):
            created["mac_address"] = "fa:16:3e" + created["mac_address"][8:]
            self._ports[created["id"]]["mac_address"] = created["mac_address"]
        return {"port": created}

    def update_port(self, port_id, body=None):
        port_body = (body or {}).get("port", {})
        if port_body.get("binding:host_id"):
            port = self._ports[port_id]
            port["binding:vif_type"] = contract.VIF_TYPE_DPM_VSWITCH
            port["binding:vif_details"] = {
                "port_filter": False,
                contract.VIF_DETAILS_DPM_VSWITCH_ID: self.vswitch_object_id,
            }
            if port_id not in self._plugged:
                port["status"] = "DOWN"
        return super().update_port(port_id, body)

    # -- the agent half ---------------------------------------------------
    def _agent_loop(self) -> None:
        while not self._stop.wait(0.2):
            try:
                self._report_new_nics()
            except Exception:  # noqa: BLE001  (keep polling, as an agent would)
                LOG.exception("DPM agent emulation: polling the HMC failed")

    def _nic_exists_for(self, port: dict) -> bool:
        port_id, mac = port["id"], port["mac_address"].lower()
        for nic in hmc_nics(self.emulator):
            if port_id in (nic.get("name") or "") or port_id in (nic.get("description") or ""):
                return True
            if (nic.get("mac-address") or "").lower() == mac:
                return True
        return False

    def _report_new_nics(self) -> None:
        if not self.agent_alive:
            return
        for port in list(self._ports.values()):
            if (
                port["id"] in self._plugged
                or port.get("status") != "DOWN"
                or not port.get("device_id")
                or not self._nic_exists_for(port)
            ):
                continue
            self._plugged.add(port["id"])
            if self.before_plug is not None:
                self.before_plug(port)
            port["status"] = "ACTIVE"
            self.test.admin_api.api_post(
                "/os-server-external-events",
                {
                    "events": [
                        {
                            "name": "network-vif-plugged",
                            "server_uuid": port["device_id"],
                            "tag": port["id"],
                            "status": "completed",
                        }
                    ]
                },
            )


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
