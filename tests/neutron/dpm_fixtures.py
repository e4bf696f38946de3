"""An HMC emulator for the DPM agent's tests, and the Nova side of a NIC.

The Nova driver's own NIC code (ibmvirt.dpm.nic) imports Nova, which cannot
share this process with Neutron; ``create_nic`` does what it does, with
zhmcclient: the name and description of ibmvirt.contract, the virtual switch
of the binding, and (z14 and later) the port's MAC.
"""

from __future__ import annotations

import uuid

import fixtures
import zhmcclient
from oslo_config import cfg

from ibmvirt import contract
from ibmvirt.conf import agent_dpm
from ibmvirt.emulators.hmc import HMCEmulatorFixture, inventories


class DpmHmc(fixtures.Fixture):
    """An HMC emulator with one CPC, and a Nova-side client of it."""

    def __init__(self, inventory: str = inventories.Z15, ids=None) -> None:
        super().__init__()
        self.inventory = inventory
        self.ids = ids or inventories.ALL[inventory]

    def _setUp(self) -> None:
        self.hmc = self.useFixture(HMCEmulatorFixture(self.inventory))
        self.emu = self.hmc.emulator
        self.client = zhmcclient.Client(self.hmc.session())
        self.cpc = self.client.cpcs.find(**{"object-id": self.ids.cpc})
        self.mac_settable = self.cpc.get_property("se-version") >= "2.14"
        self._macs = 0

    def configure(
        self, conf: cfg.ConfigOpts, mappings: list[str] | None, host: str = "host1"
    ) -> None:
        """The agent's [dpm] options pointing at this HMC, verifying its certificate
        (``mappings`` None: leave them to a config file)."""
        agent_dpm.register_opts(conf)
        conf.set_override("host", host)
        options = {
            "hmc": ["127.0.0.1"],
            "hmc_port": self.emu.port,
            "hmc_username": self.hmc.userid,
            "hmc_password": self.hmc.password,
            "hmc_ca_file": self.emu.ca_file,
            "cpc_object_id": self.ids.cpc,
        }
        if mappings is not None:
            options["physical_network_adapter_mappings"] = mappings
        for name, value in options.items():
            conf.set_override(name, value, "dpm")

    def partition(self, host: str = "host1", start: bool = False) -> zhmcclient.Partition:
        """A partition as Nova's driver creates it (stopped until Nova starts it)."""
        part = self.cpc.partitions.create(
            {
                "name": f"OpenStack-{host}-{uuid.uuid4()}",
                "ifl-processors": 1,
                "initial-memory": 1024,
                "maximum-memory": 1024,
            }
        )
        if start:
            part.start()
        return part

    def create_nic(
        self,
        partition: zhmcclient.Partition,
        port_id: str,
        vswitch_id: str,
        host: str = "host1",
        mac: str | None = None,
    ) -> zhmcclient.Nic:
        """The NIC Nova's DPM driver creates for a port bound as dpm_vswitch."""
        if mac is None:
            self._macs += 1
            mac = f"fa:16:3e:00:{self._macs >> 8:02x}:{self._macs & 0xFF:02x}"
        props = {
            "name": contract.dpm_nic_name(port_id),
            "description": contract.dpm_nic_description(host, mac),
            "virtual-switch-uri": f"/api/virtual-switches/{vswitch_id}",
        }
        if self.mac_settable:
            props["mac-address"] = mac
        return partition.nics.create(props)

    def remove_vswitch(self, object_id: str) -> dict:
        """The adapter behind a virtual switch is gone (e.g. a HiperSockets
        adapter deleted); returns its properties for ``restore_vswitch``."""
        with self.emu.lock:
            cpc = self.emu.faked_hmc.cpcs.lookup_by_oid(self.ids.cpc)
            props = dict(cpc.virtual_switches.lookup_by_oid(object_id).properties)
            cpc.virtual_switches.remove(object_id)
        return props

    def restore_vswitch(self, props: dict) -> None:
        with self.emu.lock:
            cpc = self.emu.faked_hmc.cpcs.lookup_by_oid(self.ids.cpc)
            cpc.virtual_switches.add(props)
