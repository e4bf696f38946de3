"""Run start-up checks one by one and say, per check, OK or what to fix.

``ibmvirt-preflight`` is a list of :class:`Check` per driver, each calling the
driver's own start-up check, so the tool and nova-compute cannot disagree. A
check whose prerequisite failed is skipped (no logon, no system to look at),
and configured secrets are cut out of every line, whatever an error quotes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TextIO

OK, FAIL, SKIP = "OK", "FAIL", "SKIP"


@dataclass(frozen=True)
class Check:
    """``run`` returns a detail for the OK line, or raises with what to fix."""

    name: str
    run: Callable[[], str | None]
    needs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Outcome:
    name: str
    status: str
    detail: str = ""

    def line(self) -> str:
        sep = ": " if self.detail else ""
        return f"{self.status} {self.name}{sep}{self.detail}"


def message(exc: BaseException) -> str:
    """An error in an operator's words (Nova exceptions' own message, else type: text)."""
    fmt = getattr(exc, "format_message", None)
    if callable(fmt):
        return str(fmt())
    text = str(exc) or repr(exc)
    return f"{type(exc).__name__}: {text}"


def redact(text: str, secrets: Iterable[str | None]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def run(checks: Iterable[Check], out: TextIO, secrets: Iterable[str | None] = ()) -> bool:
    """Run and print every check in order; True if none failed."""
    secrets = [s for s in secrets if s]
    failed: set[str] = set()
    for check in checks:
        missing = [n for n in check.needs if n in failed]
        if missing:
            outcome = Outcome(check.name, SKIP, f"not checked, {missing[0]} failed")
        else:
            try:
                outcome = Outcome(check.name, OK, check.run() or "")
            except Exception as exc:  # noqa: BLE001  (every failure is reported, none aborts)
                outcome = Outcome(check.name, FAIL, message(exc))
        if outcome.status != OK:
            failed.add(check.name)
        print(redact(outcome.line(), secrets), file=out, flush=True)
    return not failed
