"""NIC records in a partition's ``boot-os-specific-parameters``.

The HMC appends this property to the guest kernel command line, which is the
only channel the DPM guest tools (guest-tools/dpm) have for learning which qeth
devices to bring up, on which OSA port, and (on CPCs that cannot set a NIC's
MAC at creation) which MAC to give them. The record format is the contract
with those tools: ``<devno>,<port>[,<mac>];`` with a 4-hex-digit device number,
port 0 or 1 and a 12-hex-digit MAC without separators; records are separated
by one space.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Maximum length of the boot-os-specific-parameters property on the HMC.
MAX_LENGTH = 256

_DEVNO = re.compile(r"^[0-9a-fA-F]{4}$")
_MAC = re.compile(r"^([0-9a-fA-F]{2}[:-]?){5}[0-9a-fA-F]{2}$")


class BootParametersTooLong(ValueError):
    """The NIC records do not fit into boot-os-specific-parameters."""


@dataclass(frozen=True)
class NicRecord:
    """One NIC as the guest tools must configure it."""

    devno: str
    port: int
    mac: str | None = None

    def __post_init__(self) -> None:
        if not _DEVNO.match(self.devno):
            raise ValueError(f"device number {self.devno!r} is not 4 hex digits")
        if self.port not in (0, 1):
            raise ValueError(f"adapter port {self.port!r} is not 0 or 1")
        if self.mac is not None:
            if not _MAC.match(self.mac):
                raise ValueError(f"MAC address {self.mac!r} is not 6 hex octets")
            # OSA only accepts locally administered unicast MACs from the guest;
            # the guest tools refuse others, so refuse them before booting.
            if int(re.sub(r"[:-]", "", self.mac)[:2], 16) & 0b11 != 0b10:
                raise ValueError(
                    f"MAC address {self.mac!r} is not a locally administered unicast "
                    "address, which a guest on a z13 cannot set on an OSA NIC; use a "
                    "Neutron base_mac such as fa:16:3e:00:00:00"
                )

    def render(self) -> str:
        fields = [self.devno.lower(), str(self.port)]
        if self.mac is not None:
            fields.append(re.sub(r"[:-]", "", self.mac).lower())
        return ",".join(fields) + ";"


def render(records: list[NicRecord], existing: str = "") -> str:
    """Return ``existing`` followed by ``records``, refusing to exceed the limit.

    Callers check the result before creating anything on the HMC, so a
    partition that cannot carry all its NIC records is never built.
    """
    parts = [existing.strip()] if existing.strip() else []
    parts.extend(r.render() for r in records)
    value = " ".join(parts)
    if len(value) > MAX_LENGTH:
        raise BootParametersTooLong(
            f"{len(records)} NIC records need {len(value)} characters of "
            f"boot-os-specific-parameters; the HMC allows {MAX_LENGTH}"
        )
    return value


_RECORD = re.compile(r"([0-9a-fA-F]{4}),([01])(?:,([0-9a-fA-F]{12}))?;")
_RECORDS_TOKEN = re.compile(rf"(?:{_RECORD.pattern})+")


def parse(value: str) -> list[NicRecord]:
    """Parse the records back out of a property value or kernel command line.

    Only whitespace-separated tokens made entirely of records count, as in the
    guest tools: ``foo=0001,0;`` is a kernel argument, not a NIC record.
    """
    return [
        NicRecord(m.group(1).lower(), int(m.group(2)), m.group(3) and m.group(3).lower())
        for token in value.split()
        if _RECORDS_TOKEN.fullmatch(token)
        for m in _RECORD.finditer(token)
    ]


def without_devices(value: str, devnos: set[str]) -> str:
    """``value`` with the records of the given device numbers removed."""
    drop = {d.lower() for d in devnos}
    kept = [
        token
        for token in value.split()
        if not (_RECORDS_TOKEN.fullmatch(token) and {r.devno for r in parse(token)} & drop)
    ]
    return " ".join(kept)
