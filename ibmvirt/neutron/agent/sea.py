"""``ibmvirt-powervm-sea-agent``: VLANs of pvm_sea ports on the VIOS Shared
Ethernet Adapters.

Nova's PowerVM driver creates a client adapter (CNA) on the port's VLAN on the
SEA's virtual switch; this agent sees it (event feed), puts the VLAN on the
SEA that ``[AGENT] bridge_mappings`` gives the port's physical network
(pypowervm's network bridger: a non-primary trunk adapter with room, or a new
one) and reports the port up. A heal pass re-adds VLANs that went missing and,
with ``automated_powervm_vlan_cleanup``, removes at most 3 VLANs no adapter
uses any more, never those of the primary trunk adapter.
"""

from __future__ import annotations

import threading

from neutron_lib import constants as n_const
from oslo_log import log as logging
from pypowervm import exceptions as pvm_ex
from pypowervm import util as pvm_util
from pypowervm.tasks import network_bridger as net_br
from pypowervm.wrappers import logical_partition as pvm_lpar
from pypowervm.wrappers import managed_system as pvm_ms
from pypowervm.wrappers import network as pvm_net
from pypowervm.wrappers import virtual_io_server as pvm_vios

from ibmvirt import contract
from ibmvirt.neutron.agent import base as agent_base
from ibmvirt.neutron.agent import powervm
from ibmvirt.neutron.agent.devices import Device

LOG = logging.getLogger(__name__)

#: The physical network of an agent given no mapping: its only SEA serves
#: every physical network (the pvm_sea mechanism driver reads it so).
DEFAULT_PHYSNET = "default"
#: VLANs removed per heal pass (each is a SEA update, about 2 s on a real VIOS:
#: more would hold up plugging new ports).
MAX_REMOVALS_PER_PASS = 3
_OPTION = "[AGENT] bridge_mappings"


def parse_bridge_mappings(text: str) -> list[tuple[str, str, str]]:
    """``physnet:SEA-device:VIOS-name,...`` as (physnet, device, VIOS) triples."""
    entries, seen = [], set()
    for raw in (text or "").split(","):
        item = raw.strip()
        if not item:
            continue
        parts = [p.strip() for p in item.split(":")]
        if len(parts) != 3 or not all(parts):
            raise agent_base.AgentStartupError(
                f"{_OPTION}: {item!r} is not <physnet>:<SEA device>:<VIOS name> "
                "(e.g. physnet1:ent5:vios1)"
            )
        if parts[0] in seen:
            raise agent_base.AgentStartupError(
                f"{_OPTION} maps physical network {parts[0]!r} twice; give each one SEA"
            )
        seen.add(parts[0])
        entries.append(tuple(parts))
    return entries


def resolve_bridge_mappings(text: str, bridges, vios_names: dict[str, str]) -> dict[str, str]:
    """{physnet: NetBridge UUID} for the option, against the host's SEAs
    (``vios_names``: VIOS UUID, upper-case -> name)."""
    seas = [
        (nb, sea.dev_name, vios_names.get(pvm_util.get_req_path_uuid(sea.vio_uri).upper(), "?"))
        for nb in bridges
        for sea in nb.seas
    ]
    listed = ", ".join(f"{dev} on {vios}" for _nb, dev, vios in seas) or "none"
    if not bridges:
        raise agent_base.AgentStartupError(
            "this host has no Shared Ethernet Adapter (NetworkBridge): create one on a VIOS "
            "for the agent to bridge VLANs through, or do not run this agent here"
        )
    entries = parse_bridge_mappings(text)
    if not entries:
        if len(bridges) > 1:
            _nb, dev, vios = seas[0]
            raise agent_base.AgentStartupError(
                f"{_OPTION} is empty but this host has {len(bridges)} Shared Ethernet "
                f"Adapters ({listed}): map each physical network to one, e.g. "
                f"bridge_mappings = physnet1:{dev}:{vios}"
            )
        return {DEFAULT_PHYSNET: bridges[0].uuid}
    mappings = {}
    for physnet, dev, vios in entries:
        if vios not in vios_names.values():
            raise agent_base.AgentStartupError(
                f"{_OPTION}: {physnet}:{dev}:{vios}: this host has no VIOS named {vios!r} "
                f"(VIOSes: {', '.join(sorted(vios_names.values())) or 'none'})"
            )
        nb = next((nb for nb, d, v in seas if d == dev and v == vios), None)
        if nb is None:
            raise agent_base.AgentStartupError(
                f"{_OPTION}: {physnet}:{dev}:{vios}: VIOS {vios} has no Shared Ethernet "
                f"Adapter {dev!r} (this host's SEAs: {listed})"
            )
        shared = next((p for p, u in mappings.items() if u == nb.uuid), None)
        if shared is not None:
            raise agent_base.AgentStartupError(
                f"{_OPTION}: {physnet}:{dev}:{vios}: SEA {dev} on {vios} already bridges "
                f"physical network {shared!r}; two physical networks on one SEA would be "
                "one layer-2 domain (their untagged traffic meets on its PVID)"
            )
        mappings[physnet] = nb.uuid
    return mappings


class SEAAgentManager(powervm.PowerVMAgentManager):
    vif_type = contract.VIF_TYPE_PVM_SEA
    adapter_kind = pvm_net.CNA.schema_type
    agent_id_prefix = "sea-agent"

    def setup(self) -> None:
        bridges = self._bridges()
        vioses = {v.uuid.upper(): v.name for v in pvm_vios.VIOS.get(self.adapter)}
        #: {physnet: NetBridge UUID}
        self.bridge_mappings = resolve_bridge_mappings(
            self.conf.AGENT.bridge_mappings, bridges, vioses
        )
        mapped = set(self.bridge_mappings.values())
        self._lock = threading.Lock()
        #: VLANs known to be on each mapped NetBridge: a plug on one costs no
        #: request. Re-read at each heal pass (a VLAN removed behind the agent's
        #: back is back on the SEA after the next one).
        self._present = {nb.uuid: set(nb.list_vlans()) for nb in bridges if nb.uuid in mapped}
        #: (NetBridge, VLAN) plugged since the last listing began: clean-up keeps them.
        self._recent: set[tuple[str, int]] = set()
        self._vswitches: dict[int, str] = {}
        self._refresh_vswitches()
        self._excluded_switches = {
            contract.PVM_MGMT_VSWITCH,
            self.conf.powervm.pvm_vswitch_for_novalink_io,
        }
        by_uuid = {nb.uuid: nb for nb in bridges}
        #: {NetBridge UUID: (virtual switch id, PVID)}: what a port's adapter
        #: must be on for that SEA to bridge it.
        self._bridged = {u: (by_uuid[u].vswitch_id, by_uuid[u].pvid) for u in mapped}
        self.set_configuration(contract.AGENT_CONF_BRIDGE_MAPPINGS, dict(self.bridge_mappings))
        self.set_configuration(
            contract.AGENT_CONF_SEA_BRIDGES,
            {
                physnet: {
                    contract.SEA_BRIDGE_VSWITCH: self._vswitches.get(self._bridged[u][0]),
                    contract.SEA_BRIDGE_PVID: self._bridged[u][1],
                }
                for physnet, u in self.bridge_mappings.items()
            },
        )
        LOG.info("Bridge mappings: %s", self.bridge_mappings)

    def _bridges(self) -> list[pvm_net.NetBridge]:
        return pvm_net.NetBridge.get(
            self.adapter, parent_type=pvm_ms.System, parent_uuid=self.host_uuid
        )

    # -- adapters ---------------------------------------------------------------------
    def before_listing(self) -> None:
        self._refresh_vswitches()
        with self._lock:
            self._recent.clear()

    def _refresh_vswitches(self) -> None:
        switches = pvm_net.VSwitch.get(
            self.adapter, parent_type=pvm_ms.System, parent_uuid=self.host_uuid
        )
        self._vswitches = {s.switch_id: s.name for s in switches}

    def list_adapters(self, lpar_uuid: str) -> list:
        return pvm_net.CNA.get(self.adapter, parent_type=pvm_lpar.LPAR, parent_uuid=lpar_uuid)

    def read_adapter(self, lpar_uuid: str, uuid: str):
        return pvm_net.CNA.get(
            self.adapter, uuid=uuid, parent_type=pvm_lpar.LPAR, parent_uuid=lpar_uuid
        )

    def device_of(self, lpar_uuid: str, cna) -> Device | None:
        if cna.vswitch_id not in self._vswitches:
            self._refresh_vswitches()  # a switch created since the last listing
        if self._vswitches.get(cna.vswitch_id) in self._excluded_switches:
            return None
        return Device(
            powervm.norm_mac(cna.mac),
            lpar_uuid,
            cna.uuid.upper(),
            cna.vswitch_id,
            (cna.pvid, *cna.tagged_vlans),
        )

    # -- plugging ---------------------------------------------------------------------------
    def bridge_for(self, physnet: str | None) -> str | None:
        return self.bridge_mappings.get(physnet) or self.bridge_mappings.get(DEFAULT_PHYSNET)

    def plug_interface(self, network_id, network_segment, device, device_owner):
        nb_uuid = self.bridge_for(network_segment.physical_network)
        if nb_uuid is None:
            LOG.warning(
                "Port %s: physical network %s is not in %s %s",
                device,
                network_segment.physical_network,
                _OPTION,
                self.bridge_mappings,
            )
            return False
        if network_segment.network_type not in (n_const.TYPE_FLAT, n_const.TYPE_VLAN):
            LOG.warning(
                "Port %s: %s networks cannot be bridged by a SEA",
                device,
                network_segment.network_type,
            )
            return False
        switch_id, pvid = self._bridged[nb_uuid]
        flat = network_segment.network_type == n_const.TYPE_FLAT
        vlan = pvid if flat else int(network_segment.segmentation_id)
        if not self._adapter_is_bridged(device, nb_uuid, switch_id, vlan):
            return False
        if flat:
            return True  # the SEA's untagged PVID: nothing to add
        with self._lock:
            if vlan in self._present[nb_uuid]:
                self._recent.add((nb_uuid, vlan))
                return True
        try:
            net_br.ensure_vlan_on_nb(self.adapter, self.host_uuid, nb_uuid, vlan)
        except pvm_ex.Error as exc:
            LOG.warning("Port %s: cannot put VLAN %d on SEA %s: %s", device, vlan, nb_uuid, exc)
            self.retry_plug(device)
            return False
        with self._lock:
            self._present[nb_uuid].add(vlan)
            self._recent.add((nb_uuid, vlan))
        LOG.info("Port %s: VLAN %d is on SEA %s", device, vlan, nb_uuid)
        return True

    def _adapter_is_bridged(self, mac: str, nb_uuid: str, switch_id: int, vlan: int) -> bool:
        """Whether the port's client adapter is where the SEA bridges it: on
        the SEA's virtual switch with the port's VLAN as its PVID. Anything else
        (a Nova that ignored the binding, an adapter changed by hand) would be
        ACTIVE in Neutron and carry no traffic: it stays down."""
        found = self.devices.get(mac)
        if found is None:
            return False  # gone since the loop listed it
        if found.vswitch_id == switch_id and found.vlans[:1] == (vlan,):
            return True
        LOG.warning(
            "Port %s: its adapter is on virtual switch %s with PVID %s, but SEA %s bridges "
            "VLAN %d on virtual switch %s; the port stays down until Nova plugs it there",
            mac,
            self._vswitches.get(found.vswitch_id, found.vswitch_id),
            found.vlans[0] if found.vlans else None,
            nb_uuid,
            vlan,
            self._vswitches.get(switch_id, switch_id),
        )
        return False

    # -- healing -----------------------------------------------------------------------------
    def after_heal(self) -> None:
        mapped = set(self.bridge_mappings.values())
        bridges = [nb for nb in self._bridges() if nb.uuid in mapped]
        with self._lock:
            for nb in bridges:
                self._present[nb.uuid] = set(nb.list_vlans())
        if self.conf.AGENT.automated_powervm_vlan_cleanup:
            self._remove_unused_vlans(bridges)

    def _vlans_in_use(self) -> dict[int | None, set[int]]:
        """VLANs of every adapter but the SEAs' trunks, by virtual switch: client
        LPARs (the device set, just listed), the NovaLink partition, the VIOSes."""
        in_use: dict[int | None, set[int]] = {}
        cnas = []
        for lpar_uuid in self.excluded_lpars:
            cnas += self.list_adapters(lpar_uuid)
        for vios in pvm_vios.VIOS.get(self.adapter):
            cnas += [
                c
                for c in pvm_net.CNA.get(
                    self.adapter, parent_type=pvm_vios.VIOS, parent_uuid=vios.uuid
                )
                if not c.is_trunk
            ]
        for switch, vlans in [(d.vswitch_id, d.vlans) for d in self.devices.all()] + [
            (c.vswitch_id, (c.pvid, *c.tagged_vlans)) for c in cnas
        ]:
            in_use.setdefault(switch, set()).update(vlans)
        return in_use

    def _remove_unused_vlans(self, bridges) -> None:
        in_use = self._vlans_in_use()
        removed = 0
        for nb in bridges:
            primary = nb.seas[0].primary_adpt
            keep = in_use.get(nb.vswitch_id, set()) | {primary.pvid, *primary.tagged_vlans}
            for vlan in sorted(set(nb.list_vlans(pvid=False)) - keep):
                with self._lock:
                    if (nb.uuid, vlan) in self._recent:
                        continue  # a port was plugged on it meanwhile
                if removed >= MAX_REMOVALS_PER_PASS:
                    LOG.info(
                        "VLAN %d on SEA %s is unused; left for the next heal pass", vlan, nb.uuid
                    )
                    continue
                LOG.warning("Removing VLAN %d from SEA %s: no adapter uses it", vlan, nb.uuid)
                net_br.remove_vlan_from_nb(self.adapter, self.host_uuid, nb.uuid, vlan)
                removed += 1
                with self._lock:
                    self._present[nb.uuid].discard(vlan)
