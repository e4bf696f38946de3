"""Swift behind Keystone, small and real enough for the NVRAM store's tests.

One HTTP server on loopback plays both: ``POST /v3/auth/tokens`` (password
auth, a token in ``X-Subject-Token`` and a catalog whose object-store
endpoint is this server) and the Swift object API under ``/v1/AUTH_<project>``
(containers, objects with MD5 ETags, 401 for a missing or expired token).
:meth:`SwiftServer.expire_tokens` makes every token issued so far expired,
as when Keystone's token lifetime passes; the requests are logged.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class SwiftServer:
    def __init__(self, username: str, password: str, project: str) -> None:
        self.username, self.password, self.project = username, password, project
        self.tokens: set[str] = set()
        self.containers: dict[str, dict[str, bytes]] = {}
        #: (method, path, status) of every request.
        self.log: list[tuple[str, str, int]] = []
        self.lock = threading.RLock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    @property
    def auth_url(self) -> str:
        return f"{self.url}/v3"

    def expire_tokens(self) -> None:
        with self.lock:
            self.tokens.clear()

    def objects(self, container: str) -> dict[str, bytes]:
        with self.lock:
            return dict(self.containers.get(container, {}))

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _handler(server: SwiftServer):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet
            pass

        def _reply(self, status: int, body: bytes = b"", headers: dict | None = None):
            with server.lock:
                server.log.append((self.command, self.path.split("?")[0], status))
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _body(self) -> bytes:
            n = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(n) if n else b""

        def _auth(self):
            data = json.loads(self._body() or b"{}")
            pw = data.get("auth", {}).get("identity", {}).get("password", {}).get("user", {})
            if (pw.get("name"), pw.get("password")) != (server.username, server.password):
                return self._reply(401, b'{"error": {"code": 401}}')
            token = secrets.token_hex(16)
            with server.lock:
                server.tokens.add(token)
            endpoint = f"{server.url}/v1/AUTH_{server.project}"
            body = {
                "token": {
                    "expires_at": "2099-01-01T00:00:00.000000Z",
                    "issued_at": "2026-01-01T00:00:00.000000Z",
                    "methods": ["password"],
                    "user": {"id": "u1", "name": server.username, "domain": {"id": "default"}},
                    "project": {
                        "id": server.project,
                        "name": server.project,
                        "domain": {"id": "default"},
                    },
                    "catalog": [
                        {
                            "type": "object-store",
                            "name": "swift",
                            "endpoints": [
                                {
                                    "interface": i,
                                    "url": endpoint,
                                    "region": "RegionOne",
                                    "region_id": "RegionOne",
                                    "id": f"e-{i}",
                                }
                                for i in ("public", "internal", "admin")
                            ],
                        }
                    ],
                }
            }
            self._reply(
                201,
                json.dumps(body).encode(),
                {"X-Subject-Token": token, "Content-Type": "application/json"},
            )

        def _swift(self):
            with server.lock:
                ok = self.headers.get("X-Auth-Token") in server.tokens
            if not ok:
                return self._reply(401, b"<html><h1>Unauthorized</h1></html>")
            parts = self.path.split("?")[0].split("/")[3:]  # ['', 'v1', 'AUTH_x', ...]
            container = parts[0] if parts else ""
            obj = "/".join(parts[1:]) if len(parts) > 1 else ""
            with server.lock:
                store = server.containers.get(container)
                if not obj:
                    if self.command == "PUT":
                        created = store is None
                        server.containers.setdefault(container, {})
                        return self._reply(201 if created else 202)
                    return self._reply(204 if store is not None else 404)
                if store is None:
                    return self._reply(404)
                if self.command == "PUT":
                    data = self._body()
                    etag = hashlib.md5(data, usedforsecurity=False).hexdigest()
                    sent = self.headers.get("ETag")
                    if sent and sent.strip('"') != etag:
                        return self._reply(422)
                    store[obj] = data
                    return self._reply(201, headers={"ETag": etag})
                if obj not in store:
                    return self._reply(404)
                data = store[obj]
                etag = hashlib.md5(data, usedforsecurity=False).hexdigest()
                if self.command == "DELETE":
                    del store[obj]
                    return self._reply(204)
            self._reply(200, data, {"ETag": etag, "Content-Type": "application/octet-stream"})

        def _route(self):
            path = self.path.split("?")[0]
            if path == "/v3/auth/tokens" and self.command == "POST":
                return self._auth()
            if path.startswith(f"/v1/AUTH_{server.project}"):
                return self._swift()
            return self._reply(404)

        do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _route

    return Handler
