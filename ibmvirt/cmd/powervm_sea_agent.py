"""``ibmvirt-powervm-sea-agent``: the PowerVM Shared Ethernet Adapter L2 agent.

    ibmvirt-powervm-sea-agent --config-file /etc/neutron/neutron.conf \
                              --config-file /etc/neutron/ibmvirt-powervm-sea-agent.ini

Runs on the NovaLink partition of each PowerVM host; see
etc/ibmvirt-powervm-sea-agent.ini.sample for its options.
"""

from __future__ import annotations

import sys

from ibmvirt import contract
from ibmvirt.conf import agent_powervm
from ibmvirt.neutron.agent import base as agent_base
from ibmvirt.neutron.agent import sea


def main() -> None:
    sys.exit(
        agent_base.main(
            contract.AGENT_TYPE_PVM_SEA,
            contract.AGENT_BINARY_PVM_SEA,
            agent_powervm.register_sea_opts,
            sea.SEAAgentManager,
        )
    )


if __name__ == "__main__":
    main()
