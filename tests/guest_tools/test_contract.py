"""Contract between the DPM compute driver and the guest tools.

The driver renders the partition's boot-os-specific-parameters with
ibmvirt.dpm.bootparams.render(); the HMC appends the value to the guest's
kernel command line. Booting a guest with that command line, the tools must
configure exactly the driver's devices, on the driver's ports, with the
driver's MACs: no more, no fewer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from ibmvirt.dpm.bootparams import MAX_LENGTH, BootParametersTooLong, NicRecord, parse, render

if TYPE_CHECKING:
    from tests.guest_tools.fakeguest import FakeGuest

# What a RHEL 9 image on a SCSI LUN boots with before the HMC appends the value.
IMAGE_ARGS = (
    "BOOT_IMAGE=(hd0,msdos1)/vmlinuz-5.14.0-427.13.1.el9_4.s390x "
    "root=UUID=6c7a1e5d-3b0e-4b4f-9a55-0d1f3c1a2b3c ro crashkernel=1G-4G:192M,4G-64G:256M "
    "cio_ignore=all,!condev rd.zfcp=0.0.1700,0x500507680b21bac6,0x0000000000000000 "
    "console=ttysclp0"
)
TRAILING_ARGS = "quiet rd.shell=0"


def many(count: int, with_mac: bool) -> list[NicRecord]:
    return [
        NicRecord(
            f"{0x0100 + 3 * i:04X}",
            i % 2,
            f"fa:16:3e:00:01:{i:02x}" if with_mac else None,
        )
        for i in range(count)
    ]


NIC_SETS = {
    "macs": [
        NicRecord("0001", 0, "fa:16:3e:5b:01:02"),
        NicRecord("0004", 1, "fa-16-3e-5b-01-03"),
        NicRecord("F500", 1, "FA163E5B0104"),
    ],
    "no-macs": [NicRecord("0001", 0), NicRecord("0004", 1), NicRecord("f500", 0)],
    "mixed": [NicRecord("a000", 1, "02:00:00:00:00:0a"), NicRecord("a003", 0)],
    "port-1-only": [NicRecord("0007", 1, "0e:00:00:00:00:07")],
    "max-with-macs": many(12, with_mac=True),
    "max-without-macs": many(32, with_mac=False),
}


def expected(records: list[NicRecord]) -> tuple[dict[str, int], dict[str, str]]:
    """The driver's intent: {bus-ID: port} and {bus-ID: MAC as ip takes it}."""
    ports = {f"0.0.{r.devno.lower()}": r.port for r in records}
    macs = {}
    for r in records:
        if r.mac is not None:
            digits = r.mac.replace(":", "").replace("-", "").lower()
            macs[f"0.0.{r.devno.lower()}"] = ":".join(digits[i : i + 2] for i in range(0, 12, 2))
    return ports, macs


def boot(guest: FakeGuest, cmdline: str) -> tuple[dict[str, int], dict[str, str]]:
    """Boot: the unit configures the devices, then udev runs setmac on each interface."""
    guest.set_cmdline(cmdline)
    result = guest.netconfig()
    assert result.returncode == 0, result.stderr
    assert "malformed" not in result.stderr
    ports = guest.configured()
    macs = {}
    for bus_id in ports:
        qeth = guest.qeth(bus_id.removeprefix("0.0."))
        assert qeth["online"] == "1" and qeth["layer2"] == "1"
        assert qeth["portno"] == str(ports[bus_id])
        before = qeth["mac"]
        assert guest.udev_add(bus_id.removeprefix("0.0.")).returncode == 0
        after = guest.qeth(bus_id.removeprefix("0.0."))["mac"]
        if after != before:
            macs[bus_id] = after
    set_by_ip = guest.macs_set()
    assert set_by_ip == {
        guest.qeth(b.removeprefix("0.0."))["interface"]: m for b, m in macs.items()
    }
    return ports, macs


@pytest.mark.parametrize("nics", NIC_SETS.values(), ids=NIC_SETS.keys())
def test_tools_configure_exactly_the_drivers_nics(guest: FakeGuest, nics) -> None:
    value = render(nics)
    assert len(value) <= MAX_LENGTH

    assert boot(guest, f"{IMAGE_ARGS} {value}") == expected(nics)


@pytest.mark.parametrize("nics", NIC_SETS.values(), ids=NIC_SETS.keys())
def test_value_between_other_kernel_arguments(guest: FakeGuest, nics) -> None:
    value = render(nics)

    assert boot(guest, f"{IMAGE_ARGS} {value} {TRAILING_ARGS}") == expected(nics)


def test_value_after_operator_parameters(guest: FakeGuest) -> None:
    nics = NIC_SETS["mixed"]
    value = render(nics, existing="rd.neednet=0 net.ifnames=1")

    assert boot(guest, f"{IMAGE_ARGS} {value} {TRAILING_ARGS}") == expected(nics)


def test_znetconf_images_get_the_same_devices(guest: FakeGuest) -> None:
    guest.remove_stub("chzdev")
    nics = NIC_SETS["macs"]

    assert boot(guest, f"{IMAGE_ARGS} {render(nics)} {TRAILING_ARGS}") == expected(nics)
    assert {c[0] for c in guest.calls()} <= {"znetconf", "ip", "cio_ignore"}


def test_the_driver_parses_what_the_tools_configure() -> None:
    for nics in NIC_SETS.values():
        cmdline = f"{IMAGE_ARGS} {render(nics)} {TRAILING_ARGS}"
        assert [(r.devno, r.port, r.mac) for r in parse(cmdline)] == [
            (
                r.devno.lower(),
                r.port,
                r.mac and r.mac.replace(":", "").replace("-", "").lower(),
            )
            for r in nics
        ]


def test_max_sets_really_are_the_maximum() -> None:
    with pytest.raises(BootParametersTooLong):
        render(many(13, with_mac=True))
    with pytest.raises(BootParametersTooLong):
        render(many(33, with_mac=False))
