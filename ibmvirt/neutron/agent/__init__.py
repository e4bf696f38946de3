"""L2 agents on Neutron's CommonAgentLoop: SEA and SR-IOV for PowerVM, DPM."""
