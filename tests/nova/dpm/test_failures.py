"""Spawn failures at every HMC request, and HMC session expiry, through the Nova API."""

import re

from ibmvirt.emulators.hmc import inventories
from ibmvirt.sandbox import dpm

_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32}")


def request_pattern(path: str) -> str:
    """A regex for this request path with every object id generalised."""
    parts = _ID.split(path.split("?")[0])
    return "^" + "[^/]+".join(re.escape(p) for p in parts) + r"(\?|$)"


class SpawnFaultScenarios:
    def setUp(self):
        super().setUp()
        self.view = dpm.HMCView(self.hmc)
        # One compute: a failed build goes to ERROR instead of being rescheduled.
        self.flags(max_attempts=1, group="scheduler")

    def _spawn_requests(self) -> list[tuple[str, str]]:
        """(method, pattern) of every HMC request a successful boot makes."""
        start = len(self.hmc.request_log)
        server = self._create_server_boot_from_volume(
            networks=[{"port": self.neutron.port_1["id"]}]
        )
        records = self.hmc.request_log[start:]
        self._delete_server(server)
        return [
            (r.method, request_pattern(r.path))
            for r in records
            if not r.path.startswith(("/api/jobs/", "/api/sessions"))
        ]

    def test_a_failure_at_any_spawn_request_leaves_nothing_behind(self):
        requests = self._spawn_requests()
        self.assertGreater(len(requests), 3)
        for i, (method, pattern) in enumerate(requests):
            with self.subTest(request=f"{method} {pattern}"):
                nth = requests[: i + 1].count((method, pattern))
                rule = self.hmc.inject_fault(
                    method, pattern, nth=nth, status=500, reason=0, message="injected HMC failure"
                )
                server = self.boot_from_volume(
                    [{"port": self.neutron.port_1["id"]}], expected_state="ERROR"
                )
                self.assertEqual(1, rule.fired, "the faulted request was never made")
                self.assertEqual("ERROR", server["status"])
                self.assertIn("fault", server)
                self.assertIn("injected HMC failure", server["fault"]["message"])
                self.assertEqual([], self.view.owned_by("compute"))
                self.assertEqual({}, self.array.masking)
                self._delete_server(server)
                self.hmc.reset_faults()

    def test_session_expiry_mid_spawn_is_invisible(self):
        logons = self.hmc.request_count("POST", r"^/api/sessions$")
        self.neutron.before_plug = lambda port: self.hmc.expire_sessions()
        server = self._create_server_boot_from_volume(
            networks=[{"port": self.neutron.port_1["id"]}]
        )
        self.assertEqual("ACTIVE", server["status"])
        self.assertEqual(
            "active", self.view.partition(f"OpenStack-compute-{server['id']}")["status"]
        )
        self.assertGreater(self.hmc.request_count("POST", r"^/api/sessions$"), logons)
        self.hmc.expire_sessions()
        server = self._stop_server(server)
        self.assertEqual("SHUTOFF", server["status"])


class TestZ15Faults(SpawnFaultScenarios, dpm.DPMSingleComputeTestBase):
    inventory = inventories.Z15


class TestZ13Faults(SpawnFaultScenarios, dpm.DPMSingleComputeTestBase):
    inventory = inventories.Z13
