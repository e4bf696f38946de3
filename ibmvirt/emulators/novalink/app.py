"""Assemble a running emulator: inventory -> Emulator -> HTTP(S) server.

``start()`` is what both the console script and the in-process test fixture
use, so tests exercise the same server an operator runs.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Iterator
from typing import Any

from ibmvirt.emulators.novalink import inventory as inv_mod
from ibmvirt.emulators.novalink import state
from ibmvirt.emulators.novalink.emulator import Config, Emulator
from ibmvirt.emulators.novalink.server import NovaLinkServer


def start(
    inventory: str | dict[str, Any] | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    ssl_context: ssl.SSLContext | None = None,
    token_dir: str | None = None,
    control: bool = True,
    **overrides: Any,
) -> NovaLinkServer:
    """Start an emulator in a background thread and return its server.

    ``overrides`` replace ``behaviour`` settings of the inventory
    (job_delay, request_delay, event_wait, rmc_on_boot, strict_schema, disk_dir).
    """
    inv = inv_mod.load(inventory)
    behaviour = {**inv["behaviour"], **overrides}
    config = Config(
        job_delay=float(behaviour.get("job_delay", 0.0)),
        request_delay=float(behaviour.get("request_delay", 0.0)),
        event_wait=float(behaviour.get("event_wait", 10.0)),
        users=dict(inv["users"]),
        rmc_on_boot=bool(behaviour.get("rmc_on_boot", True)),
        strict_schema=bool(behaviour.get("strict_schema", True)),
        disk_dir=behaviour.get("disk_dir"),
    )
    emu = Emulator(config, token_dir=token_dir)
    ctl = None
    if control:
        from ibmvirt.emulators.novalink.control import Control

        ctl = Control(emu)
    server = NovaLinkServer(emu, host=host, port=port, ssl_context=ssl_context, control=ctl)
    emu.jobs.delay = config.job_delay
    state.build(emu, inv)
    server.start()
    emu.flush_outbox()  # greet the inventory's peers (those not up yet greet us later)
    return server


@contextlib.contextmanager
def running(
    inventory: str | dict[str, Any] | None = None, **kwargs: Any
) -> Iterator[NovaLinkServer]:
    """``with running("small", job_delay=0) as srv: ...`` — start, then always stop."""
    server = start(inventory, **kwargs)
    try:
        yield server
    finally:
        server.stop()
