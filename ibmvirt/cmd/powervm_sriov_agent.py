"""``ibmvirt-powervm-sriov-agent``: the PowerVM SR-IOV (vNIC) L2 agent.

    ibmvirt-powervm-sriov-agent --config-file /etc/neutron/neutron.conf \
                                --config-file /etc/neutron/ibmvirt-powervm-sriov-agent.ini

Runs on the NovaLink partition of each PowerVM host; see
etc/ibmvirt-powervm-sriov-agent.ini.sample for its options.
"""

from __future__ import annotations

import sys

from ibmvirt import contract
from ibmvirt.conf import agent_powervm
from ibmvirt.neutron.agent import base as agent_base
from ibmvirt.neutron.agent import sriov


def main() -> None:
    sys.exit(
        agent_base.main(
            contract.AGENT_TYPE_PVM_SRIOV,
            contract.AGENT_BINARY_PVM_SRIOV,
            agent_powervm.register_sriov_opts,
            sriov.SRIOVAgentManager,
        )
    )


if __name__ == "__main__":
    main()
