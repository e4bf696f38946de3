"""Request dispatch of the HMC emulator: zhmcclient.mock's faked HMC plus a fidelity layer.

Why: zhmcclient.mock models the HMC's resource tree well but only in-process, and
it lacks or gets wrong what a DPM driver relies on (sessions, asynchronous jobs,
refusals, MAC addresses, storage group attachment, OS messages). This module
takes one HTTP request (method, target, headers, body) and returns the HMC's
answer; the HTTPS server around it lives in ``server.py``.

Laid out like zhmcclient's own mock: state and lookups in ``state.py``, one
module per resource exporting ``ROUTES`` (sessions, partitions, nics, hbas,
storage, jobs, metrics); this module only dispatches. Requests that no route
takes go to the mock's URI handler table (private API, see ``state.py``).

Thread safety: ``HMCEngine.lock`` (an RLock) guards all state, including the
FakedHmc. Hold it when reading ``engine.hmc`` from another thread (tests do, via
``HMCEmulator.faked_hmc`` and ``HMCEmulator.lock``).
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ibmvirt.emulators.hmc import filters, hbas, jobs, metrics, nics, partitions, sessions, storage
from ibmvirt.emulators.hmc.errors import HMCError
from ibmvirt.emulators.hmc.model import Request, Response
from ibmvirt.emulators.hmc.state import Handler, HMCState, parse_body

LOG = logging.getLogger(__name__)

JSON_TYPE = "application/json;charset=UTF-8"

_ROUTES: list[tuple[str, re.Pattern[str], Handler]] = [
    (method, re.compile(rx + r"$"), handler)
    for module in (sessions, partitions, nics, hbas, storage, jobs, metrics)
    for method, rx, handler in module.ROUTES
]


def _needs_session(method: str, path: str) -> bool:
    return not (path == "/api/version" or (path == "/api/sessions" and method == "POST"))


class HMCEngine(HMCState):
    """The emulated HMC: its state (``HMCState``) and request dispatch."""

    def handle(self, method: str, target: str, headers: Any, raw_body: bytes) -> Response:
        """Answer one HMC WS API request (the caller serialises the Response).

        The session is checked before the body is parsed. Query filters of list
        operations are matched after the lock is released (``filters``).
        """
        method = method.upper()
        try:
            handled, flt = filters.split(method, target)
        except HMCError as exc:
            # A client without a session hears 403, whatever its filter.
            refusal = self.session_refusal(method, target, headers)
            return refusal or Response(exc.status, exc.body(method, target, None), None)
        with self.lock:
            resp = self._handle_locked(method, handled, headers, raw_body)
            snap = filters.snapshot(resp, flt, self.hmc.lookup_by_uri) if flt else []
        return filters.apply(resp, flt, snap) if flt else resp

    def session_refusal(self, method: str, target: str, headers: Any) -> Response | None:
        """The 403 a request without a valid session gets, or None (no body needed).

        The server asks this before it reads a request body, so that a client
        without a session cannot make the emulator read (or parse) one.
        """
        method = method.upper()
        if not _needs_session(method, urlsplit(target).path):
            return None
        with self.lock:
            try:
                self.check_session(headers, refresh=False)
            except HMCError as exc:
                return Response(exc.status, exc.body(method, target, None), None)
        return None

    def _handle_locked(self, method: str, target: str, headers: Any, raw_body: bytes) -> Response:
        parts = urlsplit(target)
        path = parts.path
        try:
            user = token = None
            if _needs_session(method, path):
                user, token = self.check_session(headers)
            body = parse_body(raw_body)
            for route_method, regex, handler in _ROUTES:
                if route_method != method:
                    continue
                m = regex.match(path)
                if m:
                    req = Request(method, target, path, parse_qs(parts.query), body, m, user, token)
                    return handler(self, req)
            return self.delegate(method, target, body)
        except HMCError as exc:
            return Response(exc.status, exc.body(method, target, None), None)
        except Exception as exc:  # a bug in the emulator: answer like an HMC would
            LOG.exception("HMC emulator failed on %s %s", method, path)
            err = HMCError((500, 0), f"Internal error in the HMC emulator: {exc!r}")
            return Response(500, err.body(method, target, None), None)
