"""The CPC subset this nova-compute service manages.

``Host`` is the hypervisor facade of the DPM driver: it owns the HMC client,
finds and validates the CPC at start-up, remembers the few immutable facts
later operations need (CPC object, adapter port URIs, firmware features) so
that a spawn does not re-list them, and answers host-wide questions (resources,
which partitions are ours, their statuses) with as few HMC requests as possible.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import zhmcclient
from oslo_config import cfg
from oslo_log import log as logging

from ibmvirt.common import hmcsession
from ibmvirt.common.statecache import StateCache
from ibmvirt.conf import types as conf_types
from ibmvirt.dpm import exceptions as dpm_exc
from ibmvirt.dpm import naming

LOG = logging.getLogger(__name__)

#: CPC statuses in which partitions can be managed (HMC data model "status").
USABLE_CPC_STATUSES = ("active", "service-required", "degraded", "exceptions")

#: How long a partition-status snapshot taken by list_instances() answers
#: get_info(use_cache=True). Nova's power-state sync calls list_instances once and
#: then get_info per instance within seconds, so this makes the whole sync cost one
#: HMC request. Operations of this driver drop the entry they change.
STATUS_CACHE_SECONDS = 30.0

#: A status this driver has just waited for (start, stop) is as fresh as a GET for
#: this long. Nova asks get_info(use_cache=False) right after every operation; the
#: answer is then free, and cannot fail after the work is done.
OPERATION_STATUS_SECONDS = 2.0


def build_client(conf: cfg.ConfigOpts) -> zhmcclient.Client:
    """Create the zhmcclient Client from [dpm] options (logon happens lazily)."""
    dpm = conf.dpm
    rt_config = zhmcclient.RetryTimeoutConfig(
        operation_timeout=dpm.operation_timeout, status_timeout=dpm.status_timeout
    )
    try:
        session = hmcsession.build_session(dpm, rt_config)
    except hmcsession.HMCSessionConfigError as exc:
        raise dpm_exc.DPMConfigurationError(reason=str(exc)) from None
    return zhmcclient.Client(session)


@dataclass(frozen=True)
class StoragePort:
    """A configured FCP adapter port, resolved at start-up."""

    adapter_id: str  # object-id
    adapter_uri: str
    adapter_number: str  # the HMC 'adapter-id' (PCHID-like), used by Export WWPN List
    port: str
    port_uri: str


@dataclass(frozen=True)
class PartitionSummary:
    """What one partitions-list request tells about an owned partition."""

    name: str
    uri: str
    status: str
    instance_uuid: str


class Host:
    """The CPC subset: CPC, limits and adapter ports of this compute service."""

    def __init__(self, client: zhmcclient.Client, conf: cfg.ConfigOpts, name: str) -> None:
        self.client = client
        self.conf = conf
        self._name = name
        self.cpc: zhmcclient.Cpc | None = None
        self.storage_ports: list[StoragePort] = []
        self.storage_management = False
        self.nic_mac_settable = False
        self.se_version = (0, 0, 0)
        self._states: StateCache[PartitionSummary] = StateCache(ttl=STATUS_CACHE_SECONDS)
        # instance uuid -> (when, status) an operation of this driver waited for.
        self._operations: dict[str, tuple[float, str | None]] = {}
        self._lock = threading.Lock()

    # -- start-up ---------------------------------------------------------

    @property
    def name(self) -> str:
        """The compute host (``[DEFAULT] host``) Nova started this driver for: the
        CPC-subset name, part of every partition name."""
        return self._name

    def init(self) -> None:
        """Find the CPC and check every option against it; raise naming the option."""
        dpm = self.conf.dpm
        if len(self.name) > naming.MAX_HOST_LENGTH:
            raise dpm_exc.DPMConfigurationError(
                reason=f"[DEFAULT] host {self.name!r} has {len(self.name)} characters; "
                f"partition names 'OpenStack-<host>-<instance uuid>' are limited to "
                f"{naming.MAX_NAME_LENGTH} characters by the HMC, so host must have at "
                f"most {naming.MAX_HOST_LENGTH}"
            )
        for opt in ("cpc_object_id", "max_processors", "max_memory"):
            if getattr(dpm, opt) is None:
                raise dpm_exc.DPMConfigurationError(reason=f"[dpm] {opt} is required")
        mappings: list[conf_types.AdapterPort] = list(dpm.physical_storage_adapter_mappings or [])
        if not mappings:
            raise dpm_exc.DPMConfigurationError(
                reason="[dpm] physical_storage_adapter_mappings needs at least one "
                "'<fcp adapter object-id>:<port>' entry: instances boot from FCP volumes"
            )
        if len(set(mappings)) != len(mappings):
            raise dpm_exc.DPMConfigurationError(
                reason="[dpm] physical_storage_adapter_mappings lists an adapter port twice"
            )

        cpc = self.client.cpcs.resource_object(dpm.cpc_object_id)
        try:
            cpc.pull_full_properties()
        except (zhmcclient.HTTPError, zhmcclient.CeasedExistence) as exc:
            if _is_not_found(exc):
                raise dpm_exc.DPMConfigurationError(
                    reason=f"[dpm] cpc_object_id {dpm.cpc_object_id}: no such CPC on HMC "
                    f"{', '.join(dpm.hmc)} (or [dpm] hmc_username has no object access to it)"
                ) from exc
            raise self._unavailable(exc) from exc
        except (
            zhmcclient.ConnectionError,
            zhmcclient.AuthError,
            zhmcclient.ClientAuthError,
        ) as exc:
            raise self._unavailable(exc) from exc

        cpc_name = cpc.get_property("name")
        if not cpc.get_property("dpm-enabled"):
            raise dpm_exc.DPMConfigurationError(
                reason=f"[dpm] cpc_object_id {dpm.cpc_object_id}: CPC {cpc_name} is not in "
                "DPM mode; choose a CPC in DPM mode"
            )
        status = cpc.get_property("status")
        if status not in USABLE_CPC_STATUSES:
            raise dpm_exc.DPMConfigurationError(
                reason=f"[dpm] cpc_object_id {dpm.cpc_object_id}: CPC {cpc_name} has status "
                f"{status!r}; it must be operating ({', '.join(USABLE_CPC_STATUSES)})"
            )
        ifls = cpc.get_property("processor-count-ifl") or 0
        if dpm.max_processors > ifls:
            raise dpm_exc.DPMConfigurationError(
                reason=f"[dpm] max_processors = {dpm.max_processors} exceeds the "
                f"{ifls} IFL processors of CPC {cpc_name}"
            )
        memory = cpc.get_property("storage-customer") or 0
        if dpm.max_memory > memory:
            raise dpm_exc.DPMConfigurationError(
                reason=f"[dpm] max_memory = {dpm.max_memory} MiB exceeds the {memory} MiB "
                f"customer storage of CPC {cpc_name}"
            )

        self.se_version = _parse_version(cpc.get_property("se-version") or "2.13.1")
        features = {
            f.get("name"): f.get("state") for f in (cpc.prop("available-features-list", None) or [])
        }
        self.storage_management = bool(features.get("dpm-storage-management"))
        # Create NIC accepts 'mac-address' since SE 2.14.0 (API 2.20).
        self.nic_mac_settable = self.se_version >= (2, 14, 0)
        self.storage_ports = [self._resolve_port(cpc, cpc_name, m) for m in mappings]
        self.cpc = cpc
        self._vswitch_ports = {
            vs.get_property("object-id"): int(vs.get_property("port"))
            for vs in cpc.virtual_switches.list(full_properties=True)
        }
        LOG.info(
            "Managing CPC %(cpc)s (SE %(se)s, %(path)s storage) as subset %(host)s: "
            "%(cpus)d IFLs, %(mem)d MiB, %(ports)d FCP path(s)",
            {
                "cpc": cpc_name,
                "se": ".".join(map(str, self.se_version)),
                "path": "storage-group" if self.storage_management else "HBA",
                "host": self.name,
                "cpus": dpm.max_processors,
                "mem": dpm.max_memory,
                "ports": len(self.storage_ports),
            },
        )

    def vswitch_port(self, vswitch_id: str) -> int:
        """The OSA/HiperSockets port behind a virtual switch: the guest must
        configure its NIC on that port (``portno``). Read at init_host; a
        virtual switch created later costs one request, once."""
        if vswitch_id not in self._vswitch_ports:
            vswitch = self.require_cpc().virtual_switches.resource_object(vswitch_id)
            try:
                self._vswitch_ports[vswitch_id] = int(vswitch.get_properties_pulled("port"))
            except (zhmcclient.HTTPError, zhmcclient.CeasedExistence) as exc:
                if not _is_not_found(exc):
                    raise
                raise dpm_exc.InvalidVIF(
                    reason=f"virtual switch {vswitch_id} does not exist on CPC "
                    f"{self.require_cpc().name}; check the DPM agent's physical network "
                    "mappings"
                ) from exc
        return self._vswitch_ports[vswitch_id]

    def _resolve_port(
        self, cpc: zhmcclient.Cpc, cpc_name: str, mapping: conf_types.AdapterPort
    ) -> StoragePort:
        opt = f"[dpm] physical_storage_adapter_mappings entry {mapping.adapter_id}:{mapping.port}"
        adapter = cpc.adapters.resource_object(mapping.adapter_id)
        try:
            adapter.pull_full_properties()
        except (zhmcclient.HTTPError, zhmcclient.CeasedExistence) as exc:
            if _is_not_found(exc):
                raise dpm_exc.DPMConfigurationError(
                    reason=f"{opt}: CPC {cpc_name} has no adapter with this object-id"
                ) from exc
            raise self._unavailable(exc) from exc
        if adapter.get_property("type") != "fcp":
            raise dpm_exc.DPMConfigurationError(
                reason=f"{opt}: adapter {adapter.get_property('name')} has type "
                f"{adapter.get_property('type')!r}; it must be an FCP adapter (type 'fcp')"
            )
        port_uri = f"{adapter.uri}/storage-ports/{mapping.port}"
        if port_uri not in (adapter.prop("storage-port-uris", None) or []):
            raise dpm_exc.DPMConfigurationError(
                reason=f"{opt}: adapter {adapter.get_property('name')} has no port {mapping.port}"
            )
        return StoragePort(
            adapter_id=mapping.adapter_id,
            adapter_uri=adapter.uri,
            adapter_number=str(adapter.prop("adapter-id", "")),
            port=mapping.port,
            port_uri=port_uri,
        )

    def _unavailable(self, exc: Exception) -> dpm_exc.HMCUnavailable:
        reason = str(exc)
        if isinstance(exc, (zhmcclient.AuthError, zhmcclient.ClientAuthError)):
            reason = f"logon refused; check [dpm] hmc_username and hmc_password ({exc})"
        elif isinstance(exc, zhmcclient.ConnectionError):
            reason = f"cannot connect; check [dpm] hmc, hmc_port and hmc_ca_file ({exc})"
        return dpm_exc.HMCUnavailable(host=", ".join(self.conf.dpm.hmc), reason=reason)

    def require_cpc(self) -> zhmcclient.Cpc:
        """The CPC found by init(); refuses use before start-up checks passed."""
        if self.cpc is None:
            raise dpm_exc.HMCUnavailable(
                host=", ".join(self.conf.dpm.hmc), reason="init_host has not found the CPC yet"
            )
        return self.cpc

    # -- resources ----------------------------------------------------------

    @property
    def hypervisor_version(self) -> int:
        """SE version a.b.c as Nova's integer (2.15.0 -> 2015000)."""
        a, b, c = self.se_version
        return a * 1_000_000 + b * 1_000 + c

    # -- owned partitions ---------------------------------------------------

    def list_partitions(self) -> list[PartitionSummary]:
        """All partitions of this host, with status, in one HMC request."""
        cpc = self.require_cpc()
        started = time.monotonic()
        result = []
        # 'name', 'object-uri' and 'status' are in every List Partitions response.
        for p in cpc.partitions.list(filter_args={"name": naming.owned_name_filter(self.name)}):
            uuid = naming.instance_uuid_from_name(self.name, p.name)
            if uuid is None:
                continue
            result.append(PartitionSummary(p.name, p.uri, p.prop("status", None), uuid))
        # What this driver learnt while the list was under way is newer (kept).
        self._states.replace_all({s.instance_uuid: s for s in result}, started)
        with self._lock:  # a listing after an operation knows better than the operation
            self._operations = {u: e for u, e in self._operations.items() if e[0] > started}
        return result

    def cached_status(self, instance_uuid: str) -> tuple[bool, str | None]:
        """``(hit, status)`` from recent knowledge; ``(True, None)`` means known absent.

        A partition is known absent if the last list_partitions() is fresh, did not
        include it, and this driver has not touched it since.
        """
        hit, summary = self._states.lookup(instance_uuid)
        return hit, (summary.status if summary is not None else None)

    def remember(self, summary: PartitionSummary, operation: bool = False) -> None:
        """Record a status this driver has just seen, or (``operation``) waited for."""
        self._states.put(summary.instance_uuid, summary)
        with self._lock:
            if operation:
                self._operations[summary.instance_uuid] = (time.monotonic(), summary.status)
            else:
                self._operations.pop(summary.instance_uuid, None)

    def operation_status(self, instance_uuid: str) -> str | None:
        """The status an operation of this driver reached just now, if any."""
        with self._lock:
            entry = self._operations.get(instance_uuid)
        if entry and time.monotonic() - entry[0] <= OPERATION_STATUS_SECONDS:
            return entry[1]
        return None

    def forget(self, instance_uuid: str) -> None:
        """Drop what is known about a partition this driver is changing."""
        self._states.changed(instance_uuid)
        with self._lock:
            self._operations.pop(instance_uuid, None)


def _is_not_found(exc: Exception) -> bool:
    """zhmcclient reports a 404 on a resource object as CeasedExistence."""
    if isinstance(exc, zhmcclient.CeasedExistence):
        return True
    return isinstance(exc, zhmcclient.HTTPError) and exc.http_status == 404


def _parse_version(value: str) -> tuple[int, int, int]:
    parts = [int(p) for p in str(value).split(".")[:3] if p.isdigit()]
    while len(parts) < 3:
        parts.append(0)
    return parts[0], parts[1], parts[2]
