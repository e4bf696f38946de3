"""The Nova drivers' VIF translation, run in its own process (Nova and
Neutron cannot share one): reads port bindings made by real ML2 as JSON on
stdin, hands each to the plugging code of the driver its vif_type names,
and prints what that code would create, or its refusal, as JSON."""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("OS_NOVA_DISABLE_EVENTLET_PATCHING", "1")

from nova import exception  # noqa: E402
from nova.network import model  # noqa: E402

from ibmvirt import contract  # noqa: E402
from ibmvirt.dpm import exceptions as dpm_exc  # noqa: E402
from ibmvirt.dpm import nic  # noqa: E402
from ibmvirt.powervm import vif as pvm_vif  # noqa: E402


def nova_vif(port: dict) -> model.VIF:
    """The VIF Nova builds from a Neutron port (nova.network.neutron)."""
    network = model.Network(id=port["network_id"], bridge=None, label="net", meta={})
    return model.VIF(
        id=port["id"],
        address=port["mac_address"],
        network=network,
        type=port["binding:vif_type"],
        details=port["binding:vif_details"],
        vnic_type=port["binding:vnic_type"],
        active=False,
    )


def plug(port: dict) -> dict:
    vif = nova_vif(port)
    try:
        if vif["type"] == contract.VIF_TYPE_DPM_VSWITCH:
            spec = nic.VifSpec.from_vif(vif)
            return {"vswitch_id": spec.vswitch_id, "mac": spec.mac}
        if vif["type"] == contract.VIF_TYPE_PVM_SEA:
            return {"vlan": pvm_vif.vlan_of(vif), "mac": contract.pvm_mac(vif["address"])}
    except (dpm_exc.InvalidVIF, exception.VirtualInterfacePlugException) as exc:
        return {"refused": str(exc)}
    return {"refused": f"no Nova driver plugs vif_type {vif['type']!r}"}


def main() -> None:
    json.dump([plug(p) for p in json.load(sys.stdin)], sys.stdout)


if __name__ == "__main__":
    main()
