"""Errors the emulator returns, as HttpErrorResponse entries.

Codes the real server is known to send (and that pypowervm recognises by
substring in the message) are named after their meaning below. Where no real
capture or client code tells us the code, the emulator uses its own
``EMUL####`` codes so nobody mistakes them for a real server's numbering.
"""

from __future__ import annotations

# --- codes proven by pypowervm 1.1.27 (tasks/power.py, wrappers/http_error.py)
ALREADY_POWERED_ON = "PVME01042026"  # power.py _ALREADY_POWERED_ON_ERRS
ALREADY_POWERED_OFF = "PVME04000005"  # power.py _ALREADY_POWERED_OFF_ERRS
OSSHUTDOWN_NO_RMC = "PVME01050905"  # power.py _OSSHUTDOWN_RMC_ERRS
VIOS_BUSY = "VIOS0014"  # http_error.py _VIOS_BUSY_ERR_CODES
HMC_VIOS_BUSY = "HSCL3205"  # http_error.py _VIOS_BUSY_ERR_CODES
PARTITION_STATE = "HSCL05DF"  # job_response_completed_failed.txt (wrong state)
PARTITION_STATE_TEXT = (
    "The partition is not in a state under which this operation can be performed. "
    "Check the state of the partition."
)
# Message text of the real server for a payload it cannot unmarshal (parsed by
# IBM's ansible-power-hmc client); the emulator adds its own code and details.
UNMARSHAL = "Failed to unmarshal input payload."

# --- codes of the management console's REST layer, seen in error responses an
# HMC (V10R3) returned for the same REST requests (recorded by the hmc-mcp
# project, tests/fixtures/live and docs/api-patterns.md). NovaLink runs the same
# REST layer; no NovaLink capture of these exists.
SCHEMA_ORDER = "REST0001"  # 400, payload failed XML validation (order, unknown element)
SCHEMA_REASON = "The supplied XML request body did not pass XML validation."
NOT_FOUND = "REST029B"  # 404, the URI names no object
NOT_FOUND_REASON = "The supplied URI does not identify a known resource."
NO_SUCH_JOB = "REST0005"  # 404 "No such Job"
# 500 "Unknown internal error." wraps a refusal of the PowerVM layer: REST0126 + HSCL code.
POWERVM_REFUSAL = "REST0126"
POWERVM_REASON = "Unknown internal error."
PARTITION_NAME_IN_USE = "HSCL05DE"  # seen on a rename; the emulator uses it on create too

# --- emulator-assigned codes (no real evidence of the exact number). The
# capacity, state and in-use ones travel inside a REST0126 500 (``refused``).
READ_ONLY_FIELD = "EMUL0002"
CREATE_ONLY_FIELD = "EMUL0003"
DUPLICATE_NAME = "EMUL0004"
INSUFFICIENT_MEMORY = "EMUL0005"
INSUFFICIENT_PROCESSORS = "EMUL0006"
RUNNING_DELETE = "EMUL0007"
IN_USE = "EMUL0008"
BAD_VALUE = "EMUL0009"
DLPAR_LIMIT = "EMUL0010"
UNSUPPORTED = "EMUL0012"
NO_SPACE = "EMUL0013"
# The host lacks a capability the request needs (IBM i, restricted I/O).
NOT_CAPABLE = "EMUL0030"
# A Mobile CoD request the Power Enterprise Pool or the system cannot meet.
MOBILE_COD = "EMUL0031"
# An SR-IOV adapter not in shared (SR-IOV) mode or not running.
SRIOV_NOT_READY = "EMUL0040"
# The file or RBD image behind a File I/O / RBD mapping does not exist on the
# management partition.
BACKING_NOT_FOUND = "EMUL0050"
INJECTED = "EMUL0099"


class RestError(Exception):
    """An HTTP error with a reason code and an operator-readable message."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        reason: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.reason = reason or _REASONS.get(status, "Error")
        self.message = f"[{code}] {message}" if code else message
        self.headers = headers or {}
        super().__init__(self.message)


_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    412: "Precondition Failed",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def bad_request(message: str, code: str = BAD_VALUE) -> RestError:
    """400 with a code; the most common validation failure."""
    return RestError(400, message, code)


def not_found(kind: str, ident: str) -> RestError:
    """404 naming the object the client asked for."""
    if kind == "Job":
        return RestError(404, f"No such Job {ident}", NO_SUCH_JOB)
    return RestError(
        404, f"{kind} {ident} does not exist on this server", NOT_FOUND, NOT_FOUND_REASON
    )


def schema_error(message: str) -> RestError:
    """400 for a payload the server cannot unmarshal."""
    return RestError(400, f"{UNMARSHAL} {message}", SCHEMA_ORDER, SCHEMA_REASON)


def refused(message: str, code: str) -> RestError:
    """500 as the REST layer reports a refusal of the PowerVM layer.

    Capacity, state and in-use rules are enforced below the REST layer; a real
    console wraps their refusal in REST0126 "Unknown internal error." with the
    lower layer's code first in the message (pypowervm also only reads VIOS
    refusals out of 500 responses). ``code`` is that lower-layer code.
    """
    return RestError(500, f"{code} {message}", POWERVM_REFUSAL, POWERVM_REASON)


class JobFailure(Exception):
    """A job ends COMPLETED_WITH_ERROR with this message in its results."""

    def __init__(
        self, message: str, code: str | None = None, results: dict[str, str] | None = None
    ) -> None:
        self.code = code
        #: More job results (e.g. ``RETURN_CODE``, which clients read after a failure).
        self.results = dict(results or {})
        self.text = message
        self.message = f"{code} {message}" if code else message
        super().__init__(self.message)
