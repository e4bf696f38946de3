"""The ``cpu_util`` pollster (entry point ceilometer.poll.compute: cpu_util).

A Ceilometer InstanceStatsPollster: it shares the polling cycle's
inspect_instance result with cpu, vcpus and memory, so it costs no request.
"""

from __future__ import annotations

from ceilometer import sample
from ceilometer.compute.pollsters import instance_stats


class CPUUtilPollster(instance_stats.InstanceStatsPollster):
    sample_name = "cpu_util"
    sample_unit = "%"
    sample_type = sample.TYPE_GAUGE
    sample_stats_key = "cpu_util"
