"""iSCSI (and iSER) volumes: each active VIOS logs in to the target and maps
the hdisk it gets over vSCSI.

The portals, IQNs, LUNs and CHAP secrets come from Cinder's connection info;
with ``[powervm] volume_use_multipath`` each VIOS logs in over every portal
(one multipath hdisk), otherwise over the first portal that answers. The
connector's ``initiator`` is the first VIOS's iSCSI name; each VIOS logs in
with its own, so the target must accept every VIOS of the host (CHAP, or an
ACL listing them). CHAP secrets go to the VIOS in the job and are never
logged.
"""

from __future__ import annotations

from oslo_log import log as logging
from pypowervm import const as pvm_const
from pypowervm import exceptions as pvm_ex
from pypowervm.tasks import hdisk as pvm_hdisk
from pypowervm.wrappers import storage as pvm_stor

from ibmvirt.powervm import exceptions as pvm_exc
from ibmvirt.powervm.volume import VolumeConnector, volume_id_of

LOG = logging.getLogger(__name__)

#: The initiator name of each host's first VIOS (by system UUID): fixed for a
#: VIOS, read again after a restart.
_INITIATORS: dict[str, str] = {}


def _targets(data: dict) -> list[tuple[str, str, int]]:
    """(portal, IQN, LUN) of every path Cinder offers."""
    if data.get("target_portals"):
        iqns = data.get("target_iqns") or [data["target_iqn"]] * len(data["target_portals"])
        luns = data.get("target_luns") or [data.get("target_lun", 0)] * len(iqns)
        return list(zip(data["target_portals"], iqns, luns, strict=False))
    return [(data["target_portal"], data["target_iqn"], data.get("target_lun", 0))]


class ISCSI(VolumeConnector):
    """``iscsi`` and ``iser`` volumes over vSCSI."""

    def connector_properties(self) -> dict:
        initiator = _INITIATORS.get(self.host.uuid)
        if initiator is None:
            first = sorted(self._vioses(), key=lambda v: v.name)[0]
            initiator = pvm_hdisk.discover_iscsi_initiator(self.adapter, first.uuid)
            _INITIATORS[self.host.uuid] = initiator
        return {"initiator": initiator}

    def _login(self, vios_uuid: str, info: dict) -> tuple[str, str]:
        data = info["data"]
        multipath = self.conf.powervm.volume_use_multipath
        iface = "iser" if info["driver_volume_type"] == "iser" else self.conf.powervm.iscsi_iface
        auth = {
            "user": data.get("auth_username"),
            "password": data.get("auth_password"),
            "auth": data.get("auth_method"),
            "discovery_auth": data.get("discovery_auth_method"),
            "discovery_username": data.get("discovery_auth_username"),
            "discovery_password": data.get("discovery_auth_password"),
            "iface_name": iface,
        }
        paths = _targets(data)
        if multipath and len(paths) > 1:
            portals, iqns, luns = (list(p) for p in zip(*paths, strict=True))
            return pvm_hdisk.discover_iscsi(
                self.adapter,
                portals,
                iqn=iqns,
                vios_uuid=vios_uuid,
                lunid=luns,
                multipath=True,
                **auth,
            )
        failure = None
        for portal, iqn, lun in paths:
            try:
                return pvm_hdisk.discover_iscsi(
                    self.adapter,
                    portal,
                    iqn=iqn,
                    vios_uuid=vios_uuid,
                    lunid=lun,
                    multipath=multipath,
                    **auth,
                )
            except pvm_ex.Error as exc:
                failure = exc
        assert failure is not None
        raise failure

    def add_connect(self, ftsk, lpar_uuid: str, connection_info: dict) -> None:
        volume_id = volume_id_of(connection_info)
        self.discovered: list[tuple[str, str]] = []
        reasons = []
        for vios_w in self._vioses(pvm_const.XAG.VIO_STOR):
            try:
                device, udid = self._login(vios_w.uuid, connection_info)
            except pvm_ex.Error as exc:
                LOG.warning("VIOS %s cannot log in to volume %s: %s", vios_w.name, volume_id, exc)
                reasons.append(f"{vios_w.name}: {exc}")
                continue
            self.discovered.append((vios_w.uuid, device))
            pv = pvm_stor.PV.bld(self.adapter, device, udid=udid, tag=volume_id)
            self._add_map(ftsk, vios_w.uuid, lpar_uuid, pv, volume_id)
        required = self.conf.powervm.vscsi_vios_connections_required
        if len(self.discovered) < required:
            self.undo_connect(connection_info)
            raise pvm_exc.ISCSIVolumeNotVisible(
                volume_id=volume_id,
                found=len(self.discovered),
                required=required,
                portals=", ".join(p for p, _, _ in _targets(connection_info["data"])),
                initiators="of each VIOS",
                reason="; ".join(reasons),
            )

    def add_disconnect(self, ftsk, lpar_uuid: str | None, connection_info: dict) -> None:
        self._freed = self._add_unmap(ftsk, lpar_uuid, volume_id_of(connection_info))

    def after_disconnect(self, connection_info: dict) -> None:
        """Log out of the LUN on each VIOS no mapping uses it any more."""
        for vios_uuid, stgs in getattr(self, "_freed", {}).items():
            if stgs:
                self._logout(vios_uuid, connection_info)

    def undo_connect(self, connection_info: dict) -> None:
        for vios_uuid, _device in getattr(self, "discovered", []):
            self._logout(vios_uuid, connection_info)
        self.discovered = []

    def _logout(self, vios_uuid: str, info: dict) -> None:
        paths = _targets(info["data"])
        multipath = self.conf.powervm.volume_use_multipath
        iface = "iser" if info["driver_volume_type"] == "iser" else self.conf.powervm.iscsi_iface
        portals, iqns, luns = (list(p) for p in zip(*paths, strict=True))
        if not multipath:
            portals, iqns, luns = portals[0], iqns[0], luns[0]
        try:
            pvm_hdisk.remove_iscsi(
                self.adapter,
                iqns,
                vios_uuid,
                iface_name=iface,
                lun=luns,
                portal=portals,
                multipath=multipath,
            )
        except pvm_ex.Error as exc:
            LOG.warning("Could not log VIOS %s out of %s: %s", vios_uuid, iqns, exc)
