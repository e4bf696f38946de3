"""VNC servers for partition terminals, as ``mkvterm --id N --vnc --local``
starts them on the NovaLink partition.

``POST /_emulator/vterm/vnc {"lpar"}`` (the control endpoint; *emulator-only*,
standing in for the mkvterm command) starts, or finds, the partition's VNC
server on 127.0.0.1 and answers its port, as mkvterm prints it; ``POST
/_emulator/vterm/close {"lpar"}`` stops it (``rmvterm``), and so does deleting
the partition. The server speaks RFB 3.8 (security type None) and shows a
blank 640x384 screen, the size of mkvterm's 80x24 text terminal (*guess*: the
real terminal draws the text); the handshake and the framebuffer update a
VNC client asks for first are what a client needs to get in.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
from typing import Any

from ibmvirt.emulators.novalink.emulator import Emulator
from ibmvirt.emulators.novalink.state import partition
from ibmvirt.emulators.novalink.store import Resource

LOG = logging.getLogger(__name__)

WIDTH, HEIGHT = 640, 384
#: 32 bits per pixel, depth 24, little endian, true colour, 8 bits per colour.
PIXEL_FORMAT = struct.pack(">BBBBHHHBBB3x", 32, 24, 0, 1, 255, 255, 255, 16, 8, 0)
#: Sizes of the fixed part of each client message, by type (RFC 6143 7.5).
_CLIENT_MESSAGES = {0: 20, 2: 4, 3: 10, 4: 8, 5: 6, 6: 8}
_KEY = "vnc_servers"


class TerminalServer(threading.Thread):
    """One partition's VNC server; several viewers may share it (as mkvterm's)."""

    def __init__(self, name: str) -> None:
        super().__init__(name=f"vnc-{name}", daemon=True)
        self.name_bytes = f"{name} vterm".encode()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        self.alive = True
        self._clients: list[socket.socket] = []

    def run(self) -> None:
        while self.alive:
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            self._clients.append(conn)
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def stop(self) -> None:
        self.alive = False
        self.sock.close()
        for conn in self._clients:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()

    def _session(self, conn: socket.socket) -> None:
        conn.settimeout(120)
        try:
            self._handshake(conn)
            while self.alive:
                kind = _recv(conn, 1)[0]
                size = _CLIENT_MESSAGES.get(kind)
                if size is None:
                    return  # not RFB: hang up, as a VNC server does
                msg = bytes([kind]) + _recv(conn, size - 1)
                if kind == 2:  # SetEncodings: count encodings follow
                    _recv(conn, 4 * struct.unpack(">H", msg[2:4])[0])
                elif kind == 6:  # ClientCutText: the text follows
                    _recv(conn, struct.unpack(">I", msg[4:8])[0])
                elif kind == 3 and msg[1] == 0:  # a full (not incremental) update
                    conn.sendall(self._blank_screen())
        except (OSError, EOFError):
            pass
        finally:
            conn.close()

    def _handshake(self, conn: socket.socket) -> None:
        conn.sendall(b"RFB 003.008\n")
        version = _recv(conn, 12)
        if not version.startswith(b"RFB 003."):
            raise EOFError("not an RFB client")
        conn.sendall(b"\x01\x01")  # one security type: None
        if _recv(conn, 1) != b"\x01":
            conn.sendall(struct.pack(">I", 1) + _reason(b"security type None only"))
            raise EOFError("unsupported security type")
        conn.sendall(struct.pack(">I", 0))  # SecurityResult: OK
        _recv(conn, 1)  # ClientInit (shared flag: viewers always share)
        conn.sendall(
            struct.pack(">HH", WIDTH, HEIGHT)
            + PIXEL_FORMAT
            + struct.pack(">I", len(self.name_bytes))
            + self.name_bytes
        )

    @staticmethod
    def _blank_screen() -> bytes:
        header = struct.pack(">BxHHHHHi", 0, 1, 0, 0, WIDTH, HEIGHT, 0)  # one Raw rectangle
        return header + bytes(WIDTH * HEIGHT * 4)


def _reason(text: bytes) -> bytes:
    return struct.pack(">I", len(text)) + text


def _recv(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise EOFError("viewer closed the connection")
        data += chunk
    return data


def _servers(emu: Emulator) -> dict[str, TerminalServer]:
    return emu.ext.setdefault(_KEY, {})


def _partition(emu: Emulator, ident: Any) -> Resource:
    ident = str(ident or "")
    for res in emu.store.list("LogicalPartition"):
        if res.uuid.upper() == ident.upper() or partition.name_of(res.elem) == ident:
            return res
    raise ValueError(f"no partition {ident!r} (give its UUID or name as 'lpar')")


def open_vnc(emu: Emulator, body: Any) -> tuple[int, Any]:
    res = _partition(emu, (body or {}).get("lpar") if isinstance(body, dict) else None)
    servers = _servers(emu)
    server = servers.get(res.uuid)
    if server is None or not server.alive:
        server = servers[res.uuid] = TerminalServer(partition.name_of(res.elem))
        server.start()
        LOG.info("VNC terminal of %s on 127.0.0.1:%d", partition.name_of(res.elem), server.port)
    return 200, {"lpar": res.uuid, "port": server.port}


def close(emu: Emulator, uuid: str) -> bool:
    server = _servers(emu).pop(uuid, None)
    if server is not None:
        server.stop()
    return server is not None


def _close(emu: Emulator, body: Any) -> tuple[int, Any]:
    res = _partition(emu, (body or {}).get("lpar") if isinstance(body, dict) else None)
    return 200, {"lpar": res.uuid, "closed": close(emu, res.uuid)}


def register(emu: Emulator) -> None:
    emu.control_routes["/vterm/vnc"] = lambda body: open_vnc(emu, body)
    emu.control_routes["/vterm/close"] = lambda body: _close(emu, body)
    # The partition's terminal goes with it.
    emu.kind("LogicalPartition").after_delete.append(lambda e, res: close(e, res.uuid))
    emu.stop_hooks.append(lambda: [close(emu, u) for u in list(_servers(emu))])
