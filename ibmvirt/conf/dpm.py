"""``[dpm]`` options of the IBM Z DPM compute driver.

A nova-compute service with ``compute_driver = ibmvirt.DPMDriver`` manages one
*CPC subset*: a share of one CPC in DPM mode (``cpc_object_id``) limited to
``max_processors`` IFLs and ``max_memory`` MiB, using the FCP adapter ports in
``physical_storage_adapter_mappings``. Several subsets (each with its own
``[DEFAULT] host``) may share a CPC; every partition they create is named
``OpenStack-<host>-<instance uuid>`` so each service only sees its own.
All values are checked when nova-compute starts (init_host).
"""

from __future__ import annotations

from oslo_config import cfg

from ibmvirt.conf import types

dpm_group = cfg.OptGroup(
    "dpm",
    title="IBM Z DPM options",
    help="Options for ibmvirt.DPMDriver, the Nova driver for IBM Z and LinuxONE "
    "CPCs in Dynamic Partition Manager (DPM) mode, managed through the HMC Web "
    "Services API.",
)

#: How to reach the HMC and which CPC: shared by nova-compute and the DPM
#: Neutron agent (ibmvirt.conf.agent_dpm), which run on the same CPC subset.
connection_opts = [
    cfg.ListOpt(
        "hmc",
        default=[],
        help="Host name(s) or IP address(es) of the HMC(s) managing the CPC. List "
        "several HMCs (comma separated) to fail over between them. Required.",
    ),
    cfg.PortOpt(
        "hmc_port",
        default=6794,
        help="TCP port of the HMC Web Services API.",
    ),
    cfg.StrOpt(
        "hmc_username",
        help="HMC user the service logs on as. For nova-compute the user needs "
        "object access to the CPC, its FCP adapters and virtual switches, and the "
        "tasks New/Delete Partition, Partition Details, Start/Stop Partition and "
        "(z14 and later) Configure Storage - System Programmer. The DPM Neutron "
        "agent only reads: object access to the CPC, its partitions, the mapped "
        "network adapters and their virtual switches. Required.",
    ),
    cfg.StrOpt(
        "hmc_password",
        secret=True,
        help="Password of hmc_username. Required.",
    ),
    cfg.StrOpt(
        "hmc_ca_file",
        help="CA bundle (PEM) used to verify the HMC's TLS certificate. If unset, "
        "the system trust store is used (OpenSSL's default CA file or directory, "
        "e.g. /etc/ssl/certs/ca-certificates.crt; SSL_CERT_FILE overrides it), "
        "not the certifi bundle of Python requests.",
    ),
    cfg.BoolOpt(
        "hmc_insecure",
        default=False,
        help="Do not verify the HMC's TLS certificate. Only for test systems: "
        "anyone on the network path can then read the HMC password.",
    ),
    cfg.Opt(
        "cpc_object_id",
        type=types.ObjectId(),
        help="object-id of the CPC (in DPM mode) this compute service (or DPM "
        "agent) serves, as shown by the HMC (e.g. `zhmc cpc show <cpc> | grep "
        "object-id`). Required.",
    ),
]

dpm_opts = connection_opts + [
    cfg.IntOpt(
        "max_processors",
        min=1,
        help="Number of the CPC's shared IFL processors this compute service may "
        "offer (placement VCPU inventory; also the largest flavor it accepts). "
        "Must not exceed the CPC's IFL count. Required.",
    ),
    cfg.IntOpt(
        "max_memory",
        min=512,
        help="Memory in MiB this compute service may hand out to partitions "
        "(placement MEMORY_MB inventory). Must not exceed the CPC's customer "
        "storage. Required.",
    ),
    cfg.MultiOpt(
        "physical_storage_adapter_mappings",
        item_type=types.StorageAdapterMapping(),
        help="FCP adapter ports instances use to reach their volumes, one per line as "
        "`<fcp adapter object-id>:<port element-id>`. Each instance gets one path "
        "per entry: on z13 an HBA on that port, on z14 and later a storage group "
        "with that port as candidate. The first entry is the boot path. At least "
        "one is required.",
    ),
    cfg.ListOpt(
        "target_wwpn_ignore_list",
        default=[],
        help="Storage target WWPNs never to boot from, e.g. file-serving ports a "
        "unified storage system returns in its initiator-target map.",
    ),
    cfg.IntOpt(
        "status_timeout",
        default=60,
        min=1,
        help="Seconds to wait for a partition to reach the status a start or stop "
        "asked for, after the HMC job finished.",
    ),
    cfg.IntOpt(
        "operation_timeout",
        default=600,
        min=1,
        help="Seconds to wait for an asynchronous HMC job (start, stop) to finish.",
    ),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    """Register the [dpm] group on ``conf`` (idempotent)."""
    conf.register_group(dpm_group)
    conf.register_opts(dpm_opts, group=dpm_group)


def list_opts() -> list[tuple[cfg.OptGroup, list[cfg.Opt]]]:
    """Entry point for oslo-config-generator (namespace ``ibmvirt.dpm``)."""
    return [(dpm_group, dpm_opts)]
