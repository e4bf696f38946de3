"""The managed system this nova-compute serves: connection, checks, resources.

:class:`Host` owns the NovaLink adapter, the ManagedSystem wrapper, the power
state cache and the event listener. Its ``start()`` is init_host's work:
exactly one managed system, VIOSes ready within a bounded wait, the event feed
subscribed, stale mappings scrubbed; a bad configuration fails naming the option.
"""

from __future__ import annotations

import math
import socket

import pypowervm.exceptions as pvm_ex
from oslo_config import cfg
from oslo_log import log as logging
from pypowervm.tasks import partition as pvm_par
from pypowervm.tasks import storage as pvm_stg
from pypowervm.wrappers import managed_system as pvm_ms

from ibmvirt.powervm import connection, event
from ibmvirt.powervm import exceptions as pvm_exc

LOG = logging.getLogger(__name__)


class Host:
    """One PowerVM managed system, as seen through its NovaLink."""

    def __init__(self, conf: cfg.ConfigOpts, adapter=None) -> None:
        self.conf = conf
        self._adapter = adapter
        self.system: pvm_ms.System | None = None
        self.states: event.PowerStates | None = None
        self.lifecycle: event.LifecycleEvents | None = None
        self._listener = None

    @property
    def adapter(self):
        if self._adapter is None:
            raise pvm_exc.NovaLinkUnavailable(host=self._where(), reason="not connected")
        return self._adapter

    @property
    def uuid(self) -> str:
        return self.require_system().uuid

    def _where(self) -> str:
        return self.conf.powervm.novalink_host or "localhost (local logon)"

    def connect(self, conn_tries: int = connection.CONNECT_TRIES) -> None:
        """Log on to NovaLink (retrying while it starts)."""
        if self._adapter is not None:
            return
        try:
            self._adapter = connection.build_adapter(self.conf, conn_tries=conn_tries)
        except pvm_exc.ConfigError:
            raise
        except pvm_ex.Error as exc:
            raise pvm_exc.NovaLinkUnavailable(host=self._where(), reason=_reason(exc)) from exc

    def check_system(self) -> pvm_ms.System:
        """Exactly one managed system behind this NovaLink."""
        systems = pvm_ms.System.get(self.adapter)
        if len(systems) != 1:
            raise pvm_exc.NovaLinkUnavailable(
                host=self._where(),
                reason=f"it manages {len(systems)} systems "
                f"({', '.join(s.system_name for s in systems) or 'none'}); "
                "one nova-compute serves exactly one managed system",
            )
        self.system = systems[0]
        return self.system

    def check_vioses(self) -> None:
        """At least one VIOS running with RMC, waiting at most vios_ready_timeout."""
        try:
            pvm_par.validate_vios_ready(self.adapter, self.conf.powervm.vios_ready_timeout)
        except pvm_ex.ViosNotAvailable as exc:
            raise pvm_exc.NovaLinkUnavailable(
                host=self._where(),
                reason=f"no Virtual I/O Server is ready ([powervm] vios_ready_timeout="
                f"{self.conf.powervm.vios_ready_timeout}): {exc}",
            ) from exc

    def start(self, emit_event) -> None:
        """init_host: connect, check, subscribe to events, scrub stale storage."""
        self.connect()
        self.check_system()
        self.check_vioses()
        self.states = event.PowerStates(self.adapter, self.uuid)
        self.lifecycle = event.LifecycleEvents(
            self.states, emit_event, self.conf.powervm.lifecycle_event_delay
        )
        self._listener = self.adapter.session.get_event_listener()
        self._listener.subscribe(event.EventHandler(self.states, self.lifecycle))
        # Mappings left by LPARs that no longer exist (a crash mid-destroy).
        pvm_stg.ComprehensiveScrub(self.adapter).execute()

    def stop(self) -> None:
        """cleanup_host: stop the listener and log off."""
        if self.lifecycle is not None:
            self.lifecycle.stop()
        if self._adapter is not None:
            session = self._adapter.session
            try:
                if session.has_event_listener:
                    session.get_event_listener().shutdown()
                session._logoff()
            except pvm_ex.Error as exc:
                LOG.warning("NovaLink logoff failed: %s", exc)

    def require_system(self) -> pvm_ms.System:
        if self.system is None:
            raise pvm_exc.NovaLinkUnavailable(host=self._where(), reason="not initialised")
        return self.system

    def refresh_system(self) -> pvm_ms.System:
        """The ManagedSystem re-read (capacity changes as LPARs come and go)."""
        self.system = self.require_system().refresh()
        return self.system

    def shared_proc_pool_id(self, name: str) -> int:
        """The ID of the shared processor pool named ``name`` (powervm:shared_proc_pool_name)."""
        from ibmvirt.powervm import flavor

        return flavor.shared_proc_pool_id(self.adapter, self.require_system(), name)

    # -- resources ------------------------------------------------------------

    def vcpus(self) -> int:
        """VCPUs offered: processor units the host can configure / proc_units_factor.

        A flavor's vCPU gets proc_units_factor processor units (unless its
        powervm:proc_units says otherwise), so this is how many such vCPUs fit.
        """
        units = self.require_system().proc_units_configurable
        return int(math.floor(units / self.conf.powervm.proc_units_factor + 1e-9))

    def memory_mb(self) -> int:
        return int(self.require_system().memory_configurable)

    def memory_region_mb(self) -> int:
        return int(self.require_system().memory_region_size)

    @staticmethod
    def ip_address(conf: cfg.ConfigOpts) -> str:
        """``my_ip``; warn if it is not an address of this machine."""
        ip = conf.my_ip
        try:
            socket.create_server((ip, 0)).close()
        except OSError:
            LOG.warning("my_ip %s is not an address of this host", ip)
        return ip


def _reason(exc: Exception) -> str:
    """A pypowervm error in words (never the request body: it may hold a password)."""
    response = getattr(exc, "response", None)
    if response is not None and getattr(response, "status", None):
        return f"HTTP {response.status} {response.reason or ''}: {exc}".strip()
    return f"{type(exc).__name__}: {exc}"
