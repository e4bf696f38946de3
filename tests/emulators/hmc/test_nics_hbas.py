"""NICs on virtual switches (MAC rules per generation) and z13 HBAs."""

from __future__ import annotations

import re

import pytest
import zhmcclient

from ibmvirt.emulators.hmc import inventories

from .conftest import http_error, new_partition

MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


def _vswitch(cpc, oid):
    return cpc.virtual_switches.find(**{"object-id": oid})


def test_z15_nic_with_mac_and_connected_nics(z15_cpc, z15):
    part = new_partition(z15_cpc)
    vs = _vswitch(z15_cpc, inventories.Z15_IDS.vswitch_osa_port0)
    nic = part.nics.create(
        {
            "name": "OpenStack_Port_1",
            "description": "OpenStack mac=fa:16:3e:aa:bb:cc, CPCSubset=host1",
            "virtual-switch-uri": vs.uri,
            "mac-address": "fa:16:3e:aa:bb:cc",
        }
    )
    nic.pull_full_properties()
    assert nic.get_property("mac-address") == "fa:16:3e:aa:bb:cc"
    assert nic.get_property("type") == "osd"
    assert re.match(r"^[0-9A-F]{4}$", nic.get_property("device-number"))
    assert [n.uri for n in vs.get_connected_nics()] == [nic.uri]
    part.pull_full_properties()
    assert part.get_property("nic-uris") == [nic.uri]

    # Same MAC again, or a duplicate name: refused.
    with pytest.raises(zhmcclient.HTTPError) as exc:
        part.nics.create(
            {"name": "other", "virtual-switch-uri": vs.uri, "mac-address": "fa:16:3e:aa:bb:cc"}
        )
    assert http_error(exc) == (400, 8)
    with pytest.raises(zhmcclient.HTTPError) as exc:
        part.nics.create({"name": "OpenStack_Port_1", "virtual-switch-uri": vs.uri})
    assert http_error(exc) == (400, 8)
    with pytest.raises(zhmcclient.HTTPError) as exc:
        part.nics.create({"name": "bad", "virtual-switch-uri": vs.uri, "mac-address": "zz"})
    assert http_error(exc) == (400, 7)

    nic.delete()
    assert vs.get_connected_nics() == []
    vs.pull_full_properties()
    assert vs.get_property("connected-vnic-uris") == []
    part.pull_full_properties()
    assert part.get_property("nic-uris") == []


def test_z13_mac_not_settable_but_generated(z13_cpc):
    part = new_partition(z13_cpc)
    vs = _vswitch(z13_cpc, inventories.Z13_IDS.vswitch_osa_port0)
    with pytest.raises(zhmcclient.HTTPError) as exc:
        part.nics.create(
            {"name": "eth0", "virtual-switch-uri": vs.uri, "mac-address": "fa:16:3e:aa:bb:cc"}
        )
    assert http_error(exc) == (400, 6)
    assert "2.14" in exc.value.message
    assert part.nics.list() == []

    nic = part.nics.create({"name": "eth0", "virtual-switch-uri": vs.uri})
    nic.pull_full_properties()
    mac = nic.get_property("mac-address")
    assert MAC.match(mac)
    assert int(mac[:2], 16) & 0x02  # locally administered
    with pytest.raises(zhmcclient.HTTPError) as exc:
        nic.update_properties({"mac-address": "fa:16:3e:00:00:01"})
    assert http_error(exc) == (400, 6)
    nic.pull_full_properties()
    assert nic.get_property("mac-address") == mac


def test_z15_mac_update_only_while_stopped(z15_cpc):
    part = new_partition(z15_cpc)
    vs = _vswitch(z15_cpc, inventories.Z15_IDS.vswitch_osa_port1)
    nic = part.nics.create({"name": "eth0", "virtual-switch-uri": vs.uri})
    nic.update_properties({"mac-address": "fa:16:3e:00:00:02"})
    part.start()
    with pytest.raises(zhmcclient.HTTPError) as exc:
        nic.update_properties({"mac-address": "fa:16:3e:00:00:03"})
    assert http_error(exc) == (409, 1)
    nic.pull_full_properties()
    assert nic.get_property("mac-address") == "fa:16:3e:00:00:02"


def test_osa_nics_use_three_device_numbers(z15_cpc):
    part = new_partition(z15_cpc)
    vs = _vswitch(z15_cpc, inventories.Z15_IDS.vswitch_osa_port0)
    a = part.nics.create({"name": "a", "virtual-switch-uri": vs.uri})
    b = part.nics.create({"name": "b", "virtual-switch-uri": vs.uri})
    a.pull_full_properties()
    b.pull_full_properties()
    devno_a = int(a.get_property("device-number"), 16)
    devno_b = int(b.get_property("device-number"), 16)
    assert devno_b - devno_a == 3
    a.delete()  # its three device numbers are free again
    c = part.nics.create({"name": "c", "virtual-switch-uri": vs.uri})
    c.pull_full_properties()
    assert int(c.get_property("device-number"), 16) == devno_a


def test_hipersockets_nic_is_iqd_and_nics_are_cleaned_with_partition(z15_cpc):
    part = new_partition(z15_cpc)
    hs = _vswitch(z15_cpc, inventories.Z15_IDS.vswitch_hipersockets)
    osa = _vswitch(z15_cpc, inventories.Z15_IDS.vswitch_osa_port0)
    n1 = part.nics.create({"name": "hs0", "virtual-switch-uri": hs.uri})
    part.nics.create({"name": "osa0", "virtual-switch-uri": osa.uri})
    n1.pull_full_properties()
    assert n1.get_property("type") == "iqd"
    assert len(hs.get_connected_nics()) == 1
    part.delete()
    assert hs.get_connected_nics() == []
    assert osa.get_connected_nics() == []


def test_nic_on_unknown_vswitch_is_404_2(z15_cpc):
    part = new_partition(z15_cpc)
    with pytest.raises(zhmcclient.HTTPError) as exc:
        part.nics.create(
            {"name": "x", "virtual-switch-uri": "/api/virtual-switches/does-not-exist"}
        )
    assert http_error(exc) == (404, 2)


def test_z13_hbas_get_unique_wwpns(z13_cpc, z13):
    ports = [
        z13_cpc.adapters.find(**{"object-id": oid}).ports.list()[0]
        for oid in inventories.Z13_IDS.fcp_adapters
    ]
    wwpns = []
    for pname in ("a", "b"):
        part = new_partition(z13_cpc, pname)
        for i, port in enumerate(ports):
            hba = part.hbas.create(
                {
                    "name": f"OpenStack_Port_{i}",
                    "description": "OpenStack CPCSubset= host1",
                    "adapter-port-uri": port.uri,
                }
            )
            hba.pull_full_properties()
            assert re.match(r"^c05076[0-9a-f]{10}$", hba.get_property("wwpn"))
            assert re.match(r"^[0-9A-F]{4}$", hba.get_property("device-number"))
            wwpns.append(hba.get_property("wwpn"))
        part.pull_full_properties()
        assert len(part.get_property("hba-uris")) == 2
    assert len(set(wwpns)) == 4

    part = z13_cpc.partitions.find(name="a")
    # Export WWPN List: one row per HBA, with the adapter-id of its FCP adapter.
    rows = z13_cpc.get_wwpns([part, z13_cpc.partitions.find(name="b")])
    assert sorted(r["wwpn"] for r in rows) == sorted(wwpns)
    assert {r["adapter-id"] for r in rows} == {"120", "121"}
    assert {r["partition-name"] for r in rows} == {"a", "b"}
    with pytest.raises(zhmcclient.HTTPError) as exc:
        part.hbas.create({"name": "OpenStack_Port_0", "adapter-port-uri": ports[0].uri})
    assert http_error(exc) == (400, 8)
    hba = part.hbas.find(name="OpenStack_Port_0")
    with pytest.raises(zhmcclient.HTTPError) as exc:
        hba.update_properties({"wwpn": "c050760000000001"})
    assert http_error(exc) == (400, 6)
    # Boot from the HBA (z13 storage-adapter boot).
    part.update_properties(
        {
            "boot-device": "storage-adapter",
            "boot-storage-device": hba.uri,
            "boot-world-wide-port-name": "500507680b2155aa",
            "boot-logical-unit-number": "0",
        }
    )
    hba.delete()
    part.pull_full_properties()
    assert len(part.get_property("hba-uris")) == 1
    with pytest.raises(zhmcclient.NotFound):
        part.hbas.find(name="OpenStack_Port_0")


def test_hba_on_unknown_port_and_non_fcp_adapter(z13_cpc):
    part = new_partition(z13_cpc)
    osa = z13_cpc.adapters.find(**{"object-id": inventories.Z13_IDS.osa_adapter})
    with pytest.raises(zhmcclient.HTTPError) as exc:
        part.hbas.create({"name": "x", "adapter-port-uri": osa.uri + "/storage-ports/0"})
    assert http_error(exc) == (400, 7)
    with pytest.raises(zhmcclient.HTTPError) as exc:
        part.hbas.create({"name": "x", "adapter-port-uri": "/api/adapters/nope/storage-ports/0"})
    assert http_error(exc) == (404, 2)


def test_hba_refused_on_storage_management_cpc(z15_cpc):
    part = new_partition(z15_cpc)
    port = z15_cpc.adapters.find(**{"object-id": inventories.Z15_IDS.fcp_adapters[0]})
    with pytest.raises(zhmcclient.HTTPError) as exc:
        part.hbas.create({"name": "x", "adapter-port-uri": port.uri + "/storage-ports/0"})
    assert http_error(exc) == (409, 5)
    assert "storage group" in exc.value.message
    with pytest.raises(zhmcclient.HTTPError) as exc:
        z15_cpc.get_wwpns([part])
    assert http_error(exc) == (409, 5)
    part.pull_full_properties()
    assert part.get_property("hba-uris") == []


@pytest.mark.parametrize(
    "mac, code",
    [
        ("03:16:3e:00:00:07", (400, 7)),  # multicast
        ("fa:16:3e:00:00", (400, 7)),  # five pairs
        (5, (400, 7)),  # not a string
    ],
)
def test_mac_rules_are_the_same_at_create_and_update(z15_cpc, mac, code):
    """Create NIC and Update NIC apply one MAC validation (update took a multicast MAC)."""
    part = new_partition(z15_cpc)
    vs = _vswitch(z15_cpc, inventories.Z15_IDS.vswitch_osa_port1)
    with pytest.raises(zhmcclient.HTTPError) as exc:
        part.nics.create({"name": "eth1", "virtual-switch-uri": vs.uri, "mac-address": mac})
    assert http_error(exc) == code
    nic = part.nics.create({"name": "eth0", "virtual-switch-uri": vs.uri})
    nic.pull_full_properties()
    before = nic.get_property("mac-address")
    with pytest.raises(zhmcclient.HTTPError) as exc:
        nic.update_properties({"mac-address": mac})
    assert http_error(exc) == code
    nic.pull_full_properties()
    assert nic.get_property("mac-address") == before
    assert [n.name for n in part.nics.list()] == ["eth0"]


def test_upper_case_mac_is_stored_lower_case_at_update_too(z15_cpc):
    part = new_partition(z15_cpc)
    vs = _vswitch(z15_cpc, inventories.Z15_IDS.vswitch_osa_port1)
    other = part.nics.create({"name": "eth0", "virtual-switch-uri": vs.uri})
    nic = part.nics.create({"name": "eth1", "virtual-switch-uri": vs.uri})
    nic.update_properties({"mac-address": "FA:16:3E:00:00:0A"})
    nic.pull_full_properties()
    assert nic.get_property("mac-address") == "fa:16:3e:00:00:0a"
    # The upper-case spelling of a MAC in use is the same MAC: refused.
    with pytest.raises(zhmcclient.HTTPError) as exc:
        other.update_properties({"mac-address": "FA:16:3E:00:00:0A"})
    assert http_error(exc) == (400, 8)


def test_names_are_unique_among_siblings_at_create_and_rename(z13_cpc):
    """One uniqueness rule: NICs and HBAs per partition, partitions per CPC."""
    part = new_partition(z13_cpc, "a")
    other = new_partition(z13_cpc, "b")
    vs = _vswitch(z13_cpc, inventories.Z13_IDS.vswitch_osa_port0)
    port = z13_cpc.adapters.find(**{"object-id": inventories.Z13_IDS.fcp_adapters[0]}).ports.list()[
        0
    ]
    nic0 = part.nics.create({"name": "n0", "virtual-switch-uri": vs.uri})
    nic1 = part.nics.create({"name": "n1", "virtual-switch-uri": vs.uri})
    hba0 = part.hbas.create({"name": "h0", "adapter-port-uri": port.uri})
    part.hbas.create({"name": "h1", "adapter-port-uri": port.uri})
    for create in (
        lambda: part.nics.create({"name": "n0", "virtual-switch-uri": vs.uri}),
        lambda: part.hbas.create({"name": "h1", "adapter-port-uri": port.uri}),
        lambda: nic1.update_properties({"name": "n0"}),
        lambda: hba0.update_properties({"name": "h1"}),
        lambda: other.update_properties({"name": "a"}),
    ):
        with pytest.raises(zhmcclient.HTTPError) as exc:
            create()
        assert http_error(exc) == (400, 8)
    # A sibling in another partition, or renaming to one's own name, is fine.
    other.nics.create({"name": "n0", "virtual-switch-uri": vs.uri})
    nic0.update_properties({"name": "n0"})
    part.pull_full_properties()
    assert sorted(n.name for n in part.nics.list()) == ["n0", "n1"]
    assert sorted(h.name for h in part.hbas.list()) == ["h0", "h1"]
