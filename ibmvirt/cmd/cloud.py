"""``ibmvirt-cloud``: the real multi-process OpenStack on the emulators.

    ibmvirt-cloud up   [--dir DIR]   # start (or reuse) everything; prints the openrc
    ibmvirt-cloud stop [--dir DIR]   # stop what `up` started, by recorded PID
    ibmvirt-cloud status [--dir DIR]
    ibmvirt-cloud test [--dir DIR]   # the openstack CLI scenario against it

The directory (default ``.cloud``) holds configs, PIDs, logs and data.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="ibmvirt-cloud", description=__doc__.split("\n")[0])
    p.add_argument("action", choices=["up", "stop", "status", "test"])
    p.add_argument("--dir", default=".cloud", help="state directory (default: .cloud)")
    args = p.parse_args(argv)

    from ibmvirt.cloud.layout import Layout
    from ibmvirt.cloud.procs import CloudError
    from ibmvirt.cloud.up import Cloud

    lay = Layout(Path(args.dir))
    cloud = Cloud(lay)
    t0 = time.monotonic()
    try:
        if args.action == "up":
            cloud.up()
            print(f"make cloud took {time.monotonic() - t0:.0f} s; logs in {lay.logs}")
            print(f"source {lay.openrc}")
        elif args.action == "stop":
            stopped = cloud.stop()
            print(
                f"stopped {len(stopped)} processes in {time.monotonic() - t0:.0f} s: "
                + " ".join(stopped)
            )
        elif args.action == "status":
            for name in cloud.sup.recorded():
                pid = cloud.sup.pid_of(name)
                print(f"{name:24} {'pid ' + str(pid) if pid else 'not running'}")
        else:
            from ibmvirt.cloud import scenario

            scenario.run(cloud)
            print(f"cloud-test passed in {time.monotonic() - t0:.0f} s")
    except CloudError as exc:
        print(f"ibmvirt-cloud {args.action}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
