"""``ibmvirt-sandbox``: ibmvirt's drivers in an all-in-one Nova on emulated hardware.

    ibmvirt-sandbox demo [--inventory z15|z13]

``demo`` walks two servers through their lifecycle through the Nova API (what
``make demo`` runs): one booted from a volume on an emulated DPM CPC (the
``--inventory``), then one booted from an image on an emulated PowerVM host
behind NovaLink.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point; returns the process exit status."""
    parser = argparse.ArgumentParser(prog="ibmvirt-sandbox", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="boot and walk a server through its lifecycle")
    demo.add_argument(
        "--inventory", choices=("z15", "z13"), default="z15", help="the emulated DPM CPC"
    )
    args = parser.parse_args(argv)
    # nova-compute runs in native threads since Nova 34; so does the sandbox.
    # This must be decided before anything imports nova.
    os.environ.setdefault("OS_NOVA_DISABLE_EVENTLET_PATCHING", "1")
    from ibmvirt.sandbox import demo as demo_module

    return demo_module.run(args.inventory)


if __name__ == "__main__":
    sys.exit(main())
