"""Ceilometer's InstanceStats with ``cpu_util``, which Ceilometer 27 no longer has.

Ceilometer removed its cpu_util meter (a rate is for the storage to compute
from ``cpu``); the PowerVM and DPM inspectors still give it because DPM has no
cumulative CPU time at all and PowerVM's is not comparable across LPAR modes.
ibmvirt.telemetry.pollsters.CPUUtilPollster publishes it.
"""

from __future__ import annotations

from ceilometer.compute.virt import inspector as virt_inspector


class InstanceStats(virt_inspector.InstanceStats):
    """InstanceStats plus cpu_util (percent, 0 to 100)."""

    fields = [*virt_inspector.InstanceStats.fields, "cpu_util"]
