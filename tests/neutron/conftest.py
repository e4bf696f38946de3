"""The Neutron suite: its own pytest process (Nova and Neutron cannot share one).

neutron.tests.unit selects oslo.service's threading backend; it must be
imported before anything lets oslo.service pick its default backend.
"""

import os

os.environ.setdefault("OS_NOVA_DISABLE_EVENTLET_PATCHING", "1")

import neutron.tests.unit  # noqa: E402, F401
