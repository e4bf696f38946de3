"""TaskFlow tasks of the PowerVM driver's operations: thin wrappers with reverts.

Each task calls one function of the driver's modules (vm, vif, disk, volume,
media) and undoes it in ``revert``; the flows are assembled in the driver and
run through :func:`run`, which logs each task's duration.
"""

from __future__ import annotations

from oslo_log import log as logging
from taskflow import engines
from taskflow.listeners import timing

LOG = logging.getLogger(__name__)


def run(flow, instance=None, store: dict | None = None):
    """Run ``flow`` to completion (reverting on failure); re-raise the first failure."""
    engine = engines.load(flow, store=store or {})
    with timing.PrintingDurationListener(engine, printer=_printer(instance)):
        engine.run()
    return engine


def _printer(instance):
    def log(message, *args, **kwargs):
        LOG.debug(message, *args, instance=instance)

    return log
