"""Console log, crash dump, maintenance mode and host enabling through the
Nova API, on an emulated PowerVM host."""

from __future__ import annotations

import os_traits

from ibmvirt.powervm import vterm
from ibmvirt.sandbox import powervm


class TestConsoleLog(powervm.PowerVMSingleComputeTestBase):
    def _console(self, server, length=None):
        body = {"os-getConsoleOutput": {} if length is None else {"length": length}}
        return self.api.post_server_action(server["id"], body)["output"]

    def test_the_console_log_is_the_lpar_terminal(self):
        server = self.boot_from_image([{"port": self.neutron.port_1["id"]}])
        name = server["OS-EXT-SRV-ATTR:instance_name"]
        log = self._console(server)
        self.assertIn(f"partition {name}", log)
        self.assertTrue(log.endswith(f"{name} login: "), log[-80:])
        self.guest_writes(server, "\r\nhello from the guest\r\nsecond line\r\nlast")
        # Nova's API drops the carriage returns of the terminal's line ends.
        self.assertEqual("second line\nlast", self._console(server, length=2))
        self._delete_server(server)

    def test_the_console_log_gives_at_most_100_kib(self):
        # The emulator keeps 64 KiB of a terminal: the driver's cap is the larger one.
        self.assertGreater(vterm.MAX_CONSOLE_BYTES, 64 * 1024)
        server = self.boot_from_image([])
        self.guest_writes(server, "x" * 70000)
        log = self._console(server)
        self.assertEqual(64 * 1024, len(log))
        self.assertEqual("x" * 100, log[-100:])

    def test_without_a_terminal_history_the_api_says_not_implemented(self):
        self.flags(group="powervm", vterm_access="mkvterm")
        self.restart_compute("compute")
        server = self.boot_from_image([])
        with self.assertRaisesRegex(Exception, "501"):
            self._console(server)

    def test_a_crash_dump_reaches_the_lpar_and_it_runs_again(self):
        server = self.boot_from_image([])
        name = server["OS-EXT-SRV-ATTR:instance_name"]
        self.api.post_server_action(server["id"], {"trigger_crash_dump": None})
        log = self._console(server)
        self.assertIn("sysrq: Trigger a crash", log)
        self.assertTrue(log.endswith(f"{name} login: "), log[-80:])
        self.assertEqual("running", self.nl_view.lpars()[name]["state"])
        self.assertEqual("ACTIVE", self.api.get_server(server["id"])["status"])
        self._delete_server(server)


class TestHostStatus(powervm.PowerVMSingleComputeTestBase):
    def setUp(self):
        super().setUp()
        self.flags(max_attempts=1, group="scheduler")

    def _hosts(self, body):
        api = self.admin_api
        old, api.microversion = api.microversion, "2.42"  # os-hosts left the API in 2.43
        try:
            return api.api_put("/os-hosts/compute", body).body
        finally:
            api.microversion = old

    def _service(self):
        (svc,) = self.admin_api.get_services(binary="nova-compute", host="compute")
        return svc

    def _disabled_trait(self):
        rp = self._get_provider_uuid_by_host("compute")
        return os_traits.COMPUTE_STATUS_DISABLED in self._get_provider_traits(rp)

    def test_maintenance_mode_stops_new_servers_and_keeps_running_ones(self):
        running = self.boot_from_image([])
        name = running["OS-EXT-SRV-ATTR:instance_name"]
        self.assertEqual(
            {"host": "compute", "maintenance_mode": "on_maintenance"},
            self._hosts({"maintenance_mode": "enable"}),
        )
        svc = self._service()
        self.assertEqual("disabled", svc["status"])
        self.assertIn("maintenance mode", svc["disabled_reason"])
        self.assertTrue(self._disabled_trait())
        refused = self.boot_from_image([], expected_state="ERROR")
        self.assertIn("No valid host", refused["fault"]["message"])
        self.assertEqual("running", self.nl_view.lpars()[name]["state"])

        self.assertEqual(
            {"host": "compute", "maintenance_mode": "off_maintenance"},
            self._hosts({"maintenance_mode": "disable"}),
        )
        self.assertEqual("enabled", self._service()["status"])
        self.assertFalse(self._disabled_trait())
        self.boot_from_image([])

    def test_leaving_maintenance_keeps_a_service_an_operator_disabled(self):
        self.admin_api.put_service(
            self._service()["id"], {"status": "disabled", "disabled_reason": "bad DIMM"}
        )
        self._hosts({"maintenance_mode": "enable"})
        self._hosts({"maintenance_mode": "disable"})
        svc = self._service()
        self.assertEqual(("disabled", "bad DIMM"), (svc["status"], svc["disabled_reason"]))

    def test_set_host_enabled_disables_and_enables_the_host(self):
        self.assertEqual(
            {"host": "compute", "status": "disabled"}, self._hosts({"status": "disable"})
        )
        self.assertEqual("disabled", self._service()["status"])
        self.assertTrue(self._disabled_trait())
        self.boot_from_image([], expected_state="ERROR")
        self.assertEqual(
            {"host": "compute", "status": "enabled"}, self._hosts({"status": "enable"})
        )
        self.assertEqual("enabled", self._service()["status"])
        self.assertFalse(self._disabled_trait())
        self.boot_from_image([])
