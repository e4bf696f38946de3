"""Cinder volumes: one connector base class, one module per connection type.

A connector discovers the volume on the VIOSes, adds its mappings to the
operation's VIOS FeedTask, and removes them again. Which one serves a volume
follows Cinder's ``driver_volume_type`` and, for ``fibre_channel``,
``[powervm] fc_attach_strategy``:

=====================  ============  ==========================================
driver_volume_type     module        reaches the LPAR as
=====================  ============  ==========================================
fibre_channel (vscsi)  ``vscsi``     hdisk on each VIOS, vSCSI-mapped
fibre_channel (npiv)   ``npiv``      the LPAR's own virtual FC ports (vFC maps)
iscsi, iser            ``iscsi``     hdisk after an iSCSI login on each VIOS
local, nfs, gpfs       ``fileio``    file mapped by the NovaLink partition
rbd                    ``rbd``       Ceph image mapped by the NovaLink partition
=====================  ============  ==========================================

Every vSCSI mapping a connector makes carries the volume id as its storage
tag, so detach, extend and clean-up find it again without remembering
anything in memory.
"""

from __future__ import annotations

import abc
import importlib

from nova import exception
from oslo_config import cfg
from oslo_log import log as logging
from pypowervm import const as pvm_const
from pypowervm import exceptions as pvm_ex
from pypowervm import util as pvm_util
from pypowervm.tasks import partition as pvm_par
from pypowervm.tasks import scsi_mapper as pvm_map
from pypowervm.tasks import storage as pvm_tstg
from pypowervm.wrappers import logical_partition as pvm_lpar
from pypowervm.wrappers import virtual_io_server as pvm_vios

LOG = logging.getLogger(__name__)

#: driver_volume_type -> (module, class) under ibmvirt.powervm.volume.
_CONNECTORS = {
    ("fibre_channel", "vscsi"): ("vscsi", "VSCSIFibreChannel"),
    ("fibre_channel", "npiv"): ("npiv", "NPIVFibreChannel"),
    ("iscsi", None): ("iscsi", "ISCSI"),
    ("iser", None): ("iscsi", "ISCSI"),
    ("local", None): ("fileio", "LocalFile"),
    ("nfs", None): ("fileio", "NFSFile"),
    ("gpfs", None): ("fileio", "GPFSFile"),
    ("rbd", None): ("rbd", "RBD"),
}


class VolumeConnector(abc.ABC):
    """How volumes of one ``driver_volume_type`` reach an LPAR."""

    #: Cinder can grow the volume while attached: extend() shows the new size.
    supports_extend = True

    def __init__(self, host, conf: cfg.ConfigOpts, instance=None) -> None:
        self.host = host
        self.conf = conf
        self.instance = instance

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
    def add_disconnect(self, ftsk, lpar_uuid: str | None, connection_info: dict) -> None:
        """Add the removal of the volume's mappings to ``ftsk`` (fine if none).
        ``lpar_uuid`` None: the LPAR is gone; remove what it left."""

    def add_disconnect_for_delete(self, ftsk, lpar_uuid: str | None, connection_info: dict):
        """The LPAR is being deleted: remove everything of this volume (by
        default what a detach removes)."""
        self.add_disconnect(ftsk, lpar_uuid, connection_info)

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

    def reconnect_on_destination(self, ftsk, lpar_uuid: str, connection_info: dict) -> None:
        """Live migration hook: make the volume reach the migrated LPAR on this
        (destination) host. Discovery-based connectors discover and map again;
        NPIV overrides it (the fabric moves the LPAR's own ports)."""
        self.add_connect(ftsk, lpar_uuid, connection_info)

    def extend(self, connection_info: dict) -> list[str]:
        """Cinder grew the volume: every VIOS that maps it rescans the device,
        so the LPAR's mapped disk shows the new size. Returns the VIOS names."""
        volume_id = volume_id_of(connection_info)
        rescanned = []
        for vios_w in self._vioses(pvm_const.XAG.VIO_SMAP):
            udids = {
                m.backing_storage.udid
                for m in vios_w.scsi_mappings
                if m.backing_storage is not None
                and getattr(m.backing_storage, "tag", None) == volume_id
                and m.backing_storage.udid
            }
            for udid in sorted(udids):
                pvm_tstg.rescan_vstor(vios_w.uuid, udid, adapter=self.adapter)
            if udids:
                rescanned.append(vios_w.name)
        if not rescanned:
            raise exception.VolumeNotFound(volume_id=volume_id)
        return rescanned

    # -- helpers for connectors that map storage over vSCSI ----------------------

    def _vioses(self, *xags) -> list[pvm_vios.VIOS]:
        return pvm_par.get_active_vioses(self.adapter, xag=list(xags))

    def _add_map(self, ftsk, vios_uuid: str, lpar_uuid: str, storage, volume_id: str) -> None:
        """Map ``storage`` (tagged with the volume id) to the LPAR, once."""
        host_uuid = self.host.uuid

        def connect(vwrap):
            if pvm_map.find_maps(vwrap.scsi_mappings, lpar_uuid, tag_matcher(volume_id)):
                return False
            mapping = pvm_map.build_vscsi_mapping(host_uuid, vwrap, lpar_uuid, storage)
            return pvm_map.add_map(vwrap, mapping) is not None

        ftsk.wrapper_tasks[vios_uuid].add_functor_subtask(connect)

    def _add_unmap(self, ftsk, lpar_uuid: str | None, volume_id: str) -> dict[str, list]:
        """Remove the volume's mappings to the LPAR (or, ``lpar_uuid`` None,
        those whose LPAR no longer exists); returns {VIOS UUID: [storage no
        mapping uses any more]}, filled when the FeedTask runs."""
        freed: dict[str, list] = {}
        matcher = tag_matcher(volume_id)
        gone = None if lpar_uuid else self._lpar_exists_check()

        def disconnect(vwrap):
            if lpar_uuid:
                maps = pvm_map.remove_maps(vwrap, lpar_uuid, match_func=matcher)
            else:
                maps = [
                    m
                    for m in vwrap.scsi_mappings
                    if m.backing_storage is not None
                    and matcher(m.backing_storage)
                    and gone(m.client_lpar_href)
                ]
                for m in maps:
                    vwrap.scsi_mappings.remove(m)
            still = {
                m.backing_storage.name for m in vwrap.scsi_mappings if m.backing_storage is not None
            }
            freed[vwrap.uuid] = [
                m.backing_storage
                for m in maps
                if m.backing_storage is not None and m.backing_storage.name not in still
            ]
            return bool(maps)

        for wtask in ftsk.wrapper_tasks.values():
            wtask.add_functor_subtask(disconnect)
        return freed

    def _lpar_exists_check(self):
        """href -> True when it names no LPAR of this system (read once)."""
        existing = {w.uuid.upper() for w in pvm_lpar.LPAR.get(self.adapter)}

        def gone(href) -> bool:
            if not href:
                return True
            return pvm_util.get_req_path_uuid(href, preserve_case=True).upper() not in existing

        return gone


def tag_matcher(volume_id: str):
    return lambda stg: getattr(stg, "tag", None) == volume_id


def connector_class(connection_info: dict, conf: cfg.ConfigOpts) -> type[VolumeConnector]:
    kind = connection_info.get("driver_volume_type")
    strategy = conf.powervm.fc_attach_strategy if kind == "fibre_channel" else None
    try:
        module, name = _CONNECTORS[(kind, strategy)]
    except KeyError:
        raise exception.VolumeDriverNotFound(driver_type=kind) from None
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def connector_for(
    connection_info: dict, host, conf: cfg.ConfigOpts, instance=None
) -> VolumeConnector:
    return connector_class(connection_info, conf)(host, conf, instance)


def connector(host, conf: cfg.ConfigOpts, instance) -> dict:
    """Cinder's connector for this host and instance: the FC WWPNs of the
    configured strategy (the VIOS ports for vSCSI, the instance's own for
    NPIV), the multipath flag and, on a host that takes iSCSI volumes
    (``[powervm] iscsi_volumes``), the VIOSes' iSCSI initiator.

    Nova asks for the connector before it knows the volume's type, and Cinder
    exports to what the connector names: the initiator must be there from the
    first iSCSI attach on, so whether to read it is configuration, not a
    guess from the volumes seen so far. An FC-only host never reads it."""
    props: dict = {"multipath": conf.powervm.volume_use_multipath}
    fc = connector_for({"driver_volume_type": "fibre_channel"}, host, conf, instance)
    props.update(fc.connector_properties())
    if not conf.powervm.iscsi_volumes:
        return props
    try:
        props.update(
            connector_for({"driver_volume_type": "iscsi"}, host, conf).connector_properties()
        )
    except pvm_ex.Error as exc:
        # A VIOS without iSCSI support: FC still works.
        LOG.warning(
            "No iSCSI initiator name from the VIOSes (set [powervm] iscsi_volumes = False "
            "on a host without iSCSI volumes): %s",
            exc,
        )
    return props


def check(host, conf: cfg.ConfigOpts) -> None:
    """At start-up: the NPIV fabrics name ports of this host."""
    if conf.powervm.fc_attach_strategy == "npiv":
        connector_for({"driver_volume_type": "fibre_channel"}, host, conf).check()


def volume_id_of(connection_info: dict) -> str:
    data = connection_info.get("data") or {}
    return data.get("volume_id") or connection_info.get("serial") or ""
