"""Neutron side of ibmvirt: ML2 mechanism drivers (ml2/) and L2 agents (agent/).

Imported only inside Neutron processes (neutron-server, the agents); the Nova
drivers share nothing with it but :mod:`ibmvirt.contract`.
"""
