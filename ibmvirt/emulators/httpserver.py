"""HTTP(S) server plumbing shared by the emulators.

Both emulators are ThreadingHTTPServers with keep-alive clients. They need the
same three things a stdlib server lacks: the TLS handshake done per
connection with a time limit (in ``accept()`` it would let one idle client
block everybody), a way for ``stop()`` to cut open keep-alive connections
(a stopped server answers nobody), and quiet logs for clients that go away.
The console scripts share the "serve until SIGINT/SIGTERM" loop.
"""

from __future__ import annotations

import logging
import signal
import socket
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

LOG = logging.getLogger(__name__)

#: A client that connects but never completes the TLS handshake is cut after this.
HANDSHAKE_TIMEOUT = 10.0

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class TrackingHTTPServer(ThreadingHTTPServer):
    """Keeps the open connections so that ``close_connections()`` can cut them."""

    daemon_threads = True
    allow_reuse_address = True
    handshake_timeout = HANDSHAKE_TIMEOUT

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()

    def close_connections(self) -> None:
        """Cut every open connection."""
        with self.connections_lock:
            conns = list(self.connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Failed handshakes (port scanners, idle or plain-HTTP clients) and
        # vanished clients are not emulator bugs: no traceback in the log.
        LOG.debug("connection from %s ended: %r", client_address, sys.exc_info()[1])


def serve_tls(server: TrackingHTTPServer, context: ssl.SSLContext) -> None:
    """Serve TLS on ``server``'s socket, handshaking in the handler threads."""
    server.socket = context.wrap_socket(
        server.socket, server_side=True, do_handshake_on_connect=False
    )


class TrackingHandler(BaseHTTPRequestHandler):
    """Registers its connection with the server and handshakes TLS, bounded."""

    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        srv = self.server
        if isinstance(srv, TrackingHTTPServer):
            with srv.connections_lock:
                srv.connections.add(self.request)
        if isinstance(self.request, ssl.SSLSocket):
            timeout = getattr(srv, "handshake_timeout", HANDSHAKE_TIMEOUT)
            try:
                self.request.settimeout(timeout)
                self.request.do_handshake()
                self.request.settimeout(None)
            except BaseException:
                self._forget()
                raise
        super().setup()
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def _forget(self) -> None:
        srv = self.server
        if isinstance(srv, TrackingHTTPServer):
            with srv.connections_lock:
                srv.connections.discard(self.request)

    def finish(self) -> None:
        self._forget()
        try:
            super().finish()
        except OSError:
            pass  # the connection was cut (stop() or a dropped fault)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib hook
        LOG.debug("%s %s", self.address_string(), format % args)


def serve_until_signalled(host: str, banner: list[str]) -> None:
    """Print the banner (and a warning off loopback), then wait for SIGINT/SIGTERM."""
    stop = threading.Event()

    def _on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    if host not in LOOPBACK_HOSTS:
        print(f"warning: listening on {host}, not only on loopback", file=sys.stderr)
    for line in banner:
        print(line, flush=True)
    stop.wait()
