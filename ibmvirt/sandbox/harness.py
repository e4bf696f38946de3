"""Run ibmvirt's compute drivers inside Nova's own functional test framework.

Every test built on these bases talks to a real Nova: the REST API, conductor,
scheduler, Placement and the compute manager, with our driver loaded through
``nova.virt.driver.load_compute_driver`` exactly as nova-compute loads it (via
the ``nova.virt.ibmvirt`` shim installed into Nova's tree). Only the outside
world is faked: Neutron, Cinder and Glance by Nova's fixtures, and the
hypervisor by our emulators. The test suites (tests/nova) and the demo sandbox
both build on it. Nova's functional test package ships in the nova wheel.

Three workarounds make Nova's harness usable from the installed wheel (see
shared/research/harness-feasibility.md): the api-paste path, SQLAlchemy < 2.1
(pinned in constraints.txt) and pytest's handling of ``_clear_attrs``.
"""

from __future__ import annotations

from importlib import metadata

import fixtures
import nova.tests.functional  # noqa: F401  (selects the threading backend first)
import urllib3
from nova.tests.functional import integrated_helpers
from wsgi_intercept import requests_intercept

# ConfFixture points [wsgi]api_paste_config at the source-tree layout; a wheel
# installs api-paste.ini under <prefix>/etc/nova. Find it through the RECORD.
API_PASTE = str(
    next(f for f in metadata.files("nova") if f.name == "api-paste.ini").locate().resolve()
)


_intercept_everything = requests_intercept.install


def _intercept_plain_http_only() -> None:
    """Placement runs in-process behind wsgi-intercept on plain HTTP. Its
    requests interceptor also replaces urllib3's HTTPS connection class with one
    that cannot open real TLS connections (it breaks on urllib3 2's arguments),
    which would cut our drivers off from the emulators they reach over HTTPS.
    Intercept HTTP only and leave HTTPS, with its certificate checks, real."""
    _intercept_everything()
    urllib3.connectionpool.HTTPSConnectionPool.ConnectionCls = urllib3.connection.HTTPSConnection


class DriverHarnessMixin:
    """Loads ``compute_driver`` (relative to ``nova.virt``) into every compute.

    Subclasses set ``compute_driver`` and may override ``driver_flags`` to set
    the driver's own options (they are applied before any service starts).
    """

    compute_driver: str = ""

    def driver_flags(self) -> None:
        """Set driver options with ``self.flags(...)``; called before setUp."""

    def setUp(self):
        self.useFixture(
            fixtures.MonkeyPatch(
                "wsgi_intercept.requests_intercept.install", _intercept_plain_http_only
            )
        )
        self.flags(api_paste_config=API_PASTE, group="wsgi")
        self.flags(compute_driver=self.compute_driver)
        self.driver_flags()
        super().setUp()

    # nova.test.TestCase._clear_attrs deletes every public instance attribute
    # at cleanup, including the bound test method that pytest (>= 8) sets on
    # the instance and deletes afterwards. Keep that one.
    def _clear_attrs(self):
        keep = {"id", self._testMethodName}
        for key in [k for k in self.__dict__ if k[0] != "_" and k not in keep]:
            del self.__dict__[key]

    def drivers(self) -> dict:
        """The driver instance of every running compute service, by host."""
        return {host: svc.manager.driver for host, svc in self.computes.items()}


class SingleComputeTestBase(DriverHarnessMixin, integrated_helpers._IntegratedTestBase):
    """API + conductor + scheduler + placement + one compute named ``compute``."""

    ADMIN_API = True
    microversion = "latest"
    REQUIRES_LOCKING = False


class MultiComputeTestBase(DriverHarnessMixin, integrated_helpers.ProviderUsageBaseTestCase):
    """API + conductor + scheduler + placement; tests start computes with
    ``self._start_compute(host)``."""

    REQUIRES_LOCKING = False
