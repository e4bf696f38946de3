"""oslo.config types for HMC object ids and adapter-port mappings.

Parsing happens when the option is read, so a malformed value fails nova-compute
at start-up with oslo.config's message naming the option and the value.
"""

from __future__ import annotations

from typing import NamedTuple

from oslo_config import types

#: HMC object-id: an RFC 4122 style UUID string (the HMC does not promise it is a UUID).
OBJECT_ID_PATTERN = r"[a-f0-9]{8}-(?:[a-f0-9]{4}-){3}[a-f0-9]{12}"


class ObjectId(types.String):
    """An HMC ``object-id``; returned in lower case as the HMC reports it."""

    def __init__(self, type_name: str = "HMC object-id") -> None:
        super().__init__(
            regex=f"^{OBJECT_ID_PATTERN}$", ignore_case=True, max_length=36, type_name=type_name
        )

    def __call__(self, value: str) -> str:
        return super().__call__(value).lower()


class AdapterPort(NamedTuple):
    """An FCP adapter port named in ``[dpm] physical_storage_adapter_mappings``."""

    adapter_id: str
    port: str


class StorageAdapterMapping(types.String):
    """``<fcp adapter object-id>:<port element-id>`` parsed into :class:`AdapterPort`."""

    def __init__(self, type_name: str = "FCP adapter port mapping") -> None:
        super().__init__(
            regex=f"^{OBJECT_ID_PATTERN}:[0-3]$", ignore_case=True, type_name=type_name
        )

    def __call__(self, value: str | AdapterPort) -> AdapterPort:  # type: ignore[override]
        if isinstance(value, AdapterPort):
            return value
        value = super().__call__(value)
        adapter_id, port = value.rsplit(":", 1)
        return AdapterPort(adapter_id.lower(), port)

    def _formatter(self, value: AdapterPort | str) -> str:
        if isinstance(value, AdapterPort):
            return f"{value.adapter_id}:{value.port}"
        return super()._formatter(value)


class NetworkAdapter(NamedTuple):
    """A line of ``[dpm] physical_network_adapter_mappings`` (DPM Neutron agent)."""

    physnet: str
    adapter_id: str
    port: str

    def __str__(self) -> str:
        return f"{self.physnet}:{self.adapter_id}:{self.port}"


#: A Neutron physical network name as the mapping line gives it: no ':' (the
#: separator), ',' or white space, at most 64 characters (Neutron's column).
_PHYSNET = r"[^:,\s]{1,64}"
#: A network port element-id: a decimal number without leading zeros.
_PORT = r"0|[1-9][0-9]{0,2}"


class NetworkAdapterMapping(types.String):
    """``<physnet>:<adapter object-id>[:<port element-id>]``, port 0 by default.

    networking-dpm's pattern accepted ``physnet:<id>:`` and ``physnet:<id>:,``
    (a character class ``[0,1]`` and an optional empty port); here the port is
    a number or absent, and nothing else.
    """

    def __init__(self, type_name: str = "physical network adapter mapping") -> None:
        super().__init__(
            regex=f"^{_PHYSNET}:{OBJECT_ID_PATTERN}(:({_PORT}))?$",
            ignore_case=True,
            type_name=type_name,
        )

    def __call__(self, value: str | NetworkAdapter) -> NetworkAdapter:  # type: ignore[override]
        if isinstance(value, NetworkAdapter):
            return value
        value = super().__call__(value.strip())
        physnet, adapter_id, *port = value.split(":")
        return NetworkAdapter(physnet, adapter_id.lower(), port[0] if port else "0")

    def _formatter(self, value: NetworkAdapter | str) -> str:
        if isinstance(value, NetworkAdapter):
            return str(value)
        return super()._formatter(value)
