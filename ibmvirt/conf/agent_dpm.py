"""``[dpm]`` options of the DPM Neutron agent (``ibmvirt-dpm-agent``).

The agent runs next to the nova-compute service of one CPC subset, with the
same ``[DEFAULT] host``, and reports which NICs of that host exist on the HMC.
It reads the HMC connection options of the Nova driver (one definition, so
both services reach the HMC and verify its certificate the same way) and the
physical network mappings below. Every line is checked against the HMC when
the agent starts; a bad line stops it with a message naming the line.
"""

from __future__ import annotations

from oslo_config import cfg

from ibmvirt.conf import dpm, types

dpm_group = cfg.OptGroup(
    "dpm",
    title="IBM Z DPM options",
    help="Options of ibmvirt-dpm-agent, the Neutron L2 agent of one CPC subset of an "
    "IBM Z or LinuxONE CPC in DPM mode (the HMC options are the same as nova-compute's "
    "[dpm] options for that subset).",
)

agent_opts = [
    cfg.MultiOpt(
        "physical_network_adapter_mappings",
        item_type=types.NetworkAdapterMapping(),
        help="Network adapter ports that carry Neutron physical networks, one "
        "per line as `<physnet>:<adapter object-id>[:<port element-id>]` (port 0 "
        "if omitted). The adapter must be an OSA (type osd) or HiperSockets "
        "adapter of the CPC (on z17: also Network Express). A physnet may appear "
        "once, and an adapter port once: one physical network per port, as in "
        "Neutron's other L2 agents. Each physnet must also be in the network "
        "nodes' L2 agent mappings, and for VLAN networks in [ml2_type_vlan] "
        "network_vlan_ranges. Find adapter object-ids with `zhmc adapter list "
        "<cpc>`. At least one line is required. Example, OSA port 1 and a "
        "HiperSockets adapter: `physical_network_adapter_mappings = "
        "physnet1:a1b2c3d4-0000-4000-8000-000000000130:1` and, on the next line, "
        "`physical_network_adapter_mappings = physnet2:a1b2c3d4-0000-4000-8000-0000000007c0`.",
    ),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    """Register the agent's [dpm] options on ``conf`` (idempotent)."""
    conf.register_group(dpm_group)
    conf.register_opts(dpm.connection_opts + agent_opts, group=dpm_group)


def list_opts() -> list[tuple[cfg.OptGroup, list[cfg.Opt]]]:
    """Entry point for oslo-config-generator (namespace ``ibmvirt.agent.dpm``)."""
    return [(dpm_group, dpm.connection_opts + agent_opts)]
