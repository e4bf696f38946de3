"""ibmvirt-ceilometer-polling: ceilometer-polling that accepts our inspectors.

Same arguments and configuration as ceilometer-polling (e.g.
``--polling-namespaces compute``); see ibmvirt.telemetry.registration.
"""

from __future__ import annotations

import functools

from oslo_log import log as logging

from ibmvirt.telemetry import registration

LOG = logging.getLogger(__name__)


def close_inspector() -> None:
    """Close the compute pollsters' shared inspector (metrics context, logon), if any."""
    from ceilometer.compute import pollsters

    inspector = pollsters.GenericComputePollster.__dict__.get("_inspector")
    close = getattr(inspector, "close", None)
    if close is None:
        return
    try:
        close()
    except Exception:  # noqa: BLE001 - shutting down: log, do not fail the exit
        LOG.exception("Closing the %s failed", type(inspector).__name__)


def install_terminate_hook() -> None:
    """Close the inspector in AgentManager.terminate.

    cotyledon workers leave by os._exit after terminate(): atexit handlers
    never run there, so the HMC metrics context and the logons would be left.
    """
    from ceilometer.polling import manager

    original = manager.AgentManager.terminate
    if getattr(original, "_ibmvirt_closes_inspector", False):
        return

    @functools.wraps(original)
    def terminate(self):
        try:
            original(self)  # stops the polling tasks first
        finally:
            close_inspector()

    terminate._ibmvirt_closes_inspector = True
    manager.AgentManager.terminate = terminate


def main() -> None:
    registration.allow_inspectors()
    install_terminate_hook()
    from ceilometer.cmd import polling  # after: it reads the option at start-up

    polling.main()


if __name__ == "__main__":
    main()
