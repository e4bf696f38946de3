"""The REST event queue behind ``GET /rest/api/uom/Event`` (long poll).

Each consumer is identified by QUEUE_APPLICATIONID. Its first request gets a
NEW_CLIENT event (pypowervm refuses to listen without it); later requests
wait up to ``wait`` seconds for events and return them in order, or an empty
answer (HTTP 204) when nothing happened.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid as uuidlib
from dataclasses import dataclass

from lxml import etree

from ibmvirt.emulators.novalink import xmlutil as x

MAX_QUEUE = 10000  # per consumer; overflow -> MISSING_EVENTS, as the server does


@dataclass(frozen=True)
class Event:
    etype: str
    data: str
    detail: str
    eid: str
    uuid: str

    def element(self) -> etree._Element:
        """The Event payload in the server's format (see event_feed.txt)."""
        el = etree.Element(x.q("Event"), nsmap={None: x.UOM_NS}, schemaVersion="V1_0")
        x.set_atom(el, self.uuid, "0")
        x.sub(el, "EventType", self.etype)
        x.sub(el, "EventID", self.eid)
        x.sub(el, "EventData", self.data)
        x.sub(el, "EventDetail", self.detail)
        return el


class EventBus:
    """Per-application event queues with long-poll delivery."""

    def __init__(self, wait: float = 10.0) -> None:
        self.wait = wait
        self._cond = threading.Condition()
        self._queues: dict[str, list[Event]] = {}
        self._ids = itertools.count(int(time.time() * 1000))
        self._closed = False

    def publish(self, etype: str, data: str = "", detail: str = "") -> Event:
        """Queue an event for every known consumer; returns it."""
        with self._cond:
            ev = Event(etype, data, detail, str(next(self._ids)), str(uuidlib.uuid4()))
            for appid, q in self._queues.items():
                if len(q) >= MAX_QUEUE:
                    self._queues[appid] = [self._missing()]
                else:
                    q.append(ev)
            self._cond.notify_all()
        return ev

    def _missing(self) -> Event:
        return Event("MISSING_EVENTS", "", "", str(next(self._ids)), str(uuidlib.uuid4()))

    def take(self, appid: str, wait: float | None = None) -> list[Event]:
        """Events for ``appid``; blocks up to ``wait`` seconds if none are queued."""
        wait = self.wait if wait is None else wait
        with self._cond:
            if appid not in self._queues:
                self._queues[appid] = []
                return [Event("NEW_CLIENT", "", "", str(next(self._ids)), str(uuidlib.uuid4()))]
            deadline = time.monotonic() + wait
            while not self._queues[appid] and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            evs, self._queues[appid] = self._queues[appid], []
            return evs

    def close(self) -> None:
        """Release every waiting long poll (server shutdown)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
