"""Fibre Channel volumes over NPIV: the LPAR gets virtual FC ports with WWPNs of
its own, and the array masks LUNs to those.

Each fabric ``X`` of ``[powervm] fabrics`` gives the LPAR ``ports_per_fabric``
virtual ports, spread over the VIOS physical ports in
``fabric_X_port_wwpns`` (pypowervm ``vfc_mapper.derive_npiv_map``). The
WWPN pairs come from NovaLink (``GetNextWWPNs``) the first time Cinder asks
for the instance's connector, before the LPAR exists, and are kept with the
physical port of each in the instance's system_metadata (one save for all
fabrics: none or all are recorded), with each fabric's state (``mapped`` or
``unmapped``). They stay for the instance's lifetime, so Cinder sees the same
WWPNs after a restart of nova-compute and after the LPAR is gone.

vFC mappings are per LPAR, not per volume: the first NPIV volume adds them,
the last one's detach removes them (and destroy always does). Adding is
idempotent (an existing mapping with the same WWPNs is kept), so an attach
interrupted after the VIOS update but before the state was saved completes on
the next try. Nothing to do on extend: the VIOS passes the fabric through and
the guest sees the LUN's new size itself.
"""

from __future__ import annotations

from nova import objects
from oslo_log import log as logging
from pypowervm import const as pvm_const
from pypowervm import util as pvm_util
from pypowervm.tasks import vfc_mapper
from taskflow import task

from ibmvirt.common import sysmeta
from ibmvirt.conf import powervm as pvm_conf
from ibmvirt.powervm import exceptions as pvm_exc
from ibmvirt.powervm.volume import VolumeConnector, volume_id_of

LOG = logging.getLogger(__name__)

MAPPED, UNMAPPED = "mapped", "unmapped"


def _port_key(fabric: str, i: int) -> str:
    return f"npiv_{fabric}_{i}"


def _state_key(fabric: str) -> str:
    return f"npiv_state_{fabric}"


def port_maps_of(instance, fabric: str) -> list[tuple[str, str]]:
    """(physical port WWPN, "virtual WWPN pair") recorded for one fabric."""
    out, i = [], 0
    meta = instance.system_metadata
    while _port_key(fabric, i) in meta:
        phys, _, pair = meta[_port_key(fabric, i)].partition(" ")
        out.append((phys, pair))
        i += 1
    return out


def fabric_state(instance, fabric: str) -> str:
    return instance.system_metadata.get(_state_key(fabric), UNMAPPED)


class NPIVFibreChannel(VolumeConnector):
    """``fibre_channel`` volumes with ``fc_attach_strategy = npiv``."""

    def fabrics(self) -> dict[str, list[str]]:
        """Fabric name -> this host's physical port WWPNs on it (checked)."""
        out = {}
        for fabric in self.conf.powervm.fabrics:
            out[fabric] = pvm_conf.fabric_port_wwpns(self.conf, fabric)
        return out

    def check(self) -> None:
        """Every fabric names at least one physical port of this host."""
        ports = {pvm_util.sanitize_wwpn_for_api(w) for w in self._physical_wwpns()}
        for fabric, wwpns in self.fabrics().items():
            if not set(wwpns) & ports:
                raise pvm_exc.NPIVFabricNotConfigured(
                    fabric=fabric, ports=", ".join(sorted(ports)) or "none"
                )

    def _physical_wwpns(self) -> list[str]:
        from pypowervm.tasks import partition as pvm_par

        return pvm_par.get_physical_wwpns(self.adapter)

    def port_maps(self) -> dict[str, list[tuple[str, str]]]:
        """The instance's port maps per fabric, made and recorded when missing."""
        fabrics = self.fabrics()
        have = {f: port_maps_of(self.instance, f) for f in fabrics}
        missing = [f for f, maps in have.items() if not maps]
        if not missing:
            return have
        count = self.conf.powervm.ports_per_fabric
        vioses = self._vioses(pvm_const.XAG.VIO_FMAP)
        updates = {}
        # One GetNextWWPNs job hands out at most 8 pairs.
        wanted = count * len(missing)
        wwpns: list[str] = []
        while len(wwpns) < 2 * wanted:
            n = min(8, wanted - len(wwpns) // 2)
            wwpns += vfc_mapper.build_wwpn_pair(self.adapter, self.host.uuid, pair_count=n)
        for idx, fabric in enumerate(missing):
            mine = wwpns[2 * count * idx : 2 * count * (idx + 1)]
            maps = vfc_mapper.derive_npiv_map(vioses, fabrics[fabric], mine)
            have[fabric] = maps
            for i, (phys, pair) in enumerate(maps):
                updates[_port_key(fabric, i)] = f"{phys} {pair}"
            updates[_state_key(fabric)] = UNMAPPED
        sysmeta.save(self.instance, updates)
        LOG.info(
            "NPIV WWPNs for fabrics %s: %s",
            ", ".join(missing),
            "; ".join(p for f in missing for _, p in have[f]),
            instance=self.instance,
        )
        return have

    def connector_properties(self) -> dict:
        """Both WWPNs of every pair (the second logs in on a live migration's
        destination, so the array masks the LUN to it too)."""
        if self.instance is None:
            return {}
        pairs = [p for maps in self.port_maps().values() for _, p in maps]
        return {"wwpns": [w.lower() for p in pairs for w in p.split()]}

    def _set_state(self, state: str, why: str) -> task.Task:
        instance, fabrics = self.instance, list(self.conf.powervm.fabrics)

        def record(wrapper_task_rets=None):
            sysmeta.save(instance, {_state_key(f): state for f in fabrics})

        return task.FunctorTask(record, name=f"npiv_{state}_{why}")

    def add_connect(self, ftsk, lpar_uuid: str, connection_info: dict) -> None:
        host_uuid = self.host.uuid
        feed = list(ftsk.wrapper_tasks.values())
        for fabric, maps in self.port_maps().items():
            for pmap in maps:
                vios_w = vfc_mapper.find_vios_for_port_map([w.wrapper for w in feed], pmap)
                if vios_w is None:
                    raise pvm_exc.NPIVFabricNotConfigured(fabric=fabric, ports=pmap[0])

                def connect(vwrap, pmap=pmap):
                    return vfc_mapper.add_map(vwrap, host_uuid, lpar_uuid, pmap) is not None

                ftsk.wrapper_tasks[vios_w.uuid].add_functor_subtask(connect)
        ftsk.add_post_execute(self._set_state(MAPPED, volume_id_of(connection_info)))

    def reconnect_on_destination(self, ftsk, lpar_uuid: str, connection_info: dict) -> None:
        """A live-migrated LPAR brings its vFC client adapters; the destination
        VIOS mappings are the migration's (pypowervm
        ``build_migration_mappings``), so only the state is recorded here."""
        ftsk.add_post_execute(self._set_state(MAPPED, volume_id_of(connection_info)))

    def _other_npiv_volumes(self, volume_id: str) -> list[str]:
        bdms = objects.BlockDeviceMappingList.get_by_instance_uuid(
            self.instance._context, self.instance.uuid
        )
        return [
            b.volume_id
            for b in bdms
            if b.is_volume
            and b.volume_id != volume_id
            and '"fibre_channel"' in (b.connection_info or "")
        ]

    def add_disconnect(self, ftsk, lpar_uuid: str | None, connection_info: dict) -> None:
        """Remove the LPAR's vFC mappings when no other NPIV volume uses them;
        with the LPAR gone, those with the instance's WWPNs."""
        volume_id = volume_id_of(connection_info)
        if lpar_uuid is not None and self._other_npiv_volumes(volume_id):
            LOG.info(
                "vFC mappings kept for the instance's other NPIV volumes",
                instance=self.instance,
            )
            return
        self.add_remove_all(ftsk, lpar_uuid, volume_id)

    def add_disconnect_for_delete(self, ftsk, lpar_uuid: str | None, connection_info: dict):
        self.add_remove_all(ftsk, lpar_uuid, volume_id_of(connection_info))

    def add_remove_all(self, ftsk, lpar_uuid: str | None, why: str) -> None:
        """Remove every vFC mapping of the instance's port maps."""
        maps = [m for ms in self.port_maps_recorded().values() for m in ms]
        wwpn_sets = [{pvm_util.sanitize_wwpn_for_api(w) for w in p.split()} for _, p in maps]

        def disconnect(vwrap):
            gone = [
                m
                for m in vwrap.vfc_mappings
                if m.client_adapter is not None and set(m.client_adapter.wwpns or []) in wwpn_sets
            ]
            if lpar_uuid is not None:
                gone += [
                    m for m in vfc_mapper.find_maps(vwrap.vfc_mappings, lpar_uuid) if m not in gone
                ]
            for m in gone:
                vwrap.vfc_mappings.remove(m)
            return bool(gone)

        for wtask in ftsk.wrapper_tasks.values():
            wtask.add_functor_subtask(disconnect)
        if maps:
            ftsk.add_post_execute(self._set_state(UNMAPPED, why))

    def port_maps_recorded(self) -> dict[str, list[tuple[str, str]]]:
        return {f: port_maps_of(self.instance, f) for f in self.conf.powervm.fabrics}

    def extend(self, connection_info: dict) -> list[str]:
        """Nothing on the VIOSes: the LPAR's own ports see the grown LUN."""
        return []
