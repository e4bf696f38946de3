"""The HMC emulator's HTTPS server and its public Python API (``HMCEmulator``).

Why: zhmcclient only speaks HTTPS (port 6794 by default) and verifies the server
certificate, so the emulator is a real TLS server with its own CA. Drivers and
the demo point a normal ``zhmcclient.Session(host, userid, password, port=...,
verify_cert=emu.ca_file)`` at it.

Besides the HMC WS API (``/api/...``) the server answers a control endpoint under
``/_emulator/`` (loopback clients only) for tests and operators: request log and
count, fault injection, session expiry, operation delay (see
``ibmvirt.emulators.faults`` and doc/hmc-emulator.md).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import shutil
import socket
import tempfile
import threading
import time
from typing import Any

from ibmvirt.emulators import faults, httpserver, tls
from ibmvirt.emulators.hmc import errors
from ibmvirt.emulators.hmc.engine import JSON_TYPE, HMCEngine
from ibmvirt.emulators.hmc.model import Response

LOG = logging.getLogger(__name__)

DEFAULT_PORT = 6794  # the HMC WS API port zhmcclient uses by default


class _Server(httpserver.TrackingHTTPServer):
    emulator: HMCEmulator


class _Discard:
    """Write sink for a dropped connection (nothing may reach the client)."""

    def write(self, data: bytes) -> int:
        return len(data)

    def flush(self) -> None:
        pass

    closed = False


class _Handler(httpserver.TrackingHandler):
    server: _Server
    server_version = "ibmvirt-hmc-emulator"
    # Buffer each answer and send it in one go (flushed by handle_one_request):
    # separate header and body segments meet the client's delayed ACK (~40 ms).
    wbufsize = 1 << 16

    def _read_body(self) -> bytes | None:
        """The request body, or None after answering a body refused (413/400)."""
        try:
            return httpserver.read_body(self.rfile, self.headers)
        except httpserver.BodyError as exc:
            body = errors.error_body(exc.status, 0, exc.message, self.command, self.path)
            self._refuse(Response(exc.status, body), drained=False)
            return None

    def _refuse(self, resp: Response, drained: bool | None = None) -> None:
        """Answer a request whose body was not read: a small body is dropped so
        the connection stays usable, a large one is never read (connection closed)."""
        if drained is None:
            drained = httpserver.drain(self.rfile, self.headers)
        if not drained:
            self.close_connection = True
            resp.headers = {**(resp.headers or {}), "Connection": "close"}
        if not self.path.startswith(faults.CONTROL_PREFIX):
            self.server.emulator.log.append(self.command, self.path, resp.status)
        self._send(resp)

    def _send(self, resp: Response) -> None:
        headers = dict(resp.headers or {})
        if resp.body is None:
            data = b""
        elif isinstance(resp.body, str):
            data = resp.body.encode("utf-8")
        else:
            data = json.dumps(resp.body).encode("utf-8")
            headers.setdefault("Content-Type", JSON_TYPE)
        self.send_response(resp.status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data:
            self.wfile.write(data)

    def _drop(self) -> None:
        self.close_connection = True
        self.wfile = _Discard()
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _dispatch(self) -> None:
        emu = self.server.emulator
        target = self.path
        if target.startswith(faults.CONTROL_PREFIX):
            refusal = faults.control_refusal(self.client_address[0], self.command, self.headers)
            if refusal is not None:
                self._refuse(Response(refusal[0], {"error": refusal[1]}))
                return
            raw = self._read_body()
            if raw is not None:
                self._control(raw)
            return
        # No session, no body read: an anonymous client costs no memory.
        refusal = emu.engine.session_refusal(self.command, target, self.headers)
        if refusal is not None:
            self._refuse(refusal)
            return
        raw = self._read_body()
        if raw is None:
            return
        if emu.request_delay:
            time.sleep(emu.request_delay)
        action = emu.faults.check(self.command, target)
        if action is not None:
            action.sleep()
            if action.drop:
                emu.log.append(self.command, target, 0)
                self._drop()
                return
            if action.status is not None:
                message = action.message or (
                    f"Injected fault #{action.rule_id}: {action.status},{action.reason or 0}"
                )
                body = errors.error_body(
                    action.status, action.reason or 0, message, self.command, target
                )
                emu.log.append(self.command, target, action.status)
                self._send(Response(action.status, body))
                return
        resp = emu.engine.handle(self.command, target, self.headers, raw)
        emu.log.append(self.command, target, resp.status)
        self._send(resp)

    def _control(self, raw: bytes) -> None:
        emu = self.server.emulator
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            self._send(Response(400, {"error": "control request body is not JSON"}))
            return
        status, res = faults.handle_control_request(
            emu.faults, emu.log, self.command, self.path, body, emu._control_extra
        )
        self._send(Response(status, res))

    do_GET = do_POST = do_DELETE = do_PUT = _dispatch


class HMCEmulator:
    """An HMC WS API emulator serving HTTPS, in this process (threads).

    ``inventory`` is a zhmcclient.mock HMC definition YAML (e.g.
    ``ibmvirt.emulators.hmc.inventories.Z15``). ``port=0`` picks a free port.
    ``op_delay`` is how long asynchronous operations (partition start/stop) stay
    running/``starting``/``stopping``. ``state_dir`` receives the TLS files
    (``tls/ca.pem`` is ``ca_file``); by default a temporary directory is used
    and removed on ``stop()``. ``credentials`` ({userid: password}) makes logon
    check passwords; by default any userid/password is accepted.

    To inspect the emulated hypervisor from another thread, hold ``lock``::

        with emu.lock:
            part = emu.faked_hmc.cpcs.list()[0].partitions.list()[0]
    """

    def __init__(
        self,
        inventory: str,
        host: str = "127.0.0.1",
        port: int = 0,
        op_delay: float = 0.0,
        state_dir: str | None = None,
        session_timeout: float = 3600.0,
        credentials: dict[str, str] | None = None,
    ) -> None:
        self.inventory = inventory
        self.host = host
        self._requested_port = port
        self._own_state_dir = state_dir is None
        self.state_dir = state_dir
        self.engine = HMCEngine(
            inventory,
            op_delay=op_delay,
            session_timeout=session_timeout,
            credentials=credentials,
        )
        self.faults = faults.FaultInjector()
        self.log = faults.RequestLog()
        #: Seconds every API request takes before it is answered (a remote HMC's
        #: latency, for benchmarks); also PUT /_emulator/latency.
        self.request_delay = 0.0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._tls: tls.TLSMaterial | None = None

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> HMCEmulator:
        """Create the TLS material, bind and serve in a background thread.

        After ``stop(final=False)`` this restarts the same HMC: same port, same
        CA, same objects; sessions do not survive (clients log on again).
        """
        if self._server is not None:
            raise RuntimeError("HMC emulator already started")
        fresh = self._tls is None
        if fresh:
            self._make_tls()
        try:
            self._bind_and_serve()
        except OSError:
            if fresh:
                self.stop()  # removes a temporary state dir with the private key
            raise
        return self

    def _make_tls(self) -> None:
        if self.state_dir is None:
            self.state_dir = tempfile.mkdtemp(prefix="ibmvirt-hmc-emu-")
        tls.private_directory(self.state_dir)  # refuses a directory others can change
        hostnames = ["localhost"]
        ips = ["127.0.0.1", "::1"]
        if self.host not in ("127.0.0.1", "localhost", "::1", "0.0.0.0", "::", ""):  # noqa: S104
            try:
                ipaddress.ip_address(self.host)
                ips.append(self.host)
            except ValueError:
                hostnames.append(self.host)
        self._tls = tls.make_tls_material(
            os.path.join(self.state_dir, "tls"),
            common_name="ibmvirt HMC emulator",
            hostnames=hostnames,
            ip_addresses=ips,
        )

    def _bind_and_serve(self) -> None:
        assert self._tls is not None
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        server_cls = type("_HMCServer", (_Server,), {"address_family": family})
        server = server_cls((self.host, self._requested_port), _Handler, bind_and_activate=False)
        try:
            server.server_bind()
            server.server_activate()
        except OSError as exc:
            server.server_close()
            raise OSError(
                f"HMC emulator cannot listen on {self.host}:{self._requested_port}: {exc}; "
                "choose another --port (0 picks a free one)"
            ) from exc
        httpserver.serve_tls(server, tls.server_context(self._tls))
        server.emulator = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, name="hmc-emulator", kwargs={"poll_interval": 0.05}
        )
        self._thread.daemon = True
        self._thread.start()
        self._requested_port = self.port  # a restart comes back on the same port

    def stop(self, final: bool = True) -> None:
        """Stop serving and cut open connections.

        ``final=False`` simulates an HMC outage: objects, CA and port are kept for
        a later ``start()``, and all sessions end. Otherwise job timers are
        cancelled and a temporary state dir is removed.
        """
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server.close_connections()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self.engine.expire_sessions()
        if not final:
            return
        self.engine.shutdown()
        if self._own_state_dir and self.state_dir and os.path.isdir(self.state_dir):
            shutil.rmtree(self.state_dir, ignore_errors=True)
            self.state_dir = None
        self._tls = None  # a later start() makes a new identity

    def __enter__(self) -> HMCEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- addresses -----------------------------------------------------------
    @property
    def port(self) -> int:
        """The bound TCP port (after start)."""
        if self._server is None:
            raise RuntimeError("HMC emulator not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL, e.g. https://127.0.0.1:40123."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"

    @property
    def ca_file(self) -> str:
        """PEM file of the emulator's CA: pass it as zhmcclient's verify_cert."""
        if self._tls is None:
            raise RuntimeError("HMC emulator not started")
        return self._tls.ca_file

    # -- inspection and control ----------------------------------------------
    @property
    def lock(self) -> threading.RLock:
        """The state lock; hold it while reading ``faked_hmc`` from a test."""
        return self.engine.lock

    @property
    def faked_hmc(self) -> Any:
        """The zhmcclient.mock FakedHmc holding all state (read under ``lock``)."""
        return self.engine.hmc

    @property
    def request_log(self) -> list[faults.RequestRecord]:
        """(method, path, status) of every API request so far (status 0 = dropped)."""
        return self.log.records()

    def request_count(self, method: str | None = None, pattern: str | None = None) -> int:
        """Requests with this method whose path matches the regex ``pattern``."""
        return self.log.count(method, pattern)

    def inject_fault(
        self,
        method: str | None,
        uri_pattern: str,
        nth: int = 1,
        status: int | None = None,
        reason: int | None = None,
        delay: float | None = None,
        drop: bool = False,
        message: str | None = None,
        times: int = 1,
    ) -> faults.FaultRule:
        """Make the ``nth`` (from now) request matching method+regex fail/slow/drop."""
        return self.faults.add(
            method,
            uri_pattern,
            nth=nth,
            status=status,
            reason=reason,
            delay=delay,
            drop=drop,
            message=message,
            times=times,
        )

    def set_partition_status(self, partition: str, status: str) -> str:
        """Simulate a guest/firmware status change (e.g. ``paused`` after an in-band halt).

        ``partition`` is a partition URI, name or object-id; returns its URI.
        """
        return self.engine.simulate_partition_status(partition, status)

    def reset_faults(self) -> None:
        """Remove all fault rules."""
        self.faults.reset()

    def expire_sessions(self) -> int:
        """Invalidate all sessions now; returns how many there were."""
        return self.engine.expire_sessions()

    @property
    def op_delay(self) -> float:
        """Seconds asynchronous operations take."""
        return self.engine.op_delay

    @op_delay.setter
    def op_delay(self, value: float) -> None:
        if value < 0:
            raise ValueError(f"op_delay must be >= 0 seconds, got {value}")
        with self.engine.lock:
            self.engine.op_delay = float(value)

    def _control_extra(
        self, method: str, sub: str, query: dict[str, list[str]], body: Any
    ) -> tuple[int, Any] | None:
        if sub == "/sessions/expire" and method == "POST":
            return 200, {"expired": self.expire_sessions()}
        if sub == "/op-delay" and method == "GET":
            return 200, {"op-delay": self.op_delay}
        if sub == "/op-delay" and method in ("PUT", "POST"):
            value = body.get("op-delay") if isinstance(body, dict) else None
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise faults.ControlError("body must be {'op-delay': <seconds >= 0>}")
            self.op_delay = float(value)
            return 200, {"op-delay": self.op_delay}
        if sub == "/latency" and method == "GET":
            return 200, {"request_delay": self.request_delay, "op_delay": self.op_delay}
        if sub == "/latency" and method in ("PUT", "POST"):
            if not isinstance(body, dict) or not body or set(body) - {"request_delay", "op_delay"}:
                raise faults.ControlError("body must be {'request_delay': s, 'op_delay': s}")
            for key, value in body.items():
                if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                    raise faults.ControlError(f"{key} must be a number of seconds >= 0")
            if "request_delay" in body:
                self.request_delay = float(body["request_delay"])
            if "op_delay" in body:
                self.op_delay = float(body["op_delay"])
            return 200, {"request_delay": self.request_delay, "op_delay": self.op_delay}
        if sub == "/partition-status" and method == "POST":
            if not isinstance(body, dict) or not {"partition", "status"} <= set(body):
                raise faults.ControlError("body must be {'partition': <uri|name>, 'status': ...}")
            try:
                uri = self.set_partition_status(str(body["partition"]), str(body["status"]))
            except ValueError as exc:
                raise faults.ControlError(str(exc)) from exc
            return 200, {"partition-uri": uri, "status": body["status"]}
        if sub == "/state" and method == "GET":
            with self.engine.lock:
                return 200, {
                    "sessions": self.engine.session_count(),
                    "jobs": len(self.engine.jobs),
                    "op-delay": self.engine.op_delay,
                    "inventory": self.inventory,
                }
        return None
