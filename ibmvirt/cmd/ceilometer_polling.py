"""ibmvirt-ceilometer-polling: ceilometer-polling that accepts our inspectors.

Same arguments and configuration as ceilometer-polling (e.g.
``--polling-namespaces compute``); see ibmvirt.telemetry.registration.
"""

from __future__ import annotations

from ibmvirt.telemetry import registration


def main() -> None:
    registration.allow_inspectors()
    from ceilometer.cmd import polling  # after: it reads the option at start-up

    polling.main()


if __name__ == "__main__":
    main()
