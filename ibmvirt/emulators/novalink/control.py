"""Loopback-only control endpoint: request log, fault injection, latency.

The generic routes (``/_emulator/requests``, ``/_emulator/faults``) are the
shared ones of ``ibmvirt.emulators.faults``, so HMC and NovaLink emulators are
driven the same way. NovaLink adds:

    GET  /_emulator/state             counters, delays, live jobs, object counts
    PUT  /_emulator/latency           {"request_delay": s, "job_delay": s,
                                       "job_delays": {"PowerOn": s, ...}}
    POST /_emulator/sessions/expire   invalidate every session (client re-logon path)

An injected error is answered as a NovaLink HttpErrorResponse whose Message is
the rule's ``message`` (put a real code such as ``VIOS0014`` in it to exercise
pypowervm's VIOS-busy retry) and whose ReasonCode is the rule's ``reason``
(default: the HTTP reason phrase).
"""

from __future__ import annotations

import json
import time
from typing import Any

from ibmvirt.emulators import faults
from ibmvirt.emulators.novalink import errors
from ibmvirt.emulators.novalink.emulator import Emulator


class DropConnection(Exception):
    """The fault asks to close the connection without an answer."""


class Control:
    """Behaviour control for one emulator instance."""

    prefix = faults.CONTROL_PREFIX + "/"

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.injector = faults.FaultInjector()
        self.log = faults.RequestLog()

    # ---- called for every API request ---------------------------------------
    def before_request(self, verb: str, target: str) -> None:
        """Apply latency and any armed fault; raises RestError/DropConnection."""
        if self.emu.config.request_delay:
            time.sleep(self.emu.config.request_delay)
        action = self.injector.check(verb, target)
        if action is None:
            return
        action.sleep()
        if action.drop:
            raise DropConnection()
        if action.status:
            raise errors.RestError(
                action.status,
                action.message or f"Injected fault (rule {action.rule_id})",
                None if action.message else errors.INJECTED,
                # The rule's reason becomes the HttpErrorResponse ReasonCode
                # (pypowervm: her_wrap.reason_code); default: the status phrase.
                reason=None if action.reason is None else str(action.reason),
            )

    def record(self, verb: str, target: str, status: int) -> None:
        self.log.append(verb, target, status)

    def snapshot(self) -> dict[str, Any]:
        emu = self.emu
        return {
            "requests": emu.request_count,
            "sessions": emu.sessions.count,
            "request_delay": emu.config.request_delay,
            "job_delay": emu.jobs.delay,
            "job_delays": dict(emu.jobs.delays),
            "jobs": [{"id": j.job_id, "op": j.op, "status": j.status} for j in emu.jobs.live()],
            "objects": {k: len(emu.store.list(k)) for k in emu.store.kinds()},
        }

    def _extra(
        self, method: str, sub: str, query: dict[str, list[str]], body: Any
    ) -> tuple[int, Any] | None:
        if sub == "/state" and method == "GET":
            return 200, self.snapshot()
        if sub == "/disks" and method == "GET":
            # What each virtual disk / LU / medium received, and where its data
            # is kept (with behaviour disk_dir): the seam a driver's local
            # "read the mapped disk" code (snapshot) can use.
            with self.emu.lock:
                return 200, {"disks": dict(self.emu.uploads)}
        if sub == "/latency" and method in ("PUT", "POST"):
            if not isinstance(body, dict):
                raise faults.ControlError("latency body must be a JSON object")
            cfg = self.emu.config
            try:
                if "request_delay" in body:
                    cfg.request_delay = float(body["request_delay"])
                if "job_delay" in body:
                    cfg.job_delay = float(body["job_delay"])
                    self.emu.jobs.delay = cfg.job_delay
                for op, d in (body.get("job_delays") or {}).items():
                    self.emu.jobs.delays[op] = float(d)
            except (TypeError, ValueError) as exc:
                raise faults.ControlError(f"latency values must be numbers: {exc}") from exc
            return 200, self.snapshot()
        query_route = self.emu.control_queries.get(sub)
        if query_route is not None and method == "GET":
            try:
                with self.emu.lock:
                    return query_route(query)
            except ValueError as exc:
                raise faults.ControlError(str(exc)) from exc
        route = self.emu.control_routes.get(sub)
        if route is not None and method in ("POST", "PUT"):
            try:
                with self.emu.lock:
                    return route(body)
            except ValueError as exc:
                raise faults.ControlError(str(exc)) from exc
            except errors.RestError as exc:  # a peer's request refused like a client's
                raise faults.ControlError(exc.message) from exc
        if sub == "/vios-busy" and method in ("POST", "PUT"):
            return 201, {"fault": self._vios_busy(body).as_dict()}
        if sub == "/sessions/expire" and method in ("POST", "PUT"):
            self.emu.sessions.expire_all()
            return 200, {"sessions": 0}
        return None

    def _vios_busy(self, body: Any) -> faults.FaultRule:
        """Make the next ``times`` requests that touch a VIOS fail as busy.

        The answer is what a real NovaLink sends while the VIOS is working on
        another request (HTTP 500, message with VIOS0014), which pypowervm's
        vios_busy_retry_helper retries.
        """
        if not isinstance(body, dict) or "vios" not in body:
            raise faults.ControlError("vios-busy needs 'vios' (a VIOS name) and optional 'times'")
        v = next(
            (
                o
                for o in self.emu.store.list("VirtualIOServer")
                if o.field("PartitionName") == body["vios"]
            ),
            None,
        )
        if v is None:
            raise faults.ControlError(f"no VIOS named {body['vios']!r}")
        return self.injector.add(
            method=body.get("method"),
            uri_pattern=f"(?i)VirtualIOServer/{v.uuid}",
            times=int(body.get("times", 1)),
            status=500,
            message=(
                f"VIOS0014 The Virtual I/O Server {body['vios']} is busy processing some "
                "other request. Please retry the operation after sometime."
            ),
        )

    # ---- HTTP ----------------------------------------------------------------------
    def handle(self, req: Any, verb: str, target: str, body: bytes) -> None:
        refusal = faults.control_refusal(req.client_address[0], verb, req.headers)
        if refusal is not None:
            raise errors.RestError(*refusal)
        try:
            data = json.loads(body) if body else None
        except ValueError:
            req.send(400, json.dumps({"error": "body is not JSON"}).encode(), "application/json")
            return
        try:
            status, out = faults.handle_control_request(
                self.injector, self.log, verb, target, data, extra=self._extra
            )
        except faults.ControlError as exc:
            status, out = 400, {"error": str(exc)}
        payload = b"" if out is None else json.dumps(out).encode()
        req.send(status, payload, "application/json" if payload else None)
