"""Fibre Channel volumes mapped as vSCSI physical volumes through the VIOSes.

The storage array masks the LUN to the VIOSes' physical port WWPNs (the
connector); each VIOS discovers the hdisk with a LUA recovery job and maps it
to the LPAR, tagged with the volume id so it can be found again on detach. A
volume must be seen by at least ``[powervm] vscsi_vios_connections_required``
VIOSes.
"""

from __future__ import annotations

from oslo_log import log as logging
from pypowervm import const as pvm_const
from pypowervm import exceptions as pvm_ex
from pypowervm.tasks import hdisk as pvm_hdisk
from pypowervm.tasks import partition as pvm_par
from pypowervm.wrappers import storage as pvm_stor

from ibmvirt.powervm import exceptions as pvm_exc
from ibmvirt.powervm.volume import VolumeConnector, volume_id_of

LOG = logging.getLogger(__name__)


def _norm(wwpn: str) -> str:
    return wwpn.replace(":", "").upper()


class VSCSIFibreChannel(VolumeConnector):
    """``fibre_channel`` volumes over vSCSI."""

    live_migratable = True

    def connector_properties(self) -> dict:
        wwpns = sorted({_norm(w).lower() for w in pvm_par.get_physical_wwpns(self.adapter)})
        return {"wwpns": wwpns}

    def add_connect(self, ftsk, lpar_uuid: str, connection_info: dict) -> None:
        data = connection_info["data"]
        volume_id = volume_id_of(connection_info)
        itmap = {_norm(i): [_norm(t) for t in ts] for i, ts in data["initiator_target_map"].items()}
        lun = data["target_lun"]
        seen_on = []
        self.discovered: list[tuple[str, str]] = []  # (VIOS UUID, hdisk) found here
        for vios_w in self._vioses(pvm_const.XAG.VIO_STOR):
            initiators = [w for w in map(_norm, vios_w.get_pfc_wwpns()) if w in itmap]
            if not initiators:
                continue
            targets = sorted({t for i in initiators for t in itmap[i]})
            itls = pvm_hdisk.build_itls(initiators, targets, lun)
            status, device, udid = pvm_hdisk.discover_hdisk(self.adapter, vios_w.uuid, itls)
            if not pvm_hdisk.good_discovery(status, device):
                LOG.warning(
                    "VIOS %s does not see volume %s (status %s)", vios_w.name, volume_id, status
                )
                continue
            seen_on.append(vios_w.name)
            self.discovered.append((vios_w.uuid, device))
            pv = pvm_stor.PV.bld(self.adapter, device, udid=udid, tag=volume_id)
            self._add_map(ftsk, vios_w.uuid, lpar_uuid, pv, volume_id)
        required = self.conf.powervm.vscsi_vios_connections_required
        if len(seen_on) < required:
            raise pvm_exc.VolumeNotVisible(
                volume_id=volume_id,
                found=len(seen_on),
                required=required,
                wwpns=", ".join(sorted(itmap)),
                reason="",
            )
        LOG.info("Volume %s is visible on %s", volume_id, ", ".join(seen_on))

    def add_disconnect(self, ftsk, lpar_uuid: str | None, connection_info: dict) -> None:
        self._freed = self._add_unmap(ftsk, lpar_uuid, volume_id_of(connection_info))

    def after_disconnect(self, connection_info: dict) -> None:
        """Remove the hdisks no mapping uses any more (the array then unmasks
        the LUN); one another LPAR still maps (multi-attach) stays."""
        for vios_uuid, stgs in getattr(self, "_freed", {}).items():
            for stg in stgs:
                self._remove_hdisk(vios_uuid, stg.name)

    def undo_connect(self, connection_info: dict) -> None:
        """Forget the hdisks add_connect discovered (its mappings are removed
        with the rest of the LPAR's when a spawn is reverted)."""
        for vios_uuid, device in getattr(self, "discovered", []):
            self._remove_hdisk(vios_uuid, device)

    def _remove_hdisk(self, vios_uuid: str, device: str) -> None:
        try:
            pvm_hdisk.remove_hdisk(self.adapter, None, device, vios_uuid)
        except pvm_ex.Error as exc:
            LOG.warning("Could not remove %s from VIOS %s: %s", device, vios_uuid, exc)

    # -- live migration ---------------------------------------------------------

    def _discover_all(self, connection_info: dict) -> list[tuple[str, str, str]]:
        """(VIOS UUID, hdisk, VIOS name) of each VIOS here that sees the volume
        (a LUA recovery finds an hdisk already known too)."""
        data = connection_info["data"]
        itmap = {_norm(i): [_norm(t) for t in ts] for i, ts in data["initiator_target_map"].items()}
        found = []
        for vios_w in self._vioses():
            initiators = [w for w in map(_norm, vios_w.get_pfc_wwpns()) if w in itmap]
            if not initiators:
                continue
            targets = sorted({t for i in initiators for t in itmap[i]})
            itls = pvm_hdisk.build_itls(initiators, targets, data["target_lun"])
            status, device, _udid = pvm_hdisk.discover_hdisk(self.adapter, vios_w.uuid, itls)
            if pvm_hdisk.good_discovery(status, device):
                found.append((vios_w.uuid, device, vios_w.name))
        return found

    def pre_live_migration_at_destination(self, connection_info: dict) -> str:
        """The hdisk discovered on this host's VIOSes (NovaLink maps it on the
        VIOS that sees the same disk when the LPAR arrives)."""
        found = self._discover_all(connection_info)
        required = self.conf.powervm.vscsi_vios_connections_required
        if len(found) < required:
            raise pvm_exc.VolumeNotVisible(
                volume_id=volume_id_of(connection_info),
                found=len(found),
                required=required,
                wwpns=", ".join(sorted(connection_info["data"]["initiator_target_map"])),
                reason=" on the live migration's destination",
            )
        return ",".join(f"{name}:{device}" for _u, device, name in found)

    def rollback_live_migration_at_destination(self, connection_info: dict) -> None:
        self._remove_unmapped(connection_info)

    def post_live_migration_at_source(self, connection_info: dict) -> None:
        self._remove_unmapped(connection_info)

    def _remove_unmapped(self, connection_info: dict) -> None:
        """Remove the volume's hdisks that no mapping uses any more."""
        mapped = {
            (v.uuid, m.backing_storage.name)
            for v in pvm_par.get_active_vioses(self.adapter, xag=[pvm_const.XAG.VIO_SMAP])
            for m in v.scsi_mappings
            if m.backing_storage is not None
        }
        for vios_uuid, device, _name in self._discover_all(connection_info):
            if (vios_uuid, device) not in mapped:
                self._remove_hdisk(vios_uuid, device)
