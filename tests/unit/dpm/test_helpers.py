"""Naming, LUN and WWPN helpers: the formats other parties (HMC, Cinder, agent) rely on."""

from __future__ import annotations

import pytest

from ibmvirt import contract
from ibmvirt.dpm import exceptions as dpm_exc
from ibmvirt.dpm import naming
from ibmvirt.dpm.storage import FCVolume, fcp_lun, normalize_wwpn

UUID = "5b0ad3c1-3d0c-4f0e-9a57-1e3a2e5e0c11"


@pytest.mark.parametrize(
    ("lun", "hmc"),
    [
        (0, "0000000000000000"),
        (1, "0001000000000000"),
        (255, "00ff000000000000"),
        (256, "4100000000000000"),
        (16383, "7fff000000000000"),
        (0x4001000000000000, "4001000000000000"),
    ],
)
def test_fcp_lun_is_the_hmcs_16_hex_digit_format(lun, hmc):
    assert fcp_lun(lun) == hmc


def test_fcp_lun_rejects_impossible_values():
    with pytest.raises(ValueError):
        fcp_lun(-1)
    with pytest.raises(ValueError):
        fcp_lun(2**64)


@pytest.mark.parametrize(
    "wwpn", ["0x500507680B214AC1", "50:05:07:68:0b:21:4a:c1", "500507680b214ac1"]
)
def test_wwpns_are_normalised(wwpn):
    assert normalize_wwpn(wwpn) == "500507680b214ac1"


def test_boot_target_follows_the_initiator_target_map_and_ignore_list():
    vol = FCVolume.from_connection_info(
        {
            "driver_volume_type": "fibre_channel",
            "data": {
                "volume_id": "v1",
                "target_lun": 3,
                "target_wwn": ["500507680b214ac1", "500507680b224ac1"],
                "initiator_target_map": {
                    "C05076FFE0000100": ["500507680B224AC1", "500507680B214AC1"]
                },
            },
        }
    )
    assert vol.boot_target("c05076ffe0000100", []) == "500507680b224ac1"
    assert vol.boot_target("c05076ffe0000100", ["500507680B224AC1"]) == "500507680b214ac1"
    # An initiator Cinder did not map: any target of the volume.
    assert vol.boot_target("c05076ffe0000999", []) == "500507680b214ac1"
    with pytest.raises(dpm_exc.VolumeNotSupported, match="target_wwpn_ignore_list"):
        vol.boot_target("c05076ffe0000100", ["500507680b214ac1", "500507680b224ac1"])


def test_connection_info_without_lun_is_refused():
    with pytest.raises(dpm_exc.VolumeNotSupported, match="v9 has no target_lun"):
        FCVolume.from_connection_info(
            {"driver_volume_type": "fibre_channel", "data": {"volume_id": "v9"}}
        )


def test_partition_names_fit_the_hmc_limit_for_the_longest_allowed_host():
    host = "h" * naming.MAX_HOST_LENGTH
    name = naming.partition_name(host, UUID)
    assert len(name) == naming.MAX_NAME_LENGTH == 64
    assert naming.instance_uuid_from_name(host, name) == UUID


@pytest.mark.parametrize(
    "name",
    [
        f"OpenStack-subset12-{UUID}",  # another host whose name starts with ours
        f"OpenStack-subset1-{UUID}-x",
        "OpenStack-subset1-not-a-uuid",
        f"openstack-subset1-{UUID}x",
        "LINUX01",
    ],
)
def test_foreign_partition_names_are_not_ours(name):
    assert naming.instance_uuid_from_name("subset1", name) is None


def test_host_names_with_regex_characters_match_literally():
    assert naming.instance_uuid_from_name("a.b", f"OpenStack-a.b-{UUID}") == UUID
    assert naming.instance_uuid_from_name("a.b", f"OpenStack-axb-{UUID}") is None


def test_nic_name_and_description_round_trip_for_the_agent():
    assert contract.dpm_nic_port_id(contract.dpm_nic_name("port-1")) == "port-1"
    assert contract.dpm_nic_port_id("eth0") is None
    desc = contract.dpm_nic_description("subset1", "FA:16:3E:00:00:01")
    assert contract.parse_dpm_nic_description(desc) == ("subset1", "fa:16:3e:00:00:01")
    assert contract.parse_dpm_nic_description("OpenStack mac=zz, CPCSubset=x") is None
