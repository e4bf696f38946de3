"""One bulk metrics read per polling cycle, shared by every instance and meter.

Ceilometer calls an inspector once per instance and inspector method; the
hypervisors answer for all partitions at once. A Snapshot holder keeps the
last read for ``max_age`` seconds, and also its failure: an unreachable
NovaLink or HMC costs one attempt per cycle, not one per instance.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from ceilometer.compute.virt import inspector as virt_inspector

T = TypeVar("T")


class Holder(Generic[T]):
    """The latest bulk read (or its failure), reused while younger than max_age."""

    def __init__(
        self, fetch: Callable[[], T], max_age: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._fetch = fetch
        self._max_age = max_age
        self._clock = clock
        self._lock = threading.Lock()
        self._value: T | None = None
        self._error: virt_inspector.InspectorException | None = None
        self._at: float | None = None

    def get(self) -> T:
        """The current snapshot; raises the InspectorException of a failed read."""
        with self._lock:
            now = self._clock()
            if self._at is None or now - self._at >= self._max_age:
                self._at = now
                try:
                    self._value, self._error = self._fetch(), None
                except virt_inspector.InspectorException as exc:
                    self._value, self._error = None, exc
            if self._error is not None:
                raise self._error
            assert self._value is not None
            return self._value

    def expire(self) -> None:
        """Forget the last read: the next get() reads again."""
        with self._lock:
            self._at = None
