"""The managed system this nova-compute serves: connection, checks, resources.

:class:`Host` owns the NovaLink adapter, the ManagedSystem wrapper, the power
state cache and the event listener. Its ``start()`` is init_host's work:
exactly one managed system, VIOSes ready within a bounded wait, the event feed
subscribed, stale mappings and orphan trunk adapters scrubbed; a bad
configuration fails naming the option.
"""

from __future__ import annotations

import math
import socket

import pypowervm.exceptions as pvm_ex
from oslo_config import cfg
from oslo_log import log as logging
from pypowervm.tasks import cna as pvm_cna
from pypowervm.tasks import partition as pvm_par
from pypowervm.tasks import storage as pvm_stg
from pypowervm.wrappers import managed_system as pvm_ms
from pypowervm.wrappers import network as pvm_net

from ibmvirt import contract
from ibmvirt.common import novalink
from ibmvirt.powervm import event
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
        self._mgmt: tuple[type, str] | None = None  # the NovaLink partition's wrapper type, UUID
        #: Set by stop() (cleanup_host): work still running stops short of Nova calls.
        self.stopped = False

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

    def connect(self, conn_tries: int = novalink.CONNECT_TRIES) -> None:
        """Log on to NovaLink (retrying while it starts)."""
        if self._adapter is not None:
            return
        try:
            self._adapter = novalink.build_adapter(self.conf, conn_tries=conn_tries)
        except novalink.NovaLinkConfigError as exc:
            raise pvm_exc.ConfigError(option=exc.option, reason=exc.reason) from None
        except pvm_ex.Error as exc:
            reason = novalink.logon_failure(self.conf, exc) or _reason(exc)
            raise pvm_exc.NovaLinkUnavailable(host=self._where(), reason=reason) from exc

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

    def start(self, emit_event, nvram_changed=None) -> None:
        """init_host: connect, check, subscribe to events, scrub stale mappings
        and trunks. ``nvram_changed(lpar_uuid)`` hears of NVRAM events."""
        self.connect()
        self.check_system()
        self.check_vioses()
        self.states = event.PowerStates(self.adapter, self.uuid)
        self.lifecycle = event.LifecycleEvents(
            self.states, emit_event, self.conf.powervm.lifecycle_event_delay
        )
        self._listener = self.adapter.session.get_event_listener()
        self._listener.subscribe(event.EventHandler(self.states, self.lifecycle, nvram_changed))
        # Mappings left by LPARs that no longer exist (a crash mid-destroy).
        pvm_stg.ComprehensiveScrub(self.adapter).execute()
        self.scrub_orphan_trunks()

    def scrub_orphan_trunks(self) -> list[str]:
        """Delete this host's ovs trunk adapters whose client adapter is gone.

        Ours: on the NovaLink partition and on [powervm]
        pvm_vswitch_for_novalink_io (a VIOS's SEA trunks are never touched).
        Returns the MACs of the trunks deleted.
        """
        mgmt = self.mgmt_partition()
        # pypowervm reads every partition's adapters: only when there are trunks at all.
        if not any(c.is_trunk for c in pvm_net.CNA.get(self.adapter, parent=mgmt)):
            return []
        vswitch = self.conf.powervm.pvm_vswitch_for_novalink_io
        removed = []
        for trunk in pvm_cna.find_orphaned_trunks(self.adapter, vswitch):
            if mgmt.uuid.upper() not in trunk.href.upper():
                continue
            LOG.info("Deleting orphan trunk adapter %s on %s", trunk.mac, vswitch)
            try:
                trunk.delete()
            except pvm_ex.Error as exc:
                LOG.warning("Could not delete orphan trunk adapter %s: %s", trunk.mac, exc)
                continue
            removed.append(trunk.mac)
        return removed

    def check_rmc_switch(self) -> str:
        """use_rmc_mgmt_vif needs MGMTSWITCH (ibmvirt-preflight; spawn skips it if missing)."""
        if not self.conf.powervm.use_rmc_mgmt_vif:
            return "not used (use_rmc_mgmt_vif = False)"
        found = pvm_net.VSwitch.search(
            self.adapter,
            parent_type=pvm_ms.System,
            parent_uuid=self.uuid,
            one_result=True,
            name=contract.PVM_MGMT_VSWITCH,
        )
        if found is None:
            raise pvm_exc.ConfigError(
                option="use_rmc_mgmt_vif",
                reason=f"the host has no virtual switch {contract.PVM_MGMT_VSWITCH}, so LPARs "
                "get no RMC adapter and cannot take interface or volume changes while they "
                "run; create it on NovaLink (mkvnetwork/pvmctl) or set use_rmc_mgmt_vif = False",
            )
        return f"{contract.PVM_MGMT_VSWITCH} present"

    def stop(self) -> None:
        """cleanup_host: stop the listener and log off."""
        self.stopped = True
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

    def mgmt_partition(self):
        """The NovaLink partition's wrapper: searched for once (pypowervm's
        search may read every LPAR), then read by UUID."""
        if self._mgmt is None:
            found = pvm_par.get_mgmt_partition(self.adapter)
            self._mgmt = (type(found), found.uuid)
            return found
        cls, uuid = self._mgmt
        return cls.get(self.adapter, uuid=uuid, xag=[])

    def io_partitions_usage(self) -> tuple[float, int]:
        """Processor units and MiB held by the VIOSes and the NovaLink partition:
        part of what the system can configure, never available to instances."""
        from pypowervm.wrappers import virtual_io_server as pvm_vios

        parts = list(pvm_vios.VIOS.get(self.adapter, xag=[]))
        if self._mgmt is None or self._mgmt[1] not in {p.uuid for p in parts}:
            parts.append(self.mgmt_partition())
        units, memory = 0.0, 0
        for part in parts:
            procs = part.proc_config
            if procs.has_dedicated:
                units += procs.dedicated_proc_cfg.desired
            else:
                units += procs.shared_proc_cfg.desired_units
            memory += part.mem_config.desired
        return units, memory

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
