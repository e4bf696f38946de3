"""File volumes (Cinder ``local``, ``nfs``, ``gpfs``) mapped over vSCSI by the
NovaLink partition, the only I/O server that maps files (it must host I/O:
NovaLink's SDN/"NovaLink I/O" setup).

The file is where Cinder says: ``device_path`` for ``local`` and ``gpfs``;
for ``nfs`` the volume file ``name`` under the export's path, which the
NovaLink partition must mount at that same path (nova-powervm's assumption;
the NovaLink partition does no mounting of its own here).
"""

from __future__ import annotations

import posixpath

from nova import exception
from pypowervm.wrappers import storage as pvm_stor

from ibmvirt.powervm.volume import VolumeConnector, volume_id_of


class _ManagementMapped(VolumeConnector):
    """Storage the NovaLink partition maps; nothing to discover or remove."""

    def connector_properties(self) -> dict:
        return {}

    def storage(self, connection_info: dict):
        raise NotImplementedError

    def add_connect(self, ftsk, lpar_uuid: str, connection_info: dict) -> None:
        mgmt = self._management_io()
        volume_id = volume_id_of(connection_info)
        self._add_map(ftsk, mgmt, lpar_uuid, self.storage(connection_info), volume_id)

    def add_disconnect(self, ftsk, lpar_uuid: str | None, connection_info: dict) -> None:
        self._add_unmap(ftsk, lpar_uuid, volume_id_of(connection_info))

    def _management_io(self) -> str:
        """The UUID of the NovaLink partition serving as an I/O server."""
        for vios_w in self._vioses():
            if vios_w.is_mgmt_partition:
                return vios_w.uuid
        raise exception.VolumeAttachFailed(
            volume_id="",
            reason="file and RBD volumes are mapped by the NovaLink partition, which "
            "on this host is not an I/O server (or not running with RMC)",
        )


class LocalFile(_ManagementMapped):
    """``local``: a file on the NovaLink partition."""

    def path(self, data: dict) -> str:
        return data["device_path"]

    def storage(self, connection_info: dict):
        return pvm_stor.FileIO.bld_ref(
            self.adapter,
            self.path(connection_info["data"]),
            tag=volume_id_of(connection_info),
        )


class GPFSFile(LocalFile):
    """``gpfs``: a file in a GPFS file system the NovaLink partition mounts."""


class NFSFile(LocalFile):
    """``nfs``: the volume file in an NFS export mounted at the export's path."""

    def path(self, data: dict) -> str:
        if data.get("device_path"):
            return data["device_path"]
        export = data["export"].split(":", 1)[-1]
        return posixpath.join(export, data["name"])
