"""ibmvirt-dpm-setmac: the MAC of a new qeth interface comes from its NIC record."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.guest_tools.fakeguest import FakeGuest

# The device path of 0.0.0001's interface under its name now; older udev
# versions pass this one. Current ones pass the kernel's name (udev_add).
ENC1 = "/devices/qeth/0.0.0001/net/enc1"


def test_sets_the_mac_of_the_record(guest: FakeGuest) -> None:
    guest.add_qeth("0001", port=1)
    guest.set_cmdline("ro 0001,1,fa163e0000ab; 0004,0,0a0000000004; quiet")

    result = guest.udev_add("0001")

    assert result.returncode == 0, result.stderr
    assert guest.calls("ip") == [
        ["ip", "link", "set", "dev", "enc1", "address", "fa:16:3e:00:00:ab"]
    ]
    assert guest.qeth("0001")["mac"] == "fa:16:3e:00:00:ab"
    line = "ibmvirt-dpm-setmac: set MAC fa:16:3e:00:00:ab on enc1 (0.0.0001)"
    assert line in result.stderr
    assert line in guest.console()
    assert "ibmvirt-dpm-setmac daemon.info set MAC fa:16:3e:00:00:ab on enc1 (0.0.0001)" in (
        guest.journal()
    )


def test_upper_case_mac_is_set_in_lower_case(guest: FakeGuest) -> None:
    guest.add_qeth("0001")
    guest.set_cmdline("0001,0,FA163E0000AB;")

    assert guest.udev_add("0001").returncode == 0
    assert guest.qeth("0001")["mac"] == "fa:16:3e:00:00:ab"


def test_runs_with_the_empty_path_of_udev(guest: FakeGuest) -> None:
    guest.add_qeth("0001")
    guest.set_cmdline("0001,0,0a0000000011;")

    result = guest.udev_add("0001", env={"PATH": ""})

    assert result.returncode == 0, result.stderr
    assert guest.qeth("0001")["mac"] == "0a:00:00:00:00:11"


def test_finds_ip_in_sbin(guest: FakeGuest) -> None:
    guest.remove_stub("ip")
    guest.add_stub("ip", "sbin")
    guest.add_qeth("0001")
    guest.set_cmdline("0001,0,0a0000000011;")

    assert guest.udev_add("0001").returncode == 0
    assert guest.qeth("0001")["mac"] == "0a:00:00:00:00:11"


def test_without_ip_it_fails_and_says_so(guest: FakeGuest) -> None:
    guest.remove_stub("ip")
    guest.add_qeth("0001")
    guest.set_cmdline("0001,0,0a0000000011;")

    result = guest.udev_add("0001")

    assert result.returncode == 1
    assert "the ip command is not installed; cannot set MAC 0a:00:00:00:00:11 on enc1" in (
        result.stderr
    )
    assert guest.qeth("0001")["mac"] == "06:00:00:00:00:01"


def test_interface_with_the_mac_already_is_left_alone(guest: FakeGuest) -> None:
    guest.add_qeth("0001")
    (guest.root / "sys/class/net/enc1/address").write_text("0A:00:00:00:00:11\n")
    guest.set_cmdline("0001,0,0a0000000011;")

    result = guest.udev_add("0001")

    assert result.returncode == 0
    assert guest.calls("ip") == []
    assert "enc1 (0.0.0001) already has MAC 0a:00:00:00:00:11; left alone" in result.stderr


def test_record_without_mac_leaves_the_cpc_mac(guest: FakeGuest) -> None:
    guest.add_qeth("0001")
    guest.set_cmdline("0001,0;")

    result = guest.udev_add("0001")

    assert result.returncode == 0
    assert guest.calls("ip") == []
    assert guest.qeth("0001")["mac"] == "06:00:00:00:00:01"
    assert "the NIC record for 0.0.0001 has no MAC (set by the CPC at NIC creation)" in (
        result.stderr
    )


def test_interface_without_record_is_left_alone(guest: FakeGuest) -> None:
    guest.add_qeth("0001")
    guest.set_cmdline("ro 0004,0,0a0000000004;")

    result = guest.udev_add("0001")

    assert result.returncode == 0
    assert guest.calls("ip") == []
    assert "no valid NIC record for 0.0.0001 in the kernel command line" in result.stderr


def test_multicast_or_global_mac_is_refused(guest: FakeGuest) -> None:
    guest.add_qeth("0001")
    guest.add_qeth("0004")
    guest.set_cmdline("0001,0,0b0000000011; 0004,0,001a2b3c4d5e;")

    first = guest.udev_add("0001")
    second = guest.udev_add("0004")

    assert (first.returncode, second.returncode) == (0, 0)
    assert guest.calls("ip") == []
    assert (
        "skipping malformed NIC record '0001,0,0b0000000011;': the MAC is not a locally"
        " administered unicast address (OSA accepts only those)" in first.stderr
    )
    assert "no valid NIC record for 0.0.0004" in second.stderr
    # 0.0.0004's event does not repeat what is wrong with 0.0.0001's record.
    assert "0001" not in second.stderr


def test_ip_failure_is_reported(guest: FakeGuest) -> None:
    guest.add_qeth("0001")
    # The interface is renamed away between the event and the ip call.
    (guest.root / "sys/class/net/enc1").unlink()
    guest.set_cmdline("0001,0,0a0000000011;")

    result = guest.udev_add("0001")

    assert result.returncode == 1
    assert 'Cannot find device "enc1"' in result.stderr
    assert "err: could not set MAC 0a:00:00:00:00:11 on enc1 (0.0.0001)" in result.stderr


def test_usage(guest: FakeGuest) -> None:
    assert guest.run("usr/sbin/ibmvirt-dpm-setmac").returncode == 2
    assert guest.run("usr/sbin/ibmvirt-dpm-setmac", "a", "b").returncode == 2
    assert guest.run("usr/sbin/ibmvirt-dpm-setmac", "--help").returncode == 0


def test_boot_sequence_sets_every_mac(guest: FakeGuest) -> None:
    """The unit brings the devices up, udev then runs setmac for each interface."""
    guest.set_cmdline("ro 0001,1,0a0000000011; 0004,0; 0007,0,fa163e000007; quiet")

    assert guest.netconfig().returncode == 0
    for devno in ("0001", "0004", "0007"):
        assert guest.udev_add(devno).returncode == 0

    assert guest.qeth("0001")["mac"] == "0a:00:00:00:00:11"
    assert guest.qeth("0004")["mac"] == "06:00:00:00:00:04"
    assert guest.qeth("0007")["mac"] == "fa:16:3e:00:00:07"
    # A second udev event for the same interface changes nothing.
    calls = guest.calls()
    guest.udev_add("0001")
    assert guest.calls() == calls


# -- interface renaming: the udev event names a device path that is gone ----


def test_renamed_interface_gets_its_mac(guest: FakeGuest) -> None:
    """udev hands over %p with the kernel's eth0, then renames it to enc1."""
    guest.add_qeth("0001")
    guest.set_cmdline("0001,0,0a0000000011;")
    event_devpath = guest.qeth("0001")["event_devpath"]
    assert event_devpath == "/devices/qeth/0.0.0001/net/eth0"
    assert not (guest.root / "sys" / event_devpath.lstrip("/")).exists()

    result = guest.setmac(event_devpath)

    assert result.returncode == 0, result.stderr
    assert guest.calls("ip") == [
        ["ip", "link", "set", "dev", "enc1", "address", "0a:00:00:00:00:11"]
    ]
    assert guest.qeth("0001")["mac"] == "0a:00:00:00:00:11"
    assert "set MAC 0a:00:00:00:00:11 on enc1 (0.0.0001)" in result.stderr


def test_path_with_the_new_name_works_too(guest: FakeGuest) -> None:
    """Older udev substitutes %p when it runs the program, after the rename."""
    guest.add_qeth("0001")
    guest.set_cmdline("0001,0,0a0000000011;")

    result = guest.setmac(ENC1)

    assert result.returncode == 0, result.stderr
    assert guest.macs_set() == {"enc1": "0a:00:00:00:00:11"}


def test_interface_with_a_name_given_by_a_local_rule(guest: FakeGuest) -> None:
    """Whatever udev renamed it to, the name in sysfs now is the one used."""
    guest.add_qeth("0001")
    net = guest.root / "sys/devices/qeth/0.0.0001/net"
    (net / "enc1").rename(net / "lan0")
    (guest.root / "sys/class/net/enc1").unlink()
    (guest.root / "sys/class/net/lan0").symlink_to("../../devices/qeth/0.0.0001/net/lan0")
    guest.set_cmdline("0001,0,0a0000000011;")

    result = guest.udev_add("0001")

    assert result.returncode == 0, result.stderr
    assert guest.macs_set() == {"lan0": "0a:00:00:00:00:11"}
    assert "set MAC 0a:00:00:00:00:11 on lan0 (0.0.0001)" in result.stderr


def test_several_devices_each_get_their_own_mac(guest: FakeGuest) -> None:
    for devno in ("0001", "0004", "f500"):
        guest.add_qeth(devno)
    guest.set_cmdline("0001,0,0a0000000011; 0004,0,0a0000000044; F500,1,FA163E00F500;")
    assert [guest.qeth(d)["event_devpath"].rsplit("/", 1)[1] for d in ("0001", "0004", "f500")] == [
        "eth0",
        "eth1",
        "eth2",
    ]

    for devno in ("f500", "0001", "0004"):
        assert guest.udev_add(devno).returncode == 0

    assert guest.macs_set() == {
        "enc1": "0a:00:00:00:00:11",
        "enc4": "0a:00:00:00:00:44",
        "encf500": "fa:16:3e:00:f5:00",
    }


def test_mac_already_equal_after_rename_calls_no_ip(guest: FakeGuest) -> None:
    guest.add_qeth("0001")
    (guest.root / "sys/devices/qeth/0.0.0001/net/enc1/address").write_text("0a:00:00:00:00:11\n")
    guest.set_cmdline("0001,0,0A0000000011;")

    result = guest.udev_add("0001")

    assert result.returncode == 0
    assert guest.calls("ip") == []
    assert "enc1 (0.0.0001) already has MAC 0a:00:00:00:00:11; left alone" in result.stderr


def test_qeth_device_missing_from_sysfs_fails(guest: FakeGuest) -> None:
    guest.set_cmdline("0001,0,0a0000000011;")

    result = guest.setmac("/devices/qeth/0.0.0001/net/eth0")

    assert result.returncode == 1
    line = (
        "ibmvirt-dpm-setmac: err: qeth device 0.0.0001 has no network interface in"
        " /sys/devices/qeth/0.0.0001/net; cannot set its MAC"
    )
    assert line in result.stderr
    assert line in guest.console()
    assert guest.calls("ip") == []


def test_qeth_device_without_interface_fails(guest: FakeGuest) -> None:
    """The interface went away (device set offline) before the program ran."""
    guest.add_qeth("0001")
    shutil.rmtree(guest.root / "sys/devices/qeth/0.0.0001/net/enc1")
    guest.set_cmdline("0001,0,0a0000000011;")

    result = guest.setmac("/devices/qeth/0.0.0001/net/eth0")

    assert result.returncode == 1
    assert "qeth device 0.0.0001 has no network interface in" in result.stderr
    assert guest.calls("ip") == []


def test_several_interfaces_of_one_device_fail(guest: FakeGuest) -> None:
    guest.add_qeth("0001")
    (guest.root / "sys/devices/qeth/0.0.0001/net/eth7").mkdir()
    guest.set_cmdline("0001,0,0a0000000011;")

    result = guest.setmac("/devices/qeth/0.0.0001/net/eth0")

    assert result.returncode == 1
    assert (
        "qeth device 0.0.0001 has 2 network interfaces in /sys/devices/qeth/0.0.0001/net"
        " (enc1, eth7), expected one; MAC left unchanged" in result.stderr
    )
    assert guest.calls("ip") == []


def test_unusable_interface_name_in_sysfs_is_not_passed_to_ip(guest: FakeGuest) -> None:
    guest.add_qeth("0001")
    net = guest.root / "sys/devices/qeth/0.0.0001/net"
    (net / "enc1").rename(net / "-enc1")
    guest.set_cmdline("0001,0,0a0000000011;")

    result = guest.udev_add("0001")

    assert result.returncode == 1
    assert "the interface of qeth device 0.0.0001 has an unusable name '-enc1'" in result.stderr
    assert guest.calls("ip") == []


def test_record_is_read_before_sysfs(guest: FakeGuest) -> None:
    """Without a MAC to set, a missing interface is no error."""
    guest.set_cmdline("0001,0;")

    result = guest.setmac("/devices/qeth/0.0.0001/net/eth0")

    assert result.returncode == 0
    assert "has no network interface" not in result.stderr


# -- only the device's own records are reported ------------------------------

OTHERS_MALFORMED = "0002,7; zz,0; 0003,0,0b0000000011; 0004,1;0004,0; 0005,0,0a00000000"


def test_other_devices_malformed_records_are_not_reported(guest: FakeGuest) -> None:
    guest.add_qeth("0001")
    guest.set_cmdline(f"ro {OTHERS_MALFORMED} 0001,0,0a0000000011; quiet")

    result = guest.udev_add("0001")

    assert result.returncode == 0, result.stderr
    assert result.stderr == "ibmvirt-dpm-setmac: set MAC 0a:00:00:00:00:11 on enc1 (0.0.0001)\n"
    assert guest.console() == result.stderr
    assert guest.journal() == [
        "ibmvirt-dpm-setmac daemon.info set MAC 0a:00:00:00:00:11 on enc1 (0.0.0001)"
    ]


def test_netconfig_still_reports_every_malformed_record(guest: FakeGuest) -> None:
    guest.set_cmdline(f"ro {OTHERS_MALFORMED} 0001,0,0a0000000011; quiet")

    result = guest.netconfig()

    for record in ("0002,7;", "zz,0;", "0003,0,0b0000000011;", "0005,0,0a00000000"):
        assert f"skipping malformed NIC record '{record}'" in result.stderr
    assert "it contradicts an earlier record for 0.0.0004" in result.stderr


def test_boot_reports_malformed_records_once(guest: FakeGuest) -> None:
    guest.set_cmdline("ro 0001,0,0a0000000011; 0002,7; 0004,0; 0007,0,fa163e000007; 00g8,0;")

    boot = guest.netconfig()
    events = [guest.udev_add(devno) for devno in ("0001", "0004", "0007")]

    assert boot.stderr.count("malformed") == 2
    assert all(e.returncode == 0 and "malformed" not in e.stderr for e in events)
    assert "malformed" not in guest.console()
    assert guest.macs_set() == {"enc1": "0a:00:00:00:00:11", "enc7": "fa:16:3e:00:00:07"}


@pytest.mark.parametrize(
    ("record", "why"),
    [
        ("0001,2,0a0000000011;", "the port must be 0 or 1"),
        ("0001,0,0b0000000011;", "the MAC is not a locally administered unicast address"),
        ("0001,0,0a00000000;", "the MAC must be 12 hex digits without separators"),
        ("0001,0,0a0000000011,x;", "expected <devno>,<port>[,<mac>];"),
        ("0001;", "expected <devno>,<port>[,<mac>];"),
        ("0001,0,0a0000000011", "a record must end with ';'"),
    ],
)
def test_own_malformed_record_is_reported(guest: FakeGuest, record, why) -> None:
    guest.add_qeth("0001")
    guest.set_cmdline(f"ro 0002,7; 0004,0; {record}")

    result = guest.udev_add("0001")

    assert result.returncode == 0
    line = f"ibmvirt-dpm-setmac: warning: skipping malformed NIC record '{record}': {why}"
    assert line in result.stderr
    assert line in guest.console()
    assert "no valid NIC record for 0.0.0001" in result.stderr
    assert "0002" not in result.stderr
    assert guest.calls("ip") == []


def test_own_record_is_recognised_in_upper_case(guest: FakeGuest) -> None:
    guest.add_qeth("f500")
    guest.set_cmdline("ro 0002,7; F500,2;")

    result = guest.udev_add("f500")

    assert "skipping malformed NIC record 'F500,2;': the port must be 0 or 1" in result.stderr
    assert "0002" not in result.stderr


def test_own_contradicting_record_is_reported_and_the_first_wins(guest: FakeGuest) -> None:
    guest.add_qeth("0001")
    guest.set_cmdline("0004,0; 0004,1; 0001,0,0a0000000011; 0001,1,0a0000000022;")

    result = guest.udev_add("0001")

    assert result.returncode == 0
    assert (
        "ignoring NIC record '0001,1,0a0000000022;': it contradicts an earlier record for"
        " 0.0.0001, which is used" in result.stderr
    )
    assert "0.0.0004" not in result.stderr
    assert guest.macs_set() == {"enc1": "0a:00:00:00:00:11"}


def test_same_record_as_netconfig_when_the_first_is_malformed(guest: FakeGuest) -> None:
    """A malformed record does not count as the first: netconfig uses the next."""
    guest.set_cmdline("0001,0,0b0000000011; 0001,1,0a0000000011;")

    assert guest.netconfig().returncode == 0
    assert guest.configured() == {"0.0.0001": 1}
    result = guest.udev_add("0001")

    assert result.returncode == 0
    assert guest.macs_set() == {"enc1": "0a:00:00:00:00:11"}


def test_unreadable_address_fails(guest: FakeGuest) -> None:
    guest.add_qeth("0001")
    (guest.root / "sys/devices/qeth/0.0.0001/net/enc1/address").unlink()
    guest.set_cmdline("0001,0,0a0000000011;")

    result = guest.setmac("/devices/qeth/0.0.0001/net/eth0")

    assert result.returncode == 1
    assert "cannot read the MAC of enc1 (0.0.0001) from sysfs; MAC left unchanged" in (
        result.stderr
    )
    assert guest.calls("ip") == []
