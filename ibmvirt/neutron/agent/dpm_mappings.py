"""From ``[dpm] physical_network_adapter_mappings`` to what NICs are created on.

An operator names adapter ports; Nova needs the HMC object a NIC is backed by,
which depends on the CPC generation. The generation is never read from the
machine type but from what the HMC says it can do:

* CPC API feature ``network-express-support`` (z17): there are no virtual
  switches; a NIC is backed by the network adapter port itself (its URI).
* Console API feature ``dpm-hipersockets-partition-link-management`` (z16
  HMC): HiperSockets NICs are managed through partition links.
* Otherwise (z13 to z16): the virtual switch of the adapter port.

The HMC's API features exist from HMC 2.16.0 on; an older HMC has none, which
is the z13-z15 answer. Every line is checked here, once, at start-up, with
errors that name the line.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import zhmcclient

from ibmvirt import contract
from ibmvirt.conf.types import NetworkAdapter

OPTION = "[dpm] physical_network_adapter_mappings"
FEATURE_NETWORK_EXPRESS = "network-express-support"
FEATURE_HS_PARTITION_LINKS = "dpm-hipersockets-partition-link-management"
#: Adapter types that can carry a physical network (RoCE and FCP cannot).
NETWORK_TYPES = ("osd", "hipersockets")
#: The adapter family of z17's Network Express adapters (OSA and RoCE in one).
NETWORK_EXPRESS_FAMILY = "network-express"

VSWITCH = "vswitch"
PARTITION_LINK = "partition_link"
ADAPTER_PORT = "adapter_port"


class MappingError(Exception):
    """A mapping line does not match the CPC; the message names the line."""


def _version(value: str | None) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in str(value or "0").split(".")[:3])
    except ValueError:
        return (0,)


@dataclass(frozen=True)
class Features:
    """What this HMC and CPC can do, detected once at start-up."""

    #: List Partitions of a CPC takes ``additional-properties`` (HMC 2.16.0).
    list_additional_properties: bool
    #: HiperSockets through partition links (console API feature, z16 HMC).
    partition_links: bool
    #: No virtual switches; NICs on adapter ports (CPC API feature, z17).
    network_express: bool
    #: NICs can carry a VLAN id (SE 2.14.0, z14 and later).
    nic_vlan: bool

    @classmethod
    def detect(cls, client: zhmcclient.Client, cpc: zhmcclient.Cpc) -> Features:
        """Ask the HMC (API features exist from HMC 2.16.0 on; none before)."""
        hmc_2_16 = _version(client.query_api_version().get("hmc-version")) >= (2, 16)
        console = client.consoles.console if hmc_2_16 else None
        return cls(
            list_additional_properties=hmc_2_16,
            partition_links=bool(
                console and console.api_feature_enabled(FEATURE_HS_PARTITION_LINKS)
            ),
            network_express=bool(hmc_2_16 and cpc.api_feature_enabled(FEATURE_NETWORK_EXPRESS)),
            nic_vlan=_version(cpc.get_property("se-version")) >= (2, 14),
        )


@dataclass(frozen=True)
class Backing:
    """What the NICs of one physical network are created on."""

    physnet: str
    line: str  # how the operator's line reads, for messages
    kind: str  # VSWITCH, PARTITION_LINK or ADAPTER_PORT
    uri: str  # of the virtual switch, partition link or adapter port
    object_id: str
    #: URIs a NIC on this backing names in its virtual-switch-uri or
    #: network-adapter-port-uri (a partition link's HiperSockets NICs may still
    #: name the adapter's virtual switch).
    nic_uris: frozenset[str] = field(default_factory=frozenset)

    @property
    def reported(self) -> dict:
        """The backing as the agent reports it to ML2 (and ML2 to Nova)."""
        if self.kind == VSWITCH:
            return contract.dpm_backing(vswitch_id=self.object_id)
        if self.kind == PARTITION_LINK:
            return contract.dpm_backing(partition_link_id=self.object_id)
        return contract.dpm_backing(adapter_port_uri=self.uri)

    def describe(self) -> str:
        """E.g. 'vswitch <object-id>' or 'adapter port <URI>', for log lines."""
        name = self.uri if self.kind == ADAPTER_PORT else self.object_id
        return f"{self.kind.replace('_', ' ')} {name}"


def resolve(
    client: zhmcclient.Client,
    cpc: zhmcclient.Cpc,
    mappings: list[NetworkAdapter],
    features: Features,
) -> list[Backing]:
    """One backing per line; MappingError naming the first bad line."""
    if not mappings:
        raise MappingError(
            f"{OPTION} is empty: map at least one physical network to an adapter port "
            "('<physnet>:<adapter object-id>[:<port>]')"
        )
    _check_duplicates(mappings)
    cpc_name = cpc.get_property("name")
    vswitches = None if features.network_express else _vswitches(cpc)
    links = _partition_links(client, cpc) if features.partition_links else None
    backings = []
    for number, mapping in enumerate(mappings, start=1):
        label = f"{OPTION} line {number} ({mapping})"
        adapter = _adapter(cpc, cpc_name, mapping, label, features)
        port_uri = f"{adapter.uri}/network-ports/{mapping.port}"
        ports = adapter.prop("network-port-uris", None) or []
        if port_uri not in ports:
            have = ", ".join(sorted(p.rsplit("/", 1)[-1] for p in ports)) or "none"
            raise MappingError(
                f"{label}: adapter {adapter.name} has no port {mapping.port} (its ports: {have})"
            )
        is_hs = adapter.get_property("type") == "hipersockets"
        if is_hs and links is not None:
            backings.append(_link_backing(links, vswitches, adapter, mapping, label))
        elif features.network_express:
            object_id = adapter.get_property("object-id")
            backings.append(
                Backing(
                    mapping.physnet,
                    str(mapping),
                    ADAPTER_PORT,
                    port_uri,
                    object_id,
                    frozenset({port_uri}),
                )
            )
        else:
            vswitch = _vswitch_of(vswitches or [], adapter.uri, mapping.port)
            if vswitch is None:
                raise MappingError(
                    f"{label}: CPC {cpc_name} has no virtual switch for port {mapping.port} of "
                    f"adapter {adapter.name}; the HMC creates one per configured OSA/HiperSockets "
                    "port: check the adapter's configuration in the HMC"
                )
            backings.append(_vswitch_backing(vswitch, mapping))
    return backings


def _check_duplicates(mappings: list[NetworkAdapter]) -> None:
    physnets: dict[str, int] = {}
    ports: dict[tuple[str, str], int] = {}
    for number, mapping in enumerate(mappings, start=1):
        label = f"{OPTION} line {number} ({mapping})"
        earlier = physnets.setdefault(mapping.physnet, number)
        if earlier != number:
            raise MappingError(
                f"{label}: physical network {mapping.physnet!r} is already mapped by line "
                f"{earlier}; map each physical network to one adapter port"
            )
        key = (mapping.adapter_id, mapping.port)
        earlier = ports.setdefault(key, number)
        if earlier != number:
            raise MappingError(
                f"{label}: port {mapping.port} of adapter {mapping.adapter_id} is already mapped "
                f"by line {earlier} ({mappings[earlier - 1].physnet}); an adapter port carries "
                "one physical network"
            )


def _adapter(
    cpc: zhmcclient.Cpc, cpc_name: str, mapping: NetworkAdapter, label: str, features: Features
) -> zhmcclient.Adapter:
    adapter = cpc.adapters.resource_object(mapping.adapter_id)
    try:
        adapter.pull_full_properties()
    except (zhmcclient.HTTPError, zhmcclient.CeasedExistence) as exc:
        if isinstance(exc, zhmcclient.CeasedExistence) or exc.http_status == 404:
            raise MappingError(
                f"{label}: CPC {cpc_name} has no adapter with object-id {mapping.adapter_id} (or "
                f"the HMC user cannot see it); list them with `zhmc adapter list {cpc_name}`"
            ) from None
        raise
    adapter_type = adapter.get_property("type")
    family = adapter.prop("adapter-family", None)
    if adapter_type in NETWORK_TYPES or (
        features.network_express and family == NETWORK_EXPRESS_FAMILY
    ):
        return adapter
    allowed = "OSA (osd) or HiperSockets"
    if features.network_express:
        allowed += " or Network Express"
    raise MappingError(
        f"{label}: adapter {adapter.name} has type {adapter_type!r} (family {family!r}); a "
        f"physical network needs an {allowed} adapter"
    )


def _vswitches(cpc: zhmcclient.Cpc) -> list[zhmcclient.VirtualSwitch]:
    return list(cpc.virtual_switches.list(full_properties=True))


def _vswitch_of(vswitches, adapter_uri: str, port: str):
    for vswitch in vswitches:
        # The vswitch 'port' is an integer, the port element-id a string
        # (networking-dpm compared the two until March 2017).
        if vswitch.get_property("backing-adapter-uri") == adapter_uri and str(
            vswitch.get_property("port")
        ) == str(port):
            return vswitch
    return None


def _vswitch_backing(vswitch: zhmcclient.VirtualSwitch, mapping: NetworkAdapter) -> Backing:
    return Backing(
        mapping.physnet,
        str(mapping),
        VSWITCH,
        vswitch.uri,
        vswitch.get_property("object-id"),
        frozenset({vswitch.uri}),
    )


def _partition_links(client: zhmcclient.Client, cpc: zhmcclient.Cpc) -> list:
    console = client.consoles.console
    return [
        link
        for link in console.partition_links.list(filter_args={"cpc-uri": cpc.uri})
        if link.get_property("type") == "hipersockets"
    ]


def _link_backing(links, vswitches, adapter, mapping: NetworkAdapter, label: str) -> Backing:
    """The partition link of a HiperSockets adapter.

    Guessed (no z16 HMC at hand, and the HMC book excerpts found do not say how
    a link names its adapter): the link with the adapter's object-id, else the
    one with its name.
    """
    adapter_id = adapter.get_property("object-id")
    match = [link for link in links if link.get_property("object-id") == adapter_id] or [
        link for link in links if link.name == adapter.name
    ]
    if not match:
        raise MappingError(
            f"{label}: HiperSockets adapter {adapter.name} has no partition link on this HMC "
            "(it manages HiperSockets through partition links); create one with `zhmc "
            "partition-link create` or map another adapter"
        )
    link = match[0]
    nic_uris = {link.uri}
    vswitch = _vswitch_of(vswitches or [], adapter.uri, mapping.port)
    if vswitch is not None:
        nic_uris.add(vswitch.uri)
    return Backing(
        mapping.physnet,
        str(mapping),
        PARTITION_LINK,
        link.uri,
        link.get_property("object-id"),
        frozenset(nic_uris),
    )


def existing(client: zhmcclient.Client, cpc: zhmcclient.Cpc, backings: list[Backing]) -> set[str]:
    """URIs of the backings that still exist: one list request per kind in use."""
    kinds = {b.kind for b in backings}
    found: set[str] = set()
    if VSWITCH in kinds:
        found |= {vs.uri for vs in cpc.virtual_switches.list()}
    if PARTITION_LINK in kinds:
        links = client.consoles.console.partition_links.list(filter_args={"cpc-uri": cpc.uri})
        found |= {link.uri for link in links}
    if ADAPTER_PORT in kinds:
        adapters = {a.uri for a in cpc.adapters.list()}
        found |= {
            b.uri
            for b in backings
            if b.kind == ADAPTER_PORT and b.uri.split("/network-ports/")[0] in adapters
        }
    return found
