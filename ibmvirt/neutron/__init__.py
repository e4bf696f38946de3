"""Neutron side of ibmvirt: ML2 mechanism drivers (ml2/) and L2 agents (agent/).

Imported only inside Neutron processes (neutron-server, the agents); the Nova
drivers share nothing with it but :mod:`ibmvirt.contract`.

oslo.service's threading backend is chosen here, before anything imports
oslo.service, as Neutron's own command modules do: under the default eventlet
backend an agent's loop runs in a native thread that SIGTERM never stops.
"""

from oslo_service import backend as _oslo_service_backend

try:
    _oslo_service_backend.init_backend(_oslo_service_backend.BackendType.THREADING)
except _oslo_service_backend.exceptions.BackendAlreadySelected:
    # Already chosen by the process (neutron-server, or a test base): keep it.
    pass
