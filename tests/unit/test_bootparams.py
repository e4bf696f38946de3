"""NIC records in boot-os-specific-parameters (driver side of the guest-tools contract)."""

import pytest

from ibmvirt.dpm import bootparams
from ibmvirt.dpm.bootparams import NicRecord


def test_records_render_in_the_guest_tools_format():
    value = bootparams.render(
        [NicRecord("0A00", 0, "FA:16:3E:00:00:01"), NicRecord("0a03", 1)], existing="quiet"
    )
    assert value == "quiet 0a00,0,fa163e000001; 0a03,1;"
    assert bootparams.parse(value) == [
        NicRecord("0a00", 0, "fa163e000001"),
        NicRecord("0a03", 1, None),
    ]


@pytest.mark.parametrize(
    "devno,port,mac,complaint",
    [
        ("001", 0, None, "4 hex digits"),
        ("0g01", 0, None, "4 hex digits"),
        ("0001", 2, None, "0 or 1"),
        ("0001", 0, "fa:16:3e:00:00", "6 hex octets"),
        ("0001", 0, "00:16:3e:00:00:01", "locally administered"),  # globally administered
        ("0001", 0, "fb:16:3e:00:00:01", "locally administered"),  # multicast
    ],
)
def test_bad_records_are_refused_with_the_reason(devno, port, mac, complaint):
    with pytest.raises(ValueError, match=complaint):
        NicRecord(devno, port, mac)


def test_the_256_character_limit_is_checked_on_the_whole_value():
    twelve = [NicRecord(f"{4 * i:04x}", 0, f"fa:16:3e:00:00:{i:02x}") for i in range(12)]
    assert len(bootparams.render(twelve)) <= bootparams.MAX_LENGTH
    with pytest.raises(bootparams.BootParametersTooLong, match="13 NIC records"):
        bootparams.render([*twelve, NicRecord("0100", 0, "fa:16:3e:00:01:00")])
    with pytest.raises(bootparams.BootParametersTooLong):
        bootparams.render(twelve[:11], existing="x" * 40)


def test_only_whole_record_tokens_are_records():
    line = "root=UUID=1 foo=0001,0; 0002,1;0005,0; bar 0008,0,fa163e000001;"
    assert [r.devno for r in bootparams.parse(line)] == ["0002", "0005", "0008"]


def test_removing_a_device_keeps_everything_else():
    value = "rd.zfcp=ipldev 0001,0,fa163e000001; 0004,1;"
    assert bootparams.without_devices(value, {"0001"}) == "rd.zfcp=ipldev 0004,1;"
