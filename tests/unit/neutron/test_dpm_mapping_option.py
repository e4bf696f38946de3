"""``[dpm] physical_network_adapter_mappings``: what the option type accepts,
how the sample documents it, and the duplicate checks that need no HMC.

networking-dpm's pattern took ``physnet:<id>:`` and ``physnet:<id>:,``; these
are refused here before the agent talks to the HMC.
"""

from __future__ import annotations

import re

import pytest
from oslo_config import cfg

from ibmvirt.conf import agent_dpm, types
from ibmvirt.neutron.agent import dpm_mappings

ADAPTER = "15a50000-0000-4000-8000-000000000130"
PARSE = types.NetworkAdapterMapping()


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (f"physnet1:{ADAPTER}", ("physnet1", ADAPTER, "0")),
        (f"physnet1:{ADAPTER}:1", ("physnet1", ADAPTER, "1")),
        (f"PhysNet-1:{ADAPTER.upper()}:0", ("PhysNet-1", ADAPTER, "0")),
        (f"{'p' * 64}:{ADAPTER}:10", ("p" * 64, ADAPTER, "10")),
    ],
)
def test_accepted(line, expected):
    assert tuple(PARSE(line)) == expected


@pytest.mark.parametrize(
    "line",
    [
        f"physnet1:{ADAPTER}:",  # networking-dpm took a trailing ':'
        f"physnet1:{ADAPTER}:,",  # and ',' as a port ([0,1])
        f"physnet1:{ADAPTER}:01",
        f"physnet1:{ADAPTER}:1:2",
        f"phys,net1:{ADAPTER}",
        f"phys net1:{ADAPTER}",
        f":{ADAPTER}",
        f"{'p' * 65}:{ADAPTER}",
        "physnet1:15a50000-0000-4000-8000-00000000013",  # 35 characters
        "physnet1:not-an-object-id",
        "physnet1",
    ],
)
def test_refused(line):
    with pytest.raises(ValueError):
        PARSE(line)


def test_formatted_back_as_a_line():
    assert str(PARSE(f"physnet1:{ADAPTER}")) == f"physnet1:{ADAPTER}:0"
    assert PARSE._formatter(PARSE(f"physnet1:{ADAPTER}:1")) == f"physnet1:{ADAPTER}:1"


def test_list_opts_is_the_connection_options_and_the_mappings():
    ((group, opts),) = agent_dpm.list_opts()
    assert group.name == "dpm"
    assert [o.name for o in opts] == [
        "hmc",
        "hmc_port",
        "hmc_username",
        "hmc_password",
        "hmc_ca_file",
        "hmc_insecure",
        "cpc_object_id",
        "physical_network_adapter_mappings",
    ]
    assert next(o for o in opts if o.name == "hmc_password").secret


def test_registers_next_to_the_nova_options():
    """One process may load both (the sandbox): same options, no duplicate error."""
    conf = cfg.ConfigOpts()
    from ibmvirt.conf import dpm

    dpm.register_opts(conf)
    agent_dpm.register_opts(conf)
    conf([], project="ibmvirt-test")
    assert conf.dpm.hmc_port == 6794
    assert conf.dpm.physical_network_adapter_mappings is None


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (
            ["physnet1:" + ADAPTER, "physnet1:" + ADAPTER + ":1"],
            f"line 2 (physnet1:{ADAPTER}:1): physical network 'physnet1' is already mapped "
            "by line 1",
        ),
        (
            ["a:" + ADAPTER + ":1", "b:" + ADAPTER, "c:" + ADAPTER.upper() + ":1"],
            f"line 3 (c:{ADAPTER}:1): port 1 of adapter {ADAPTER} is already mapped by line 1 (a)",
        ),
    ],
)
def test_duplicates_refused_before_asking_the_hmc(lines, message):
    with pytest.raises(dpm_mappings.MappingError, match=re.escape(message)):
        dpm_mappings.resolve(None, None, [PARSE(v) for v in lines], None)
