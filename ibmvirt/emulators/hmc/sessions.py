"""Logon and logoff (``/api/sessions``): the session resource of the emulator.

Why: zhmcclient.mock has no sessions; the real HMC hands out a session token and
the names of the session's notification topics at logon (the emulator's STOMP
notifications are published on those topics).
"""

from __future__ import annotations

import secrets
import time

from ibmvirt.emulators.hmc import errors
from ibmvirt.emulators.hmc.errors import HMCError
from ibmvirt.emulators.hmc.model import Request, Response
from ibmvirt.emulators.hmc.state import HMCState, Route, Session, require_body


def logon(st: HMCState, req: Request) -> Response:
    """Logon: a new session, with the HMC's notification topic names."""
    body = require_body(req)
    for field in ("userid", "password"):
        if field not in body:
            raise HMCError(errors.FIELD_MISSING, f"Logon needs the '{field}' field")
    user, password = body["userid"], body["password"]
    if st.credentials is not None and st.credentials.get(user) != password:
        raise HMCError(errors.LOGON_FAILED, f"Logon failed for user {user!r}")
    token = secrets.token_urlsafe(32)
    st.sessions[token] = Session(user, time.monotonic() + st.session_timeout)
    # Topic names are not secret (zhmcclient logs them): nothing of the token.
    topic = secrets.token_hex(8)
    major, minor = (st.hmc.api_version.split(".") + ["0"])[0:2]
    return Response(
        200,
        {
            "api-session": token,
            "notification-topic": f"emulator-{topic}-topic",
            "job-notification-topic": f"emulator-{topic}-job-topic",
            "api-major-version": int(major),
            "api-minor-version": int(minor),
            "password-expires": -1,
            "session-credential": secrets.token_urlsafe(16),
        },
    )


def logoff(st: HMCState, req: Request) -> Response:
    """Logoff: the session ends (its token answers 403/5 from now on)."""
    st.sessions.pop(req.token or "", None)
    return Response(204)


ROUTES: list[Route] = [
    ("POST", r"/api/sessions", logon),
    ("DELETE", r"/api/sessions/this-session", logoff),
]
