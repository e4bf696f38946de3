"""Request/response records and CPC capability checks shared by the engine modules."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from ibmvirt.emulators.hmc import errors
from ibmvirt.emulators.hmc.errors import HMCError


@dataclass
class Response:
    """What the server sends: status, JSON-able body (or metrics text), headers."""

    status: int
    body: Any = None
    headers: dict[str, str] | None = None


@dataclass
class Request:
    """One parsed API request as the handlers see it."""

    method: str
    target: str  # path plus query, as received
    path: str
    query: dict[str, list[str]]
    body: Any
    match: re.Match[str]
    user: str | None
    token: str | None


def se_version(cpc_props: dict[str, Any]) -> tuple[int, ...]:
    """The CPC's SE version as a tuple, e.g. (2, 15, 0); (0,) if unknown."""
    try:
        return tuple(int(x) for x in str(cpc_props.get("se-version", "0")).split("."))
    except ValueError:
        return (0,)


def storage_management_enabled(cpc_props: dict[str, Any]) -> bool:
    """Whether the CPC has the dpm-storage-management firmware feature enabled."""
    for feature in cpc_props.get("available-features-list") or []:
        if feature.get("name") == "dpm-storage-management":
            return bool(feature.get("state"))
    return False


def mac_settable(cpc_props: dict[str, Any]) -> bool:
    """NIC mac-address can be given at create from SE 2.14.0 (z14) on."""
    return se_version(cpc_props) >= (2, 14)


def require_body(req: Request) -> dict[str, Any]:
    """The request body as a JSON object, or 400/3 / 400/7."""
    if req.body is None:
        raise HMCError(errors.BODY_MISSING, f"{req.method} {req.path} needs a request body")
    if not isinstance(req.body, dict):
        raise HMCError(errors.FIELD_INVALID, "The request body must be a JSON object")
    return req.body


def parse_body(raw: bytes) -> Any:
    """A request body as JSON, or 400/9."""
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise HMCError(errors.BODY_MALFORMED, f"Request body is not JSON: {exc}") from None
