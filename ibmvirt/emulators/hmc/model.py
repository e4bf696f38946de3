"""Request/response records shared by the engine and its handler modules."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any


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
