"""NVRAM copies as objects in Swift (python-swiftclient on a Keystone session).

One object per instance, named by its UUID, in ``[powervm] swift_container``
(the same on every host, so a destination finds the source's copies). A store
is skipped when the object's ETag is already the MD5 of the data. An expired
token (401) is renewed and the request retried once, as swiftclient does on
a Keystone session; other failures are retried once after 250 ms.
"""

from __future__ import annotations

import hashlib
import threading

from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3
from swiftclient import client as swift_client

from ibmvirt.powervm.nvram import base


class SwiftNvramStore(base.NvramStore):
    name = "swift"

    def __init__(self, opts) -> None:
        """``opts``: the [powervm] group (swift_* options)."""
        self.container = opts.swift_container
        auth = v3.Password(
            auth_url=opts.swift_auth_url,
            username=opts.swift_username,
            password=opts.swift_password,
            user_domain_name=opts.swift_user_domain_name,
            project_name=opts.swift_project_name,
            project_domain_name=opts.swift_project_domain_name,
        )
        session = ks_session.Session(auth=auth, verify=opts.swift_cacert or True)
        self._conn = swift_client.Connection(
            session=session,
            os_options={
                "service_type": "object-store",
                "interface": opts.swift_endpoint_type,
                "region_name": opts.swift_region_name,
            },
            retries=1,
            starting_backoff=0.25,
        )
        self._lock = threading.Lock()  # a swiftclient Connection is not thread-safe
        self._container_ok = False

    def _call(self, what: str, func, *args, **kwargs):
        try:
            with self._lock:
                return func(*args, **kwargs)
        except swift_client.ClientException as exc:
            if exc.http_status == 404:
                raise
            raise base.NvramError(f"Swift {what}: {_reason(exc)}") from exc
        except Exception as exc:  # noqa: BLE001  (keystoneauth and connection errors)
            raise base.NvramError(f"Swift {what}: {type(exc).__name__}: {exc}") from exc

    def _ensure_container(self) -> None:
        if not self._container_ok:
            self._call(
                f"creating container {self.container}", self._conn.put_container, self.container
            )
            self._container_ok = True

    def store(self, instance_uuid: str, data: bytes) -> bool:
        self._ensure_container()
        md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
        try:
            head = self._call(
                f"reading {self.container}/{instance_uuid}",
                self._conn.head_object,
                self.container,
                instance_uuid,
            )
            if head.get("etag", "").strip('"') == md5:
                return False
        except swift_client.ClientException:
            pass  # 404: not stored yet
        self._call(
            f"storing {self.container}/{instance_uuid}",
            self._conn.put_object,
            self.container,
            instance_uuid,
            data,
            etag=md5,
            content_type="application/octet-stream",
        )
        return True

    def fetch(self, instance_uuid: str) -> bytes | None:
        try:
            _headers, body = self._call(
                f"reading {self.container}/{instance_uuid}",
                self._conn.get_object,
                self.container,
                instance_uuid,
            )
        except swift_client.ClientException:
            return None
        return body

    def delete(self, instance_uuid: str) -> None:
        try:
            self._call(
                f"deleting {self.container}/{instance_uuid}",
                self._conn.delete_object,
                self.container,
                instance_uuid,
            )
        except swift_client.ClientException:
            pass  # 404: nothing kept


def _reason(exc: swift_client.ClientException) -> str:
    """The HTTP status and reason (never the request: it carries the token)."""
    return f"HTTP {exc.http_status} {exc.http_reason or ''}".strip()
