"""The PowerVM agents' device set and the one thread that does their NovaLink work.

Small and free of pypowervm and Neutron, so both are unit-tested on their own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass

from oslo_log import log as logging
from pypowervm import exceptions as pvm_ex

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class Device:
    """One client adapter: the MAC Neutron knows the port by, where it is."""

    mac: str  # lower-case, colons
    lpar_uuid: str  # upper-case
    uuid: str  # the adapter's, upper-case
    vswitch_id: int | None = None  # CNAs only
    vlans: tuple[int, ...] = ()  # PVID first, then tagged VLANs


class DeviceSet:
    """Devices by MAC, thread-safe.

    A full listing takes many requests; a change reported while it runs (an
    event) may or may not be in what it read. Changes made between
    :meth:`begin_listing` and :meth:`end_listing` are therefore replayed on the
    listing's result: what was reported while reading wins over the reading.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_mac: dict[str, Device] = {}
        self._during: list[tuple[Callable[[dict[str, Device], object], None], object]] | None = None

    def macs(self) -> set[str]:
        with self._lock:
            return set(self._by_mac)

    def get(self, mac: str) -> Device | None:
        with self._lock:
            return self._by_mac.get(mac)

    def all(self) -> list[Device]:
        with self._lock:
            return list(self._by_mac.values())

    def _apply(self, op, arg) -> None:
        with self._lock:
            op(self._by_mac, arg)
            if self._during is not None:
                self._during.append((op, arg))

    def put(self, device: Device) -> None:
        self._apply(_put, device)

    def drop(self, mac: str) -> None:
        self._apply(_drop_mac, mac)

    def drop_adapter(self, uuid: str) -> None:
        self._apply(_drop_where, lambda d: d.uuid == uuid.upper())

    def drop_lpar(self, lpar_uuid: str) -> None:
        self._apply(_drop_where, lambda d: d.lpar_uuid == lpar_uuid.upper())

    def replace_lpar(self, lpar_uuid: str, devices: Iterable[Device]) -> None:
        """One LPAR's devices, as just read."""
        self._apply(_replace_lpar, (lpar_uuid.upper(), tuple(devices)))

    def begin_listing(self) -> None:
        with self._lock:
            self._during = []

    def end_listing(self, devices: Iterable[Device]) -> None:
        """Replace every device by ``devices``, then replay changes made meanwhile."""
        with self._lock:
            fresh = {d.mac: d for d in devices}
            for op, arg in self._during or ():
                op(fresh, arg)
            self._by_mac = fresh
            self._during = None

    def abort_listing(self) -> int:
        """The listing failed: nothing can be vouched for. Returns how many were dropped."""
        with self._lock:
            lost = len(self._by_mac)
            self._by_mac = {}
            self._during = None
            return lost


def _put(by_mac: dict[str, Device], device) -> None:
    by_mac[device.mac] = device


def _drop_mac(by_mac: dict[str, Device], mac) -> None:
    by_mac.pop(mac, None)


def _drop_where(by_mac: dict[str, Device], pred) -> None:
    for mac in [m for m, d in by_mac.items() if pred(d)]:
        del by_mac[mac]


def _replace_lpar(by_mac: dict[str, Device], arg) -> None:
    lpar_uuid, devices = arg
    _drop_where(by_mac, lambda d: d.lpar_uuid == lpar_uuid)
    for d in devices:
        by_mac[d.mac] = d


class Worker:
    """One daemon thread running keyed tasks when they are due.

    Submitting a key already pending keeps the earlier due time, so bursts of
    events collapse into one request. A task that raises is due again after
    ``retry_interval`` (NovaLink down, a VIOS busy): errors are logged, never
    the end of the thread.
    """

    def __init__(self, name: str, retry_interval: float) -> None:
        self.name = name
        self.retry_interval = retry_interval
        self._tasks: dict[Hashable, tuple[float, Callable[[], None]]] = {}
        self._cond = threading.Condition()
        self._stopped = False
        self._thread: threading.Thread | None = None
        self._busy = False

    def submit(self, key: Hashable, fn: Callable[[], None], delay: float = 0.0) -> None:
        due = time.monotonic() + delay
        with self._cond:
            pending = self._tasks.get(key)
            if pending is None or due < pending[0]:
                self._tasks[key] = (due, fn)
                self._cond.notify_all()

    def cancel(self, pred: Callable[[Hashable], bool]) -> None:
        with self._cond:
            for key in [k for k in self._tasks if pred(k)]:
                del self._tasks[key]

    def pending(self) -> dict[Hashable, float]:
        """Seconds until each pending task is due (negative: overdue)."""
        now = time.monotonic()
        with self._cond:
            return {k: due - now for k, (due, _fn) in self._tasks.items()}

    def start(self) -> None:
        with self._cond:
            if self._thread is None and not self._stopped:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _next(self) -> tuple[Hashable, Callable[[], None]] | None:
        with self._cond:
            self._busy = False
            self._cond.notify_all()
            while not self._stopped:
                now = time.monotonic()
                if self._tasks:
                    key = min(self._tasks, key=lambda k: self._tasks[k][0])
                    due, fn = self._tasks[key]
                    if due <= now:
                        del self._tasks[key]
                        self._busy = True
                        return key, fn
                    self._cond.wait(due - now)
                else:
                    self._cond.wait()
            return None

    def _run(self) -> None:
        while (task := self._next()) is not None:
            key, fn = task
            try:
                fn()
            except pvm_ex.Error as exc:
                LOG.warning(
                    "%s: %r failed (%s); retrying in %s s", self.name, key, exc, self.retry_interval
                )
                self.submit(key, fn, self.retry_interval)
            except Exception:  # noqa: BLE001  (a bug in one task must not end the thread)
                LOG.exception(
                    "%s: %r failed; retrying in %s s", self.name, key, self.retry_interval
                )
                self.submit(key, fn, self.retry_interval)

    def wait_idle(self, timeout: float = 10.0, within: float = 0.0) -> bool:
        """Block until :meth:`idle` (tests and benchmarks); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                now = time.monotonic()
                if not self._busy and all(d > now + within for d, _f in self._tasks.values()):
                    return True
                if now >= deadline:
                    return False
                self._cond.wait(min(0.05, deadline - now))
