"""HTTP(S) server plumbing shared by the emulators.

Both emulators are ThreadingHTTPServers with keep-alive clients. They need
what a stdlib server lacks: the TLS handshake done per connection with a time
limit (in ``accept()`` it would let one idle client block everybody), a way
for ``stop()`` to cut open keep-alive connections (a stopped server answers
nobody), quiet logs for clients that go away, and bounds that keep one client
from starving the others: an idle timeout on every connection, a cap on open
connections, and request bodies read only up to a limit (``read_body``,
``body_chunks``: Content-Length or chunked, malformed sizes refused).
The console scripts share the "serve until SIGINT/SIGTERM" loop.
"""

from __future__ import annotations

import logging
import signal
import socket
import ssl
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

LOG = logging.getLogger(__name__)

#: A client that connects but never completes the TLS handshake is cut after this.
HANDSHAKE_TIMEOUT = 10.0
#: A connection on which the client sends nothing for this long is closed
#: (between keep-alive requests, or in the middle of a request).
IDLE_TIMEOUT = 120.0
#: Connections served at once; beyond it new ones are closed at accept (and logged).
MAX_CONNECTIONS = 256
#: Largest request body read into memory (JSON/XML payloads are kilobytes);
#: streamed uploads pass their own limit to ``body_chunks``.
MAX_BODY = 16 << 20
#: Longest chunk-size or trailer line of a chunked body.
_MAX_LINE = 4096


class BodyError(Exception):
    """A request body the server refuses to read: ``status`` 400 or 413.

    The connection cannot be reused after it (the rest of the body is unread):
    emulators answer in their own format and close the connection.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def content_length(headers: Any, limit: int = MAX_BODY) -> int:
    """The request's Content-Length (0 if absent); BodyError if malformed or over ``limit``."""
    raw = headers.get("Content-Length")
    if raw is None:
        return 0
    raw = raw.strip()
    if not raw.isdigit():  # refuses "-1", "+5", "0x10", " "
        raise BodyError(400, f"Content-Length {raw!r} is not a non-negative integer")
    length = int(raw)
    if length > limit:
        raise BodyError(413, f"Request body of {length} bytes exceeds the limit of {limit} bytes")
    return length


def is_chunked(headers: Any) -> bool:
    """Whether the body comes in chunked transfer encoding."""
    return "chunked" in (headers.get("Transfer-Encoding") or "").lower()


def body_chunks(
    rfile: Any, headers: Any, limit: int | None = MAX_BODY, chunk: int = 1 << 20
) -> Iterator[bytes]:
    """The request body in pieces of at most ``chunk`` bytes (Content-Length or chunked).

    Raises BodyError for a malformed or negative chunk size, a body that ends
    early, or more than ``limit`` bytes in all (``None``: no limit, for uploads).
    """
    cap = limit if limit is not None else float("inf")
    total = 0
    if is_chunked(headers):
        while True:
            line = rfile.readline(_MAX_LINE + 1)
            if len(line) > _MAX_LINE or not line.endswith(b"\n"):
                raise BodyError(400, "Chunked request body has a malformed chunk-size line")
            text = line.split(b";", 1)[0].strip()
            if not text or not all(c in b"0123456789abcdefABCDEF" for c in text):
                raise BodyError(400, f"Chunk size {text[:32]!r} is not a hexadecimal number")
            size = int(text, 16)
            if size == 0:
                for _ in range(100):  # trailer lines, then the empty line
                    trailer = rfile.readline(_MAX_LINE + 1)
                    if trailer in (b"\r\n", b"\n", b""):
                        return
                raise BodyError(400, "Chunked request body has too many trailer lines")
            total += size
            if total > cap:
                raise BodyError(413, f"Request body exceeds the limit of {limit} bytes")
            left = size
            while left:
                data = rfile.read(min(left, chunk))
                if not data:
                    raise BodyError(400, "Request body ended inside a chunk")
                left -= len(data)
                yield data
            if rfile.readline(3) not in (b"\r\n", b"\n"):
                raise BodyError(400, "Chunk data is not followed by CRLF")
    else:
        left = content_length(headers, limit if limit is not None else 1 << 62)
        while left > 0:
            data = rfile.read(min(left, chunk))
            if not data:
                raise BodyError(400, "Request body is shorter than Content-Length")
            left -= len(data)
            yield data


#: The body of a refused request is still read (and dropped) up to this size, so
#: that the client gets to read the answer: closing a socket with unread data
#: resets the connection, which can destroy the answer in flight.
DRAIN_LIMIT = 64 << 10


def drain(rfile: Any, headers: Any) -> bool:
    """Read and drop a small body; False if it is too big or malformed (then close)."""
    try:
        for _ in body_chunks(rfile, headers, DRAIN_LIMIT):
            pass
    except (BodyError, OSError):
        return False
    return True


def read_body(rfile: Any, headers: Any, limit: int = MAX_BODY) -> bytes:
    """The whole request body, at most ``limit`` bytes (BodyError otherwise)."""
    return b"".join(body_chunks(rfile, headers, limit))


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class TrackingHTTPServer(ThreadingHTTPServer):
    """Keeps the open connections so that ``close_connections()`` can cut them."""

    daemon_threads = True
    allow_reuse_address = True
    handshake_timeout = HANDSHAKE_TIMEOUT
    idle_timeout = IDLE_TIMEOUT
    max_connections = MAX_CONNECTIONS
    request_queue_size = 64

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        self._serving = 0  # accepted and not yet closed
        super().__init__(*args, **kwargs)

    def verify_request(self, request: Any, client_address: Any) -> bool:
        # Runs in the accepting thread: count here, not in the handler thread,
        # so a burst of connections cannot overshoot the cap.
        with self.connections_lock:
            if self._serving >= self.max_connections:
                full = True
            else:
                full = False
                self._serving += 1
        if full:
            LOG.warning(
                "refusing a connection from %s: %d connections are open (the limit)",
                client_address[0] if client_address else "?",
                self.max_connections,
            )
        return not full

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self.connections_lock:
                self._serving -= 1

    @property
    def serving(self) -> int:
        """Connections accepted and not yet closed."""
        with self.connections_lock:
            return self._serving

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
        # StreamRequestHandler.setup applies it to every read: an idle client
        # (between requests or inside one) is closed after it.
        self.timeout = getattr(srv, "idle_timeout", IDLE_TIMEOUT)
        if isinstance(self.request, ssl.SSLSocket):
            timeout = getattr(srv, "handshake_timeout", HANDSHAKE_TIMEOUT)
            try:
                self.request.settimeout(timeout)
                self.request.do_handshake()
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
