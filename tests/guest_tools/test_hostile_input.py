"""Hostile kernel command lines: nothing is evaluated, globbed or let through."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.guest_tools.fakeguest import FakeGuest

VALID = "0004,1,0a0000000004; 0007,0;"


def sentinel_payloads(sentinel: str) -> list[str]:
    """Tokens that create `sentinel` if anything hands them to a shell."""
    touch = f"touch${{IFS}}{sentinel}"
    return [
        f"$({touch})",
        f"0001,0,$({touch});",
        f"0001,$({touch});",
        f"$({touch}),0;",
        f"`{touch}`;",
        f"0001,0;`{touch}`;",
        f"0001,0;$({touch})",
        f"0001,0;|{touch};",
        f"0001,0&&{touch};",
        f"0001,0;{touch};",
        f"a[$({touch})],0;",
        f"0x1[$({touch})],0;",
        f"$(({touch})),0;",
        f"0001,0,0a0000000011;${{IFS}};$({touch});",
        f"';{touch};'",
        f'";{touch};"',
    ]


def test_command_substitutions_and_backticks_are_never_run(guest: FakeGuest, tmp_path) -> None:
    sentinel = tmp_path / "pwned"
    guest.set_cmdline(f"ro {' '.join(sentinel_payloads(str(sentinel)))} {VALID} quiet")

    result = guest.netconfig()

    assert not sentinel.exists()
    assert result.returncode == 0, result.stderr
    # Only valid records were configured: those of VALID and the well-formed
    # 0001,0; that several payloads carry next to their hostile record.
    assert guest.configured() == {"0.0.0001": 0, "0.0.0004": 1, "0.0.0007": 0}
    assert all(not set("$`;|&()[]{}") & set(arg) for call in guest.calls() for arg in call[1:]), (
        guest.calls()
    )
    assert "skipping malformed NIC record '0001,0,$(touch${IFS}" in result.stderr
    assert "skipping malformed NIC record '`touch${IFS}" in result.stderr

    for devno in ("0004", "0007"):
        guest.udev_add(devno)
    assert not sentinel.exists()
    assert guest.macs_set() == {"enc4": "0a:00:00:00:00:04"}


def test_rm_rf_root_is_three_harmless_tokens(guest: FakeGuest, tmp_path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "file").write_text("keep")
    guest.set_cmdline(f"ro ;rm -rf {victim} ;rm -rf / {VALID}")

    result = guest.netconfig()

    assert (victim / "file").read_text() == "keep"
    assert result.returncode == 0
    assert "skipping malformed NIC record ';': empty record" in result.stderr
    assert "skipping malformed NIC record 'rm': a record must end with ';'" in result.stderr
    assert guest.configured() == {"0.0.0004": 1, "0.0.0007": 0}


def test_globs_are_not_expanded(guest: FakeGuest) -> None:
    # Files in the working directory that a glob would turn into valid records.
    (guest.root / "abcd,0;").write_text("")
    (guest.root / "0010,1;").write_text("")
    guest.set_cmdline("ro *,0; ????,0; [0-9]*; 0*; " + VALID)

    result = guest.netconfig()

    assert guest.configured() == {"0.0.0004": 1, "0.0.0007": 0}
    assert "skipping malformed NIC record '*,0;'" in result.stderr
    assert "skipping malformed NIC record '????,0;'" in result.stderr
    assert "skipping malformed NIC record '[0-9]*;'" in result.stderr


def test_overlong_token_is_named_shortened(guest: FakeGuest) -> None:
    token = "0001," + "0" * 20000 + ";"
    guest.set_cmdline(f"ro {token} {VALID}")

    result = guest.netconfig()

    assert result.returncode == 0
    assert (
        f"skipping malformed NIC record '0001,{'0' * 59}... (20006 characters)':"
        " the port must be 0 or 1" in result.stderr
    )
    assert guest.configured() == {"0.0.0004": 1, "0.0.0007": 0}
    assert max(len(line) for line in result.stderr.splitlines()) < 200


def test_flood_of_records_is_bounded(guest: FakeGuest) -> None:
    guest.set_cmdline("ro " + ";" * 3000 + " " + "0001,9;" * 500 + " " + VALID)

    result = guest.netconfig()

    assert result.returncode == 0
    assert result.stderr.count("skipping malformed NIC record") == 32
    assert "skipped 3500 malformed NIC records in all; only the first 32 are listed" in (
        result.stderr
    )
    assert guest.configured() == {"0.0.0004": 1, "0.0.0007": 0}


def test_control_characters_are_not_written_to_the_console(guest: FakeGuest) -> None:
    guest.set_cmdline(b"ro 0001,\x1b[2J\x1b]0;owned\x07\xff0; " + VALID.encode())

    result = guest.netconfig()

    assert "\x1b" not in result.stderr and "\x07" not in result.stderr
    assert "skipping malformed NIC record '0001,?[2J?]0;'" in result.stderr
    assert "skipping malformed NIC record 'owned??0;'" in result.stderr
    assert guest.configured() == {"0.0.0004": 1, "0.0.0007": 0}


@pytest.mark.parametrize(
    "devpath",
    [
        "/devices/qeth/0.0.0004/net/$(touch /tmp/x)",
        "/devices/qeth/0.0.0004/net/..",
        "/devices/qeth/0.0.0004/net/.",
        "/devices/qeth/0.0.0004/net/-v",
        "/devices/qeth/0.0.0004/net/enc4;touch${IFS}/x",
        "/devices/qeth/0.0.0004/net/enc4/../../../../../etc",
        "/devices/qeth/../../etc/net/enc4",
        "/devices/qeth/0.0.004/net/enc4",
        "/devices/qeth/0.0.00004/net/enc4",
        "/devices/virtual/net/lo",
        "devices/qeth/0.0.0004/net/enc4",
        "",
        # Only the bus-ID is used, but the rest must still be an interface's path.
        "/devices/qeth/0.0.0004/net/eth0/address",
        "/devices/qeth/0.0.0004/net/",
        "/devices/qeth/0.0.0004",
        "//devices/qeth/0.0.0004/net/eth0",
        "/devices/qeth/0.0.0004/net/eth0\n",
        "/devices/qeth/0.0.0004/net/eth 0",
        "/devices/qeth/0.0.0004/net/eth0:1",
        "/devices/qeth/0.0.0004/net/sixteen-chars-xx",
        "/devices/qeth/0.0.0004/net/eth0 /devices/qeth/0.0.0007/net/eth1",
        "/devices/qeth/0.0.000A/net/eth0",
        "/devices/qeth/0.1.0004/net/eth0",
        "/devices/qeth/0.0.$(id)/net/eth0",
        "/devices/qeth/0.0.*/net/eth0",
    ],
)
def test_setmac_refuses_what_is_not_a_qeth_interface_path(guest: FakeGuest, devpath) -> None:
    guest.add_qeth("0004")
    guest.set_cmdline("ro " + VALID)

    result = guest.setmac(devpath)

    assert result.returncode == 2
    assert "is not the device path of a qeth network interface" in result.stderr
    assert guest.calls("ip") == []


def test_setmac_interface_name_that_looks_like_code_is_only_a_name(guest: FakeGuest) -> None:
    """The kernel allows such names; setmac ignores the name in the path anyway
    and takes the interface's name from sysfs."""
    guest.add_qeth("0004")
    guest.set_cmdline("ro " + VALID)
    # 15 characters, the longest name the kernel allows; run by a shell, it
    # would create the file x in the working directory (the fake root).
    payload = "$(touch${IFS}x)"

    result = guest.setmac(f"/devices/qeth/0.0.0004/net/{payload}")

    assert result.returncode == 0, result.stderr
    assert guest.macs_set() == {"enc4": "0a:00:00:00:00:04"}
    assert payload not in result.stderr
    assert not (guest.root / "x").exists()


def test_sysfs_interface_name_and_port_are_logged_printable(guest: FakeGuest) -> None:
    """A name in sysfs may hold any byte but '/': escape sequences must not reach
    the log lines (stderr, the journal) as they are."""
    guest.add_qeth("0004")
    net = guest.root / "sys/devices/qeth/0.0.0004/net"
    (enc4,) = net.iterdir()
    enc4.rename(net / "\x1b]0;owned\x07\x1b[2Jenc4")
    (guest.root / "sys/devices/qeth/0.0.0004/portno").write_text("\x1b[31m0\n")
    guest.set_cmdline("ro " + VALID)

    result = guest.netconfig()

    logged = result.stderr + "\n".join(guest.journal())
    assert "\x1b" not in logged and "\x07" not in logged
    assert "already configured and online (interface ?]0;owned??[2Jenc4)" in result.stderr
    assert "0.0.0004 uses port ?[31m0, but its NIC record says port 1" in result.stderr
    assert guest.configured() == {"0.0.0007": 0}
