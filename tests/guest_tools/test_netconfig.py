"""ibmvirt-dpm-netconfig: qeth devices brought up from the kernel command line."""

from __future__ import annotations

import pytest

from tests.guest_tools.fakeguest import FakeGuest, qeth_group

BEFORE = "BOOT_IMAGE=0 root=/dev/disk/by-path/ccw-0.0.1000-part1 ro cio_ignore=all,!condev"
AFTER = "console=ttysclp0,9600 quiet"


def cmdline(records: str) -> str:
    return f"{BEFORE} {records} {AFTER}"


def test_configures_each_record_with_chzdev_in_layer2_on_its_port(guest: FakeGuest) -> None:
    guest.set_cmdline(cmdline("0001,1,0a0000000011; f500,0;"))

    result = guest.netconfig()

    assert result.returncode == 0, result.stderr
    assert guest.calls("chzdev") == [
        ["chzdev", "--enable", "--active", "--yes", "qeth", qeth_group("0001")]
        + ["layer2=1", "portno=1"],
        ["chzdev", "--enable", "--active", "--yes", "qeth", qeth_group("f500")]
        + ["layer2=1", "portno=0"],
    ]
    assert guest.calls("znetconf") == []
    assert guest.qeth("0001") | {"mac": ""} == {
        "online": "1",
        "layer2": "1",
        "portno": "1",
        "interface": "enc1",
        "mac": "",
        "devpath": "/devices/qeth/0.0.0001/net/enc1",
        "event_devpath": "/devices/qeth/0.0.0001/net/eth0",
    }
    assert guest.qeth("f500")["portno"] == "0"
    assert "ibmvirt-dpm-netconfig: configuring 0.0.0001 (layer 2, port 1) with chzdev" in (
        result.stderr
    )
    assert "ibmvirt-dpm-netconfig: 0.0.0001 is online as interface enc1" in result.stderr
    assert "ibmvirt-dpm-netconfig: 0.0.f500 is online as interface encf500" in result.stderr


def test_qeth_group_wraps_hex_digits(guest: FakeGuest) -> None:
    guest.set_cmdline(cmdline("00fe,0;"))

    assert guest.netconfig().returncode == 0
    assert guest.calls("chzdev")[0][5] == "0.0.00fe:0.0.00ff:0.0.0100"


def test_falls_back_to_znetconf_and_unignores_the_devices(guest: FakeGuest) -> None:
    guest.remove_stub("chzdev")
    (guest.root / "proc/cio_ignore").write_text("0.0.0000-0.0.ffff\n")
    guest.set_cmdline(cmdline("0004,1; 0010,0;"))

    result = guest.netconfig()

    assert result.returncode == 0, result.stderr
    assert guest.calls("cio_ignore") == [
        ["cio_ignore", "-r", "0.0.0004,0.0.0005,0.0.0006"],
        ["cio_ignore", "-r", "0.0.0010,0.0.0011,0.0.0012"],
    ]
    assert guest.calls("znetconf") == [
        ["znetconf", "-a", "0.0.0004", "-o", "layer2=1", "-o", "portno=1"],
        ["znetconf", "-a", "0.0.0010", "-o", "layer2=1", "-o", "portno=0"],
    ]
    assert guest.qeth("0004")["portno"] == "1"
    assert guest.qeth("0010")["online"] == "1"
    assert "configuring 0.0.0004 (layer 2, port 1) with znetconf" in result.stderr


def test_znetconf_without_cio_ignore_list(guest: FakeGuest) -> None:
    guest.remove_stub("chzdev")
    guest.set_cmdline(cmdline("0004,1;"))

    assert guest.netconfig().returncode == 0
    assert guest.calls("cio_ignore") == []
    assert guest.configured() == {"0.0.0004": 1}


def test_neither_chzdev_nor_znetconf_fails_naming_the_package(guest: FakeGuest) -> None:
    guest.remove_stub("chzdev")
    guest.remove_stub("znetconf")
    guest.set_cmdline(cmdline("0001,0;"))

    result = guest.netconfig()

    assert result.returncode == 1
    assert "neither chzdev nor znetconf is installed (package s390-tools or s390utils)" in (
        result.stderr
    )
    assert guest.qeth("0001") is None


def test_tools_in_sbin_are_found_without_path(guest: FakeGuest) -> None:
    guest.remove_stub("chzdev")
    guest.add_stub("chzdev", "sbin")
    guest.set_cmdline(cmdline("0001,0;"))

    assert guest.netconfig(env={"PATH": ""}).returncode == 0
    assert guest.configured() == {"0.0.0001": 0}


def test_loads_ccwgroup_and_qeth_when_the_bus_is_missing(guest: FakeGuest) -> None:
    guest.unload_drivers()
    guest.set_cmdline(cmdline("0001,0;"))

    result = guest.netconfig()

    assert result.returncode == 0, result.stderr
    assert guest.calls("modprobe") == [["modprobe", "ccwgroup"], ["modprobe", "qeth"]]
    assert "loaded kernel module ccwgroup" in result.stderr
    assert guest.qeth("0001")["online"] == "1"


def test_does_not_load_drivers_that_are_there(guest: FakeGuest) -> None:
    guest.set_cmdline(cmdline("0001,0;"))

    guest.netconfig()

    assert guest.calls("modprobe") == []


def test_second_run_leaves_everything_alone(guest: FakeGuest) -> None:
    guest.set_cmdline(cmdline("0001,1; 0004,0;"))
    assert guest.netconfig().returncode == 0
    first = guest.calls()

    result = guest.netconfig()

    assert result.returncode == 0
    assert guest.calls() == first
    assert "0.0.0001 is already configured and online (interface enc1); left alone" in (
        result.stderr
    )
    assert "0.0.0004 is already configured and online (interface enc4); left alone" in (
        result.stderr
    )


def test_online_device_is_left_alone_even_if_its_port_differs(guest: FakeGuest) -> None:
    guest.add_qeth("0001", port=0)
    guest.set_cmdline(cmdline("0001,1; 0004,1;"))

    result = guest.netconfig()

    assert result.returncode == 0
    assert guest.configured() == {"0.0.0004": 1}
    assert guest.qeth("0001")["portno"] == "0"
    assert "0.0.0001 uses port 0, but its NIC record says port 1" in result.stderr


def test_offline_group_device_is_configured(guest: FakeGuest) -> None:
    guest.add_qeth("0001", online=False)
    guest.set_cmdline(cmdline("0001,1;"))

    result = guest.netconfig()

    assert result.returncode == 0
    assert "0.0.0001 exists but is offline; configuring it" in result.stderr
    assert guest.configured() == {"0.0.0001": 1}
    assert guest.qeth("0001")["online"] == "1"


def test_offline_group_device_with_znetconf_is_set_online_through_sysfs(guest: FakeGuest) -> None:
    guest.add_qeth("0001", online=False)
    (guest.root / "sys/devices/qeth/0.0.0001/portno").write_text("0\n")
    guest.remove_stub("chzdev")
    guest.set_cmdline(cmdline("0001,1;"))

    result = guest.netconfig()

    assert result.returncode == 0, result.stderr
    assert "configuring 0.0.0001 (layer 2, port 1) with its sysfs attributes" in result.stderr
    assert guest.calls() == []
    assert guest.qeth("0001") | {"mac": ""} == {
        "online": "1",
        "layer2": "1",
        "portno": "1",
        "interface": "enc1",
        "mac": "",
        "devpath": "/devices/qeth/0.0.0001/net/enc1",
        "event_devpath": "/devices/qeth/0.0.0001/net/eth0",
    }


def test_failing_device_does_not_stop_the_others(guest: FakeGuest) -> None:
    guest.fail_device("0.0.0004")
    guest.set_cmdline(cmdline("0001,0; 0004,0; 0007,1;"))

    result = guest.netconfig()

    assert result.returncode == 1
    assert "ibmvirt-dpm-netconfig: err: chzdev failed to configure 0.0.0004 (exit status 15)" in (
        result.stderr
    )
    assert guest.qeth("0001")["online"] == "1"
    assert guest.qeth("0004") is None
    assert guest.qeth("0007")["portno"] == "1"


def test_no_records_is_nothing_to_do(guest: FakeGuest) -> None:
    guest.set_cmdline(cmdline(""))

    result = guest.netconfig()

    assert result.returncode == 0
    assert guest.calls() == []
    assert "no DPM NIC records in the kernel command line; nothing to configure" in (result.stderr)


def test_missing_cmdline_fails(guest: FakeGuest) -> None:
    (guest.root / "proc/cmdline").unlink()

    result = guest.netconfig()

    assert result.returncode == 1
    assert "cannot read the kernel command line" in result.stderr


def test_adjacent_records_in_one_token(guest: FakeGuest) -> None:
    # The form shown in the HMC-side documentation of the old tools.
    guest.set_cmdline(cmdline("0001,1,0a0000000011;0004,0;"))

    assert guest.netconfig().returncode == 0
    assert guest.configured() == {"0.0.0001": 1, "0.0.0004": 0}


def test_upper_case_hex_is_used_in_lower_case(guest: FakeGuest) -> None:
    guest.set_cmdline(cmdline("F5A0,1,FA163E0000AB;"))

    result = guest.netconfig()

    assert result.returncode == 0, result.stderr
    assert guest.configured() == {"0.0.f5a0": 1}
    assert guest.calls("chzdev")[0][5] == "0.0.f5a0:0.0.f5a1:0.0.f5a2"


def test_duplicate_record_is_configured_once(guest: FakeGuest) -> None:
    guest.set_cmdline(cmdline("0001,1; 0001,1;"))

    result = guest.netconfig()

    assert len(guest.calls("chzdev")) == 1
    assert "ignoring duplicate NIC record '0001,1;'" in result.stderr


def test_conflicting_record_loses_to_the_first(guest: FakeGuest) -> None:
    guest.set_cmdline(cmdline("0001,1,0a0000000011; 0001,0;"))

    result = guest.netconfig()

    assert guest.configured() == {"0.0.0001": 1}
    assert (
        "warning: ignoring NIC record '0001,0;': it contradicts an earlier record for 0.0.0001,"
        " which is used" in result.stderr
    )


def test_logs_go_to_the_journal_through_logger(guest: FakeGuest) -> None:
    guest.set_cmdline(cmdline("0001,1; 0007,2;"))

    guest.netconfig()

    journal = guest.journal()
    assert (
        "ibmvirt-dpm-netconfig daemon.info configuring 0.0.0001 (layer 2, port 1) with chzdev"
        in (journal)
    )
    assert (
        "ibmvirt-dpm-netconfig daemon.warning skipping malformed NIC record '0007,2;':"
        " the port must be 0 or 1" in journal
    )


def test_under_systemd_stderr_is_the_journal_and_logger_is_not_used(guest: FakeGuest) -> None:
    guest.set_cmdline(cmdline("0001,1;"))

    result = guest.netconfig(env={"JOURNAL_STREAM": "8:12345"})

    assert result.returncode == 0
    assert guest.journal() == []
    assert "configuring 0.0.0001 (layer 2, port 1) with chzdev" in result.stderr


def test_works_when_logger_is_missing(guest: FakeGuest) -> None:
    guest.remove_stub("logger")
    guest.set_cmdline(cmdline("0001,1;"))

    result = guest.netconfig()

    assert result.returncode == 0
    assert guest.configured() == {"0.0.0001": 1}


def test_usage(guest: FakeGuest) -> None:
    assert guest.netconfig("--help").returncode == 0
    result = guest.netconfig("--now")
    assert result.returncode == 2
    assert "usage:" in result.stderr
    assert guest.calls() == []


def test_relative_root_is_refused(guest: FakeGuest) -> None:
    result = guest.netconfig(env={"IBMVIRT_DPM_ROOT": "root"})

    assert result.returncode == 2
    assert "IBMVIRT_DPM_ROOT must be an absolute path" in result.stderr


@pytest.mark.parametrize(
    ("record", "shown", "reason"),
    [
        ("0001,2;", "0001,2;", "the port must be 0 or 1"),
        ("0001,;", "0001,;", "expected <devno>,<port>[,<mac>];"),
        ("001,0;", "001,0;", "the device number must be 4 hex digits"),
        ("00001,0;", "00001,0;", "the device number must be 4 hex digits"),
        ("g001,0;", "g001,0;", "the device number must be 4 hex digits"),
        ("0001,0", "0001,0", "a record must end with ';'"),
        ("0001,0,;", "0001,0,;", "expected <devno>,<port>[,<mac>];"),
        ("0001,0,0a0000000011,5;", "0001,0,0a0000000011,5;", "expected <devno>,<port>[,<mac>];"),
        ("0001;", "0001;", "expected <devno>,<port>[,<mac>];"),
        (
            "0001,0,0a00000000111;",
            "0001,0,0a00000000111;",
            "the MAC must be 12 hex digits without separators",
        ),
        (
            "0001,0,0a:00:00:00:00:11;",
            "0001,0,0a:00:00:00:00:11;",
            "the MAC must be 12 hex digits without separators",
        ),
        (
            "0001,0,030000000011;",
            "0001,0,030000000011;",
            "the MAC is not a locally administered unicast address",
        ),
        (
            "0001,0,001a2b3c4d5e;",
            "0001,0,001a2b3c4d5e;",
            "the MAC is not a locally administered unicast address",
        ),
        (
            "0001,0,ffffffffffff;",
            "0001,0,ffffffffffff;",
            "the MAC is not a locally administered unicast address",
        ),
        ("fffe,0;", "fffe,0;", "the device number leaves no room for the 3 device numbers"),
        ("0001,0;;", ";", "empty record"),
    ],
)
def test_malformed_record_is_skipped_and_named(
    guest: FakeGuest, record: str, shown: str, reason: str
) -> None:
    guest.set_cmdline(cmdline(f"0004,1; {record} 0007,0;"))

    result = guest.netconfig()

    assert result.returncode == 0, result.stderr
    assert f"warning: skipping malformed NIC record '{shown}': {reason}" in result.stderr
    assert sorted(guest.configured()) == sorted(
        {"0.0.0004", "0.0.0007"} | ({"0.0.0001"} if record.startswith("0001,0;") else set())
    )
