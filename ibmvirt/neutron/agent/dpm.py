"""The DPM agent: which NICs of this host exist on the mapped backings.

Nova's DPM driver creates one NIC per port, named ``OpenStack_Port_<port id>``
and described with the compute host (ibmvirt.contract); this agent reports
those NICs of its host as devices (port ids) and ML2 takes their ports ACTIVE.
A NIC counts from its creation, before the partition is first started: Nova
waits for network-vif-plugged before it starts the partition.

Cost per poll ([AGENT] polling_interval): a constant number of HMC requests,
whatever the number of NICs (networking-dpm read every NIC's description at
every poll):

* HMC 2.16.0 and later: one List Partitions of this host's partitions (named
  for it by Nova, ibmvirt.dpm.naming) with ``additional-properties=nic-uris``
  and one list of the backings (virtual switches, partition links or
  adapters). NICs new to the agent are read once, together in one Submit
  Requests (name, description and backing never change for Nova's NICs),
  and cached.
* Older HMCs (their List Partitions has no additional-properties): one Get
  Inventory of the partitions and virtual switches, which carries every NIC's
  properties; nothing else.

HMC notifications (STOMP) could replace polling; that is a later issue.

When the HMC cannot be read (connection errors, 5xx, a failed re-logon after
session expiry) the poll reports no devices, so the ports go DOWN, and the
next poll that reads the HMC brings them back. A backing that disappears is
logged as an error, its physnet is no longer reported to ML2 and its NICs go
down. Nothing here exits the process: start-up errors are AgentStartupError.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass

import zhmcclient
from oslo_config import cfg
from oslo_log import log as logging

from ibmvirt import contract
from ibmvirt.common import hmcsession
from ibmvirt.dpm import naming
from ibmvirt.neutron.agent import base
from ibmvirt.neutron.agent import dpm_mappings as mappings

LOG = logging.getLogger(__name__)

#: The HMC answers within seconds or is treated as down for this poll; the
#: defaults of zhmcclient (30 s connect x3, 3600 s read) would stall the agent.
RETRY_TIMEOUT = zhmcclient.RetryTimeoutConfig(
    connect_timeout=10, connect_retries=1, read_timeout=60, read_retries=1
)
#: Submit Requests (the HMC's aggregation service): several GETs in one request.
BULK_URI = "/api/services/aggregation/submit"
#: NIC reads per Submit Requests (zhmcclient keeps its bodies under 256 kB;
#: a request for a NIC is about 110 bytes).
NICS_PER_BULK = 1000
#: NIC properties the agent needs, all fixed at creation for Nova's NICs.
BACKING_PROPS = ("virtual-switch-uri", "network-adapter-port-uri")


class InventoryIncomplete(zhmcclient.Error):
    """Get Inventory answered, with inventory-error items instead of some objects."""


class _NoAdditionalProperties(Exception):
    """List Partitions answered without the additional properties asked for."""


@dataclass(frozen=True)
class Nic:
    """One NIC of this host on some backing, as far as the agent cares."""

    port_id: str
    backing_uris: frozenset[str]

    @classmethod
    def from_properties(cls, props: dict, host: str) -> Nic | None:
        """The NIC if Nova created it for ``host``, else None (foreign)."""
        port_id = contract.dpm_nic_port_id(props.get("name") or "")
        owner = contract.parse_dpm_nic_description(props.get("description") or "")
        if port_id is None or owner is None or owner[0] != host:
            return None
        return cls(port_id, frozenset(props[p] for p in BACKING_PROPS if props.get(p)))


class DpmAgentManager(base.AgentManager):
    """Devices of one CPC subset: the NICs Nova created for ``host``."""

    extension_driver_type = "dpm"

    def __init__(
        self,
        client: zhmcclient.Client,
        cpc: zhmcclient.Cpc,
        host: str,
        backings: list[mappings.Backing],
        features: mappings.Features,
    ) -> None:
        super().__init__(agent_id=f"dpm-{host}")
        self.client = client
        self.cpc = cpc
        self.host = host
        self.backings = backings
        self.features = features
        self._by_nic_uri = {uri: b for b in backings for uri in b.nic_uris}
        #: NIC URI -> Nic, or None for a NIC of another host or Nova-unrelated.
        self._nics: dict[str, Nic | None] = {}
        self._missing: set[str] = set()  # backing URIs found gone (logged once)
        self._hmc_down = False
        self._poll_lock = threading.Lock()
        self._stopped = False
        self.set_configuration(contract.AGENT_CONF_DPM_VLAN, features.nic_vlan)
        self._report_backings()

    def stop(self) -> None:
        """Wait for a poll in flight, then end the session; later polls (the
        loop may run once more while the worker exits) read nothing."""
        with self._poll_lock:
            self._stopped = True
        self.logoff()

    def logoff(self) -> None:
        """End the HMC session (zhmcclient logs on again at the next request:
        the start-up process's session is ended before the worker starts)."""
        try:
            self.client.session.logoff()
        except zhmcclient.Error as exc:
            LOG.warning("HMC logoff failed: %s", exc)

    def device_of_port(self, port: dict) -> str:
        return port["id"]

    def plug_interface(self, network_id, network_segment, device, device_owner) -> bool:
        """Nova created the NIC on the backing ML2 chose: it is plugged."""
        return True

    # -- the poll ------------------------------------------------------------------
    def get_all_devices(self) -> set[str]:
        """Port ids of this host's NICs on present backings; empty if the HMC fails."""
        with self._poll_lock:
            if self._stopped:
                return set()
            return self._poll()

    def _poll(self) -> set[str]:
        try:
            devices = self._scan()
        except zhmcclient.Error as exc:  # connection, HTTP, auth, parse: all of zhmcclient's
            self._hmc_failed(exc)
            return set()
        except Exception:  # noqa: BLE001 - Neutron's loop dies on any exception here
            LOG.exception("Reading the NICs of host %s failed; reporting none", self.host)
            return set()
        if self._hmc_down:
            self._hmc_down = False
            LOG.info("HMC answers again; reporting the %d NICs of host %s", len(devices), self.host)
        return devices

    def _scan(self) -> set[str]:
        if self.features.list_additional_properties:
            try:
                nics = self._listed_nics()
            except (zhmcclient.HTTPError, _NoAdditionalProperties) as exc:
                if isinstance(exc, zhmcclient.HTTPError) and exc.http_status != 400:
                    raise
                LOG.warning(
                    "The HMC refuses List Partitions with additional-properties (%s); "
                    "reading the inventory instead from now on",
                    exc,
                )
                self.features = dataclasses.replace(self.features, list_additional_properties=False)
                return self._scan()
            present = mappings.existing(self.client, self.cpc, self.backings)
        else:
            nics, present = self._inventory_nics()
        self._check_backings(present)
        devices = set()
        for nic in nics:
            backing = next(
                (self._by_nic_uri[u] for u in nic.backing_uris if u in self._by_nic_uri), None
            )
            if backing is not None and backing.uri in present:
                devices.add(nic.port_id)
        return devices

    def _listed_nics(self) -> list[Nic]:
        """One List Partitions of this host's partitions (named by Nova for it),
        plus one Submit Requests for the NICs the agent has not seen yet."""
        listed: list[str] = []
        owned = {"name": naming.owned_name_filter(self.host)}
        for partition in self.cpc.partitions.list(
            filter_args=owned, additional_properties=["nic-uris"]
        ):
            if "nic-uris" not in partition.properties:
                # Ignored rather than refused: "no NICs" would take every port down.
                raise _NoAdditionalProperties(f"partition {partition.name} came without nic-uris")
            listed.extend(partition.properties["nic-uris"] or [])
        self._nics = {uri: self._nics[uri] for uri in listed if uri in self._nics}
        new = [uri for uri in listed if uri not in self._nics]
        for start in range(0, len(new), NICS_PER_BULK):
            for uri, props in self._read_bulk(new[start : start + NICS_PER_BULK]):
                self._nics[uri] = Nic.from_properties(props, self.host)
        return [nic for nic in self._nics.values() if nic is not None]

    def _read_bulk(self, uris: list[str]) -> list[tuple[str, dict]]:
        """Get NIC Properties of ``uris`` in one Submit Requests (HMC 2.15 and later)."""
        requests = [{"method": "GET", "uri": uri, "id": str(i)} for i, uri in enumerate(uris)]
        answers = self.client.session.post(
            BULK_URI, body={"requests": requests, "threads": min(10, len(requests))}
        )
        found = []
        for answer in answers:
            uri = uris[int(answer["id"])]
            if answer["status"] == 200:
                found.append((uri, answer["body"]))
            elif answer["status"] == 404:
                LOG.debug("NIC %s was deleted while the agent read it", uri)
            else:
                raise zhmcclient.HTTPError(answer["body"])
        return found

    def _inventory_nics(self) -> tuple[list[Nic], set[str]]:
        """One Get Inventory: partitions with their NICs, and virtual switches."""
        kinds = {b.kind for b in self.backings}
        resources = ["partition"] + (["virtual-switch"] if mappings.VSWITCH in kinds else [])
        items = self.client.get_inventory(resources)
        errors = [i for i in items if i.get("class") == "inventory-error"]
        if errors:  # the HMC could not inventory everything: do not guess what is missing
            raise InventoryIncomplete(f"Get Inventory reported {errors[0]}")
        partitions = {
            i["object-uri"]
            for i in items
            if i.get("class") == "partition" and i.get("parent") == self.cpc.uri
        }
        nics = [
            Nic.from_properties(i, self.host)
            for i in items
            if i.get("class") == "nic" and i.get("parent") in partitions
        ]
        present = {
            i["object-uri"]
            for i in items
            if i.get("class") == "virtual-switch" and i.get("parent") == self.cpc.uri
        }
        if kinds - {mappings.VSWITCH}:
            present |= mappings.existing(self.client, self.cpc, self.backings)
        return [n for n in nics if n is not None], present

    # -- state changes -------------------------------------------------------------
    def _check_backings(self, present: set[str]) -> None:
        changed = False
        for backing in self.backings:
            if backing.uri not in present and backing.uri not in self._missing:
                self._missing.add(backing.uri)
                changed = True
                LOG.error(
                    "Physical network %s: %s of %s line '%s' no longer exists on CPC %s; "
                    "its NICs are reported down and ML2 no longer binds ports to it. Restore "
                    "it or fix the mapping and restart the agent",
                    backing.physnet,
                    backing.describe(),
                    mappings.OPTION,
                    backing.line,
                    self.cpc.name,
                )
            elif backing.uri in present and backing.uri in self._missing:
                self._missing.discard(backing.uri)
                changed = True
                LOG.info("Physical network %s: %s is back", backing.physnet, backing.describe())
        if changed:
            self._report_backings()

    def _report_backings(self) -> None:
        self.set_configuration(
            contract.AGENT_CONF_DPM_MAPPINGS,
            {b.physnet: b.reported for b in self.backings if b.uri not in self._missing},
        )

    def _hmc_failed(self, exc: zhmcclient.Error) -> None:
        if not self._hmc_down:
            self._hmc_down = True
            LOG.warning(
                "Cannot read CPC %s from the HMC (%s: %s); reporting the ports of host %s "
                "down until it answers",
                self.cpc.name,
                type(exc).__name__,
                exc,
                self.host,
            )
        else:
            LOG.debug("HMC still unavailable: %s", exc)


def connect(conf: cfg.ConfigOpts) -> tuple[zhmcclient.Client, zhmcclient.Cpc]:
    """Log on and find the CPC in DPM mode; AgentStartupError naming the option."""
    dpm = conf.dpm
    try:
        cpc_object_id = dpm.cpc_object_id
    except ValueError as exc:  # oslo.config names the option and the value
        raise base.AgentStartupError(str(exc)) from None
    if not cpc_object_id:
        raise base.AgentStartupError("[dpm] cpc_object_id is required: the CPC this host serves")
    try:
        session = hmcsession.build_session(dpm, RETRY_TIMEOUT)
    except hmcsession.HMCSessionConfigError as exc:
        raise base.AgentStartupError(str(exc)) from None
    client = zhmcclient.Client(session)
    hmcs = ", ".join(dpm.hmc)
    cpc = client.cpcs.resource_object(dpm.cpc_object_id)
    try:
        cpc.pull_full_properties()
    except zhmcclient.CeasedExistence:
        cpc = None
    except zhmcclient.HTTPError as exc:
        if exc.http_status != 404:
            raise base.AgentStartupError(f"HMC {hmcs} refuses to show the CPC: {exc}") from None
        cpc = None
    except (zhmcclient.AuthError, zhmcclient.ClientAuthError) as exc:
        raise base.AgentStartupError(
            f"HMC {hmcs} refuses the logon; check [dpm] hmc_username and hmc_password ({exc})"
        ) from None
    except zhmcclient.ConnectionError as exc:
        raise base.AgentStartupError(
            f"cannot connect to HMC {hmcs}; check [dpm] hmc, hmc_port and hmc_ca_file ({exc})"
        ) from None
    if cpc is None:
        raise base.AgentStartupError(
            f"[dpm] cpc_object_id {dpm.cpc_object_id}: no such CPC on HMC {hmcs} (or [dpm] "
            "hmc_username has no object access to it)"
        )
    if not cpc.get_property("dpm-enabled"):
        raise base.AgentStartupError(
            f"[dpm] cpc_object_id {dpm.cpc_object_id}: CPC {cpc.name} is not in DPM mode; "
            "choose a CPC in DPM mode"
        )
    return client, cpc


def make_manager(conf: cfg.ConfigOpts = cfg.CONF) -> DpmAgentManager:
    """Everything the agent checks before it registers with neutron-server."""
    try:
        lines = list(conf.dpm.physical_network_adapter_mappings or [])
    except ValueError as exc:  # oslo.config names the option and the bad value
        raise base.AgentStartupError(str(exc)) from None
    client, cpc = connect(conf)
    try:
        features = mappings.Features.detect(client, cpc)
        backings = mappings.resolve(client, cpc, lines, features)
    except mappings.MappingError as exc:
        raise base.AgentStartupError(str(exc)) from None
    except zhmcclient.Error as exc:
        raise base.AgentStartupError(f"reading CPC {cpc.name} from the HMC failed: {exc}") from None
    for backing in backings:
        LOG.info("Physical network %s -> %s", backing.physnet, backing.describe())
    manager = DpmAgentManager(client, cpc, conf.host, backings, features)
    # The loop runs in a worker forked from this process (again after each
    # SIGHUP); a session left open here would outlive the agent on the HMC.
    manager.logoff()
    return manager
