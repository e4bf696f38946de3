"""ibmvirt-dpm-setmac: the MAC of a new qeth interface comes from its NIC record."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.guest_tools.fakeguest import FakeGuest

ENC1 = "/devices/qeth/0.0.0001/net/enc1"


def test_sets_the_mac_of_the_record(guest: FakeGuest) -> None:
    guest.add_qeth("0001", port=1)
    guest.set_cmdline("ro 0001,1,fa163e0000ab; 0004,0,0a0000000004; quiet")

    result = guest.setmac(ENC1)

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

    assert guest.setmac(ENC1).returncode == 0
    assert guest.qeth("0001")["mac"] == "fa:16:3e:00:00:ab"


def test_runs_with_the_empty_path_of_udev(guest: FakeGuest) -> None:
    guest.add_qeth("0001")
    guest.set_cmdline("0001,0,0a0000000011;")

    result = guest.setmac(ENC1, env={"PATH": ""})

    assert result.returncode == 0, result.stderr
    assert guest.qeth("0001")["mac"] == "0a:00:00:00:00:11"


def test_finds_ip_in_sbin(guest: FakeGuest) -> None:
    guest.remove_stub("ip")
    guest.add_stub("ip", "sbin")
    guest.add_qeth("0001")
    guest.set_cmdline("0001,0,0a0000000011;")

    assert guest.setmac(ENC1).returncode == 0
    assert guest.qeth("0001")["mac"] == "0a:00:00:00:00:11"


def test_without_ip_it_fails_and_says_so(guest: FakeGuest) -> None:
    guest.remove_stub("ip")
    guest.add_qeth("0001")
    guest.set_cmdline("0001,0,0a0000000011;")

    result = guest.setmac(ENC1)

    assert result.returncode == 1
    assert "the ip command is not installed; cannot set MAC 0a:00:00:00:00:11 on enc1" in (
        result.stderr
    )
    assert guest.qeth("0001")["mac"] == "06:00:00:00:00:01"


def test_interface_with_the_mac_already_is_left_alone(guest: FakeGuest) -> None:
    guest.add_qeth("0001")
    (guest.root / "sys/class/net/enc1/address").write_text("0A:00:00:00:00:11\n")
    guest.set_cmdline("0001,0,0a0000000011;")

    result = guest.setmac(ENC1)

    assert result.returncode == 0
    assert guest.calls("ip") == []
    assert "enc1 (0.0.0001) already has MAC 0a:00:00:00:00:11; left alone" in result.stderr


def test_record_without_mac_leaves_the_cpc_mac(guest: FakeGuest) -> None:
    guest.add_qeth("0001")
    guest.set_cmdline("0001,0;")

    result = guest.setmac(ENC1)

    assert result.returncode == 0
    assert guest.calls("ip") == []
    assert guest.qeth("0001")["mac"] == "06:00:00:00:00:01"
    assert "the NIC record for 0.0.0001 has no MAC (set by the CPC at NIC creation)" in (
        result.stderr
    )


def test_interface_without_record_is_left_alone(guest: FakeGuest) -> None:
    guest.add_qeth("0001")
    guest.set_cmdline("ro 0004,0,0a0000000004;")

    result = guest.setmac(ENC1)

    assert result.returncode == 0
    assert guest.calls("ip") == []
    assert "no valid NIC record for 0.0.0001 in the kernel command line" in result.stderr


def test_multicast_or_global_mac_is_refused(guest: FakeGuest) -> None:
    guest.add_qeth("0001")
    guest.add_qeth("0004")
    guest.set_cmdline("0001,0,0b0000000011; 0004,0,001a2b3c4d5e;")

    first = guest.setmac(ENC1)
    second = guest.setmac("/devices/qeth/0.0.0004/net/enc4")

    assert (first.returncode, second.returncode) == (0, 0)
    assert guest.calls("ip") == []
    assert (
        "skipping malformed NIC record '0001,0,0b0000000011;': the MAC is not a locally"
        " administered unicast address (OSA accepts only those)" in first.stderr
    )
    assert "no valid NIC record for 0.0.0004" in second.stderr


def test_interface_missing_from_sysfs_fails(guest: FakeGuest) -> None:
    guest.set_cmdline("0001,0,0a0000000011;")

    result = guest.setmac(ENC1)

    assert result.returncode == 1
    assert "interface enc1 of 0.0.0001 is not in sysfs; cannot set its MAC" in result.stderr


def test_ip_failure_is_reported(guest: FakeGuest) -> None:
    guest.add_qeth("0001")
    # The interface is renamed away between the event and the ip call.
    (guest.root / "sys/class/net/enc1").unlink()
    guest.set_cmdline("0001,0,0a0000000011;")

    result = guest.setmac(ENC1)

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
        assert guest.setmac(guest.qeth(devno)["devpath"]).returncode == 0

    assert guest.qeth("0001")["mac"] == "0a:00:00:00:00:11"
    assert guest.qeth("0004")["mac"] == "06:00:00:00:00:04"
    assert guest.qeth("0007")["mac"] == "fa:16:3e:00:00:07"
    # A second udev event for the same interface changes nothing.
    calls = guest.calls()
    guest.setmac(guest.qeth("0001")["devpath"])
    assert guest.calls() == calls
