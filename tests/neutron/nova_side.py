"""The Nova drivers' VIF translation, run in its own process (Nova and
Neutron cannot share one): reads port bindings made by real ML2 as JSON on
stdin, hands each to the plugging code of the driver its vif_type names,
and prints what that code would create, or its refusal, as JSON.

Input: a list of ports, or ``{"ports": [...], "novalink": {"port": <emulator
port>, "lpar": <LPAR UUID>}}``: ``pvm_sriov`` ports are then really plugged
by the PowerVM driver's VIF code into that LPAR on that NovaLink emulator,
and the output is the vNIC NovaLink holds afterwards."""

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


def _novalink_adapter(novalink: dict):
    import logging

    import pypowervm.adapter as pvm_adpt

    logging.getLogger("pypowervm.adapter").setLevel(logging.ERROR)  # plain http on loopback
    session = pvm_adpt.Session(
        "127.0.0.1", "neo", "passw0rd", protocol="http", port=novalink["port"], conn_tries=1
    )
    return pvm_adpt.Adapter(session)


def plug_sriov(vif, novalink: dict) -> dict:
    """Plug with the PowerVM driver's code; the vNIC as NovaLink returns it."""
    from pypowervm.wrappers import iocard as pvm_card
    from pypowervm.wrappers import logical_partition as pvm_lpar

    adapter = _novalink_adapter(novalink)
    try:
        lpar = pvm_lpar.LPAR.get(adapter, uuid=novalink["lpar"])
        pvm_vif.driver_for(vif, adapter, adapter.sys_uuid, None).plug(lpar, vif, "vm")
        (vnic,) = [
            v
            for v in pvm_card.VNIC.get(adapter, parent=lpar)
            if v.mac == contract.pvm_mac(vif["address"])
        ]
        return {
            "mac": vnic.mac,
            "vlan": vnic.pvid,
            "backing": sorted(
                [b.sriov_adap_id, b.pport_id, b.capacity, b.failover_pri] for b in vnic.back_devs
            ),
        }
    finally:
        adapter.session._logoff()


def plug(port: dict, novalink: dict | None = None) -> dict:
    vif = nova_vif(port)
    try:
        if vif["type"] == contract.VIF_TYPE_PVM_SRIOV and novalink:
            return plug_sriov(vif, novalink)
        if vif["type"] == contract.VIF_TYPE_DPM_VSWITCH:
            spec = nic.VifSpec.from_vif(vif)
            return {"vswitch_id": spec.vswitch_id, "mac": spec.mac}
        if vif["type"] == contract.VIF_TYPE_PVM_SEA:
            return {"vlan": pvm_vif.vlan_of(vif), "mac": contract.pvm_mac(vif["address"])}
    except (dpm_exc.InvalidVIF, exception.VirtualInterfacePlugException) as exc:
        return {"refused": str(exc)}
    return {"refused": f"no Nova driver plugs vif_type {vif['type']!r}"}


def main() -> None:
    given = json.load(sys.stdin)
    if isinstance(given, list):
        given = {"ports": given}
    json.dump([plug(p, given.get("novalink")) for p in given["ports"]], sys.stdout)


if __name__ == "__main__":
    main()
