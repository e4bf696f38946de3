"""HMC WS API error objects and the status/reason codes the emulator uses.

Why: clients (zhmcclient, and through it the drivers) branch on HTTP status and
reason code, e.g. 403/5 triggers a re-logon and 409/1 means "wrong state". The
codes below come from the HMC WS API book's common request validation table
(400/1..14, 403/4-5, 404/1-2, 409/1-2) where that table defines them. Codes the
book defines per operation that could not be confirmed are marked *approximate*;
they are still stable, documented in doc/hmc-emulator.md and asserted by tests,
so a driver can rely on the *status* and should not branch on these *reasons*.
"""

from __future__ import annotations

from typing import Any

# -- common request validation (HMC WS API book, "Common request validation
#    reason codes")
BAD_QUERY_PARM = (400, 1)
BODY_MISSING = (400, 3)
BODY_NOT_EXPECTED = (400, 4)
FIELD_MISSING = (400, 5)
FIELD_UNRECOGNIZED = (400, 6)  # also used for read-only/non-settable properties
FIELD_INVALID = (400, 7)  # wrong type or value out of range
NOT_UNIQUE = (400, 8)  # e.g. duplicate partition/NIC/HBA/storage group name
BODY_MALFORMED = (400, 9)
NO_SESSION = (403, 4)
SESSION_INVALID = (403, 5)  # expired or unknown X-API-Session -> client re-logs on
LOGON_FAILED = (403, 0)
NOT_FOUND = (404, 1)  # the URI designates no object
REFERENCED_NOT_FOUND = (404, 2)  # an object named in the request body does not exist
METHOD_NOT_ALLOWED = (405, 0)
WRONG_STATE = (409, 1)  # object status does not permit the operation
BUSY = (409, 2)

# -- operation specific (approximate, see module docstring)
NOT_SUPPORTED_ON_CPC = (409, 5)  # e.g. HBA on a dpm-storage-management CPC
SG_ALREADY_ATTACHED = (409, 120)
SG_NOT_ATTACHED = (409, 121)
SG_IN_USE = (409, 122)  # delete/modify of an attached storage group or used volume
SG_MAX_PARTITIONS = (409, 123)
SG_CPC_MISMATCH = (409, 124)
JOB_NOT_COMPLETE = (409, 40)
JOB_NOT_CANCELABLE = (409, 42)
START_FAILED = (500, 263)  # job status of a Start Partition that cannot allocate resources


class HMCError(Exception):
    """An HMC WS API error answer: HTTP status, reason code and message."""

    def __init__(self, code: tuple[int, int], message: str) -> None:
        super().__init__(message)
        self.status, self.reason = code
        self.message = message

    def body(self, method: str, uri: str, user: str | None = None) -> dict[str, Any]:
        """The JSON error body a real HMC sends (the fields zhmcclient reads)."""
        body: dict[str, Any] = {
            "http-status": self.status,
            "reason": self.reason,
            "message": self.message,
            "request-method": method,
            "request-uri": uri,
        }
        if user is not None:
            body["request-authenticated-as"] = user
        return body


def error_body(status: int, reason: int, message: str, method: str, uri: str) -> dict[str, Any]:
    """JSON error body for an arbitrary status/reason (used by fault injection)."""
    return HMCError((status, reason), message).body(method, uri)
