"""The VNC relay between nova-novncproxy and an LPAR terminal's VNC server:
its CONNECT handshake, its limits, and the bytes it copies."""

from __future__ import annotations

import socket
import threading

import pytest

from ibmvirt.powervm import vnc

LPAR = "2A3B4C5D-0000-4000-8000-00000000ABCD"


@pytest.fixture
def terminal():
    """A stand-in VNC server: sends a greeting, then echoes."""
    srv = socket.create_server(("127.0.0.1", 0))

    def serve():
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            conn.sendall(b"RFB 003.008\n")
            while data := conn.recv(1024):
                conn.sendall(data)
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    yield srv.getsockname()[1]
    srv.close()


@pytest.fixture
def relay(terminal):
    asked = []

    def resolve(path):
        asked.append(path)
        return terminal if path == LPAR else None

    r = vnc.Relay("127.0.0.1", 0, resolve)
    r.asked = asked
    yield r
    r.stop()


def _ask(relay, request: bytes) -> tuple[socket.socket, bytes]:
    sock = socket.create_connection(("127.0.0.1", relay.port), timeout=10)
    sock.sendall(request)
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = sock.recv(1)
        if not chunk:
            break
        answer += chunk
    return sock, answer


def _connect(path: str, length: int | None = None) -> bytes:
    head = f"CONNECT {path} HTTP/1.1\r\n"
    if length is not None:  # pad with a header to exactly `length` bytes
        pad = length - len(head) - len("X: \r\n\r\n")
        head += "X: " + "a" * pad + "\r\n"
    return (head + "\r\n").encode()


def test_the_proxy_reaches_the_terminal_and_bytes_flow_both_ways(relay):
    sock, answer = _ask(relay, _connect(LPAR))
    with sock:
        assert answer == b"HTTP/1.1 200 OK\r\n\r\n"
        assert sock.recv(12) == b"RFB 003.008\n"
        sock.sendall(b"RFB 003.008\n")
        assert sock.recv(12) == b"RFB 003.008\n"  # the terminal's echo


def test_a_request_of_exactly_the_limit_is_read_one_byte_more_refused(relay):
    request = _connect(LPAR, vnc.MAX_REQUEST)
    assert len(request) == vnc.MAX_REQUEST
    sock, answer = _ask(relay, request)
    sock.close()
    assert answer == b"HTTP/1.1 200 OK\r\n\r\n"
    sock, answer = _ask(relay, _connect(LPAR, vnc.MAX_REQUEST + 1))
    sock.close()
    assert answer.startswith(b"HTTP/1.1 400")


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET / HTTP/1.1\r\n\r\n",
        _connect(LPAR) + b"RFB 003.008\n",  # the viewer may speak only after the answer
    ],
)
def test_anything_but_a_bare_connect_is_refused(relay, request_bytes):
    sock, answer = _ask(relay, request_bytes)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 400")


def test_a_path_that_is_no_lpar_of_this_host_is_not_found(relay):
    sock, answer = _ask(relay, _connect("00000000-0000-4000-8000-000000000000"))
    sock.close()
    assert answer == b"HTTP/1.1 404 Not Found\r\n\r\n"
    assert relay.asked == ["00000000-0000-4000-8000-000000000000"]
