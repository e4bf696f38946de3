"""Options of the PowerVM Neutron L2 agents (SEA and SR-IOV).

Both agents run on the NovaLink partition next to nova-compute, read
``neutron.conf`` plus their own ini file, and log on to NovaLink with the same
``[powervm]`` connection options as the Nova driver (so the Nova section can be
copied as is). ``[AGENT]`` holds what each agent does; Neutron's own
``[AGENT]`` options (polling_interval, report_interval) apply too. Option
names and defaults are networking-powervm's where they mean the same thing.
"""

from __future__ import annotations

from oslo_config import cfg

from ibmvirt.conf import powervm as powervm_conf

AGENT_GROUP = "AGENT"

#: The Nova driver's connection options the agents read (the lifecycle event
#: delay is Nova's alone: an agent reports no power states).
connection_opts = [o for o in powervm_conf.connection_opts if o.name != "lifecycle_event_delay"]

#: Nova's option, shared: adapters on that virtual switch are the Open vSwitch
#: agent's (ovs VIFs), never this agent's. Set it as in nova-compute's [powervm].
novalink_io_opt = next(
    o for o in powervm_conf.compute_opts if o.name == "pvm_vswitch_for_novalink_io"
)

common_opts = [
    cfg.IntOpt(
        "heal_and_optimize_interval",
        default=1800,
        min=1,
        help="Seconds between two heal passes. A pass re-reads every client "
        "adapter of the host (one request per LPAR), reports each port up again "
        "and, for the SEA agent, re-adds missing VLANs and removes unused ones. "
        "Between passes the agent learns of adapters from NovaLink's event feed "
        "and costs no request while nothing changes.",
    ),
    cfg.FloatOpt(
        "exception_interval",
        default=5.0,
        min=0.1,
        help="Seconds before NovaLink work that failed (NovaLink down, VIOS "
        "busy) is tried again. While the adapters cannot be read, their ports "
        "are reported DOWN; they come back up by themselves once NovaLink "
        "answers.",
    ),
]

sea_opts = [
    cfg.StrOpt(
        "bridge_mappings",
        default="",
        help="Shared Ethernet Adapter of each physical network, as "
        "<physnet>:<SEA device>:<VIOS name>[,...], e.g. "
        "physnet1:ent5:vios1,physnet2:ent8:vios2 (the SEA device name as the "
        "VIOS shows it, `lsmap -all -net`). Empty: the host's only SEA serves "
        "every physical network (reported as 'default'); with several SEAs the "
        "agent refuses to start until each is mapped.",
    ),
    cfg.BoolOpt(
        "automated_powervm_vlan_cleanup",
        default=True,
        help="During each heal pass remove from the SEAs the VLANs no adapter "
        "of any partition uses any more (at most 3 per pass; each takes a SEA "
        "update). VLANs of the primary trunk adapter are never removed.",
    ),
]

sriov_opts = [
    cfg.IntOpt(
        "vnic_required_vfs",
        default=2,
        min=1,
        help="Backing SR-IOV virtual functions of each vNIC (on different "
        "physical ports, for failover) unless the port's binding:profile sets "
        "vnic_required_vfs. 1 gives no redundancy.",
    ),
    cfg.FloatOpt(
        "vnic_vf_capacity",
        min=0.0,
        max=1.0,
        help="Share of a physical port's bandwidth guaranteed to each backing "
        "VF (above 0.0, at most 1.0, a multiple of the port's minimum "
        "granularity, e.g. 0.02) unless the port's binding:profile sets "
        "capacity. Unset: the port's minimum granularity.",
    ),
]


#: [powervm] options each agent reads (vNICs are on no virtual switch).
_sea_powervm_opts = [*connection_opts, novalink_io_opt]
_sriov_powervm_opts = list(connection_opts)


def _register(conf: cfg.ConfigOpts, agent_opts: list[cfg.Opt], pvm_opts: list[cfg.Opt]) -> None:
    conf.register_group(powervm_conf.powervm_group)
    conf.register_opts(pvm_opts, group=powervm_conf.powervm_group)
    conf.register_opts([*common_opts, *agent_opts], group=AGENT_GROUP)


def register_sea_opts(conf: cfg.ConfigOpts) -> None:
    """The SEA agent's options on ``conf`` (idempotent)."""
    _register(conf, sea_opts, _sea_powervm_opts)


def register_sriov_opts(conf: cfg.ConfigOpts) -> None:
    """The SR-IOV agent's options on ``conf`` (idempotent)."""
    _register(conf, sriov_opts, _sriov_powervm_opts)


#: How the sample introduces [powervm] (the options are nova-compute's).
_sample_powervm_group = cfg.OptGroup(
    "powervm",
    title="NovaLink connection",
    help="How the agent logs on to NovaLink: the same options, with the same "
    "values, as nova-compute's [powervm] section on this host. The agent also "
    "waits vios_ready_timeout for a VIOS at start.",
)


def _list(agent_opts: list[cfg.Opt], pvm_opts: list[cfg.Opt]):
    return [
        ("agent", [*common_opts, *agent_opts]),  # oslo.config's spelling of [AGENT]
        (_sample_powervm_group, pvm_opts),
    ]


def list_sea_opts():
    """oslo-config-generator namespace ``ibmvirt.agent.powervm_sea``."""
    return _list(sea_opts, _sea_powervm_opts)


def list_sriov_opts():
    """oslo-config-generator namespace ``ibmvirt.agent.powervm_sriov``."""
    return _list(sriov_opts, _sriov_powervm_opts)
