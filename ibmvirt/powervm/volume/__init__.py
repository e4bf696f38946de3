"""Cinder volumes: one connector interface, one module per connection type.

A connector discovers the volume on the VIOSes, adds its mappings to the
operation's VIOS FeedTask, and removes them again. ``fibre_channel`` over
vSCSI (``vscsi``) is the default; the storage-breadth work adds NPIV, iSCSI,
file and RBD connectors beside it.
"""

from __future__ import annotations

import abc

from nova import exception
from oslo_config import cfg


class VolumeConnector(abc.ABC):
    """How volumes of one ``driver_volume_type`` reach an LPAR."""

    def __init__(self, host, conf: cfg.ConfigOpts) -> None:
        self.host = host
        self.conf = conf

    @property
    def adapter(self):
        return self.host.adapter

    @abc.abstractmethod
    def connector_properties(self) -> dict:
        """What Cinder needs to export volumes to this host (part of the connector)."""

    @abc.abstractmethod
    def add_connect(self, ftsk, lpar_uuid: str, connection_info: dict) -> None:
        """Discover the volume and add its mappings to ``ftsk``."""

    @abc.abstractmethod
    def add_disconnect(self, ftsk, lpar_uuid: str, connection_info: dict) -> None:
        """Add the removal of the volume's mappings to ``ftsk`` (fine if none)."""

    def after_disconnect(self, connection_info: dict) -> None:  # noqa: B027  (optional hook)
        """Clean-up once the FeedTask has removed the mappings (device removal)."""

    def undo_connect(self, connection_info: dict) -> None:  # noqa: B027  (optional hook)
        """Undo what add_connect did outside the FeedTask (discovered devices)."""

    # -- live migration ---------------------------------------------------------
    # NovaLink's Migrate job moves the LPAR's mappings itself; a connector only
    # makes the volume reachable on the destination beforehand and forgets it
    # on the source afterwards. vSCSI discovers the hdisk on the destination
    # VIOSes; NPIV needs nothing on either side (the client adapters keep their
    # WWPNs, which the fabric zoning follows); iSCSI logs the destination
    # VIOSes in to the target. A connector that cannot move leaves
    # ``live_migratable`` False and the move is refused before it starts.

    #: Whether volumes of this type can follow an LPAR in a live migration.
    live_migratable: bool = False

    def pre_live_migration_at_destination(self, connection_info: dict) -> str:
        """On the destination: make the volume reachable without mapping it;
        returns what was prepared (a note for the logs and the migrate data)."""
        raise NotImplementedError(type(self).__name__)

    def rollback_live_migration_at_destination(self, connection_info: dict) -> None:  # noqa: B027
        """On the destination: undo pre_live_migration_at_destination (fine if
        nothing was prepared)."""

    def post_live_migration_at_source(self, connection_info: dict) -> None:  # noqa: B027
        """On the source, after the LPAR left: forget the volume's devices."""


def connector_for(connection_info: dict, host, conf: cfg.ConfigOpts) -> VolumeConnector:
    kind = connection_info.get("driver_volume_type")
    if kind == "fibre_channel":
        from ibmvirt.powervm.volume import vscsi

        return vscsi.VSCSIFibreChannel(host, conf)
    raise exception.VolumeDriverNotFound(driver_type=kind)


def volume_id_of(connection_info: dict) -> str:
    data = connection_info.get("data") or {}
    return data.get("volume_id") or connection_info.get("serial") or ""
