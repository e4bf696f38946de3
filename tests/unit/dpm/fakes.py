"""The HMC for driver unit tests: the project's HMC emulator, in-process.

``EngineSession`` (ibmvirt.emulators.hmc.inprocess) runs every request of a
real zhmcclient Client through the emulator's engine (zhmcclient.mock state
plus the fidelity layer: duplicate-name refusals, MACs, device numbers,
storage groups, fulfillment, capacity checks at start, OS messages) without
sockets, on the same shipped inventories the HTTPS emulator and the Nova
functional tests use. ``RequestLog`` records the requests the driver makes,
excluding job polls (the benchmark does not count them either).
"""

from __future__ import annotations

import zhmcclient

from ibmvirt.emulators.hmc import inventories
from ibmvirt.emulators.hmc.inprocess import EngineSession

INVENTORIES = {
    "z13": (inventories.Z13, inventories.Z13_IDS),
    "z15": (inventories.Z15, inventories.Z15_IDS),
}


class RequestLog:
    """Every request the client sent, as (method, uri), job polls excluded."""

    def __init__(self, session: EngineSession) -> None:
        self.requests: list[tuple[str, str]] = []
        #: Make the request with this index (0-based, job polls excluded) fail once.
        self.fail_at: int | None = None
        for method in ("get", "post", "delete"):
            self._wrap(session, method)

    def _wrap(self, session, method):
        original = getattr(session, method)

        def call(uri, *args, **kwargs):
            if not uri.startswith("/api/jobs/"):
                self.requests.append((method.upper(), uri))
                if self.fail_at is not None and len(self.requests) - 1 == self.fail_at:
                    raise zhmcclient.HTTPError(
                        {
                            "http-status": 500,
                            "reason": 0,
                            "message": "injected HMC failure",
                            "request-method": method.upper(),
                            "request-uri": uri,
                        }
                    )
            return original(uri, *args, **kwargs)

        setattr(session, method, call)

    def clear(self) -> None:
        self.requests.clear()

    def __len__(self) -> int:
        return len(self.requests)


def emulated_hmc(inventory: str, op_delay: float = 0.0) -> tuple[EngineSession, zhmcclient.Client]:
    """A fresh emulated HMC loaded from a shipped inventory.

    ``op_delay``: seconds the HMC's start/stop jobs run (0: complete at once).
    """
    session = EngineSession.from_inventory(inventory, op_delay=op_delay)
    return session, zhmcclient.Client(session)
