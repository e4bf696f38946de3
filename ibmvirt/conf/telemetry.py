"""Options of the Ceilometer compute inspectors (``hypervisor_inspector = powervm | dpm``).

The inspectors run inside ceilometer-polling on the compute host and reach the
same NovaLink or HMC as nova-compute, so they read the same connection options
([powervm] novalink_*, [dpm] hmc*/cpc_object_id; TLS verified by default),
registered here on Ceilometer's configuration object. Only the options an
inspector reads are registered: nothing of nova-compute's sizing or storage.
"""

from __future__ import annotations

from oslo_config import cfg

from ibmvirt.conf import dpm as dpm_conf
from ibmvirt.conf import powervm as powervm_conf

#: The NovaLink logon: what build_adapter reads, without nova-compute's timers.
powervm_connection_opts = [
    o for o in powervm_conf.connection_opts if o.name.startswith("novalink_")
]

telemetry_group = cfg.OptGroup(
    "ibmvirt_telemetry",
    title="ibmvirt Ceilometer inspectors",
    help="Options of the PowerVM and DPM compute inspectors of ceilometer-polling.",
)

telemetry_opts = [
    cfg.IntOpt(
        "metrics_max_age",
        default=15,
        min=1,
        max=3600,
        help="Seconds a bulk read of the hypervisor's metrics (PowerVM: the PCM "
        "long-term monitor feed; DPM: one Get Metrics of the inspector's metrics "
        "context) serves every instance and meter of a polling cycle before the "
        "next read. Keep it below the polling interval and above the time one "
        "cycle takes. A failed read is not retried within this time either, so an "
        "unreachable NovaLink or HMC costs one attempt per cycle, not one per "
        "instance.",
    ),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    """Register [powervm] logon, [dpm] connection and [ibmvirt_telemetry] (idempotent)."""
    conf.register_group(powervm_conf.powervm_group)
    conf.register_opts(powervm_connection_opts, group=powervm_conf.powervm_group)
    conf.register_group(dpm_conf.dpm_group)
    conf.register_opts(dpm_conf.connection_opts, group=dpm_conf.dpm_group)
    conf.register_group(telemetry_group)
    conf.register_opts(telemetry_opts, group=telemetry_group)


def list_opts() -> list[tuple[cfg.OptGroup, list[cfg.Opt]]]:
    """Entry point for oslo-config-generator (namespace ``ibmvirt.telemetry``)."""
    return [
        (powervm_conf.powervm_group, powervm_connection_opts),
        (dpm_conf.dpm_group, dpm_conf.connection_opts),
        (telemetry_group, telemetry_opts),
    ]
