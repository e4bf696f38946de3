"""``ibmvirt-dpm-agent``: the Neutron L2 agent of one DPM CPC subset.

Run as Neutron runs its agents::

    ibmvirt-dpm-agent --config-file /etc/neutron/neutron.conf \\
        --config-file /etc/neutron/plugins/ml2/ibmvirt-dpm-agent.ini

with ``[DEFAULT] host`` equal to the ``host`` of the nova-compute service of
the same CPC subset. Exit code 1 and the reason on stderr when a start-up check
fails (ibmvirt.neutron.agent.dpm).
"""

from __future__ import annotations

import sys

from ibmvirt import contract
from ibmvirt.conf import agent_dpm
from ibmvirt.neutron.agent import base as agent_base
from ibmvirt.neutron.agent import dpm


def main() -> None:
    sys.exit(
        agent_base.main(
            contract.AGENT_TYPE_DPM,
            contract.AGENT_BINARY_DPM,
            agent_dpm.register_opts,
            dpm.make_manager,
        )
    )


if __name__ == "__main__":
    main()
