"""``fixtures.Fixture`` wrapper so tests get a running HMC emulator and a session.

Usage (testtools/oslotest or pytest via ``useFixture``)::

    emu_fx = self.useFixture(HMCEmulatorFixture(inventories.Z15))
    session = emu_fx.session()          # zhmcclient.Session over verified TLS
    client = zhmcclient.Client(session)
    emu_fx.emulator.inject_fault("POST", r"/operations/start$", status=409, reason=1)
"""

from __future__ import annotations

from typing import Any

import fixtures

from ibmvirt.emulators.hmc.server import HMCEmulator


class HMCEmulatorFixture(fixtures.Fixture):
    """Starts an ``HMCEmulator`` on a free loopback port; stops it on cleanup.

    Sessions made with ``session()`` are logged off on cleanup too.
    """

    def __init__(
        self,
        inventory: str,
        op_delay: float = 0.0,
        userid: str = "ibmvirt",
        password: str = "emulated-password",  # noqa: S107 - emulator-only credential
        **emulator_kwargs: Any,
    ) -> None:
        super().__init__()
        self.inventory = inventory
        self.op_delay = op_delay
        self.userid = userid
        self.password = password
        self.emulator_kwargs = emulator_kwargs
        self.emulator: HMCEmulator

    def _setUp(self) -> None:
        state_dir = self.useFixture(fixtures.TempDir()).path
        self.emulator = HMCEmulator(
            self.inventory,
            host="127.0.0.1",
            port=0,
            op_delay=self.op_delay,
            state_dir=state_dir,
            credentials={self.userid: self.password},
            **self.emulator_kwargs,
        )
        self.emulator.start()
        self.addCleanup(self.emulator.stop)

    def session(self, **session_kwargs: Any) -> Any:
        """A zhmcclient.Session to the emulator, verifying TLS with its CA."""
        import zhmcclient

        kwargs: dict[str, Any] = {
            "port": self.emulator.port,
            "verify_cert": self.emulator.ca_file,
        }
        kwargs.update(session_kwargs)
        session = zhmcclient.Session("127.0.0.1", self.userid, self.password, **kwargs)
        self.addCleanup(self._logoff, session)
        return session

    @staticmethod
    def _logoff(session: Any) -> None:
        try:
            session.logoff()
        except Exception:  # noqa: BLE001,S110 - emulator may already be stopped
            pass
