"""What the SEA and SR-IOV agents share: NovaLink, the device set, heal passes.

The devices (MACs of this agent's adapters on client LPARs) are kept in
memory, current from NovaLink's event feed, so the loop's ``get_all_devices``
costs no request. A full listing makes them the truth again at start, when the
feed may have lost events (NEW_CLIENT, MISSING_EVENTS, CACHE_CLEARED, a failed
poll) and at every heal pass. One worker thread does that NovaLink work; what
fails is retried after ``[AGENT] exception_interval``. When the adapters cannot
be listed the set is emptied, so their ports go DOWN rather than stay ACTIVE
on the agent's word; the next listing that succeeds brings them back up.
"""

from __future__ import annotations

import json
import re
import threading

from oslo_config import cfg
from oslo_log import log as logging
from pypowervm import adapter as pvm_adpt
from pypowervm import exceptions as pvm_ex
from pypowervm.tasks import partition as pvm_par
from pypowervm.wrappers import event as pvm_evt
from pypowervm.wrappers import logical_partition as pvm_lpar
from pypowervm.wrappers import managed_system as pvm_ms

from ibmvirt import contract
from ibmvirt.common import novalink
from ibmvirt.neutron.agent import base as agent_base
from ibmvirt.neutron.agent.devices import Device, DeviceSet, Worker

LOG = logging.getLogger(__name__)

#: Events after which the feed may have missed changes: list everything again.
RESYNC_EVENTS = frozenset(
    {
        pvm_evt.EventType.NEW_CLIENT,
        pvm_evt.EventType.MISSING_EVENTS,
        pvm_evt.EventType.CACHE_CLEARED,
    }
)
_URI = re.compile(
    r"LogicalPartition/(?P<lpar>[0-9A-Fa-f-]{36})(?:/(?P<kind>\w+)/(?P<uuid>[0-9A-Fa-f-]{36}))?$"
)


def norm_mac(mac: str) -> str:
    """A PowerVM MAC (``FA163E0A0B0C``) as Neutron writes it (``fa:16:3e:0a:0b:0c``)."""
    raw = contract.pvm_mac(mac).lower()
    return ":".join(raw[i : i + 2] for i in range(0, len(raw), 2))


def parse_uri(uri: str | None) -> tuple[str, str | None, str | None] | None:
    """(LPAR UUID, child type, child UUID) of an event URI under a client LPAR."""
    m = _URI.search((uri or "").split("?")[0].rstrip("/"))
    if m is None:
        return None
    uuid = m.group("uuid")
    return m.group("lpar").upper(), m.group("kind"), uuid.upper() if uuid else None


def connect(conf: cfg.ConfigOpts, conn_tries: int = novalink.CONNECT_TRIES) -> pvm_adpt.Adapter:
    """Log on with the Nova driver's [powervm] options; failures name the option."""
    try:
        return novalink.build_adapter(conf, conn_tries=conn_tries)
    except novalink.NovaLinkConfigError as exc:
        raise agent_base.AgentStartupError(str(exc)) from None
    except pvm_ex.Error as exc:
        reason = novalink.logon_failure(conf, exc) or f"{type(exc).__name__}: {exc}"
        raise agent_base.AgentStartupError(f"cannot log on to NovaLink: {reason}") from None


class _FeedHandler(pvm_adpt.WrapperEventHandler):
    """pypowervm's poll thread hands every event batch to the manager."""

    def __init__(self, manager: PowerVMAgentManager) -> None:
        self._manager = manager

    def process(self, events) -> None:
        for event in events:
            self._manager.on_event(event)


class PowerVMAgentManager(agent_base.AgentManager):
    """The device set, event feed and heal thread; subclasses say which
    adapters are theirs (:meth:`list_adapters`, :meth:`read_adapter`,
    :meth:`device_of`) and what plugging and healing mean."""

    #: binding:vif_type of this agent's ports (NOVA_PVM_VIF events carry it).
    vif_type: str
    #: REST child type of this agent's adapters under a LogicalPartition.
    adapter_kind: str
    agent_id_prefix: str

    def __init__(self, conf: cfg.ConfigOpts | None = None, adapter=None) -> None:
        self.conf = conf if conf is not None else cfg.CONF
        super().__init__(f"{self.agent_id_prefix}-{self.conf.host}")
        self._owns_adapter = adapter is None
        self.adapter = adapter
        self.devices = DeviceSet()
        self.worker = Worker(f"{self.agent_id_prefix}-novalink", self.conf.AGENT.exception_interval)
        #: Client LPARs whose adapters are never devices (the NovaLink partition).
        self.excluded_lpars: set[str] = set()
        self._feed_down = False
        self._handler: _FeedHandler | None = None
        self._stopping = threading.Event()
        self._open()
        if self._owns_adapter:
            # This process only checks the configuration: the loop runs in a
            # worker forked from it, again after each SIGHUP. A session opened
            # here would be logged off by the first worker's stop and reused,
            # stale, by the next one; each worker opens its own in start().
            self._logoff()
            self.adapter = None

    def _open(self, conn_tries: int = novalink.CONNECT_TRIES) -> None:
        """Log on (unless given an adapter), find the system, check the VIOSes
        and the subclass's configuration; AgentStartupError names the fix."""
        if self.adapter is None:
            self.adapter = connect(self.conf, conn_tries)
        try:
            self.host_uuid = self._the_system()
            self._wait_for_vioses()
            self.setup()
        except pvm_ex.Error as exc:
            self._logoff()
            raise agent_base.AgentStartupError(
                f"NovaLink failed while the agent started: {type(exc).__name__}: {exc}"
            ) from None
        except agent_base.AgentStartupError:
            self._logoff()
            raise

    # -- start-up checks -------------------------------------------------------
    def _the_system(self) -> str:
        systems = pvm_ms.System.get(self.adapter)
        if len(systems) != 1:
            names = ", ".join(s.system_name for s in systems) or "none"
            raise agent_base.AgentStartupError(
                f"NovaLink manages {len(systems)} systems ({names}); an agent serves exactly one"
            )
        return systems[0].uuid

    def _wait_for_vioses(self) -> None:
        timeout = self.conf.powervm.vios_ready_timeout
        try:
            pvm_par.validate_vios_ready(self.adapter, timeout)
        except pvm_ex.ViosNotAvailable as exc:
            raise agent_base.AgentStartupError(
                f"no Virtual I/O Server is ready ([powervm] vios_ready_timeout={timeout}): {exc}"
            ) from None

    # -- hooks for subclasses ----------------------------------------------------
    def setup(self) -> None:
        """Start-up reads and checks (mappings); raise AgentStartupError naming the option."""

    def list_adapters(self, lpar_uuid: str) -> list:
        """This agent's adapter wrappers on one LPAR (one request)."""
        raise NotImplementedError

    def read_adapter(self, lpar_uuid: str, uuid: str):
        """One adapter wrapper (one request); pvm_ex.HttpNotFound when gone."""
        raise NotImplementedError

    def device_of(self, lpar_uuid: str, wrapper) -> Device | None:
        """The device an adapter is, None if not this agent's."""
        raise NotImplementedError

    def before_listing(self) -> None:
        """Called before each full listing (refresh what it filters on)."""

    def after_heal(self) -> None:
        """Called after a heal pass listed the adapters (SEA: VLAN clean-up)."""

    def handle_event(self, event) -> None:
        """Any other event the subclass cares about (feed thread: no requests)."""

    # -- loop interface ------------------------------------------------------------
    def get_all_devices(self):
        return self.devices.macs()

    def start(self) -> None:
        if self.adapter is None and not self._open_in_worker():
            return  # stopped before NovaLink answered
        try:
            self._first_listing()
        except pvm_ex.Error as exc:
            LOG.warning("NovaLink failed at start (%s); retrying", exc)
            self.worker.submit("start", self._first_listing, self.conf.AGENT.exception_interval)
        self.worker.submit("heal", self.heal, self.conf.AGENT.heal_and_optimize_interval)
        self.worker.start()

    def _first_listing(self) -> None:
        if self._handler is None:
            listener = self.adapter.session.get_event_listener()
            # The poll thread's own adapter, watched: a failed poll is the
            # first sign of an outage (pypowervm only logs it).
            listener.adp = pvm_adpt.Adapter(listener.adp.session, helpers=[self._watch_feed])
            self._handler = _FeedHandler(self)
            listener.subscribe(self._handler)  # before listing: nothing is missed
        self.list_all()

    def _open_in_worker(self) -> bool:
        """This worker's own session; NovaLink down (or changed) since the
        check at start-up is retried, not a crash loop of workers."""
        while not self._stopping.is_set():
            try:
                self._open(conn_tries=1)  # retried here, where a stop is seen
                return True
            except agent_base.AgentStartupError as exc:
                self.adapter = None
                LOG.error("%s; retrying in %s s", exc, self.conf.AGENT.exception_interval)
                self._stopping.wait(self.conf.AGENT.exception_interval)
        return False

    def stop(self) -> None:
        self._stopping.set()
        self.worker.stop()
        self._logoff()

    def _logoff(self) -> None:
        if self.adapter is None:
            return
        session = self.adapter.session
        try:
            if session.has_event_listener:
                session.get_event_listener().shutdown()
            if self._owns_adapter:
                session._logoff()
        except pvm_ex.Error as exc:
            LOG.warning("NovaLink logoff failed: %s", exc)

    def retry_plug(self, device: str) -> None:
        """Have the loop plug ``device`` again after exception_interval."""
        self.worker.submit(
            ("plug", device),
            lambda: self.mark_updated({device} & self.devices.macs()),
            self.conf.AGENT.exception_interval,
        )

    # -- listing and healing ---------------------------------------------------------
    def list_all(self) -> None:
        """Every client LPAR's adapters: 1 + one request per LPAR."""
        self.worker.cancel(lambda key: isinstance(key, tuple) and key[0] == "read")
        self.devices.begin_listing()
        try:
            self.before_listing()
            found, excluded = [], set()
            for lpar in pvm_lpar.LPAR.get(self.adapter):
                if lpar.is_mgmt_partition:
                    excluded.add(lpar.uuid.upper())
                    continue
                try:
                    wrappers = self.list_adapters(lpar.uuid)
                except pvm_ex.HttpNotFound:
                    continue  # deleted meanwhile
                found.extend(self._devices(lpar.uuid, wrappers))
        except pvm_ex.Error:
            lost = self.devices.abort_listing()
            if lost:
                LOG.warning(
                    "Cannot list the adapters on NovaLink: %d port(s) reported DOWN until "
                    "it answers again",
                    lost,
                )
            raise
        self.excluded_lpars = excluded
        self.devices.end_listing(found)
        LOG.debug("%d %s adapter(s) on client LPARs", len(found), self.adapter_kind)

    def heal(self) -> None:
        """List everything, let the subclass heal, and have every port plugged
        and reported up again; then schedule the next pass."""
        self.list_all()
        self.after_heal()
        self.mark_updated(self.devices.macs())
        LOG.info("Heal pass done: %d device(s)", len(self.devices.macs()))
        self.worker.submit("heal", self.heal, self.conf.AGENT.heal_and_optimize_interval)

    def request_listing(self, why: str) -> None:
        LOG.info("Listing every adapter again: %s", why)
        self.worker.submit("list", self.list_all)

    def _devices(self, lpar_uuid: str, wrappers) -> list[Device]:
        return [d for d in (self.device_of(lpar_uuid.upper(), w) for w in wrappers) if d]

    def _read(self, lpar_uuid: str, uuid: str | None) -> None:
        if lpar_uuid in self.excluded_lpars:
            return
        try:
            if uuid is None:
                devices = self._devices(lpar_uuid, self.list_adapters(lpar_uuid))
                self.devices.replace_lpar(lpar_uuid, devices)
                self.mark_updated({d.mac for d in devices})
                return
            device = self.device_of(lpar_uuid, self.read_adapter(lpar_uuid, uuid))
        except pvm_ex.HttpNotFound:
            if uuid is None:
                self.devices.drop_lpar(lpar_uuid)
            else:
                self.devices.drop_adapter(uuid)
            return
        if device is None:
            self.devices.drop_adapter(uuid)
        else:
            self.devices.put(device)
            # The loop sees only MACs come and go: an adapter changed or
            # re-created under the same MAC must be plugged (checked) again.
            self.mark_updated({device.mac})

    def read_later(self, lpar_uuid: str, uuid: str | None) -> None:
        self.worker.submit(("read", lpar_uuid, uuid), lambda: self._read(lpar_uuid, uuid))

    # -- the event feed (pypowervm's poll thread: no requests here) ------------------------
    def _watch_feed(self, func):
        def watched(*args, **kwargs):
            try:
                response = func(*args, **kwargs)
            except pvm_ex.Error as exc:
                if not self._feed_down:
                    self._feed_down = True
                    LOG.warning("NovaLink's event feed failed: %s", exc)
                self.request_listing("the event feed failed")
                raise
            if self._feed_down:
                self._feed_down = False
                self.request_listing("the event feed is back")
            return response

        return watched

    def on_event(self, event) -> None:
        etype = event.etype
        if etype in RESYNC_EVENTS:
            self.request_listing(f"{etype} on the event feed")
            return
        if etype == pvm_evt.EventType.CUSTOM_CLIENT_EVENT:
            self._on_vif_event(event)
            return
        where = parse_uri(event.data)
        if where is not None:
            lpar_uuid, kind, uuid = where
            if kind is None and etype == pvm_evt.EventType.DELETE_URI:
                self.devices.drop_lpar(lpar_uuid)
            elif kind is None and etype == pvm_evt.EventType.ADD_URI:
                self.read_later(lpar_uuid, None)  # e.g. arrived by migration
            elif kind == self.adapter_kind and etype == pvm_evt.EventType.DELETE_URI:
                self.devices.drop_adapter(uuid)
            elif kind == self.adapter_kind:
                self.read_later(lpar_uuid, uuid)
        self.handle_event(event)

    def _on_vif_event(self, event) -> None:
        """Nova's NOVA_PVM_VIF event after it plugged or unplugged a port."""
        try:
            detail = json.loads(event.detail or "")
        except ValueError:
            return  # someone else's custom event
        if not isinstance(detail, dict) or detail.get("provider") != (
            contract.PVM_VIF_EVENT_PROVIDER
        ):
            return
        if detail.get("type") != self.vif_type or not detail.get("mac"):
            return
        mac = norm_mac(detail["mac"])
        if detail.get("action") == "unplug":
            self.devices.drop(mac)
            return
        where = parse_uri(event.data)
        if where is None:
            self.request_listing(f"Nova plugged {mac} at an unknown adapter {event.data!r}")
        else:
            lpar_uuid, kind, uuid = where
            self.read_later(lpar_uuid, uuid if kind == self.adapter_kind else None)
