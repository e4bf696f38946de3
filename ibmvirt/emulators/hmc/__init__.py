"""HMC Web Services API emulator (IBM Z DPM), built on zhmcclient.mock.

Public API::

    from ibmvirt.emulators.hmc import HMCEmulator, inventories
    emu = HMCEmulator(inventory=inventories.Z15, port=0, op_delay=0.0).start()
    session = zhmcclient.Session("127.0.0.1", "user", "pw", port=emu.port,
                                 verify_cert=emu.ca_file)
    ...
    emu.stop()

For tests, ``HMCEmulatorFixture`` (fixtures.Fixture) wraps the lifecycle. The
console script ``ibmvirt-hmc-emulator`` runs it as a separate process. See
doc/hmc-emulator.md.
"""

from ibmvirt.emulators.hmc import inventories
from ibmvirt.emulators.hmc.fixture import HMCEmulatorFixture
from ibmvirt.emulators.hmc.server import DEFAULT_PORT, HMCEmulator

__all__ = ["DEFAULT_PORT", "HMCEmulator", "HMCEmulatorFixture", "inventories"]
