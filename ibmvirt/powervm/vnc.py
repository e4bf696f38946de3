"""The relay between Nova's noVNC proxy and the LPARs' terminal VNC servers.

A terminal's VNC server (mkvterm's) listens on localhost of the NovaLink
partition only. nova-novncproxy reaches an LPAR through this relay instead:
one listener per nova-compute on ``[vnc] server_listen`` port ``[powervm]
vnc_relay_port``. The proxy opens ``CONNECT <internal_access_path> HTTP/1.1``
(the path get_vnc_console gave Nova: the LPAR UUID), the relay answers ``200
OK`` and from then on copies bytes both ways between the proxy and the
LPAR's VNC server (the RFB session itself is the terminal's and the
viewer's). Anything else is answered ``400``/``404`` and closed.

Like a libvirt host's VNC servers, the relay trusts the network it listens
on: bind it to the management network only nova-novncproxy reaches.
"""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Callable

from oslo_log import log as logging

LOG = logging.getLogger(__name__)

#: The CONNECT request is at most this long and must arrive within HANDSHAKE_TIMEOUT s.
MAX_REQUEST = 4096
HANDSHAKE_TIMEOUT = 10.0
_CONNECT = re.compile(rb"^CONNECT (\S+) HTTP/(1\.[01])\r\n")


class Relay:
    """Listens for the proxy; ``resolve(path)`` gives the local VNC port or None."""

    def __init__(self, address: str, port: int, resolve: Callable[[str], int | None]) -> None:
        self.resolve = resolve
        self._sock = socket.create_server((address, port))
        self._sock.settimeout(0.5)
        self.port = self._sock.getsockname()[1]
        self._alive = True
        self._thread = threading.Thread(target=self._serve, name="powervm-vnc-relay", daemon=True)
        self._thread.start()
        LOG.info("VNC relay listening on %s port %d", address, self.port)

    def stop(self) -> None:
        """Stop listening (the thread ends within its accept timeout; not
        waited for: nova-compute's shutdown must stay quick)."""
        self._alive = False
        self._sock.close()

    def _serve(self) -> None:
        while self._alive:
            try:
                client, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def _handle(self, client: socket.socket) -> None:
        terminal = self._connect(client)
        if terminal is None:
            client.close()
            return
        client.settimeout(None)
        terminal.settimeout(None)
        threading.Thread(target=_pump, args=(terminal, client), daemon=True).start()
        _pump(client, terminal)

    def _connect(self, client: socket.socket) -> socket.socket | None:
        """The proxy's CONNECT answered; the LPAR's VNC server connected (or None)."""
        try:
            client.settimeout(HANDSHAKE_TIMEOUT)
            match = _CONNECT.match(_read_request(client) or b"")
            if match is None:
                client.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
                return None
            version = match.group(2).decode()
            port = self.resolve(match.group(1).decode(errors="replace"))
            if port is None:
                client.sendall(f"HTTP/{version} 404 Not Found\r\n\r\n".encode())
                return None
            terminal = socket.create_connection(("127.0.0.1", port), timeout=HANDSHAKE_TIMEOUT)
        except Exception:  # noqa: BLE001  (one viewer's failure must not end the relay)
            LOG.exception("VNC relay: refused a connection")
            return None
        try:
            client.sendall(f"HTTP/{version} 200 OK\r\n\r\n".encode())
        except OSError:
            terminal.close()
            return None
        return terminal


def _read_request(client: socket.socket) -> bytes | None:
    """The CONNECT request's head (None: too long, cut off, or followed by
    bytes the viewer may only send after the answer). Never reads past
    MAX_REQUEST bytes."""
    data = b""
    while b"\r\n\r\n" not in data:
        if len(data) >= MAX_REQUEST:
            return None
        chunk = client.recv(MAX_REQUEST - len(data))
        if not chunk:
            return None
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    if rest:
        return None
    return head + b"\r\n"


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while chunk := src.recv(65536):
            dst.sendall(chunk)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
