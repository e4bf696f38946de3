"""The NovaLink emulator's control endpoint, which the driver's emulator-only
seams (snapshot disk access, virtual terminals) read; bad use is the driver's
ConfigError naming the option."""

from __future__ import annotations

from ibmvirt.common import novalink
from ibmvirt.powervm import exceptions as pvm_exc


def control_url(adapter, option: str) -> str:
    try:
        return novalink.emulator_control_url(adapter, option)
    except novalink.NovaLinkConfigError as exc:
        raise pvm_exc.ConfigError(option=exc.option, reason=exc.reason) from None
