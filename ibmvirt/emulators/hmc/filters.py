"""Query-parameter filters of HMC list operations, matched outside the engine lock.

The HMC WS API filters a list operation (List Partitions of a CPC, List Storage
Groups, ...) by query parameters named like a property: each value is a regular
expression that must match the whole property value, and several values of one
parameter match if any does (``?name=a.*&name=b.*``).

Why this module: a regular expression supplied by a client can take exponential
time (``(a|a)*$`` against a 26-character name: seconds, doubling per character),
and CPython's ``re`` holds the GIL while it matches, so not holding the engine's
lock is not enough to keep other clients served. Patterns are therefore checked
*before* any matching (bounded length and shape, below), and matching happens
after the engine has released its lock, on a snapshot of the property values:

    target, flt = filters.split(method, target)     # no lock; 400/1 for bad patterns
    with engine.lock:
        resp = ...handle target...                  # every filter value is '.*' here
        snap = filters.snapshot(resp, flt, lookup)  # the values the filters need
    resp = filters.apply(resp, flt, snap)           # no lock: the client's regexes

A pattern is refused (HTTP 400, reason 1, naming the limit) when it is longer than
MAX_PATTERN_LENGTH characters, is not a valid regular expression, uses
backreferences or lookaround, nests a variable repetition inside another one or
an alternation inside a variable repetition (the shapes that backtrack
exponentially), has more than MAX_VARIABLE_REPEATS variable repetitions, or its
alternations allow more than MAX_ALTERNATIVES combinations. Plain names, ``.*``
wildcards and alternations such as ``(web|db)-.*`` pass. How the real HMC bounds
patterns is not documented: these limits are the emulator's (doc/hmc-emulator.md).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from re import _constants as sre  # type: ignore[attr-defined]  # private, stable in 3.11
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any
from urllib.parse import quote, unquote

from ibmvirt.emulators.hmc import errors
from ibmvirt.emulators.hmc.errors import HMCError
from ibmvirt.emulators.hmc.model import Response

__all__ = ["Filter", "split", "snapshot", "apply", "check_pattern"]

MAX_PATTERN_LENGTH = 256
MAX_VARIABLE_REPEATS = 2
MAX_ALTERNATIVES = 16

#: What every filter value becomes for the handlers (which validate parameter
#: names and narrow nothing), so that they never see a client's pattern.
MATCH_ALL = ".*"

#: Query parameters of list operations that are not property filters.
NOT_FILTERS = frozenset({"properties", "additional-properties", "cached-acceptable"})

#: Last path segments of the list operations (collections and list-style operations).
LIST_SEGMENTS = frozenset(
    {
        "cpcs",
        "unmanaged-cpcs",
        "partitions",
        "lpars",
        "adapters",
        "virtual-switches",
        "storage-groups",
        "storage-volumes",
        "virtual-storage-resources",
        "storage-templates",
        "capacity-groups",
        "hardware-messages",
        "users",
        "user-roles",
        "user-patterns",
        "password-rules",
        "tasks",
        "ldap-server-definitions",
        "mfa-server-definitions",
        "sso-server-definitions",
        "list-permitted-partitions",
        "list-permitted-lpars",
        "list-permitted-adapters",
        "list-storage-groups",
        "list-unmanaged-cpcs",
        "list-permitted-logical-partitions",
        "logical-partitions",
        "groups",
        "nics",
        "hbas",
        "virtual-functions",
        "storage-template-volumes",
        "tape-libraries",
        "tape-links",
        "get-partitions",
    }
)

_VARIABLE_REPEATS = (sre.MAX_REPEAT, sre.MIN_REPEAT, getattr(sre, "POSSESSIVE_REPEAT", None))
_REFUSED_OPS = {
    sre.GROUPREF: "backreferences",
    sre.GROUPREF_EXISTS: "conditional groups",
    sre.ASSERT: "lookahead/lookbehind",
    sre.ASSERT_NOT: "lookahead/lookbehind",
}


@dataclass(frozen=True)
class Filter:
    """One filter query parameter: the property and its compiled patterns (any may match)."""

    prop: str
    patterns: tuple[str, ...]
    compiled: tuple[re.Pattern[str], ...]
    folded: tuple[re.Pattern[str], ...]  # case-insensitive, for names of some resources


def _refuse(pattern: str, why: str) -> HMCError:
    shown = pattern if len(pattern) <= 64 else pattern[:64] + "..."
    return HMCError(
        errors.BAD_QUERY_PARM,
        f"Query filter {shown!r} is refused: {why}. Filters are regular expressions "
        "matched against the whole property value; use a name or a simpler pattern",
    )


def check_pattern(pattern: str) -> None:
    """Raise HMCError 400/1 unless ``pattern`` is a filter this emulator matches safely."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise _refuse(pattern, f"longer than {MAX_PATTERN_LENGTH} characters")
    try:
        parsed = sre_parse.parse(pattern)
    except (re.error, RecursionError, OverflowError) as exc:
        raise _refuse(pattern, f"not a valid regular expression ({exc})") from None
    repeats = 0
    alternatives = 1

    def visit(items: Any, in_repeat: bool) -> None:
        nonlocal repeats, alternatives
        for op, av in items:
            if op in _REFUSED_OPS:
                raise _refuse(pattern, f"{_REFUSED_OPS[op]} are not supported")
            if op in _VARIABLE_REPEATS:
                low, high, sub = av
                if low == high:  # a fixed count: no choice made
                    visit(sub, in_repeat)
                    continue
                if in_repeat:
                    raise _refuse(pattern, "a repetition inside a repetition")
                repeats += 1
                if repeats > MAX_VARIABLE_REPEATS:
                    raise _refuse(pattern, f"more than {MAX_VARIABLE_REPEATS} repetitions")
                visit(sub, True)
            elif op is sre.BRANCH:
                if in_repeat:
                    raise _refuse(pattern, "an alternation inside a repetition")
                alternatives *= len(av[1])
                if alternatives > MAX_ALTERNATIVES:
                    raise _refuse(
                        pattern, f"alternations allow more than {MAX_ALTERNATIVES} combinations"
                    )
                for alt in av[1]:
                    visit(alt, in_repeat)
            elif op is sre.SUBPATTERN:
                visit(av[-1], in_repeat)
            elif op is getattr(sre, "ATOMIC_GROUP", None):
                visit(av, in_repeat)

    visit(parsed, False)


def is_list_operation(path: str) -> bool:
    """Whether ``path`` names a list operation (filters apply to its result)."""
    return path.rstrip("/").rsplit("/", 1)[-1] in LIST_SEGMENTS


def split(method: str, target: str) -> tuple[str, list[Filter]]:
    """The target for the handlers (filter values replaced by '.*') and the filters.

    Other requests come back unchanged (their query values are still checked).
    Raises HMCError 400/1 for a pattern ``check_pattern`` refuses.
    """
    path, sep, query = target.partition("?")
    if method != "GET" or not query:
        return target, []
    if not is_list_operation(path):
        # Not a list we filter ourselves: the values still get the pattern
        # check, in case a handler matches them (a literal always passes).
        for item in query.split("&"):
            name, _, value = item.partition("=")
            if unquote(name) not in NOT_FILTERS:
                check_pattern(unquote(value))
        return target, []
    found: dict[str, list[str]] = {}
    kept: list[str] = []
    for item in query.split("&"):
        name, eq, value = item.partition("=")
        prop = unquote(name)
        if not eq or prop in NOT_FILTERS:
            kept.append(item)  # malformed items stay for the handlers to refuse
            continue
        pattern = unquote(value)
        check_pattern(pattern)
        if prop not in found:
            kept.append(f"{name}={quote(MATCH_ALL)}")
        found.setdefault(prop, []).append(pattern)
    flt = [
        Filter(
            prop,
            tuple(pats),
            tuple(re.compile(p) for p in pats),
            tuple(re.compile(p, re.IGNORECASE) for p in pats),
        )
        for prop, pats in found.items()
    ]
    return path + sep + "&".join(kept), flt


_MISSING = object()
Snapshot = list[list[tuple[Any, bool]]]  # per item, per filter: (value, case-insensitive)


def _items(resp: Response) -> list[Any] | None:
    body = resp.body
    if resp.status != 200 or not isinstance(body, dict) or len(body) != 1:
        return None
    (items,) = body.values()
    return items if isinstance(items, list) else None


def snapshot(resp: Response, flt: list[Filter], lookup: Callable[[str], Any]) -> Snapshot:
    """The property values the filters need, per listed item (call under the engine lock).

    ``lookup(uri)`` returns the faked resource or raises KeyError; it is used for
    properties the list result does not carry and for the case rule of names.
    """
    items = _items(resp) if flt else None
    if not items:
        return []
    snap: Snapshot = []
    for item in items:
        res = None
        uri = item.get("object-uri") or item.get("element-uri") if isinstance(item, dict) else None
        if uri:
            try:
                res = lookup(uri)
            except KeyError:
                res = None
        row = []
        for f in flt:
            if isinstance(item, dict) and f.prop in item:
                value = item[f.prop]
            elif res is not None:
                value = res.properties.get(f.prop, _MISSING)
            else:
                value = _MISSING
            manager = getattr(res, "manager", None)
            folded = bool(
                manager is not None
                and f.prop == getattr(manager, "_name_prop", "name")
                and getattr(manager, "_case_insensitive_names", False)
            )
            row.append((value, folded))
        snap.append(row)
    return snap


def _matches(f: Filter, value: Any, folded: bool) -> bool:
    if value is _MISSING:
        return False
    if isinstance(value, str):
        return any(p.fullmatch(value) for p in (f.folded if folded else f.compiled))
    return any(value == p for p in f.patterns)  # as zhmcclient.mock: exact, never for str


def apply(resp: Response, flt: list[Filter], snap: Snapshot) -> Response:
    """``resp`` with only the items every filter matches (call without the engine lock)."""
    items = _items(resp) if flt else None
    if items is None:
        return resp
    kept = [
        item
        for item, row in zip(items, snap, strict=True)
        if all(_matches(f, *v) for f, v in zip(flt, row, strict=True))
    ]
    (key,) = resp.body.keys()
    return Response(resp.status, {key: kept}, resp.headers)
