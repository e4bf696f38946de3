"""A zhmcclient session wired straight to an ``HMCEngine``: the emulator without HTTP.

Why: driver unit tests want the emulator's HMC behaviour (refusals, jobs,
storage groups, OS messages) but not a TLS server per test. ``EngineSession``
is a ``zhmcclient.mock.FakedSession`` whose get/post/delete go through
``HMCEngine.handle`` exactly as the HTTPS server's requests do (JSON-encoded
both ways, so callers never share objects with the emulator's state).
Session ids, 403/5 re-logon, 202 jobs and waiting for them work like
``zhmcclient.Session``; only the transport (and fault injection, which lives
in the server) is missing. Use the HTTPS ``HMCEmulator`` for anything that
must prove the wire protocol.

    session = EngineSession.from_inventory(inventories.Z15)
    client = zhmcclient.Client(session)
    session.engine.simulate_partition_status("inst-1", "paused")
"""

from __future__ import annotations

import json
import time
from typing import Any

import zhmcclient
from zhmcclient.mock import FakedSession

from ibmvirt.emulators.faults import RequestLog
from ibmvirt.emulators.hmc.engine import HMCEngine
from ibmvirt.emulators.hmc.model import Response

_USER = "ibmvirt"
_PASSWORD = "emulated-password"  # noqa: S105 - emulator-only credential


class EngineSession(FakedSession):
    """zhmcclient session to an in-process ``HMCEngine`` (no sockets, no TLS)."""

    def __init__(self, engine: HMCEngine) -> None:
        hmc = engine.hmc
        super().__init__(
            "emulated-hmc", hmc.hmc_name, hmc.hmc_version, hmc.api_version, _USER, _PASSWORD
        )
        self._hmc = hmc  # share the engine's FakedHmc instead of the one just made
        self.engine = engine
        self.request_log = RequestLog()
        self._token: str | None = None

    @classmethod
    def from_inventory(cls, inventory: str, **engine_kwargs: Any) -> EngineSession:
        """A session to a new engine loaded from ``inventory``."""
        return cls(HMCEngine(inventory, **engine_kwargs))

    # -- transport -------------------------------------------------------------
    def _logon_engine(self) -> str:
        body = json.dumps({"userid": _USER, "password": _PASSWORD}).encode()
        resp = self._raw("POST", "/api/sessions", body, None)
        if resp.status != 200:
            raise zhmcclient.ServerAuthError("logon to the emulator failed", None)
        self._token = resp.body["api-session"]
        return self._token

    def _raw(self, method: str, uri: str, raw: bytes, token: str | None) -> Response:
        headers = {"X-API-Session": token} if token else {}
        resp = self.engine.handle(method, uri, headers, raw)
        self.request_log.append(method, uri, resp.status)
        if isinstance(resp.body, (dict, list)):
            resp.body = json.loads(json.dumps(resp.body))
        return resp

    def _call(self, method: str, uri: str, body: Any = None) -> Response:
        raw = json.dumps(body).encode() if body is not None else b""
        needs_session = not (uri == "/api/version" or uri == "/api/sessions")
        token = (self._token or self._logon_engine()) if needs_session else None
        resp = self._raw(method, uri, raw, token)
        if resp.status == 403 and isinstance(resp.body, dict) and resp.body.get("reason") in (4, 5):
            resp = self._raw(method, uri, raw, self._logon_engine())  # re-logon once
        if resp.status >= 400:
            raise zhmcclient.HTTPError(resp.body)
        return resp

    # -- zhmcclient.Session interface ------------------------------------------
    @property
    def session_id(self) -> str | None:
        return self._token

    def logon(self, verify: bool = False, always: bool = False) -> None:
        if always or self._token is None:
            self._logon_engine()

    def logoff(self, verify: bool = False) -> None:
        if self._token is not None:
            self._raw("DELETE", "/api/sessions/this-session", b"", self._token)
        self._token = None

    def is_logon(self, verify: bool = False) -> bool:
        return self._token is not None

    def get(
        self,
        uri: str,
        resource: Any = None,
        logon_required: bool = True,
        renew_session: bool = True,
    ) -> Any:
        return self._call("GET", uri).body

    def delete(
        self,
        uri: str,
        resource: Any = None,
        logon_required: bool = True,
        renew_session: bool = True,
    ) -> None:
        self._call("DELETE", uri)

    def post(
        self,
        uri: str,
        resource: Any = None,
        body: Any = None,
        logon_required: bool = True,
        wait_for_completion: bool = False,
        operation_timeout: float | None = None,
        renew_session: bool = True,
        busy_retries: int = 0,
        busy_wait: float = 0,
    ) -> Any:
        resp = self._call("POST", uri, body)
        if resp.status == 204 or resp.body is None:
            return None
        if resp.status == 202:
            job = zhmcclient.Job(self, resp.body["job-uri"], "POST", uri)
            if not wait_for_completion:
                return job
            if operation_timeout is None:
                operation_timeout = self.retry_timeout_config.operation_timeout
            deadline = None if not operation_timeout else time.monotonic() + operation_timeout
            while True:
                status, result = job.check_for_completion()
                if status == "complete":
                    return result
                if deadline is not None and time.monotonic() > deadline:
                    raise zhmcclient.OperationTimeout(
                        f"Waiting for completion of job {job.uri} timed out", operation_timeout
                    )
                time.sleep(0.01)
        return resp.body
