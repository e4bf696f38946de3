"""``ibmvirt-hmc-emulator``: run the HMC WS API emulator as a server process.

    ibmvirt-hmc-emulator --inventory z15.yaml [--port 6794] [--host 127.0.0.1]
                         [--op-delay 0] [--state-dir DIR] [--userid NAME]

Prints the URL and the path of the CA certificate that clients must trust
(``zhmcclient.Session(..., verify_cert=<that path>)``), then serves until
SIGINT/SIGTERM. ``--inventory`` also accepts the names of the shipped
inventories (``z13``, ``z15``). With ``--userid``, logon requires that user and
the password from the environment variable IBMVIRT_HMC_EMULATOR_PASSWORD (a
password on the command line would be visible to every local user).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from ibmvirt.emulators import httpserver
from ibmvirt.emulators.hmc import inventories
from ibmvirt.emulators.hmc.server import DEFAULT_PORT, HMCEmulator

PASSWORD_ENV = "IBMVIRT_HMC_EMULATOR_PASSWORD"  # noqa: S105 - a variable name
SHIPPED = {"z13": inventories.Z13, "z15": inventories.Z15}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ibmvirt-hmc-emulator",
        description="Emulated IBM HMC Web Services API (DPM) over HTTPS, for tests and demos.",
    )
    p.add_argument(
        "--inventory",
        required=True,
        help="zhmcclient.mock HMC definition YAML, or one of: " + ", ".join(SHIPPED),
    )
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="TCP port (0 = any free port)")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default loopback; the control endpoint always "
        "answers loopback clients only)",
    )
    p.add_argument(
        "--op-delay",
        type=float,
        default=0.0,
        help="seconds partition start/stop jobs stay running (default 0: complete at once; "
        "note zhmcclient polls jobs every 10 s, so any delay costs a client 10 s)",
    )
    p.add_argument(
        "--session-timeout", type=float, default=3600.0, help="idle session lifetime in seconds"
    )
    p.add_argument(
        "--state-dir",
        help="directory for the TLS files (default: a temporary directory removed at exit)",
    )
    p.add_argument(
        "--userid",
        help=f"require this logon userid, with the password from ${PASSWORD_ENV}",
    )
    p.add_argument("--debug", action="store_true", help="log every request")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point; returns the process exit status."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    inventory = SHIPPED.get(args.inventory, args.inventory)
    if not os.path.isfile(inventory):
        print(
            f"error: --inventory {args.inventory}: no such file (or use one of {list(SHIPPED)})",
            file=sys.stderr,
        )
        return 2
    if args.op_delay < 0:
        print("error: --op-delay must be >= 0", file=sys.stderr)
        return 2
    credentials = None
    if args.userid:
        password = os.environ.get(PASSWORD_ENV)
        if not password:
            print(f"error: --userid needs the password in ${PASSWORD_ENV}", file=sys.stderr)
            return 2
        credentials = {args.userid: password}
    try:
        emu = HMCEmulator(
            inventory,
            host=args.host,
            port=args.port,
            op_delay=args.op_delay,
            state_dir=args.state_dir,
            session_timeout=args.session_timeout,
            credentials=credentials,
        )
        emu.start()
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

    try:
        httpserver.serve_until_signalled(
            args.host,
            [
                f"HMC emulator URL: {emu.url}",
                f"CA certificate: {emu.ca_file}",
                f"Inventory: {inventory}",
                f"Logon: userid {args.userid!r} only"
                if credentials
                else "Logon: any userid and password (--userid requires one)",
            ],
        )
    finally:
        emu.stop()
    print("HMC emulator stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
