"""``ibmvirt-novalink-emulator``: run the NovaLink (PowerVM REST API) emulator.

    ibmvirt-novalink-emulator --inventory small|large|FILE.yaml [--port 12080]
                              [--host 127.0.0.1] [--https] [--state-dir DIR]
                              [--job-delay S] [--request-delay S] [--event-wait S]

Prints the URL (and, with --https, the CA file that pypowervm clients trust
through REQUESTS_CA_BUNDLE),
then serves until SIGINT/SIGTERM. Logon users come from the inventory's
``users`` section; the password of ``--user`` can instead be given in the
environment variable IBMVIRT_NOVALINK_EMULATOR_PASSWORD (a password on the
command line would be visible to every local user). NovaLink local (file)
logon writes token files under ``--state-dir``.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence

PASSWORD_ENV = "IBMVIRT_NOVALINK_EMULATOR_PASSWORD"  # noqa: S105 - a variable name


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ibmvirt-novalink-emulator",
        description="Emulated NovaLink PowerVM REST API, driven unchanged by pypowervm.",
    )
    p.add_argument(
        "--inventory", required=True, help="inventory YAML file, or a shipped one: small, large"
    )
    p.add_argument("--port", type=int, default=12080, help="TCP port (0 = any free port)")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default loopback; the control endpoint answers loopback only)",
    )
    p.add_argument("--https", action="store_true", help="serve HTTPS with a generated certificate")
    p.add_argument(
        "--state-dir",
        help="directory for token files and TLS material (default: a temporary directory)",
    )
    p.add_argument("--job-delay", type=float, help="seconds each job runs (0 = synchronous)")
    p.add_argument("--request-delay", type=float, help="seconds added to every request")
    p.add_argument("--event-wait", type=float, help="seconds an event long poll waits")
    p.add_argument("--user", help=f"add a logon user whose password is in ${PASSWORD_ENV}")
    p.add_argument(
        "--keep-disk-data",
        action="store_true",
        help="keep uploaded disk/ISO data under STATE_DIR/disks (GET /_emulator/disks lists it)",
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
    from ibmvirt.emulators import httpserver
    from ibmvirt.emulators.novalink import app, inventory

    for name in ("job_delay", "request_delay", "event_wait"):
        v = getattr(args, name)
        if v is not None and v < 0:
            print(f"error: --{name.replace('_', '-')} must be >= 0", file=sys.stderr)
            return 2
    try:
        inv = inventory.load(args.inventory)
    except (inventory.InventoryError, OSError, ValueError) as exc:
        print(f"error: --inventory {args.inventory}: {exc}", file=sys.stderr)
        return 2
    if args.user:
        password = os.environ.get(PASSWORD_ENV)
        if not password:
            print(f"error: --user needs the password in ${PASSWORD_ENV}", file=sys.stderr)
            return 2
        inv["users"] = {**inv["users"], args.user: password}
    from ibmvirt.emulators import tls

    own_dir = args.state_dir is None
    state_dir = args.state_dir or tempfile.mkdtemp(prefix="ibmvirt-novalink-")
    try:
        tls.private_directory(state_dir)  # refuses a directory others can change
    except OSError as exc:
        print(f"error: --state-dir: {exc}", file=sys.stderr)
        return 2
    overrides = {
        k: getattr(args, k)
        for k in ("job_delay", "request_delay", "event_wait")
        if getattr(args, k) is not None
    }
    if args.keep_disk_data:
        overrides["disk_dir"] = os.path.join(state_dir, "disks")
    ctx = files = None
    try:
        if args.https:
            from ibmvirt.emulators.novalink import tlsfiles

            ctx, files = tlsfiles.prepare(os.path.join(state_dir, "tls"))
        token_dir = tls.private_directory(os.path.join(state_dir, "tokens"))
        server = app.start(
            inv,
            host=args.host,
            port=args.port,
            ssl_context=ctx,
            token_dir=token_dir,
            **overrides,
        )
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        if own_dir:
            shutil.rmtree(state_dir, ignore_errors=True)
        return 1

    banner = [
        f"NovaLink emulator URL: {server.url}",
        f"ManagedSystem: {server.emu.ms.uuid if server.emu.ms else '?'}",
    ]
    if files is not None:
        banner += [
            f"CA certificate: {files.ca_file}",
            f"pypowervm clients: export REQUESTS_CA_BUNDLE={files.ca_file}",
        ]
    banner.append(f"Token directory: {os.path.join(state_dir, 'tokens')}")
    try:
        httpserver.serve_until_signalled(args.host, banner)
    finally:
        server.stop()
        if own_dir:
            shutil.rmtree(state_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
