"""`make bench`: run the benchmarks and print a Markdown report.

    python -m bench.run [--output FILE]

The report is what doc/performance.md quotes; paste it there when numbers move.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time

os.environ.setdefault("OS_NOVA_DISABLE_EVENTLET_PATCHING", "1")


def in_neutron_process(module: str) -> list[str]:
    """A Neutron benchmark's report: its own process (Nova, imported here, and
    Neutron cannot share one)."""
    out = subprocess.run([sys.executable, "-m", module], capture_output=True, text=True, check=True)
    return [line for line in out.stdout.splitlines() if not line.startswith("(benchmark took")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", help="also write the report to this file")
    args = parser.parse_args()
    from bench import (
        dpm,
        novalink,
        powervm,
        powervm_evacuate,
        powervm_lpm,
        powervm_moves,
        powervm_volumes,
        telemetry,
    )

    started = time.monotonic()
    lines = [
        f"Machine: {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d')}",
        "",
    ]
    lines += dpm.main()
    lines += novalink.main()
    lines += powervm.main()
    lines += powervm_moves.main()
    lines += powervm_lpm.main()
    lines += powervm_evacuate.main()
    lines += powervm_volumes.main()
    lines += in_neutron_process("bench.neutron_powervm")
    lines += in_neutron_process("bench.neutron_dpm")
    lines += telemetry.main()
    lines.append(f"(benchmark took {time.monotonic() - started:.0f} s)")
    report = "\n".join(lines)
    print(report)
    if args.output:
        with open(args.output, "w") as f:
            f.write(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
