"""Console log, crash dump, maintenance mode and host enabling through the
Nova API, on an emulated PowerVM host."""

from __future__ import annotations

import socket
import struct
import urllib.parse

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


def rfb_handshake(sock) -> tuple[int, int, str]:
    """A VNC viewer's side of RFB 3.8 with security type None, up to ServerInit."""
    f = sock.makefile("rb")
    assert f.read(12) == b"RFB 003.008\n"
    sock.sendall(b"RFB 003.008\n")
    assert 1 in f.read(f.read(1)[0])  # security type None offered
    sock.sendall(b"\x01")
    assert struct.unpack(">I", f.read(4))[0] == 0  # SecurityResult: OK
    sock.sendall(b"\x01")  # ClientInit (shared)
    width, height = struct.unpack(">HH", f.read(4))
    f.read(16)  # pixel format
    name = f.read(struct.unpack(">I", f.read(4))[0]).decode()
    return width, height, name


class TestVNCConsole(powervm.PowerVMSingleComputeTestBase):
    def _console(self, server):
        body = {"remote_console": {"protocol": "vnc", "type": "novnc"}}
        url = self.api.api_post(f"/servers/{server['id']}/remote-consoles", body).body[
            "remote_console"
        ]["url"]
        query = urllib.parse.parse_qs(urllib.parse.urlparse(url).query)
        token = urllib.parse.parse_qs(query["path"][0].lstrip("?"))["token"][0]
        return self.admin_api.api_get(f"/os-console-auth-tokens/{token}").body["console"]

    def _proxy_connect(self, console):
        """What nova-novncproxy does with the token's connection info
        (websocketproxy.NovaProxyRequestHandler): connect, CONNECT the path."""
        sock = socket.create_connection((console["host"], int(console["port"])), timeout=10)
        sock.sendall(f"CONNECT {console['internal_access_path']} HTTP/1.1\r\n\r\n".encode())
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += sock.recv(1)
        return sock, answer.split(b"\r\n")[0]

    def test_a_viewer_reaches_the_lpar_terminal_through_the_relay(self):
        server = self.boot_from_image([])
        name = server["OS-EXT-SRV-ATTR:instance_name"]
        console = self._console(server)
        self.assertEqual(server["id"], console["instance_uuid"])
        self.assertEqual(self.nl_view.lpars()[name]["uuid"], console["internal_access_path"])
        sock, status = self._proxy_connect(console)
        with sock:
            self.assertEqual(b"HTTP/1.1 200 OK", status)
            self.assertEqual((640, 384, f"{name} vterm"), rfb_handshake(sock))
        # A second viewer while the first is gone: the same terminal.
        sock, status = self._proxy_connect(self._console(server))
        with sock:
            self.assertEqual((640, 384, f"{name} vterm"), rfb_handshake(sock))

    def test_the_relay_refuses_what_is_not_an_lpar_of_this_host(self):
        server = self.boot_from_image([])
        console = self._console(server)
        for path in ("not-a-uuid", "00000000-0000-4000-8000-000000000000"):
            sock, status = self._proxy_connect(dict(console, internal_access_path=path))
            sock.close()
            self.assertEqual(b"HTTP/1.1 404 Not Found", status)
        sock = socket.create_connection((console["host"], int(console["port"])), timeout=10)
        with sock:
            sock.sendall(b"GET / HTTP/1.1\r\n\r\n")
            self.assertTrue(sock.recv(100).startswith(b"HTTP/1.1 400"))

    def test_deleting_the_server_ends_its_terminal(self):
        server = self.boot_from_image([])
        console = self._console(server)
        self._delete_server(server)
        sock, status = self._proxy_connect(console)
        sock.close()
        self.assertEqual(b"HTTP/1.1 404 Not Found", status)


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
