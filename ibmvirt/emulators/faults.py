"""Fault injection, request log and the generic control endpoint (shared by the emulators).

Why: drivers must survive what real management consoles do on a bad day (errors
with specific status/reason codes, slow answers, dropped connections). Tests ask
an emulator to misbehave on exactly the Nth matching request and then check what
the driver left behind. This module holds the protocol-neutral parts; each
emulator renders an injected error in its own wire format (HMC JSON, NovaLink XML).

Server-side use, once per incoming request (before any real processing)::

    action = injector.check(method, path)      # None, or a FaultAction to apply
    if action:
        action.sleep()                         # honours action.delay
        if action.drop: close the connection without an answer
        elif action.status: answer with an error in the emulator's own format
    ... normal processing ...
    request_log.append(method, path, status)

Control endpoint (the emulator mounts it under ``CONTROL_PREFIX``; loopback
clients with a loopback Host, no foreign Origin, JSON bodies: ``control_refusal``)::

    GET    /_emulator/requests                   -> {"requests": [{method, path, status}, ...]}
    GET    /_emulator/requests/count?method=GET&pattern=/api/cpcs  -> {"count": N}
    DELETE /_emulator/requests                   clear the log
    GET    /_emulator/faults                     -> {"faults": [...]} (armed and spent rules)
    POST   /_emulator/faults   {"method": "POST", "uri_pattern": "/operations/start$",
                                "nth": 2, "status": 409, "reason": 1}   -> 201 {"fault": {...}}
    DELETE /_emulator/faults                     remove all rules

``handle_control_request`` implements these routes; emulators add their own
(e.g. expire sessions, set the operation delay) for paths it does not know.
"""

from __future__ import annotations

import ipaddress
import re
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

__all__ = [
    "CONTROL_PREFIX",
    "FaultAction",
    "FaultRule",
    "FaultInjector",
    "RequestRecord",
    "RequestLog",
    "ControlError",
    "handle_control_request",
    "is_loopback",
    "control_refusal",
]

CONTROL_PREFIX = "/_emulator"


class ControlError(ValueError):
    """A control request was malformed; the message says which field and why."""


@dataclass(frozen=True)
class FaultAction:
    """What the server must do to the current request."""

    rule_id: int
    status: int | None
    reason: int | None
    message: str | None
    delay: float | None
    drop: bool

    def sleep(self) -> None:
        """Apply the delay part of the fault (no-op when there is none)."""
        if self.delay:
            time.sleep(self.delay)


@dataclass
class FaultRule:
    """Fire on requests ``nth`` .. ``nth + times - 1`` that match method and pattern.

    Requests are counted from the moment the rule is added. ``method`` ``None`` or
    ``"*"`` matches any method; ``uri_pattern`` is a regular expression searched
    (``re.search``) in the request target, i.e. path plus query string.
    """

    rule_id: int
    method: str | None
    uri_pattern: str
    nth: int = 1
    times: int = 1
    status: int | None = None
    reason: int | None = None
    message: str | None = None
    delay: float | None = None
    drop: bool = False
    matched: int = 0
    fired: int = 0
    _regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.method in (None, "", "*"):
            self.method = None
        else:
            self.method = self.method.upper()
        try:
            self._regex = re.compile(self.uri_pattern)
        except re.error as exc:
            raise ControlError(
                f"uri_pattern {self.uri_pattern!r} is not a valid regex: {exc}"
            ) from exc
        if self.nth < 1:
            raise ControlError(f"nth must be >= 1 (got {self.nth})")
        if self.times < 1:
            raise ControlError(f"times must be >= 1 (got {self.times})")
        if self.status is None and self.delay is None and not self.drop:
            raise ControlError("a fault needs at least one of status, delay or drop")
        if self.status is not None and not 400 <= self.status <= 599:
            raise ControlError(f"status must be an HTTP error status 400-599 (got {self.status})")
        if self.delay is not None and self.delay < 0:
            raise ControlError(f"delay must be >= 0 seconds (got {self.delay})")

    @property
    def spent(self) -> bool:
        """True once the rule has fired ``times`` times."""
        return self.fired >= self.times

    def matches(self, method: str, target: str) -> bool:
        """Whether ``method``/``target`` is one of the requests this rule counts."""
        if self.method is not None and self.method != method.upper():
            return False
        return self._regex.search(target) is not None

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly view for the control endpoint."""
        d = {k: v for k, v in asdict(self).items() if not k.startswith("_")}
        d["spent"] = self.spent
        return d


class FaultInjector:
    """Thread-safe set of fault rules, consulted once per request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._next_id = 1

    def add(
        self,
        method: str | None,
        uri_pattern: str,
        nth: int = 1,
        status: int | None = None,
        reason: int | None = None,
        delay: float | None = None,
        drop: bool = False,
        message: str | None = None,
        times: int = 1,
    ) -> FaultRule:
        """Arm a rule; raises ControlError naming the bad argument."""
        with self._lock:
            rule = FaultRule(
                rule_id=self._next_id,
                method=method,
                uri_pattern=uri_pattern,
                nth=int(nth),
                times=int(times),
                status=None if status is None else int(status),
                reason=None if reason is None else int(reason),
                message=message,
                delay=None if delay is None else float(delay),
                drop=bool(drop),
            )
            self._next_id += 1
            self._rules.append(rule)
            return rule

    def check(self, method: str, target: str) -> FaultAction | None:
        """Count this request against every armed rule; return what to do, or None.

        Delay-only rules stack: every such rule that fires adds its delay. Of the
        rules that fail the request (status or drop), the first that fires decides;
        a later one that reached its ``nth`` meanwhile fires on its next match.
        So a latency rule (``delay``, huge ``times``) combines with error rules.
        """
        delay = 0.0
        fired: list[FaultRule] = []
        failing: FaultRule | None = None
        with self._lock:
            for rule in self._rules:
                if rule.spent or not rule.matches(method, target):
                    continue
                rule.matched += 1
                if rule.matched < rule.nth:
                    continue
                if rule.status is None and not rule.drop:
                    rule.fired += 1
                    delay += rule.delay or 0.0
                    fired.append(rule)
                elif failing is None:
                    rule.fired += 1
                    delay += rule.delay or 0.0
                    failing = rule
                    fired.append(rule)
        if not fired:
            return None
        return FaultAction(
            rule_id=(failing or fired[0]).rule_id,
            status=failing.status if failing else None,
            reason=failing.reason if failing else None,
            message=failing.message if failing else None,
            delay=delay or None,
            drop=bool(failing and failing.drop),
        )

    def reset(self) -> None:
        """Remove all rules."""
        with self._lock:
            self._rules.clear()

    def rules(self) -> list[FaultRule]:
        """A snapshot of all rules (armed and spent)."""
        with self._lock:
            return list(self._rules)


class RequestRecord(NamedTuple):
    """One answered (or dropped) request; status 0 means the connection was dropped."""

    method: str
    path: str
    status: int


class RequestLog:
    """Thread-safe, bounded log of requests an emulator answered."""

    def __init__(self, maxlen: int = 100_000) -> None:
        self._lock = threading.Lock()
        self._records: list[RequestRecord] = []
        self._maxlen = maxlen

    def append(self, method: str, path: str, status: int) -> None:
        """Record one request (the oldest records are dropped beyond ``maxlen``)."""
        with self._lock:
            self._records.append(RequestRecord(method.upper(), path, int(status)))
            if len(self._records) > self._maxlen:
                del self._records[: len(self._records) - self._maxlen]

    def records(self) -> list[RequestRecord]:
        """A snapshot of the log, oldest first."""
        with self._lock:
            return list(self._records)

    def count(self, method: str | None = None, pattern: str | None = None) -> int:
        """Number of logged requests with this method and a path matching ``pattern``."""
        regex = re.compile(pattern) if pattern else None
        with self._lock:
            return sum(
                1
                for r in self._records
                if (method is None or r.method == method.upper())
                and (regex is None or regex.search(r.path))
            )

    def clear(self) -> None:
        """Forget all records."""
        with self._lock:
            self._records.clear()


def is_loopback(address: str) -> bool:
    """True for 127.0.0.0/8, ::1 and IPv4-mapped loopback client addresses."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def _loopback_host(host: str) -> bool:
    host = host.strip().lower()
    if host.startswith("["):  # [::1]:port
        host = host[1:].partition("]")[0]
    elif host.count(":") == 1:  # name:port, a.b.c.d:port
        host = host.partition(":")[0]
    return host == "localhost" or is_loopback(host)


def control_refusal(client_address: str, method: str, headers: Any) -> tuple[int, str] | None:
    """Why a control request must be refused, as (HTTP status, message), or None.

    The control endpoint changes what an emulator answers, so only local
    programs may use it; a web page in a browser on the same machine is local
    too. Refused: peers off loopback; a Host that is not loopback (DNS
    rebinding: a page's own name resolving to 127.0.0.1); an Origin header
    that is not a loopback origin (cross-origin requests, "null" included);
    a body-carrying request (POST, PUT, or any body) that is not
    ``application/json`` (browsers send cross-origin "simple" POSTs as
    forms or text/plain without asking first). Needs only the headers, so
    servers ask before they read a body.
    """
    if not is_loopback(client_address):
        return 403, "the control endpoint only answers loopback clients"
    host = headers.get("Host") if headers is not None else None
    if not host or not _loopback_host(host):
        return 403, f"the control endpoint needs a loopback Host header, not {host!r}"
    origin = headers.get("Origin")
    if origin is not None:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not _loopback_host(parts.netloc):
            return 403, f"the control endpoint refuses requests from origin {origin!r}"
    has_body = (headers.get("Content-Length") or "0").strip() != "0" or "chunked" in (
        headers.get("Transfer-Encoding") or ""
    ).lower()
    if method.upper() in ("POST", "PUT") or has_body:
        ctype = (headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        if ctype != "application/json":
            return 415, (
                f"control requests with a body must be Content-Type: application/json "
                f"(got {ctype or 'none'!r})"
            )
    return None


_FAULT_FIELDS = {
    "method": (str, type(None)),
    "uri_pattern": (str,),
    "nth": (int,),
    "times": (int,),
    "status": (int, type(None)),
    "reason": (int, type(None)),
    "message": (str, type(None)),
    "delay": (int, float, type(None)),
    "drop": (bool,),
}


def _fault_kwargs(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ControlError("fault body must be a JSON object with at least 'uri_pattern'")
    unknown = set(body) - set(_FAULT_FIELDS)
    if unknown:
        raise ControlError(
            f"unknown fault field(s) {sorted(unknown)}; allowed: {sorted(_FAULT_FIELDS)}"
        )
    if "uri_pattern" not in body:
        raise ControlError("fault body needs 'uri_pattern' (a regex searched in the request path)")
    for name, value in body.items():
        types = _FAULT_FIELDS[name]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise ControlError(f"fault field {name!r} has the wrong type: {value!r}")
    kwargs = dict(body)
    kwargs.setdefault("method", None)
    return kwargs


ExtraRoute = Callable[[str, str, dict[str, list[str]], Any], tuple[int, Any] | None]


def handle_control_request(
    injector: FaultInjector,
    log: RequestLog,
    method: str,
    target: str,
    body: Any,
    extra: ExtraRoute | None = None,
) -> tuple[int, Any]:
    """Serve one control-endpoint request; returns (HTTP status, JSON-able body or None).

    ``target`` is the full request target (path and query), which must start with
    ``CONTROL_PREFIX``. ``extra(method, subpath, query, body)`` handles emulator-
    specific routes and returns None for paths it does not know.
    """
    parts = urlsplit(target)
    sub = parts.path[len(CONTROL_PREFIX) :] or "/"
    query = parse_qs(parts.query)
    method = method.upper()
    try:
        if sub == "/requests" and method == "GET":
            return 200, {"requests": [r._asdict() for r in log.records()]}
        if sub == "/requests" and method == "DELETE":
            log.clear()
            return 204, None
        if sub == "/requests/count" and method == "GET":
            m = query.get("method", [None])[0]
            p = query.get("pattern", [None])[0]
            try:
                return 200, {"count": log.count(m, p)}
            except re.error as exc:
                raise ControlError(f"pattern {p!r} is not a valid regex: {exc}") from exc
        if sub == "/faults" and method == "GET":
            return 200, {"faults": [r.as_dict() for r in injector.rules()]}
        if sub == "/faults" and method == "POST":
            rule = injector.add(**_fault_kwargs(body))
            return 201, {"fault": rule.as_dict()}
        if sub == "/faults" and method == "DELETE":
            injector.reset()
            return 204, None
        if extra is not None:
            res = extra(method, sub, query, body)
            if res is not None:
                return res
    except ControlError as exc:
        return 400, {"error": str(exc)}
    return 404, {"error": f"no control route {method} {CONTROL_PREFIX}{sub}"}
