"""SR-IOV physical ports as Nova sees them: what a ``direct`` port can land on.

Nova turns a ``vnic_type=direct`` port into a PCI request for one device
tagged with the network's physical network, which the scheduler
(PciPassthroughFilter) and the compute's claim match against the devices a
driver reports in ``pci_passthrough_devices``, tagged by ``[pci]
device_spec``. A vNIC's virtual functions are created when it is plugged,
so this module reports pseudo-VFs (as nova-powervm did): one per configured
logical port of each running SR-IOV physical port, at an address that names
the adapter and port (``<adapter>:<port>:<slot>.<function>``, hexadecimal),
so that an operator tags a port's VFs with its label:

    [pci] device_spec = {"address": "0001:00:*.*", "physical_network": "physnet-prod"}

:func:`device_specs` writes those specs from the port labels.
"""

from __future__ import annotations

from pypowervm.wrappers import iocard as pvm_card

#: PCI vendor id of the pseudo-VFs (IBM); product id of an SR-IOV logical port.
VENDOR_ID = "1014"
PRODUCT_ID = "0001"
#: The PCI address's slot is 5 bits, its function 3: at most 256 per port.
MAX_VFS_PER_PORT = 32 * 8
DEFAULT_LABEL = "default"


def label_of(pport) -> str:
    """The physical network a port serves: its label (pypowervm's 'default' if none)."""
    return pport.label or DEFAULT_LABEL


def running_ports(system) -> list:
    """Physical ports of the adapters in SR-IOV mode and running."""
    asio = system.asio_config
    return [
        p
        for a in (asio.sriov_adapters if asio is not None else [])
        if a.mode == pvm_card.SRIOVAdapterMode.SRIOV
        and a.state == pvm_card.SRIOVAdapterState.RUNNING
        for p in a.phys_ports
    ]


def device_spec(adapter_id: int, port_id: int, label: str) -> dict:
    """The ``[pci] device_spec`` entry tagging one port's pseudo-VFs with its label."""
    return {"address": f"{adapter_id:04x}:{port_id:02x}:*.*", "physical_network": label}


def _address(pport, index: int) -> str:
    return f"{pport.sriov_adap_id:04x}:{pport.port_id:02x}:{index // 8:02x}.{index % 8}"


def vf_count(pport) -> int:
    """Pseudo-VFs of a port: its configured logical ports while its link is up.

    Not the free ones: Nova claims these entries itself, so a count that
    shrank with each of its own vNICs would count them twice. Logical ports
    taken outside Nova are found when a vNIC is planned (:func:`plan`).
    """
    if not pport.link_status:
        return 0
    return min(pport.cfg_max_lps, MAX_VFS_PER_PORT)


def pseudo_vfs(system) -> list[dict]:
    """``pci_passthrough_devices`` entries, type-VF, per running labelled port."""
    devices = []
    for pport in running_ports(system):
        for index in range(vf_count(pport)):
            devices.append(
                {
                    "address": _address(pport, index),
                    "vendor_id": VENDOR_ID,
                    "product_id": PRODUCT_ID,
                    "dev_type": "type-VF",
                    "dev_id": f"pvm_sriov_{pport.sriov_adap_id}_{pport.port_id}_{index}",
                    "label": f"label_{VENDOR_ID}_{PRODUCT_ID}",
                    "numa_node": None,
                    "parent_addr": None,
                }
            )
    return devices


def device_specs(system) -> list[dict]:
    """The ``[pci] device_spec`` entries that tag each port's pseudo-VFs with
    its label (what an operator puts in nova.conf)."""
    return [device_spec(p.sriov_adap_id, p.port_id, label_of(p)) for p in running_ports(system)]


def ports_for(system, physnet: str, location_codes: list[str] | None = None) -> list:
    """Running ports labelled ``physnet`` (only those listed, if a list is given)."""
    ports = [p for p in running_ports(system) if label_of(p) == physnet]
    if location_codes:
        wanted = set(location_codes)
        ports = [p for p in ports if p.loc_code in wanted]
    return ports
