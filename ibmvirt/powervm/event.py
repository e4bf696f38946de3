"""LPAR power states kept current from NovaLink's REST event feed.

Events are the optimisation, a read is the truth: every PartitionState event
marks that LPAR stale (re-read on the next question, one small request), and
whenever the feed may have lost events (a new client, missing events, a
cleared cache) the next question re-reads every LPAR at once with
``quick/All``. So the power-state sync and get_info of N instances cost at most
one request, not N. Out-of-band changes (an LPAR stopped from the NovaLink
CLI or by its OS) become Nova lifecycle events after a short delay that
collapses bursts (a reboot is stop plus start).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from nova import context as nova_context
from nova import exception, objects
from nova.compute import power_state
from nova.virt import event as virtevent
from oslo_log import log as logging
from pypowervm import adapter as pvm_adpt
from pypowervm.wrappers import event as pvm_evt

from ibmvirt.common.statecache import StateCache
from ibmvirt.powervm import vm

LOG = logging.getLogger(__name__)

_LPAR = "LogicalPartition/"
#: Events after which the feed may have missed changes: re-read everything.
_RESYNC = {
    pvm_evt.EventType.NEW_CLIENT,
    pvm_evt.EventType.MISSING_EVENTS,
    pvm_evt.EventType.CACHE_CLEARED,
}
_TRANSITIONS = {
    power_state.RUNNING: virtevent.EVENT_LIFECYCLE_STARTED,
    power_state.SHUTDOWN: virtevent.EVENT_LIFECYCLE_STOPPED,
    power_state.CRASHED: virtevent.EVENT_LIFECYCLE_STOPPED,
    power_state.SUSPENDED: virtevent.EVENT_LIFECYCLE_SUSPENDED,
}


def lpar_uuid_of(uri: str) -> str | None:
    """The LPAR UUID an event's URI names (``.../LogicalPartition/<uuid>``), if any."""
    head, sep, tail = (uri or "").rpartition(_LPAR)
    if not sep or "/" in tail or not tail:
        return None
    return tail.upper()


class PowerStates:
    """PartitionState of every client LPAR of the host, by LPAR UUID: a
    :class:`~ibmvirt.common.statecache.StateCache` kept valid by the event feed,
    filled by ``quick/All`` and single ``quick/PartitionState`` reads."""

    def __init__(self, adapter, host_uuid: str) -> None:
        self._adapter = adapter
        self._host_uuid = host_uuid
        self._cache: StateCache[str] = StateCache(ttl=None)

    def invalidate(self) -> None:
        """The feed may have lost events: the next question re-reads all."""
        self._cache.invalidate()

    def changed(self, lpar_uuid: str) -> None:
        """The LPAR changed (an event, or this driver acted on it): re-read it."""
        self._cache.changed(lpar_uuid)

    def gone(self, lpar_uuid: str) -> None:
        self._cache.gone(lpar_uuid)

    def _refresh_all(self) -> None:
        started = time.monotonic()
        self._cache.replace_all(vm.read_all_states(self._adapter, self._host_uuid), started)

    def get(self, lpar_uuid: str) -> str | None:
        """The LPAR's state, None if the host has no such LPAR."""
        hit, state = self._cache.lookup(lpar_uuid)
        if hit:
            return state
        # Several changed LPARs (a burst of events), or no valid snapshot: one
        # read answers them all.
        if not self._cache.snapshot_valid() or len(self._cache.stale_keys()) > 1:
            self._refresh_all()
            hit, state = self._cache.lookup(lpar_uuid)
            if hit:
                return state
        state = vm.read_state(self._adapter, lpar_uuid)
        if state is None:
            self._cache.gone(lpar_uuid)
        else:
            self._cache.put(lpar_uuid, state)
        return state

    def all(self) -> dict[str, str | None]:
        """Every LPAR's state (stale ones re-read, or all at once if cheaper)."""
        if not self._cache.snapshot_valid() or len(self._cache.stale_keys()) > 1:
            self._refresh_all()
        uuids = set(self._cache.keys()) | set(self._cache.stale_keys())
        states = {u: self.get(u) for u in uuids}
        return {u: st for u, st in states.items() if st is not None}


class LifecycleEvents:
    """Turns LPAR state changes into Nova lifecycle events, bursts collapsed.

    A change is reported ``delay`` seconds after the last event for that LPAR,
    from the state read then; not while Nova has the instance in a task (the
    task's own code knows what it is doing), nor when Nova already has that
    power state.
    """

    def __init__(self, states: PowerStates, emit: Callable, delay: float) -> None:
        self._states = states
        self._emit = emit
        self._delay = delay
        #: LPAR UUID -> when to report it (one worker thread, however many LPARs
        #: change at once: a whole system restarting is a thousand of them).
        self._due: dict[str, float] = {}
        self._wake = threading.Condition()
        self._stopped = False
        self._worker: threading.Thread | None = None

    def changed(self, lpar_uuid: str) -> None:
        with self._wake:
            if self._stopped:
                return
            self._due[lpar_uuid] = time.monotonic() + self._delay
            if self._worker is None:
                self._worker = threading.Thread(
                    target=self._run, name="powervm-lifecycle", daemon=True
                )
                self._worker.start()
            self._wake.notify()

    def stop(self) -> None:
        with self._wake:
            self._stopped = True
            self._due.clear()
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._stopped:
                    now = time.monotonic()
                    ready = [u for u, t in self._due.items() if t <= now]
                    if ready:
                        break
                    nxt = min(self._due.values(), default=None)
                    self._wake.wait(None if nxt is None else nxt - now)
                if self._stopped:
                    return
                for u in ready:
                    del self._due[u]
            for lpar_uuid in ready:
                self._report(lpar_uuid)

    def _report(self, lpar_uuid: str) -> None:
        try:
            self._report_state(lpar_uuid)
        except Exception:  # noqa: BLE001  (one LPAR's report must not end the others')
            LOG.exception("Could not report the state change of LPAR %s", lpar_uuid)

    def _report_state(self, lpar_uuid: str) -> None:
        pvm_state = self._states.get(lpar_uuid)
        if pvm_state is None:
            return  # deleted: Nova learns that from its own delete
        transition = _TRANSITIONS.get(vm.power_state_of(pvm_state))
        if transition is None:
            return
        instance = instance_of(lpar_uuid)
        if instance is None or instance.task_state is not None:
            return
        if instance.power_state == vm.power_state_of(pvm_state):
            return
        LOG.info(
            "LPAR %s is now %s (changed outside Nova)", lpar_uuid, pvm_state, instance=instance
        )
        self._emit(virtevent.LifecycleEvent(instance.uuid, transition))


def instance_of(lpar_uuid: str):
    """The Nova instance of an LPAR (either UUID it may come from), or None."""
    ctx = nova_context.get_admin_context()
    for candidate in vm.nova_uuid_candidates(lpar_uuid):
        try:
            return objects.Instance.get_by_uuid(ctx, candidate)
        except exception.InstanceNotFound:
            continue
    return None


class EventHandler(pvm_adpt.WrapperEventHandler):
    """Receives the REST event feed (pypowervm's poll thread) for the driver."""

    def __init__(
        self,
        states: PowerStates,
        lifecycle: LifecycleEvents,
        nvram_changed: Callable[[str], None] | None = None,
    ) -> None:
        self._states = states
        self._lifecycle = lifecycle
        self._nvram_changed = nvram_changed

    def process(self, events) -> None:
        for event in events:
            if event.etype in _RESYNC:
                self._states.invalidate()
                continue
            lpar_uuid = lpar_uuid_of(event.data)
            if lpar_uuid is None:
                continue
            if event.etype == pvm_evt.EventType.DELETE_URI:
                self._states.gone(lpar_uuid)
                continue
            if event.etype == pvm_evt.EventType.ADD_URI:
                self._states.changed(lpar_uuid)
                continue
            detail = event.detail or ""
            if "PartitionState" in detail:
                self._states.changed(lpar_uuid)
                self._lifecycle.changed(lpar_uuid)
            if "NVRAM" in detail and self._nvram_changed is not None:
                self._nvram_changed(lpar_uuid)
