"""Ceph RBD volumes mapped over vSCSI by the NovaLink partition (which must
host I/O and reach the Ceph cluster); the image is checked first with the
``RBDExists`` job so a missing one fails the attach with its name."""

from __future__ import annotations

from nova import exception
from pypowervm.tasks import hdisk as pvm_hdisk
from pypowervm.wrappers import storage as pvm_stor

from ibmvirt.powervm.volume import volume_id_of
from ibmvirt.powervm.volume.fileio import _ManagementMapped


class RBD(_ManagementMapped):
    """``rbd``: ``pool/image`` from Cinder, as ``[powervm] rbd_user`` or Cinder's user."""

    def storage(self, connection_info: dict):
        data = connection_info["data"]
        user = self.conf.powervm.rbd_user or data.get("auth_username") or None
        return pvm_stor.RBD.bld_ref(
            self.adapter, data["name"], tag=volume_id_of(connection_info), user=user
        )

    def add_connect(self, ftsk, lpar_uuid: str, connection_info: dict) -> None:
        name = connection_info["data"]["name"]
        if not pvm_hdisk.rbd_exists(self.adapter, self._management_io(), name):
            raise exception.VolumeAttachFailed(
                volume_id=volume_id_of(connection_info),
                reason=f"the NovaLink partition finds no RBD image {name} in the Ceph cluster",
            )
        super().add_connect(ftsk, lpar_uuid, connection_info)
