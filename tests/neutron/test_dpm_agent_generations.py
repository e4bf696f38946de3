"""The z16 and z17 branches of the DPM agent, on zhmcclient's own mock.

The HMC emulator has z13 and z15 inventories only (z16/z17 are a later
issue), so these CPCs are zhmcclient.mock FakedSessions: a z17 with the CPC
API feature network-express-support and no virtual switches, and a z16 HMC
with dpm-hipersockets-partition-link-management. The mock has no partition
links; they are patched into zhmcclient's PartitionLinkManager.list, and how a
link names its HiperSockets adapter is guessed (see dpm_mappings).
"""

from __future__ import annotations

from unittest import mock

import testtools
import zhmcclient
from zhmcclient.mock import FakedSession

from ibmvirt import contract
from ibmvirt.conf.types import NetworkAdapterMapping
from ibmvirt.neutron.agent import dpm
from ibmvirt.neutron.agent import dpm_mappings as mappings

CPC_ID = "17c0c000-0000-4000-8000-000000000001"
NEXP_ID = "17a50000-0000-4000-8000-000000000130"
OSA_ID = "16a50000-0000-4000-8000-000000000130"
HS_ID = "17e50000-0000-4000-8000-0000000007c0"
HS_VSWITCH_ID = "16d50000-0000-4000-8000-0000000017c0"
OSA_VSWITCH_ID = "16d50000-0000-4000-8000-000000001300"
PARTITION = {"ifl-processors": 1, "initial-memory": 1024, "maximum-memory": 1024}
LINK_ID = HS_ID  # guessed: a HiperSockets partition link shares its adapter's object-id


def adapter(object_id, name, adapter_type, family, ports):
    return {
        "properties": {
            "object-id": object_id,
            "name": name,
            "type": adapter_type,
            "adapter-family": family,
            "status": "active",
            "port-count": ports,
        },
        "ports": [
            {"properties": {"element-id": str(i), "name": f"Port {i}", "index": i}}
            for i in range(ports)
        ],
    }


def vswitch(object_id, adapter_id, port):
    return {
        "properties": {
            "object-id": object_id,
            "name": f"VS-{object_id[-4:]}",
            "type": "hipersockets" if adapter_id == HS_ID else "osd",
            "backing-adapter-uri": f"/api/adapters/{adapter_id}",
            "port": port,
        }
    }


def faked_client(se_version, cpc_features, console_features, adapters, vswitches):
    hmc_version = se_version
    session = FakedSession("hmc.example.com", "HMC", hmc_version, "4.10")
    session.hmc.add_resources(
        {
            "consoles": [{"properties": {"name": "HMC", "version": hmc_version}}],
            "cpcs": [
                {
                    "properties": {
                        "object-id": CPC_ID,
                        "name": "ZNEXT",
                        "dpm-enabled": True,
                        "se-version": se_version,
                    },
                    "adapters": adapters,
                    "virtual_switches": vswitches,
                }
            ],
        }
    )
    session.hmc.consoles.list()[0].api_features = list(console_features)
    faked_cpc = session.hmc.cpcs.list()[0]
    faked_cpc.api_features = list(cpc_features)
    for faked in faked_cpc.adapters.list():
        # The mock knows no network-express family: give it its network ports.
        if faked.properties.get("adapter-family") == "network-express":
            faked.properties["network-port-uris"] = [
                f"{faked.uri}/network-ports/{i}" for i in range(faked.properties["port-count"])
            ]
    client = zhmcclient.Client(session)
    return client, client.cpcs.find(**{"object-id": CPC_ID})


def lines(*values):
    parse = NetworkAdapterMapping()
    return [parse(v) for v in values]


class TestZ17NetworkExpress(testtools.TestCase):
    """No virtual switches: NICs are backed by adapter ports."""

    def setUp(self):
        super().setUp()
        self.client, self.cpc = faked_client(
            "2.17.0",
            [mappings.FEATURE_NETWORK_EXPRESS],
            [],
            [
                adapter(NEXP_ID, "NEXP-0130", "network-express", "network-express", 2),
                adapter(HS_ID, "HS-7C0", "hipersockets", "hipersockets", 1),
                adapter("17fc0000-0000-4000-8000-000000000120", "FCP", "fcp", "ficon", 1),
            ],
            [],
        )
        self.features = mappings.Features.detect(self.client, self.cpc)
        self.port_uri = f"/api/adapters/{NEXP_ID}/network-ports/1"

    def test_features_detected_not_read_from_the_machine_type(self):
        self.assertEqual(
            mappings.Features(
                list_additional_properties=True,
                partition_links=False,
                network_express=True,
                nic_vlan=True,
            ),
            self.features,
        )

    def test_lines_translate_to_adapter_port_uris(self):
        backings = mappings.resolve(
            self.client, self.cpc, lines(f"net1:{NEXP_ID}:1", f"net2:{HS_ID}"), self.features
        )
        self.assertEqual(
            [
                contract.dpm_backing(adapter_port_uri=self.port_uri),
                contract.dpm_backing(adapter_port_uri=f"/api/adapters/{HS_ID}/network-ports/0"),
            ],
            [b.reported for b in backings],
        )

    def test_fcp_adapter_still_refused(self):
        error = self.assertRaises(
            mappings.MappingError,
            mappings.resolve,
            self.client,
            self.cpc,
            lines("net1:17fc0000-0000-4000-8000-000000000120"),
            self.features,
        )
        self.assertIn("needs an OSA (osd) or HiperSockets or Network Express adapter", str(error))

    def test_nics_on_the_adapter_port_are_devices(self):
        backings = mappings.resolve(
            self.client, self.cpc, lines(f"net1:{NEXP_ID}:1"), self.features
        )
        manager = dpm.DpmAgentManager(self.client, self.cpc, "host1", backings, self.features)
        part = self.cpc.partitions.create(PARTITION | {"name": "OpenStack-host1-x"})
        for port_id, host, uri in (
            ("p-ours", "host1", self.port_uri),
            ("p-other-host", "host2", self.port_uri),
            ("p-other-port", "host1", f"/api/adapters/{NEXP_ID}/network-ports/0"),
        ):
            # Through the faked HMC: the mock's Create NIC looks the port up in
            # the resource tree, which has no Network Express ports.
            self.client.session.hmc.lookup_by_uri(part.uri).nics.add(
                {
                    "name": contract.dpm_nic_name(port_id),
                    "description": contract.dpm_nic_description(host, "fa:16:3e:00:00:01"),
                    "network-adapter-port-uri": uri,
                    "type": "osd",
                }
            )
        self.assertEqual({"p-ours"}, manager.get_all_devices())
        self.assertEqual(
            {"net1": contract.dpm_backing(adapter_port_uri=self.port_uri)},
            manager.configurations[contract.AGENT_CONF_DPM_MAPPINGS],
        )


class TestZ16PartitionLinks(testtools.TestCase):
    """HiperSockets through partition links; OSA still through virtual switches."""

    def setUp(self):
        super().setUp()
        self.client, self.cpc = faked_client(
            "2.16.0",
            [],
            [mappings.FEATURE_HS_PARTITION_LINKS],
            [
                adapter(OSA_ID, "OSA-0130", "osd", "osa", 2),
                adapter(HS_ID, "HS-7C0", "hipersockets", "hipersockets", 1),
            ],
            [vswitch(OSA_VSWITCH_ID, OSA_ID, 0), vswitch(HS_VSWITCH_ID, HS_ID, 0)],
        )
        self.links = []
        patcher = mock.patch.object(
            zhmcclient.PartitionLinkManager, "list", autospec=True, side_effect=self._links
        )
        patcher.start()
        self.addCleanup(patcher.stop)
        self.features = mappings.Features.detect(self.client, self.cpc)

    def _links(self, manager, full_properties=False, filter_args=None):
        return [
            zhmcclient.PartitionLink(manager, f"/api/partition-links/{oid}", name, props)
            for oid, name, props in self.links
            if (filter_args or {}).get("cpc-uri") in (None, props["cpc-uri"])
        ]

    def add_link(self, object_id=LINK_ID, name="HS-7C0"):
        props = {
            "object-id": object_id,
            "name": name,
            "type": "hipersockets",
            "cpc-uri": self.cpc.uri,
        }
        self.links.append((object_id, name, props))

    def test_hipersockets_maps_to_its_partition_link_osa_to_its_vswitch(self):
        self.assertTrue(self.features.partition_links)
        self.assertFalse(self.features.network_express)
        self.add_link()
        backings = mappings.resolve(
            self.client, self.cpc, lines(f"net1:{OSA_ID}", f"net2:{HS_ID}"), self.features
        )
        self.assertEqual(
            [
                contract.dpm_backing(vswitch_id=OSA_VSWITCH_ID),
                contract.dpm_backing(partition_link_id=LINK_ID),
            ],
            [b.reported for b in backings],
        )
        manager = dpm.DpmAgentManager(self.client, self.cpc, "host1", backings, self.features)
        part = self.cpc.partitions.create(PARTITION | {"name": "OpenStack-host1-y"})
        part.nics.create(
            {
                "name": contract.dpm_nic_name("p-hs"),
                "description": contract.dpm_nic_description("host1", "fa:16:3e:00:00:02"),
                "virtual-switch-uri": f"/api/virtual-switches/{HS_VSWITCH_ID}",
            }
        )
        self.assertEqual({"p-hs"}, manager.get_all_devices())
        self.links.clear()  # the link is deleted: its NICs go down, net2 is not reported
        self.assertEqual(set(), manager.get_all_devices())
        self.assertEqual(["net1"], list(manager.configurations[contract.AGENT_CONF_DPM_MAPPINGS]))

    def test_hipersockets_adapter_without_partition_link_is_refused(self):
        error = self.assertRaises(
            mappings.MappingError,
            mappings.resolve,
            self.client,
            self.cpc,
            lines(f"net2:{HS_ID}"),
            self.features,
        )
        self.assertIn(
            f"line 1 (net2:{HS_ID}:0): HiperSockets adapter HS-7C0 has no partition link",
            str(error),
        )

    def test_link_found_by_name_when_ids_differ(self):
        self.add_link(object_id="16b10000-0000-4000-8000-000000000001", name="HS-7C0")
        (backing,) = mappings.resolve(self.client, self.cpc, lines(f"net2:{HS_ID}"), self.features)
        self.assertEqual(
            contract.dpm_backing(partition_link_id="16b10000-0000-4000-8000-000000000001"),
            backing.reported,
        )
