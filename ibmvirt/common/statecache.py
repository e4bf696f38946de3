"""What the driver knows about its instances' power states, shared by both drivers.

A snapshot (one bulk read: DPM's List Partitions, PowerVM's ``quick/All``)
answers for every instance at once; an instance this driver or an event says
changed is unknown until read again. The DPM driver, which has no event feed
here, trusts a snapshot for ``ttl`` seconds; the PowerVM driver, whose REST
event feed reports every change, until the feed may have lost events
(``ttl=None``). Entries written while a snapshot was being read are newer than
it and survive it.
"""

from __future__ import annotations

import threading
import time
from typing import Generic, TypeVar

T = TypeVar("T")
NEVER = float("-inf")


class StateCache(Generic[T]):
    """Values (a state, or a summary holding one) by instance or LPAR id."""

    def __init__(self, ttl: float | None) -> None:
        self._ttl = ttl
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, T]] = {}  # id -> (when learnt, value)
        self._snapshot = NEVER  # when the last snapshot was started; NEVER = none valid
        self._changed: dict[str, float] = {}  # id -> when it was said to change
        self._valid_from = NEVER  # what was learnt before an invalidate() is suspect

    def _fresh(self, since: float, now: float) -> bool:
        if since == NEVER or since < self._valid_from:
            return False
        return self._ttl is None or now - since <= self._ttl

    def replace_all(self, values: dict[str, T], started: float) -> None:
        """A snapshot read that began at ``started`` (time.monotonic())."""
        with self._lock:
            newer = {k: e for k, e in self._entries.items() if e[0] > started}
            self._changed = {k: t for k, t in self._changed.items() if t > started}
            self._entries = {k: (started, v) for k, v in values.items() if k not in self._changed}
            self._entries.update(newer)
            self._snapshot = started

    def put(self, key: str, value: T) -> None:
        """A value just read or waited for."""
        with self._lock:
            self._entries[key] = (time.monotonic(), value)
            self._changed.pop(key, None)

    def changed(self, key: str) -> None:
        """``key`` changed (this driver acted on it, or an event said so)."""
        with self._lock:
            self._entries.pop(key, None)
            self._changed[key] = time.monotonic()

    def gone(self, key: str) -> None:
        """``key`` no longer exists (a delete this driver or an event saw)."""
        with self._lock:
            self._entries.pop(key, None)
            self._changed.pop(key, None)

    def invalidate(self) -> None:
        """Changes may have been missed: nothing learnt so far is to be trusted."""
        with self._lock:
            self._snapshot = NEVER
            self._valid_from = time.monotonic()

    def snapshot_valid(self) -> bool:
        with self._lock:
            return self._fresh(self._snapshot, time.monotonic())

    def lookup(self, key: str) -> tuple[bool, T | None]:
        """``(hit, value)``; ``(True, None)`` means known absent (a valid
        snapshot did not have it and nothing since said it changed)."""
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and self._fresh(entry[0], now):
                return True, entry[1]
            if entry is None and key not in self._changed and self._fresh(self._snapshot, now):
                return True, None
        return False, None

    def stale_keys(self) -> list[str]:
        """Ids said to have changed and not read since."""
        with self._lock:
            return list(self._changed)

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._entries)
