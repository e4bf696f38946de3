"""The PowerVM driver inside real Nova, against the NovaLink emulator.

What Nova needs from outside the compute host, played as close to the real
services as the PowerVM flows require:

* ``GlanceImages``: Glance that streams image data in chunks, as the real
  image API does, with ppc64le raw images whose bytes tests can find again
  on the emulated disks.
* ``PowerVMNeutron``: Neutron with the PowerVM SEA mechanism driver and agent.
  Ports bind as ``pvm_sea`` with their VLAN in ``binding:vif_details`` and stay
  DOWN until an adapter with the port's MAC appears on the emulated host;
  then the port goes ACTIVE and Nova receives ``network-vif-plugged``. Ports
  named in ``vif_types`` as ``ovs`` bind as the OVS mechanism driver does and
  go up when the NovaLink partition has their tap (a trunk adapter with the
  port's device name and iface-id), as the OVS agent on NovaLink sees it.
* Cinder is :class:`ibmvirt.sandbox.fcarray.FibreChannelArray`.
* ``PowerVMComputeTestBase``: the harness bases with a NovaLink emulator per
  test and ``[powervm]`` options pointing at it (local file logon, as on a
  NovaLink partition). Every compute host a test starts gets its own emulated
  managed system (``pvm-<host>``); the hosts are emulator peers, so they share
  the inventory's Shared Storage Pool as the hosts of one SSP cluster do.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import tempfile
import time
import urllib.request

import fixtures
import nova.tests.functional  # noqa: F401  (selects Nova's concurrency backend first)
from nova import conf as nova_conf
from nova.tests import fixtures as nova_fixtures
from oslo_log import log as logging

import ibmvirt.conf  # noqa: F401  (registers [powervm])
from ibmvirt import contract
from ibmvirt.emulators.novalink import app
from ibmvirt.sandbox import harness
from ibmvirt.sandbox.fcarray import FibreChannelArray
from ibmvirt.sandbox.neutron import AgentNeutron

LOG = logging.getLogger(__name__)

#: The emulator inventory's volume FC discovery makes appear (small.yaml).
IMAGE_ID = "5c1a0e6d-4ab4-4d0c-9a2f-6c5d3a1e7b01"
IMAGE_BYTES = hashlib.sha256(b"ibmvirt ppc64le image").digest() * 4096  # 128 KiB
#: The VLAN Neutron gives the sandbox network's ports.
NETWORK_VLAN = 2001


class GlanceImages(nova_fixtures.GlanceFixture):
    """Glance with a ppc64le raw image whose data is streamed like the real API."""

    def setUp(self):
        super().setUp()
        image = {
            "id": IMAGE_ID,
            "name": "rhel-ppc64le",
            "status": "active",
            "container_format": "bare",
            "disk_format": "raw",
            "size": len(IMAGE_BYTES),
            "min_ram": 0,
            "min_disk": 0,
            "visibility": "public",
            "properties": {"architecture": "ppc64le"},
        }
        self.create(None, image, data=_Bytes(IMAGE_BYTES))

    def download(self, context, image_id, data=None, dst_path=None, trusted_certs=None):
        if data is not None or dst_path is not None:
            return super().download(context, image_id, data, dst_path, trusted_certs)
        self.show(context, image_id)
        blob = self._imagedata.get(image_id, b"")
        return iter([blob[i : i + 65536] for i in range(0, len(blob), 65536)])

    def update(self, context, image_id, metadata, data=None, purge_props=False):
        """Keep uploaded data (Nova's fixture drops it), read in chunks as glanceclient does."""
        image = super().update(context, image_id, metadata, data=None, purge_props=purge_props)
        if data is not None:
            chunks = []
            while chunk := data.read(65536):
                chunks.append(chunk)
            self._imagedata[image_id] = b"".join(chunks)
            image["size"] = len(self._imagedata[image_id])
        return image


class _Bytes:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def read(self) -> bytes:
        return self._data


class PowerVMNeutron(AgentNeutron):
    """Neutron with the PowerVM SEA driver (and OVS on NovaLink): pvm_sea ports
    go ACTIVE when their adapter shows up on the emulated host, ovs ports when
    NovaLink has their tap, and Nova is told network-vif-plugged."""

    agent_name = "pvm-sea-agent"

    def __init__(self, test, servers):
        super().__init__(test)
        #: () -> the emulated hosts (a test may start more).
        self.servers = servers
        #: binding:vif_type by port id; ports not named bind as pvm_sea
        #: (vnic_type direct ones as pvm_sriov).
        self.vif_types: dict[str, str] = {}
        #: pvm_sriov binding:vif_details by port id, instead of what the pvm_sriov
        #: mechanism driver would bind (a test plays a binding the host cannot serve).
        self.sriov_details: dict[str, dict] = {}

    def bind(self, port: dict) -> None:
        if port.get("binding:vnic_type") == "direct":
            port["binding:vif_type"] = contract.VIF_TYPE_PVM_SRIOV
            port["binding:vif_details"] = self.sriov_details.get(port["id"]) or (
                self._sriov_binding(port)
            )
        elif self.vif_types.get(port["id"]) == contract.VIF_TYPE_OVS:
            port["binding:vif_type"] = contract.VIF_TYPE_OVS
            port["binding:vif_details"] = {"port_filter": False, "ovs_hybrid_plug": False}
        else:
            port["binding:vif_type"] = contract.VIF_TYPE_PVM_SEA
            # What the pvm_sea mechanism driver binds on the sandbox's VLAN network.
            port["binding:vif_details"] = contract.pvm_sea_vif_details(NETWORK_VLAN)

    def _sriov_binding(self, port: dict) -> dict:
        """What the pvm_sriov mechanism driver binds with the SR-IOV agent's
        mappings of the first host (its physical port location codes by label)."""
        net = self._networks[port["network_id"]]
        physnet = net.get("provider:physical_network") or "default"
        profile = port.get("binding:profile") or {}
        locs = []
        for server in self.servers()[:1]:
            locs = NovaLinkView(server).sriov_ports_labelled(physnet)
        vlan = net.get("provider:segmentation_id")
        return contract.pvm_sriov_vif_details(
            physnet,
            locs,
            vlan,
            int(profile.get(contract.SRIOV_PROFILE_REDUNDANCY, 1)),
            profile.get(contract.SRIOV_PROFILE_CAPACITY),
            profile.get(contract.SRIOV_PROFILE_MAX_CAPACITY),
        )

    def agent_sees(self, ports: list[dict]) -> dict[str, frozenset[str]]:
        """The SEA agent sees an adapter with the port's MAC (the SR-IOV agent
        a vNIC); the OVS agent a NovaLink tap with the port's device name and
        iface-id (on any host: each host runs its agents). By port id, the
        UUIDs of the adapters seen."""
        adapters: dict[str, set[str]] = {}
        taps: dict[str, list[tuple[str, str]]] = {}
        for server in self.servers():
            view = NovaLinkView(server)
            for mac, uuids in view.client_adapter_ids().items():
                adapters.setdefault(mac, set()).update(uuids)
            for t in view.trunks():
                taps.setdefault(t["dev"], []).append((t["uuid"], t["ext_ids"] or ""))
        seen = {}
        for port in ports:
            if self.vif_types.get(port["id"]) == contract.VIF_TYPE_OVS:
                ids = {
                    uuid
                    for uuid, ext_ids in taps.get(ovs_devname(port["id"]), [])
                    if f"iface-id={port['id']}" in ext_ids
                }
            else:
                ids = adapters.get(contract.pvm_mac(port["mac_address"]), set())
            if ids:
                seen[port["id"]] = frozenset(ids)
        return seen


#: Portals of the emulated iSCSI array, and the CHAP user it gives each volume.
ISCSI_PORTALS = ("192.0.2.10:3260", "192.0.2.11:3260")
ISCSI_CHAP_USER = "cinder-chap"


class PowerVMFCArray(FibreChannelArray):
    """The emulated SAN behind Cinder. Fibre Channel (the default): a LUN
    masked to a VIOS's physical port WWPNs becomes discoverable on that VIOS
    (LUA recovery finds it), the same disk on every VIOS that sees it
    (multipath), on whichever host the VIOS is; masked to an LPAR's NPIV
    WWPNs, no VIOS sees it. ``protocol`` switches new attachments to
    ``iscsi`` (a target with CHAP on two portals), ``local``/``nfs``/``gpfs``
    (a file on the NovaLink partition) or ``rbd`` (a Ceph image). ``grow``
    is Cinder extending a volume (the VIOSes see it after a rescan)."""

    def __init__(self, test, servers):
        super().__init__(test)
        #: () -> the emulated hosts (a test may start more).
        self.servers = servers
        self.protocol = "fibre_channel"
        #: Volume id -> GB, and the protocol each attached volume uses.
        self.sizes: dict[str, int] = {}
        self.protocols: dict[str, str] = {}
        #: iSCSI discovery CHAP (user, secret) the targets require; None: none.
        self.discovery_chap: tuple[str, str] | None = None
        #: The discovery secret the connection info gives (None: the right one).
        self.discovery_secret_sent: str | None = None
        #: Every connector Nova gave Cinder for an attachment, in order.
        self.connectors: list[dict] = []

    def fake_get(self, context, volume_id, microversion=None):
        volume = super().fake_get(context, volume_id, microversion)
        volume["size"] = self.sizes.get(volume_id, volume["size"])
        return volume

    def chap_secret(self, volume_id: str) -> str:
        return hashlib.sha256(f"chap/{volume_id}".encode()).hexdigest()[:16]

    def _export(self, volume_id: str, attachment_id: str, connector: dict) -> dict:
        info = super()._export(volume_id, attachment_id, connector)
        for server in self.servers():
            self._zone(server, info["data"], connector)
        return info

    def fake_attachment_update(self, context, attachment_id, connector, mountpoint=None):
        protocol = self.protocol
        ref = super().fake_attachment_update(context, attachment_id, connector, mountpoint)
        data = ref["connection_info"]["data"]
        volume_id = data["volume_id"]
        protocol = self.protocols.setdefault(volume_id, protocol)
        self.sizes.setdefault(volume_id, 1)
        self.connectors.append(copy.deepcopy(connector))
        if protocol in ("iscsi", "iser") and not connector.get("initiator"):
            # As Cinder's iSCSI drivers refuse it (the target's ACL names initiators).
            from nova import exception as nova_exc

            raise nova_exc.InvalidInput(
                reason="Connector doesn't have required information: initiator"
            )
        if protocol == "fibre_channel":
            return ref  # masked and zoned by _export
        info = {"driver_volume_type": protocol, "data": self._export_protocol(protocol, data)}
        self._connection_info[attachment_id] = info
        ref["connection_info"] = copy.deepcopy(info)
        return ref

    def _export_protocol(self, protocol: str, fc_data: dict) -> dict:
        """The connection info of a non-FC attachment (the target or file made
        on the emulated hosts), from the FC export's volume and LUN."""
        volume_id = fc_data["volume_id"]
        base = {"volume_id": volume_id, "attachment_id": fc_data["attachment_id"]}
        size = self.sizes[volume_id]
        if protocol == "iscsi":
            iqn = f"iqn.2026-01.com.example.array:volume-{volume_id}"
            lun = fc_data["target_lun"]
            for server in self.servers():
                server.emu.control_routes["/iscsi-targets"](
                    {
                        "iqn": iqn,
                        "portals": list(ISCSI_PORTALS),
                        "lun": lun,
                        "size_gb": size,
                        "chap_user": ISCSI_CHAP_USER,
                        "chap_password": self.chap_secret(volume_id),
                        "udid_seed": f"cinder-volume-{volume_id}",
                        **(
                            {
                                "discovery_user": self.discovery_chap[0],
                                "discovery_password": self.discovery_chap[1],
                            }
                            if self.discovery_chap
                            else {}
                        ),
                    }
                )
            discovery = (
                {
                    "discovery_auth_method": "CHAP",
                    "discovery_auth_username": self.discovery_chap[0],
                    "discovery_auth_password": self.discovery_secret_sent or self.discovery_chap[1],
                }
                if self.discovery_chap
                else {}
            )
            return {
                **discovery,
                **base,
                "target_discovered": False,
                "target_portal": ISCSI_PORTALS[0],
                "target_iqn": iqn,
                "target_lun": lun,
                "target_portals": list(ISCSI_PORTALS),
                "target_iqns": [iqn, iqn],
                "target_luns": [lun, lun],
                "auth_method": "CHAP",
                "auth_username": ISCSI_CHAP_USER,
                "auth_password": self.chap_secret(volume_id),
            }
        if protocol == "rbd":
            name = f"volumes/volume-{volume_id}"
            for server in self.servers():
                server.emu.control_routes["/rbd-images"]({"name": name, "size_gb": size})
            return {**base, "name": name, "auth_username": "cinder", "hosts": ["192.0.2.30"]}
        path = f"/srv/cinder/volume-{volume_id}"
        for server in self.servers():
            server.emu.control_routes["/management-files"]({"path": path, "size_gb": size})
        if protocol == "nfs":
            return {**base, "export": "nfs1.example.com:/srv/cinder", "name": f"volume-{volume_id}"}
        return {**base, "device_path": path}

    def grow(self, volume_id: str, size_gb: int) -> None:
        """Cinder extends the volume on the array (before Nova is told)."""
        self.sizes[volume_id] = size_gb
        protocol = self.protocols.get(volume_id, "fibre_channel")
        for server in self.servers():
            routes = server.emu.control_routes
            if protocol in ("fibre_channel", "iscsi"):
                try:
                    routes["/volumes/grow"](
                        {"udid_seed": f"cinder-volume-{volume_id}", "size_gb": size_gb}
                    )
                except ValueError:
                    pass  # NPIV: no VIOS of this host has the LUN
            elif protocol == "rbd":
                routes["/rbd-images"]({"name": f"volumes/volume-{volume_id}", "size_gb": size_gb})
            else:
                routes["/management-files"](
                    {"path": f"/srv/cinder/volume-{volume_id}", "size_gb": size_gb}
                )

    def _zone(self, server, data, connector) -> None:
        wwpns = {w.upper() for w in connector.get("wwpns") or []}
        emu = server.emu
        with emu.lock:
            vioses = [
                v.field("PartitionName")
                for v in emu.store.list("VirtualIOServer")
                if wwpns
                & {p.findtext("{*}WWPN") for p in v.elem.iter("{*}PhysicalFibreChannelPort")}
            ]
            for vios in vioses:
                emu.control_routes["/volumes"](
                    {
                        "vios": vios,
                        "size_gb": self.sizes.get(data["volume_id"], 1),
                        "lun": data["target_lun"],
                        "target_wwpn": self.targets[0],
                        "udid_seed": f"cinder-volume-{data['volume_id']}",
                    }
                )


def ovs_devname(port_id: str) -> str:
    """The tap name Nova gives an ovs port (``tap`` + id, 14 characters)."""
    return ("tap" + port_id)[:14]


def sriov_device_specs(server) -> list[dict]:
    """``[pci] device_spec`` for the emulated system's SR-IOV ports (by label)."""
    from ibmvirt.powervm import sriov

    emu = server.emu
    specs = []
    with emu.lock:
        for ad in emu.ms.elem.iter("{*}SRIOVAdapter"):
            aid = int(ad.findtext("{*}SRIOVAdapterID") or 0)
            for port in ad.iter():
                if isinstance(port.tag, str) and x_local(port).endswith("PhysicalPort"):
                    pid = int(port.findtext("{*}PhysicalPortID") or 0)
                    label = port.findtext("{*}Label") or sriov.DEFAULT_LABEL
                    specs.append(sriov.device_spec(aid, pid, label))
    return specs


def x_local(el) -> str:
    return el.tag.rsplit("}", 1)[-1]


class NovaLinkView:
    """What an operator would see on the emulated host, read from its state
    (not over the API, so request counts stay those of the driver)."""

    def __init__(self, server) -> None:
        self.emu = server.emu

    def _objs(self, kind: str):
        return self.emu.store.list(kind)

    def lpars(self) -> dict[str, dict]:
        """Client LPARs by name: state, UUID, processor and memory settings."""
        with self.emu.lock:
            out = {}
            for lp in self._objs("LogicalPartition"):
                if lp.field("IsManagementPartition") == "true":
                    continue
                el = lp.elem
                out[lp.field("PartitionName")] = {
                    "uuid": lp.uuid,
                    "state": lp.field("PartitionState"),
                    "id": lp.field("PartitionID"),
                    "memory_mb": int(el.findtext(".//{*}DesiredMemory") or 0),
                    "max_memory_mb": int(el.findtext(".//{*}MaximumMemory") or 0),
                    "vcpus": int(el.findtext(".//{*}DesiredVirtualProcessors") or 0),
                    "proc_units": float(el.findtext(".//{*}DesiredProcessingUnits") or 0),
                }
            return out

    def disk_sizes_gb(self) -> dict[str, float]:
        """Virtual disks (by name) and logical units (by unit name) with their size in GB."""
        with self.emu.lock:
            out = {}
            for vg in self._objs("VolumeGroup"):
                for d in vg.elem.iter("{*}VirtualDisk"):
                    out[d.findtext("{*}DiskName")] = float(d.findtext("{*}DiskCapacity") or 0)
            for lu in self._objs("LogicalUnit"):
                out[lu.field("UnitName")] = float(lu.field("UnitCapacity") or 0)
            return out

    def client_macs(self) -> list[str]:
        with self.emu.lock:
            return [
                c.field("MACAddress")
                for c in self._objs("ClientNetworkAdapter")
                if c.parent is not None and c.parent.kind == "LogicalPartition"
            ]

    def client_adapter_ids(self) -> dict[str, set[str]]:
        """UUIDs of the LPARs' CNAs and vNICs by MAC (what the SEA and SR-IOV
        agents see)."""
        out: dict[str, set[str]] = {}
        with self.emu.lock:
            for c in self._objs("ClientNetworkAdapter"):
                if c.parent is not None and c.parent.kind == "LogicalPartition":
                    out.setdefault(c.field("MACAddress"), set()).add(c.uuid)
            for v in self._objs("VirtualNICDedicated"):
                mac = v.elem.find("{*}Details").findtext("{*}MACAddress")
                out.setdefault(mac, set()).add(v.uuid)
        return out

    def vnics(self) -> list[dict]:
        """Every LPAR vNIC: MAC, VLAN, owner and its backing devices (adapter,
        port, capacity, failover priority, active) as the emulator holds them."""
        with self.emu.lock:
            out = []
            for v in self._objs("VirtualNICDedicated"):
                backs = [
                    {
                        "adapter": int(b.findtext("{*}RelatedSRIOVAdapterID") or -1),
                        "port": int(b.findtext("{*}RelatedSRIOVPhysicalPortID") or -1),
                        "capacity": b.findtext("{*}CurrentCapacityPercentage"),
                        "max_capacity": b.findtext("{*}MaxCapacityPercentage"),
                        "priority": b.findtext("{*}FailOverPriority"),
                        "active": b.findtext("{*}IsActive") == "true",
                    }
                    for b in v.elem.iter("{*}VirtualNICSRIOVBackingDevice")
                ]
                details = v.elem.find("{*}Details")
                out.append(
                    {
                        "lpar": v.parent.uuid if v.parent is not None else None,
                        "mac": details.findtext("{*}MACAddress"),
                        "vlan": details.findtext("{*}PortVLANID"),
                        "allowed_vlans": details.findtext("{*}AllowedVLANIDs"),
                        "backing": backs,
                    }
                )
            return out

    def sriov_ports_labelled(self, label: str) -> list[str]:
        """Location codes of the SR-IOV physical ports labelled ``label``."""
        with self.emu.lock:
            return [
                port.findtext("{*}LocationCode")
                for port in self.emu.ms.elem.iter()
                if isinstance(port.tag, str)
                and x_local(port).endswith("PhysicalPort")
                and (port.findtext("{*}Label") or "default") == label
            ]

    def sriov_logical_ports(self) -> list[str]:
        """UUIDs of every SR-IOV logical port (on LPARs and VIOSes)."""
        with self.emu.lock:
            return [lp.uuid for lp in self._objs("SRIOVEthernetLogicalPort")]

    def adapters_of(self, lpar_uuid: str) -> list[dict]:
        with self.emu.lock:
            return [
                {"mac": c.field("MACAddress"), "vlan": c.field("PortVLANID")}
                for c in self._objs("ClientNetworkAdapter")
                if c.parent is not None and c.parent.uuid == lpar_uuid
            ]

    def trunk_adapters(self) -> list[str]:
        """Adapters on the NovaLink partition (ovs trunks)."""
        with self.emu.lock:
            return [
                c.field("MACAddress")
                for c in self._objs("ClientNetworkAdapter")
                if c.parent is not None and c.parent.field("IsManagementPartition") == "true"
            ]

    def trunks(self) -> list[dict]:
        """Trunk adapters on the NovaLink partition with their virtual switch,
        VLAN, device name and OVS fields (what NovaLink makes an OVS port of)."""
        with self.emu.lock:
            switches = {
                s.field("SwitchID"): s.field("SwitchName") for s in self._objs("VirtualSwitch")
            }
            return [
                {
                    "mac": c.field("MACAddress"),
                    "vlan": c.field("PortVLANID"),
                    "vswitch": switches.get(c.field("VirtualSwitchID")),
                    "dev": c.field("DeviceName"),
                    "bridge": c.field("OvsBridge"),
                    "ext_ids": c.field("OvsPortExternalIds"),
                    "uuid": c.uuid,
                }
                for c in self._objs("ClientNetworkAdapter")
                if c.parent is not None
                and c.parent.field("IsManagementPartition") == "true"
                and c.field("TrunkPriority")
            ]

    def virtual_disks(self) -> list[str]:
        with self.emu.lock:
            names = []
            for vg in self._objs("VolumeGroup"):
                names += [d.findtext("{*}DiskName") for d in vg.elem.iter("{*}VirtualDisk")]
            return sorted(n for n in names if n)

    def optical_media(self) -> list[str]:
        with self.emu.lock:
            names = []
            for vg in self._objs("VolumeGroup"):
                names += [
                    m.findtext("{*}MediaName") for m in vg.elem.iter("{*}VirtualOpticalMedia")
                ]
            return sorted(n for n in names if n)

    def logical_units(self) -> list[str]:
        with self.emu.lock:
            return sorted(lu.field("UnitName") for lu in self._objs("LogicalUnit"))

    def scsi_mappings(self) -> list[tuple[str, str]]:
        """(VIOS name, backing storage name) of every vSCSI mapping to a client."""
        with self.emu.lock:
            out = []
            for v in self._objs("VirtualIOServer"):
                for m in v.elem.iter("{*}VirtualSCSIMapping"):
                    stg = m.find("{*}Storage")
                    if stg is None or len(stg) == 0:
                        continue
                    item = stg[0]
                    name = (
                        item.findtext("{*}DiskName")
                        or item.findtext("{*}MediaName")
                        or item.findtext("{*}UnitName")
                        or item.findtext("{*}VolumeName")
                    )
                    out.append((v.field("PartitionName"), name))
            return sorted(out)

    def mapped_sizes_gb(self) -> dict[tuple[str, str], float]:
        """(VIOS name, storage name) -> size in GB of each vSCSI-mapped hdisk,
        file or image, as the mapping shows it to the LPAR."""
        with self.emu.lock:
            out = {}
            for v in self._objs("VirtualIOServer"):
                for m in v.elem.iter("{*}VirtualSCSIMapping"):
                    stg = m.find("{*}Storage")
                    if stg is None or len(stg) == 0:
                        continue
                    item = stg[0]
                    if item.findtext("{*}VolumeName"):
                        size = float(item.findtext("{*}VolumeCapacity") or 0) / 1024
                        name = item.findtext("{*}VolumeName")
                    else:
                        size = float(item.findtext("{*}DiskCapacity") or 0)
                        name = item.findtext("{*}DiskName")
                    out[(v.field("PartitionName"), name)] = size
            return out

    def vfc_mappings(self) -> list[tuple[str, str, str]]:
        """(VIOS name, physical port, client WWPNs) of every vFC mapping."""
        with self.emu.lock:
            return sorted(
                (
                    v.field("PartitionName"),
                    m.findtext("{*}Port/{*}PortName") or "",
                    m.findtext("{*}ClientAdapter/{*}WWPNs") or "",
                )
                for v in self._objs("VirtualIOServer")
                for m in v.elem.iter("{*}VirtualFibreChannelMapping")
            )

    def physical_volumes(self) -> list[tuple[str, str]]:
        """(VIOS name, hdisk name) of every physical volume the VIOSes have."""
        with self.emu.lock:
            return sorted(
                (v.field("PartitionName"), p.findtext("{*}VolumeName"))
                for v in self._objs("VirtualIOServer")
                for p in v.elem.iter("{*}PhysicalVolume")
                if p.getparent() is not None and x_local(p.getparent()) == "PhysicalVolumes"
            )

    def nvram_of(self, lpar_name: str) -> str | None:
        """The partition's NVRAM (base64 text, as NovaLink serves it)."""
        with self.emu.lock:
            for lp in self._objs("LogicalPartition"):
                if lp.field("PartitionName") == lpar_name:
                    return lp.elem.findtext("{*}PartitionNVRAM")
            return None

    def client_slots(self, lpar_uuid: str) -> dict[str, dict[str, int]]:
        """The partition's virtual slots: network adapters by MAC, vSCSI
        client adapters by ``<VIOS name>/<backing storage name>``."""
        with self.emu.lock:
            cna = {
                c.field("MACAddress"): int(c.field("VirtualSlotNumber"))
                for c in self._objs("ClientNetworkAdapter")
                if c.parent is not None and c.parent.uuid == lpar_uuid
            }
            scsi = {}
            for v in self._objs("VirtualIOServer"):
                for m in v.elem.iter("{*}VirtualSCSIMapping"):
                    link = m.find("{*}AssociatedLogicalPartition")
                    href = link.get("href", "") if link is not None else ""
                    stg = m.find("{*}Storage")
                    if not href.upper().endswith(lpar_uuid.upper()) or stg is None or not len(stg):
                        continue
                    name = (
                        stg[0].findtext("{*}DiskName")
                        or stg[0].findtext("{*}MediaName")
                        or stg[0].findtext("{*}UnitName")
                        or stg[0].findtext("{*}UniqueDeviceID")
                    )
                    slot = m.findtext("{*}ClientAdapter/{*}VirtualSlotNumber")
                    scsi[f"{v.field('PartitionName')}/{name}"] = int(slot) if slot else None
            return {"cna": cna, "scsi": scsi}

    def boot_list(self, lpar_name: str) -> dict:
        """An LPAR's boot list as its firmware holds it: the pending and the
        stored list and the last booted device (paths), and the name of the
        storage it booted from (None when nothing booted)."""
        from ibmvirt.emulators.novalink.state import bootlist

        with self.emu.lock:
            (lp,) = [
                p for p in self._objs("LogicalPartition") if p.field("PartitionName") == lpar_name
            ]
            fields = bootlist.fields(lp.elem)
            booted = lp.ext.get("boot_device")
            return {
                "pending": fields[bootlist.PENDING].split(),
                "list": fields[bootlist.LIST].split(),
                "last": fields[bootlist.LAST],
                "booted": booted[1] if booted else None,
                "paths": dict(bootlist.devices(self.emu, lp)),
            }

    def disk_bytes(self, name_or_udid: str) -> dict | None:
        with self.emu.lock:
            return self.emu.uploads.get(name_or_udid)


class PowerVMComputeMixin:
    """[powervm] options for a compute host on an emulated NovaLink."""

    compute_driver = "ibmvirt.PowerVMDriver"
    inventory = "small"
    disk_driver = "localdisk"
    volume_group = "datavg"
    lifecycle_event_delay = 0.5
    #: Inventory ``host`` settings of a compute host's emulated system, by
    #: Nova host name (e.g. an older system's ``proc_compat_modes``).
    novalink_host_settings: dict[str, dict] = {}
    #: SR-IOV port labels ("<adapter>/<port>": label) added to the inventory's.
    sriov_port_labels: dict[str, str] = {}

    def driver_flags(self):
        #: The emulated managed system of each compute host, by host name.
        self.novalinks: dict = {}
        self.novalink = self.start_novalink(None, self.novalink_host_settings.get("compute"))
        self.nl_view = NovaLinkView(self.novalink)
        self.nl_control = self.novalink.httpd.RequestHandlerClass.control
        self.flags(
            group="powervm",
            novalink_port=self.novalink.port,
            disk_driver=self.disk_driver,
            volume_group_name=self.volume_group if self.disk_driver == "localdisk" else "",
            vios_ready_timeout=0,
            lifecycle_event_delay=self.lifecycle_event_delay,
            mgmt_disk_access="emulator",
            vterm_access="emulator",
            # Several computes (and test workers) on one machine: any free port.
            vnc_relay_port=0,
        )
        self.flags(reserved_host_memory_mb=0)
        # Tag each SR-IOV port's pseudo-VFs with its label, as an operator would
        # (ibmvirt.powervm.sriov.device_specs), and let the scheduler use them.
        self.flags(
            group="pci",
            device_spec=[json.dumps(s) for s in sriov_device_specs(self.novalink)],
        )
        self.flags(
            group="filter_scheduler",
            enabled_filters=[
                *nova_conf.CONF.filter_scheduler.enabled_filters,
                "PciPassthroughFilter",
            ],
        )

    def start_novalink(self, system_name: str | None, host_settings: dict | None = None):
        """A NovaLink emulator for one managed system of the inventory, named
        ``system_name`` (None: as the inventory names it), a peer of those
        started before it (one SSP cluster)."""
        state_dir = tempfile.mkdtemp(prefix="ibmvirt-nl-")
        self.addCleanup(_rmtree, state_dir)
        disk_dir = os.path.join(state_dir, "disks")
        os.makedirs(disk_dir, mode=0o700)
        os.makedirs(os.path.join(state_dir, "tokens"), mode=0o700)
        inv = copy.deepcopy(_fc_volumes_from_the_array(self.inventory))
        if self.sriov_port_labels:
            labels = {**inv["host"].get("sriov_port_labels", {}), **self.sriov_port_labels}
            inv["host"] = dict(inv["host"], sriov_port_labels=labels)
        system_name = system_name or inv["host"]["name"]
        if system_name != inv["host"]["name"]:
            serial = hashlib.sha256(system_name.encode()).hexdigest()[:7].upper()
            inv["host"] = dict(inv["host"], name=system_name, mtms=f"8408-E8E*{serial}")
        inv["host"].update(host_settings or {})
        server = app.start(
            inv,
            token_dir=os.path.join(state_dir, "tokens"),
            disk_dir=disk_dir,
            event_wait=1.0,
        )
        self.addCleanup(server.stop)
        for other in getattr(self, "_systems", []):
            _make_peers(other, server, system_name)
        self._systems = [*getattr(self, "_systems", []), server]
        return server

    def _start_compute(self, host, cell_name=None):
        """The first compute host gets the first emulated system, every other
        host a system of its own ([powervm] novalink_port is read at start-up)."""
        if not self.novalinks:
            server = self.novalink
        else:
            server = self.start_novalink(f"pvm-{host}", self.novalink_host_settings.get(host))
        self.novalinks[host] = server
        self.flags(group="powervm", novalink_port=server.port)
        return super()._start_compute(host, cell_name=cell_name)

    def restart_compute(self, host: str):
        """A new nova-compute (a new driver, nothing kept in memory) on the same
        emulated system, as after a restart of the service."""
        self.flags(group="powervm", novalink_port=self.novalinks[host].port)
        self.computes[host] = self.restart_compute_service(
            self.computes[host], keep_hypervisor_state=False
        )
        return self.computes[host]

    def guest_writes(self, server: dict, text: str, host: str | None = None) -> None:
        """The guest OS of ``server`` prints ``text`` on its console."""
        system = self.novalinks[host] if host else self.novalink
        body = json.dumps({"lpar": server["OS-EXT-SRV-ATTR:instance_name"], "text": text})
        req = urllib.request.Request(  # noqa: S310  (a loopback emulator)
            system.url + "/_emulator/vterm/write",
            data=body.encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310
            resp.read()

    def view_of(self, host: str) -> NovaLinkView:
        return NovaLinkView(self.novalinks[host])

    def setUp(self):
        self.useFixture(fixtures.MockPatch("nova.tests.fixtures.CinderFixture", self._make_cinder))
        self.useFixture(
            fixtures.MockPatch("nova.tests.fixtures.NeutronFixture", self._make_neutron)
        )
        self.useFixture(fixtures.MockPatch("nova.tests.fixtures.GlanceFixture", GlanceImages))
        super().setUp()

    def _wait_for_server_parameter(self, server, expected_params, max_retries=120, **kwargs):
        """Nova's helper gives up after 5 s; a loaded 2-core machine (or a VIOS
        that answers busy, retried after 5 s) needs longer."""
        return super()._wait_for_server_parameter(
            server, expected_params, max_retries=max(max_retries, 120), **kwargs
        )

    def _make_cinder(self, test):
        self.array = PowerVMFCArray(test, self._all_systems())
        return self.array

    def _make_neutron(self, test):
        self.pvm_neutron = PowerVMNeutron(test, self._all_systems())
        return self.pvm_neutron

    def _all_systems(self):
        """The hosts' systems, or the first one while no compute host runs yet."""
        return lambda: list(self.novalinks.values()) or [self.novalink]

    def boot_from_image(self, networks, expected_state="ACTIVE", config_drive=False, **server):
        body = self._build_server(networks=networks, image_uuid=IMAGE_ID, **server)
        if config_drive:
            body["config_drive"] = True
        created = self.api.post_server({"server": body})
        return self._wait_for_state_change(created, expected_state)

    def boot_from_volume(self, networks, expected_state="ACTIVE", **server):
        body = self._build_server(networks=networks, **server)
        body.pop("imageRef")
        body["block_device_mapping_v2"] = [
            {
                "source_type": "blank",
                "destination_type": "volume",
                "boot_index": 0,
                "volume_size": 1,
            }
        ]
        created = self.api.post_server({"server": body})
        return self._wait_for_state_change(created, expected_state)


def _fc_volumes_from_the_array(inv):
    """The inventory without its own discoverable FC volumes: in the sandbox
    every LUN comes from the FC array Cinder (PowerVMFCArray), the same disk on
    each VIOS zoned to it."""
    from ibmvirt.emulators.novalink import inventory

    inv = inventory.load(inv) if isinstance(inv, str) else inv
    for vios in inv.get("vioses", []):
        vios.pop("discoverable_volumes", None)
    return inv


def _make_peers(first, second, second_name: str) -> None:
    """Register ``second`` with ``first`` (an http peer is known back in return)."""
    body = json.dumps({"name": second_name, "url": second.url}).encode()
    req = urllib.request.Request(  # noqa: S310  (a loopback emulator)
        first.url + "/_emulator/peers",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310
        resp.read()


def wait_for(predicate, what: str = "condition", timeout: float = 30.0):
    """Poll ``predicate`` until it returns something true; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _rmtree(path: str) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


class PowerVMSingleComputeTestBase(PowerVMComputeMixin, harness.SingleComputeTestBase):
    """Real Nova with one PowerVM compute host ``compute``."""
